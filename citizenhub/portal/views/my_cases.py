"""My cases: the resident's own cases, what happened on them, and their two actions (add
information, reopen a resolved case). Every lookup goes through request.citizen: another
resident's reference is "not found", exactly like one that does not exist."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET

from citizenhub.errors import ApplicationError
from citizenhub.models import ServiceCase
from citizenhub.portal import selectors
from citizenhub.portal.access import resident_required
from citizenhub.portal.forms_cases import CaseReopenForm, CaseUpdateForm, case_update_refusal
from citizenhub.portal.limits import case_updates_limit, resident_key
from citizenhub.services.cases import (
    RESIDENT_LABEL,
    case_resident_reopen,
    case_resident_update,
    resident_can_reopen,
)

Status = ServiceCase.Status


def _case_or_404(request: HttpRequest, reference: str) -> ServiceCase:
    case = selectors.resident_case(request.citizen, reference)
    if case is None:
        raise Http404(_("No case of yours has that reference."))
    return case


def _not_allowed(request: HttpRequest, *methods: str) -> HttpResponse | None:
    """405 for another method, checked after the case was found: another resident's
    reference must be "not found" whatever the method, never "method not allowed"."""
    if request.method in methods:
        return None
    return HttpResponseNotAllowed(methods)


def _case_url(case: ServiceCase) -> str:
    return reverse("portal:my-case", args=[case.reference])


@require_GET
@resident_required
def case_list(request: HttpRequest) -> HttpResponse:
    paginator = Paginator(selectors.resident_cases(request.citizen), selectors.CASES_PAGE_SIZE)
    page = paginator.get_page(request.GET.get("page"))
    for case in page.object_list:
        case.resident_title = selectors.resident_case_title(case, request.user.pk)
    rows = [(case, selectors.resident_status(case.status)) for case in page.object_list]
    return render(
        request,
        "portal/my/cases/list.html",
        {
            "page": page,
            "open_rows": [row for row in rows if row[0].is_open],
            "past_rows": [row for row in rows if not row[0].is_open],
            "previous_url": f"?page={page.previous_page_number()}" if page.has_previous() else "",
            "next_url": f"?page={page.next_page_number()}" if page.has_next() else "",
        },
    )


def _render_case(
    request: HttpRequest,
    case: ServiceCase,
    *,
    status: int = 200,
    update_form: CaseUpdateForm | None = None,
    reopen_form: CaseReopenForm | None = None,
    error_form: Any = None,
) -> HttpResponse:
    if case.anonymised_at is not None:
        return render(
            request,
            "portal/my/cases/tombstone.html",
            {"case": case, "status": selectors.resident_status(case.status)},
        )
    reopen_days = settings.PORTAL_REOPEN_DAYS
    can_reopen = resident_can_reopen(case, reopen_days=reopen_days)
    case.resident_title, case.resident_description = selectors.resident_case_texts(
        case, request.user.pk
    )
    case.details_withheld = not selectors.case_details_shown(case, request.user.pk)
    context = {
        "case": case,
        "status": selectors.resident_status(case.status),
        "history": [
            selectors.history_line(event, request.user)
            for event in selectors.resident_case_history(case)
        ],
        "attachments": selectors.resident_case_attachments(case, request.citizen),
        "show_resolution": case.status in (Status.RESOLVED, Status.CLOSED) and case.resolution,
        "update_form": (update_form or CaseUpdateForm()) if case.is_open else None,
        "reopen_form": (reopen_form or CaseReopenForm()) if can_reopen else None,
        "reopen_days": reopen_days,
        "error_form": error_form,
    }
    return render(request, "portal/my/cases/detail.html", context, status=status)


@resident_required
def case_detail(request: HttpRequest, reference: str) -> HttpResponse:
    case = _case_or_404(request, reference)
    return _not_allowed(request, "GET", "HEAD") or _render_case(request, case)


def _add_service_errors(form: Any, field: str, exc: ValidationError) -> None:
    for message in exc.messages:
        form.add_error(field, message)


@resident_required
def case_add_update(request: HttpRequest, reference: str) -> HttpResponse:
    case = _case_or_404(request, reference)
    if refused := _not_allowed(request, "POST"):
        return refused
    form = CaseUpdateForm(request.POST, case=case)
    limit, key = case_updates_limit(), resident_key(request.citizen)
    if form.is_valid() and (retry_after := limit.consume(key)) is not None:
        form.add_error(
            None,
            ngettext(
                "You have added a lot of information in the last hour. Wait %(minutes)d minute "
                "and try again.",
                "You have added a lot of information in the last hour. Wait %(minutes)d "
                "minutes and try again.",
                max(1, retry_after // 60),
            )
            % {"minutes": max(1, retry_after // 60)},
        )
        return _render_case(request, case, status=429, update_form=form, error_form=form)
    if form.is_valid():
        try:
            case_resident_update(
                case=case,
                text=form.cleaned_data["text"],
                data={"source": "portal"},
                actor=request.user,
                actor_label=RESIDENT_LABEL,
                on_timeline=True,
            )
        except ApplicationError:
            form.add_error(None, case_update_refusal(case) or _("This case cannot be updated."))
        except ValidationError as exc:
            _add_service_errors(form, "text", exc)
        else:
            messages.success(
                request,
                _("Thank you. Your information has been added to case %(reference)s.")
                % {"reference": case.reference},
            )
            return redirect(_case_url(case))
    return _render_case(request, case, status=400, update_form=form, error_form=form)


@resident_required
def case_reopen(request: HttpRequest, reference: str) -> HttpResponse:
    case = _case_or_404(request, reference)
    if refused := _not_allowed(request, "POST"):
        return refused
    form = CaseReopenForm(request.POST)
    reopen_days = settings.PORTAL_REOPEN_DAYS
    if form.is_valid():
        try:
            case_resident_reopen(
                case=case,
                reason=form.cleaned_data["reason"],
                reopen_days=reopen_days,
                actor=request.user,
                actor_label=RESIDENT_LABEL,
            )
        except ApplicationError as exc:
            form.add_error(None, _reopen_refusal(exc, reopen_days))
        except ValidationError as exc:
            _add_service_errors(form, "reason", exc)
        else:
            messages.success(
                request,
                _("Case %(reference)s has been reopened. We will look at it again.")
                % {"reference": case.reference},
            )
            return redirect(_case_url(case))
    return _render_case(request, case, status=400, reopen_form=form, error_form=form)


def _reopen_refusal(exc: ApplicationError, reopen_days: int) -> str:
    if exc.code == "not_resolved":
        return _("This case is still open, so it does not need reopening.")
    if exc.code == "reopen_too_late":
        return _(
            "This case was resolved more than %(days)s days ago, so it can no longer be "
            "reopened. If the problem is back, report it again."
        ) % {"days": reopen_days}
    return _("This case cannot be reopened.")
