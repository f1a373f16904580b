"""Staff pages for service cases: the work queue, opening a case, and the case page.

Every change on the case page is a small POST form carrying the case `version` the officer
was looking at; the case services refuse a change based on an older version, and the page
then says who changed the case meanwhile instead of overwriting their work. Cases of
sensitive services show only that they exist to officers outside the case's team.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from citizenhub import case_selectors
from citizenhub.errors import ApplicationError, ConflictError
from citizenhub.models import AuditEvent, CaseEvent, Citizen, ServiceCase
from citizenhub.services import audit_record
from citizenhub.services import cases as case_services
from citizenhub.staff import case_forms
from citizenhub.staff.access import staff_required
from citizenhub.staff.panels import case_panels

Status = ServiceCase.Status

VIEW_PERMISSION = "citizenhub.view_servicecase"
ADD_PERMISSION = "citizenhub.add_servicecase"
CHANGE_PERMISSION = "citizenhub.change_servicecase"
TRANSITION_PERMISSION = "citizenhub.transition_servicecase"
LEGAL_HOLD_PERMISSION = "citizenhub.set_legal_hold"

STATUS_TAGS = {
    Status.NEW: "govuk-tag--blue",
    Status.OPEN: "govuk-tag--light-blue",
    Status.IN_PROGRESS: "govuk-tag--purple",
    Status.WAITING: "govuk-tag--yellow",
    Status.RESOLVED: "govuk-tag--green",
    Status.CLOSED: "govuk-tag--grey",
}
PRIORITY_TAGS = {
    ServiceCase.Priority.LOW: "govuk-tag--grey",
    ServiceCase.Priority.NORMAL: "govuk-tag--blue",
    ServiceCase.Priority.HIGH: "govuk-tag--orange",
    ServiceCase.Priority.URGENT: "govuk-tag--red",
}


@dataclass(frozen=True)
class Deadline:
    """How a case stands against its due date, worded for the queue and the case page."""

    state: str  # overdue | today | stopped | due | done
    tag: str
    tag_class: str
    detail: str


def case_deadline(case: ServiceCase, today: datetime.date) -> Deadline:
    """Overdue, due today, clock stopped, or days left. A case waiting on the resident is
    late only if it was already past due when its clock stopped (as mark_breached_cases)."""
    if not case.is_open:
        return Deadline("done", "", "", "")
    stopped_on = timezone.localtime(case.clock_stopped_at).date() if case.clock_stopped_at else None
    if stopped_on is not None and stopped_on <= case.due_on:
        return Deadline(
            "stopped",
            _("Clock stopped"),
            "govuk-tag--grey",
            _(
                "clock stopped on %(date)s while waiting on the resident; the due date moves "
                "when it restarts"
            )
            % {"date": date_format(stopped_on, "j F Y")},
        )
    days = (case.due_on - today).days
    if days < 0:
        late = ngettext("%(days)d day overdue", "%(days)d days overdue", -days) % {"days": -days}
        return Deadline("overdue", _("Overdue"), "govuk-tag--red", late)
    if days == 0:
        return Deadline("today", _("Due today"), "govuk-tag--orange", _("due today"))
    left = ngettext("%(days)d day left", "%(days)d days left", days) % {"days": days}
    return Deadline("due", "", "", left)


def _decorate(case: ServiceCase, today: datetime.date) -> ServiceCase:
    """Attach what the templates show, so they need no lookups of their own."""
    case.deadline = case_deadline(case, today)
    case.status_tag = STATUS_TAGS.get(case.status, "govuk-tag--grey")
    case.priority_tag = PRIORITY_TAGS.get(case.priority, "govuk-tag--grey")
    return case


def _refuse(request: HttpRequest, message: str) -> HttpResponse:
    return render(request, "staff/cases/refused.html", {"message": message}, status=403)


def _lacks(request: HttpRequest, *permissions: str) -> HttpResponse | None:
    if request.user.has_perms(permissions):
        return None
    return _refuse(
        request,
        _("Your role does not allow this. Ask your supervisor if you need to work on cases."),
    )


# --- The queue -----------------------------------------------------------------------------


@require_GET
@staff_required
def case_queue(request: HttpRequest) -> HttpResponse:
    refusal = _lacks(request, VIEW_PERMISSION)
    if refusal:
        return refusal
    form = case_forms.CaseQueueFilterForm(request.GET)
    if not form.is_valid():
        return render(
            request,
            "staff/cases/queue.html",
            {"form": form, "scopes": _scope_links(request, "mine"), "cases": []},
            status=400,
        )
    data = form.cleaned_data
    scope, team, status, page = data["scope"], data["team"], data["status"], data["page"]
    queryset = case_selectors.case_queue(
        request.user,
        scope=scope,
        team=team if scope in ("team", "unassigned") else None,
        include_closed=status in (Status.RESOLVED, Status.CLOSED),
    )
    if team is not None and scope in ("mine", "all"):
        queryset = queryset.filter(team=team)
    if data["service"] is not None:
        queryset = queryset.filter(service=data["service"])
    if status:
        queryset = queryset.filter(status=status)
    # Page numbers without a COUNT: one row more than a page says whether there is a next.
    size = case_forms.PAGE_SIZE
    rows = list(queryset[(page - 1) * size : page * size + 1])
    has_next = len(rows) > size
    today = timezone.localdate()
    cases = [_decorate(case, today) for case in rows[:size]]
    return render(
        request,
        "staff/cases/queue.html",
        {
            "form": form,
            "scope": scope,
            "scopes": _scope_links(request, scope),
            "scope_label": dict(case_forms.QUEUE_SCOPES)[scope],
            "cases": cases,
            "page": page,
            "previous_url": _page_url(request, page - 1) if page > 1 else "",
            "next_url": _page_url(request, page + 1) if has_next else "",
            "redacted_title": case_selectors.REDACTED_TITLE,
            "staff_section": "cases",
        },
    )


def _page_url(request: HttpRequest, page: int) -> str:
    query = request.GET.copy()
    query["page"] = str(page)
    return f"{request.path}?{query.urlencode()}"


def _scope_links(request: HttpRequest, current: str) -> list[dict[str, Any]]:
    """Each queue's link keeps the filters but starts again at page one."""
    query = request.GET.copy()
    query.pop("page", None)
    links = []
    for value, label in case_forms.QUEUE_SCOPES:
        query["scope"] = value
        links.append(
            {
                "label": label,
                "url": f"{request.path}?{query.urlencode()}",
                "current": value == current,
            }
        )
    return links


# --- Opening a case ------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@staff_required
def case_new(request: HttpRequest) -> HttpResponse:
    refusal = _lacks(request, VIEW_PERMISSION, ADD_PERMISSION)
    if refusal:
        return refusal
    citizen = _citizen_from_query(request)
    form = case_forms.CaseOpenForm(request.POST or None, auto_id="case-%s")
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            case = case_services.open_case(
                service=data["service"],
                title=data["title"],
                description=data["description"],
                priority=data["priority"],
                source_channel=data["source_channel"],
                location_text=data["location_text"],
                postcode=data["postcode"],
                citizen=citizen,
                actor=request.user,
            )
        except ValidationError as exc:
            _add_errors(form, exc)
        except ApplicationError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, _("Case %(ref)s opened.") % {"ref": case.reference})
            return HttpResponseRedirect(_detail_url(case))
    return render(
        request,
        "staff/cases/new.html",
        {"form": form, "citizen": citizen, "staff_section": "cases"},
        status=400 if form.is_bound and form.errors else 200,
    )


def _citizen_from_query(request: HttpRequest) -> Citizen | None:
    raw = request.GET.get("citizen", "").strip()
    if not raw:
        return None
    try:
        return Citizen.objects.get(public_id=raw)
    except (Citizen.DoesNotExist, ValidationError, ValueError):
        raise Http404("No resident with that id.") from None


# --- The case page -------------------------------------------------------------------------


def _detail_url(case: ServiceCase) -> str:
    return reverse("staff:case-detail", kwargs={"reference": case.reference})


def _load_case(request: HttpRequest, reference: str) -> ServiceCase:
    return get_object_or_404(case_selectors.cases_for(request.user), reference=reference)


@require_GET
@staff_required
def case_detail(request: HttpRequest, reference: str) -> HttpResponse:
    refusal = _lacks(request, VIEW_PERMISSION)
    if refusal:
        return refusal
    case = _load_case(request, reference)
    audit_record(
        action=AuditEvent.Action.VIEW,
        target=case,
        actor=request.user,
        citizen=case.citizen,
        details={"content_visible": bool(case.content_visible)},
    )
    return _render_case(request, case)


def _forms_for(case: ServiceCase, bound: dict[str, Any]) -> dict[str, Any]:
    """The change forms of the page: unbound at the case's current version, except the one
    the officer just posted (bound, with its errors)."""
    version = {"version": case.version}
    transitions = []
    for to_status in case_services.allowed_transitions(case.status):
        form = bound.get(f"transition:{to_status}") or case_forms.CaseTransitionForm(
            initial={**version, "status": to_status}, auto_id=f"transition-{to_status}-%s"
        )
        transitions.append(
            {
                "status": to_status,
                "label": _transition_label(case.status, to_status),
                "form": form,
                "needs_resolution": to_status == Status.RESOLVED,
                "needs_reason": (case.status, to_status) in case_services.NEEDS_REASON,
            }
        )
    members = case.team.members.filter(is_active=True, is_staff=True).order_by(
        "first_name", "last_name", "username"
    )
    return {
        "transitions": transitions,
        "assign_form": bound.get("assign")
        or case_forms.CaseAssignForm(
            initial={**version, "assignee": case.assignee_id}, members=members, auto_id="assign-%s"
        ),
        "details_form": bound.get("details")
        or case_forms.CaseDetailsForm(
            initial={
                **version,
                "title": case.title,
                "description": case.description,
                "priority": case.priority,
                "location_text": case.location_text,
                "postcode": case.postcode,
            },
            auto_id="details-%s",
        ),
        "note_form": bound.get("note") or case_forms.CaseNoteForm(auto_id="note-%s"),
        "hold_form": bound.get("hold")
        or case_forms.CaseLegalHoldForm(
            initial={"hold": "0" if case.legal_hold else "1"}, auto_id="hold-%s"
        ),
    }


def _transition_label(from_status: str, to_status: str) -> str:
    if to_status == Status.OPEN:
        if from_status in (Status.RESOLVED, Status.CLOSED):
            return _("Reopen")
        if from_status == Status.NEW:
            return _("Accept")
        return _("Move back to open")
    return {
        Status.IN_PROGRESS: _("Start work"),
        Status.WAITING: _("Wait for the resident"),
        Status.RESOLVED: _("Resolve"),
        Status.CLOSED: _("Close"),
    }.get(to_status, str(Status(to_status).label))


def _render_case(
    request: HttpRequest,
    case: ServiceCase,
    *,
    bound: dict[str, Any] | None = None,
    error_form: Any = None,
    status: int = 200,
) -> HttpResponse:
    today = timezone.localdate()
    _decorate(case, today)
    context: dict[str, Any] = {
        "case": case,
        "staff_section": "cases",
        "citizen_url": f"/staff/citizens/{case.citizen.public_id}/" if case.citizen else "",
        "redacted_title": case_selectors.REDACTED_TITLE,
    }
    if not case.content_visible:
        return render(request, "staff/cases/restricted.html", context, status=status)
    user = request.user
    context.update(
        {
            "events": _history(case),
            "panels": case_panels(request, case),
            "error_form": error_form,
            "can_change": user.has_perm(CHANGE_PERMISSION),
            "can_transition": user.has_perm(TRANSITION_PERMISSION),
            "can_hold": user.has_perm(LEGAL_HOLD_PERMISSION),
            "note_kind": CaseEvent.Kind.NOTE,
            "staff_visibility": CaseEvent.Visibility.STAFF,
            **_forms_for(case, bound or {}),
        }
    )
    return render(request, "staff/cases/detail.html", context, status=status)


def _history(case: ServiceCase) -> list[CaseEvent]:
    """The case's history, oldest first, with status names as people read them."""
    labels = dict(Status.choices)
    events = list(case.events.select_related("actor").order_by("created_at", "id"))
    for event in events:
        event.from_label = labels.get(event.from_status, event.from_status)
        event.to_label = labels.get(event.to_status, event.to_status)
    return events


def _add_errors(form: Any, exc: ValidationError) -> None:
    """Put a service's ValidationError on the form's fields (or on the form)."""
    if hasattr(exc, "error_dict"):
        for field, errors in exc.message_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, exc.messages)


def _conflict_message(exc: ConflictError) -> str:
    who = exc.extra.get("changed_by")
    if who:
        return _(
            "This case was changed by %(who)s since you opened it. Check the case as it is "
            "now (shown below), then make your change again."
        ) % {"who": who}
    return _(
        "This case was changed by someone else since you opened it. Check the case as it is "
        "now (shown below), then make your change again."
    )


def _case_for_change(
    request: HttpRequest, reference: str, *permissions: str
) -> ServiceCase | HttpResponse:
    refusal = _lacks(request, VIEW_PERMISSION, *permissions)
    if refusal:
        return refusal
    case = _load_case(request, reference)
    if not case.content_visible:
        return _refuse(
            request,
            _("This case belongs to a sensitive service: only its team can work on it."),
        )
    return case


def _apply(
    request: HttpRequest,
    case: ServiceCase,
    form: Any,
    key: str,
    change: Any,
    success: str,
) -> HttpResponse:
    """Run a change from a valid form; on refusal show the page again with the form's errors
    (400, or 409 when someone else changed the case first) and nothing changed."""
    status = 400
    if form.is_valid():
        try:
            change(form.cleaned_data)
        except ConflictError as exc:
            form.add_error(None, _conflict_message(exc))
            # The page now shows the case as it is; sending the form again applies the
            # change on top of it, which is the officer's informed choice.
            data = form.data.copy()
            data["version"] = str(exc.extra.get("current_version", ""))
            form.data = data
            status = 409
        except ValidationError as exc:
            _add_errors(form, exc)
        except ApplicationError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, success)
            return HttpResponseRedirect(_detail_url(case))
    fresh = _load_case(request, case.reference)
    return _render_case(request, fresh, bound={key: form}, error_form=form, status=status)


@require_POST
@staff_required
def case_transition_view(request: HttpRequest, reference: str) -> HttpResponse:
    case = _case_for_change(request, reference, TRANSITION_PERMISSION)
    if isinstance(case, HttpResponse):
        return case
    to_status = request.POST.get("status", "")
    form = case_forms.CaseTransitionForm(request.POST, auto_id=f"transition-{to_status}-%s")
    # An unknown target status gets its error shown with the form, not a page of its own.
    key = f"transition:{to_status}"
    if to_status not in case_services.allowed_transitions(case.status):
        key = "transition:error"

    def change(data: dict[str, Any]) -> None:
        case_services.case_transition(
            case=case,
            to_status=data["status"],
            expected_version=data["version"],
            actor=request.user,
            reason=data["reason"],
            resolution=data["resolution"],
        )

    label = dict(Status.choices).get(to_status, to_status)
    return _apply(
        request,
        case,
        form,
        key,
        change,
        _("Case %(ref)s is now “%(status)s”.") % {"ref": case.reference, "status": label},
    )


@require_POST
@staff_required
def case_assign_view(request: HttpRequest, reference: str) -> HttpResponse:
    case = _case_for_change(request, reference, CHANGE_PERMISSION)
    if isinstance(case, HttpResponse):
        return case
    # Anyone may be chosen in a hand-made request; the service refuses non-members with a
    # clear message, so the form offers all staff and the service decides.
    form = case_forms.CaseAssignForm(request.POST, members=_assignable(case), auto_id="assign-%s")

    def change(data: dict[str, Any]) -> None:
        case_services.case_assign(
            case=case,
            expected_version=data["version"],
            assignee=data["assignee"],
            actor=request.user,
        )

    return _apply(
        request, case, form, "assign", change, _("Case %(ref)s assigned.") % {"ref": case.reference}
    )


def _assignable(case: ServiceCase) -> QuerySet:
    return get_user_model().objects.filter(is_active=True)


@require_POST
@staff_required
def case_edit_view(request: HttpRequest, reference: str) -> HttpResponse:
    case = _case_for_change(request, reference, CHANGE_PERMISSION)
    if isinstance(case, HttpResponse):
        return case
    form = case_forms.CaseDetailsForm(request.POST, auto_id="details-%s")

    def change(data: dict[str, Any]) -> None:
        changes = {name: data[name] for name in case_forms.CaseDetailsForm.base_fields}
        version = changes.pop("version")
        case_services.case_update_details(
            case=case, expected_version=version, actor=request.user, **changes
        )

    return _apply(request, case, form, "details", change, _("Case details saved."))


@require_POST
@staff_required
def case_note_view(request: HttpRequest, reference: str) -> HttpResponse:
    case = _case_for_change(request, reference, CHANGE_PERMISSION)
    if isinstance(case, HttpResponse):
        return case
    form = case_forms.CaseNoteForm(request.POST, auto_id="note-%s")

    def change(data: dict[str, Any]) -> None:
        case_services.case_add_note(case=case, text=data["text"], actor=request.user)

    return _apply(request, case, form, "note", change, _("Note added."))


@require_POST
@staff_required
def case_legal_hold_view(request: HttpRequest, reference: str) -> HttpResponse:
    case = _case_for_change(request, reference, LEGAL_HOLD_PERMISSION)
    if isinstance(case, HttpResponse):
        return case
    form = case_forms.CaseLegalHoldForm(request.POST, auto_id="hold-%s")

    def change(data: dict[str, Any]) -> None:
        case_services.case_set_legal_hold(
            case=case, hold=data["hold"], reason=data["reason"], actor=request.user
        )

    return _apply(request, case, form, "hold", change, _("Legal hold updated."))
