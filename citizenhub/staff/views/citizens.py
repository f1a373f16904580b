"""The citizen 360 page: one resident's identities, addresses, cases, conversations and timeline.

Every view of the page (and every "load more" of its timeline) writes an audit event: who
looked at whose record, when, and for what purpose if the officer gave one. Sensitive
services' cases and timeline entries show that they exist, not what they say, to officers
outside the team (citizenhub.case_selectors). The page runs a constant number of queries
whatever the resident's history: each section is one bounded query.
"""

from __future__ import annotations

import datetime
import uuid
from dataclasses import dataclass
from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Case, F, Q, Value, When
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.dates import MONTHS_3
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET

from citizenhub import selectors
from citizenhub.case_selectors import (
    REDACTED_TITLE,
    can_see_case_content,
    hidden_service_codes,
)
from citizenhub.models import (
    AuditEvent,
    ChannelKind,
    Citizen,
    ContactPoint,
    DuplicateCandidate,
    ServiceCase,
    TimelineEntry,
)
from citizenhub.services import audit_record
from citizenhub.services.identity import follow_merges
from citizenhub.staff.access import staff_required
from citizenhub.staff.panels import citizen_panels
from citizenhub.staff.views.cases import STATUS_TAGS, case_deadline

VIEW_PERMISSION = "citizenhub.view_citizen"
OPEN_CASE_PERMISSION = "citizenhub.add_servicecase"
REDACTED_ENTRY = gettext_lazy("Sensitive: restricted to its team")
# Bounds that keep the page one query per section even for an unusual profile; the page
# says when a list was cut.
CONTACT_POINTS_SHOWN = 100
ADDRESSES_SHOWN = 50
# The soonest due first; a resident with more is rare, and 60-row tables cost the page
# more than all its queries together.
OPEN_CASES_SHOWN = 20
PAST_CASES_SHOWN = 10
PURPOSE_LIMIT = 500


class TimelineFilterForm(forms.Form):
    """The timeline's filters and position, read from the query string."""

    kind = forms.MultipleChoiceField(
        choices=TimelineEntry.Kind.choices, required=False, label=gettext_lazy("Kind")
    )
    channel = forms.MultipleChoiceField(
        choices=ChannelKind.choices, required=False, label=gettext_lazy("Channel")
    )
    department = forms.CharField(max_length=100, required=False, label=gettext_lazy("Department"))
    before = forms.CharField(max_length=200, required=False)
    purpose = forms.CharField(max_length=PURPOSE_LIMIT, required=False)

    def clean_before(self) -> tuple | None:
        raw = self.cleaned_data["before"]
        if not raw:
            return None
        try:
            return selectors.decode_timeline_cursor(raw)
        except ValidationError:
            raise ValidationError(
                _("That link to older entries is not valid. The newest entries are shown."),
                code="invalid",
            ) from None


@dataclass(frozen=True)
class Choice:
    value: str
    label: str
    checked: bool


def _choices(field: forms.MultipleChoiceField, selected: list[str]) -> list[Choice]:
    return [Choice(value, str(label), value in selected) for value, label in field.choices]


def _forbidden(request: HttpRequest) -> HttpResponse:
    return render(request, "staff/forbidden.html", status=403)


def _load_citizen(public_id: uuid.UUID) -> Citizen:
    citizen = Citizen.objects.filter(public_id=public_id).first()
    if citizen is None:
        raise Http404(_("No resident has that id."))
    return citizen


def _timeline_url(
    request: HttpRequest, filters: dict[str, Any], before: str | None, purpose: str = ""
) -> str:
    """The page with these filters at this position; the stated purpose travels along so
    that the audit events of the following pages record it too."""
    query: list[tuple[str, str]] = []
    for name in ("kind", "channel"):
        query.extend((name, value) for value in filters.get(name) or [])
    if filters.get("department"):
        query.append(("department", filters["department"]))
    if purpose:
        query.append(("purpose", purpose))
    if before:
        query.append(("before", before))
    return f"{request.path}?{urlencode(query)}" if query else request.path


def labels(choices: list[tuple[str, Any]]) -> dict[str, str]:
    """Choice labels in the active language, looked up once per page. Django's
    get_FOO_display() hashes every (lazy) label of the field on each call, which for a
    page of 25 timeline rows was most of the time spent rendering it."""
    return {str(value): str(label) for value, label in choices}


def _decorate_cases(cases: list[ServiceCase], dates: _DateFormatter) -> list[ServiceCase]:
    today = timezone.localdate()
    status_labels = labels(ServiceCase.Status.choices)
    for case in cases:
        case.opened_display = dates.day(case.opened_at)
        case.due_display = dates.day(case.due_on)
        case.deadline = case_deadline(case, today)
        case.status_tag = STATUS_TAGS.get(case.status, "govuk-tag--grey")
        case.status_label = status_labels.get(case.status, case.status)
    return cases


class _DateFormatter:
    """Dates as the `date` filter would write "j M Y" and "j M Y, H:i", in local time.

    The filter translates the month and builds a formatter for every call; with 50 dates a
    page that was a measurable share of the 360's time, so months are translated once."""

    def __init__(self) -> None:
        self.months = {number: str(name).title() for number, name in MONTHS_3.items()}

    def day(self, value: datetime.date | datetime.datetime) -> str:
        if isinstance(value, datetime.datetime):
            value = timezone.localtime(value)
        return f"{value.day} {self.months[value.month]} {value.year}"

    def moment(self, value: datetime.datetime) -> str:
        local = timezone.localtime(value)
        return f"{self.day(local)}, {local:%H:%M}"


def _decorate_entries(
    entries: list[TimelineEntry], hidden: frozenset[str], dates: _DateFormatter
) -> None:
    kind_labels = labels(TimelineEntry.Kind.choices)
    channel_labels = labels(ChannelKind.choices)
    for entry in entries:
        entry.redacted = bool(entry.service_code) and entry.service_code in hidden
        entry.kind_label = kind_labels.get(entry.kind, entry.kind)
        entry.channel_label = channel_labels.get(entry.channel, entry.channel)
        entry.occurred_iso = entry.occurred_at.isoformat()
        entry.occurred_display = dates.moment(entry.occurred_at)


def _decorate_contact_points(points: list[ContactPoint]) -> list[ContactPoint]:
    kind_labels = labels(ContactPoint.Kind.choices)
    level_labels = labels(ContactPoint.VerificationLevel.choices)
    for point in points:
        point.kind_label = kind_labels.get(point.kind, point.kind)
        point.verification_label = level_labels.get(
            point.verification_level, point.verification_level
        )
    return points


def _citizen_cases(
    user: Any, citizen: Citizen
) -> tuple[list[ServiceCase], bool, list[ServiceCase], bool]:
    """Open cases (soonest due first) and past cases (most recent first), in one query.

    One query rather than two, because compiling a query costs more than running it for a
    few rows. Returns (open, more open, past, more
    past). When more open cases exist than the page lists, the past ones shown are the most
    recent that fitted in the query and `more past` is set.
    """
    is_open = Q(status__in=ServiceCase.OPEN_STATUSES)
    limit = OPEN_CASES_SHOWN + PAST_CASES_SHOWN + 1
    # Who may know cases exist at all is cases_for()'s rule (staff only).
    if user.is_authenticated and user.is_staff:
        queryset = ServiceCase.objects.select_related("service")
    else:
        queryset = ServiceCase.objects.none()
    rows = list(
        queryset.filter(citizen=citizen)
        .annotate(open_first=Case(When(is_open, then=Value(0)), default=Value(1)))
        .order_by(
            "open_first",
            Case(When(is_open, then=F("due_on"))).asc(nulls_last=True),
            "-opened_at",
            "-id",
        )[:limit]
    )
    # cases_for()'s rule applied per row (the user's teams are already loaded): compiling
    # its annotation cost more than the query it decorated.
    for case in rows:
        case.content_visible = can_see_case_content(user, case)
    open_rows = [case for case in rows if case.open_first == 0]
    past_rows = [case for case in rows if case.open_first == 1]
    more_open = len(open_rows) > OPEN_CASES_SHOWN
    more_past = len(past_rows) > PAST_CASES_SHOWN or (len(rows) == limit and more_open)
    return open_rows[:OPEN_CASES_SHOWN], more_open, past_rows[:PAST_CASES_SHOWN], more_past


@require_GET
@staff_required
def citizen_detail(request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
    user = request.user
    if not user.has_perm(VIEW_PERMISSION):
        return _forbidden(request)
    citizen = _load_citizen(public_id)
    if citizen.status == Citizen.Status.MERGED:
        # The duplicate's rows now live on the survivor; its own page would be empty.
        survivor = follow_merges(citizen)
        messages.info(
            request,
            _("The profile you opened (%(name)s) was merged into this one.")
            % {"name": citizen.display_name},
        )
        return HttpResponseRedirect(reverse("staff:citizen", args=[survivor.public_id]))

    form = TimelineFilterForm(request.GET)
    # An invalid field (a made-up kind, a damaged cursor) is dropped and explained; the
    # valid ones still apply.
    valid = form.is_valid()
    data = form.cleaned_data
    filters = {
        "kind": data.get("kind") or [],
        "channel": data.get("channel") or [],
        "department": (data.get("department") or "").strip(),
    }
    before = data.get("before")
    purpose = " ".join((data.get("purpose") or "").split())

    hidden = hidden_service_codes(user)
    page = selectors.timeline_page(
        citizen,
        kinds=filters["kind"],
        channels=filters["channel"],
        department=filters["department"],
        before=before,
    )
    dates = _DateFormatter()
    _decorate_entries(page.entries, hidden, dates)
    next_url = (
        _timeline_url(request, filters, page.next_cursor, purpose) if page.next_cursor else ""
    )
    is_partial = bool(request.headers.get("HX-Request")) and before is not None and valid

    # Audit before rendering: a page that fails to render has still been read from.
    audit_record(
        action=AuditEvent.Action.VIEW,
        target=citizen,
        actor=user,
        reason=purpose or "Citizen 360 page",
        details={
            "page": "citizen_360",
            "part": "timeline_more" if is_partial else "page",
            "filters": {key: value for key, value in filters.items() if value},
            "older_entries": before is not None,
            "purpose_given": bool(purpose),
        },
    )

    timeline_context = {
        "entries": page.entries,
        "next_url": next_url,
        "redacted_entry": REDACTED_ENTRY,
        "resident_sees_this": _("The resident can see this"),
    }
    if is_partial:
        return render(request, "staff/citizens/_timeline_more.html", timeline_context)

    contact_points = list(
        citizen.contact_points.order_by("kind", "-is_primary", "removed_at", "id")[
            : CONTACT_POINTS_SHOWN + 1
        ]
    )
    addresses = list(citizen.addresses.order_by("-is_primary", "id")[: ADDRESSES_SHOWN + 1])
    open_cases, more_open_cases, past_cases, more_past_cases = _citizen_cases(user, citizen)
    # The strongest open suggestion that this profile is someone else's too, if any.
    duplicate_id = (
        DuplicateCandidate.objects.filter(
            Q(citizen_a=citizen) | Q(citizen_b=citizen), status=DuplicateCandidate.Status.OPEN
        )
        .order_by("-score", "pk")
        .values_list("pk", flat=True)
        .first()
    )
    departments = selectors.timeline_departments(citizen)
    if filters["department"] and filters["department"] not in departments:
        departments.append(filters["department"])

    fields = form.fields
    context = {
        "citizen": citizen,
        "form": form,
        "contact_points": _decorate_contact_points(contact_points[:CONTACT_POINTS_SHOWN]),
        "more_contact_points": len(contact_points) > CONTACT_POINTS_SHOWN,
        "addresses": addresses[:ADDRESSES_SHOWN],
        "more_addresses": len(addresses) > ADDRESSES_SHOWN,
        "open_cases": _decorate_cases(open_cases, dates),
        "more_open_cases": more_open_cases,
        "past_cases": _decorate_cases(past_cases, dates),
        "more_past_cases": more_past_cases,
        "redacted_title": REDACTED_TITLE,
        "panels": citizen_panels(request, citizen),
        "has_duplicates": duplicate_id is not None,
        "can_open_case": user.has_perm(OPEN_CASE_PERMISSION),
        "open_case_url": "/staff/cases/new/?" + urlencode({"citizen": citizen.public_id}),
        "duplicates_url": (
            reverse("staff:duplicate-review", args=[duplicate_id]) if duplicate_id else ""
        ),
        "kind_choices": _choices(fields["kind"], filters["kind"]),
        "channel_choices": _choices(fields["channel"], filters["channel"]),
        "departments": departments,
        "filters": filters,
        "filtering": any(filters.values()),
        "older_page": before is not None,
        "newest_url": _timeline_url(request, filters, None, purpose),
        "purpose": purpose,
        "staff_section": "search",
        **timeline_context,
    }
    return render(request, "staff/citizens/detail.html", context, status=200 if valid else 400)
