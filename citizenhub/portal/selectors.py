"""Read queries of the residents' portal: a resident's own cases and what they may see of
them. Every query starts from the resident's profile, so another resident's case is simply
not found."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Case, IntegerField, OuterRef, QuerySet, Subquery, Value, When
from django.utils.translation import gettext, pgettext_lazy
from django.utils.translation import gettext_lazy as _

from citizenhub.models import CaseAttachment, CaseEvent, Citizen, ServiceCase
from citizenhub.services.cases import RESIDENT_LABEL

Status = ServiceCase.Status
CASES_PAGE_SIZE = 20


@dataclass(frozen=True)
class ResidentStatus:
    """A case status as a resident reads it, with the GOV.UK tag colour that goes with it."""

    label: str
    tag_class: str


# Plain words, not the officers' workflow terms ("new", "open" mean nothing to a resident).
RESIDENT_STATUSES: dict[str, ResidentStatus] = {
    Status.NEW: ResidentStatus(_("Received"), "govuk-tag--blue"),
    Status.OPEN: ResidentStatus(_("Being looked at"), "govuk-tag--light-blue"),
    Status.IN_PROGRESS: ResidentStatus(_("In progress"), "govuk-tag--light-blue"),
    Status.WAITING: ResidentStatus(_("Waiting for your reply"), "govuk-tag--yellow"),
    Status.RESOLVED: ResidentStatus(pgettext_lazy("case status", "Resolved"), "govuk-tag--green"),
    Status.CLOSED: ResidentStatus(pgettext_lazy("case status", "Closed"), "govuk-tag--grey"),
}


def resident_status(status: str) -> ResidentStatus:
    return RESIDENT_STATUSES.get(status, ResidentStatus(str(status), "govuk-tag--grey"))


def _last_update_subquery() -> Subquery:
    """When the resident last saw something happen: their newest visible history line."""
    return Subquery(
        CaseEvent.objects.filter(case=OuterRef("pk"), visibility=CaseEvent.Visibility.RESIDENT)
        .order_by("-created_at", "-pk")
        .values("created_at")[:1]
    )


def resident_cases(citizen: Citizen) -> QuerySet[ServiceCase]:
    """The resident's cases, open ones first, then past ones; newest first within each.
    One query per page whatever the number of cases (plus the page count)."""
    return (
        ServiceCase.objects.filter(citizen=citizen)
        .select_related("service")
        .only(
            "id",
            "reference",
            "title",
            "status",
            "opened_at",
            "updated_at",
            "due_on",
            "anonymised_at",
            "service__id",
            "service__name",
            "service__is_sensitive",
            "created_by",
        )
        .annotate(
            is_past=Case(
                When(status__in=ServiceCase.OPEN_STATUSES, then=Value(0)),
                default=Value(1),
                output_field=IntegerField(),
            ),
            last_update_at=_last_update_subquery(),
        )
        .order_by("is_past", "-opened_at", "-pk")
    )


def resident_case(citizen: Citizen, reference: str) -> ServiceCase | None:
    """One of the resident's cases by its reference; None for anyone else's (or none)."""
    return (
        ServiceCase.objects.filter(citizen=citizen, reference=reference)
        .select_related("service")
        .annotate(last_update_at=_last_update_subquery())
        .first()
    )


def case_details_shown(case: ServiceCase, user_id: int | None) -> bool:
    """Whether the resident sees the case's title and description: always, except in a
    sensitive service (adult social care, bereavement) where an officer wrote them. Those
    are often about other people (a neighbour's concern, a relative's situation); the
    resident gets them through a formal subject access request, which staff redact. A case
    nobody signed in opened (from the resident's own message, by a routing rule) holds the
    resident's words."""
    if not case.service.is_sensitive or case.created_by_id is None:
        return True
    return case.created_by_id == user_id


def withheld_details_text() -> str:
    return gettext("Available through a formal subject access request")


def resident_case_title(case: ServiceCase, user_id: int | None) -> str:
    """The title as the resident may read it: a withheld one reads as the service's name."""
    return case.title if case_details_shown(case, user_id) else case.service.name


def resident_case_texts(case: ServiceCase, user_id: int | None) -> tuple[str, str]:
    """(title, description) as the resident may read them (see case_details_shown): a
    withheld title reads as the service's name."""
    if case_details_shown(case, user_id):
        return case.title, case.description
    return case.service.name, withheld_details_text()


def resident_case_history(case: ServiceCase) -> list[CaseEvent]:
    """The lines of the case history the resident may see, oldest first. Staff-only lines
    (internal notes, assignments, links) are never loaded."""
    return list(
        case.events.filter(visibility=CaseEvent.Visibility.RESIDENT)
        .only(
            "id",
            "kind",
            "from_status",
            "to_status",
            "text",
            "actor_id",
            "actor_label",
            "created_at",
            "case_id",
        )
        .order_by("created_at", "pk")
    )


def resident_case_attachments(case: ServiceCase, citizen: Citizen) -> list[CaseAttachment]:
    """The files the resident attached to the case (the ones the portal serves them)."""
    return list(
        CaseAttachment.objects.filter(case=case, citizen=citizen)
        .only("public_id", "original_name", "content_type", "size", "created_at", "case_id")
        .order_by("created_at", "pk")
    )


@dataclass(frozen=True)
class HistoryLine:
    """One line of the history as the resident reads it: never an officer's name."""

    at: datetime
    title: str
    text: str
    by_resident: bool


def _by_resident(event: CaseEvent, user: Any) -> bool:
    return event.actor_label == RESIDENT_LABEL or (
        event.actor_id is not None and event.actor_id == user.pk
    )


def history_line(event: CaseEvent, user: Any) -> HistoryLine:
    """What the resident is told about one visible history event.

    Officers' reasons for status changes are not shown (they were written for colleagues);
    the resolution, the council's replies and the resident's own words are.
    """
    by_resident = _by_resident(event, user)
    text = ""
    if event.kind == CaseEvent.Kind.CREATED:
        title = gettext("You reported this") if by_resident else gettext("Case opened")
    elif event.kind == CaseEvent.Kind.RESIDENT_UPDATE:
        title, text = gettext("You added information"), event.text
    elif event.kind == CaseEvent.Kind.REPLY:
        title, text = gettext("Message from the council"), event.text
    elif event.kind == CaseEvent.Kind.STATUS:
        label = resident_status(event.to_status).label
        if event.to_status == Status.RESOLVED:
            title, text = gettext("Resolved"), event.text
        elif by_resident and event.to_status == Status.OPEN:
            title, text = gettext("You reopened the case"), event.text
        else:
            title = gettext("Status changed to “%(status)s”") % {"status": label}
    elif event.kind == CaseEvent.Kind.DETAILS:
        # Only what was written for the resident is resident-visible (e.g. what an erasure
        # request erased and kept); officers' edits of the details are staff-only.
        title, text = gettext("Case updated"), event.text
    else:
        title = gettext("Case updated")
    return HistoryLine(event.created_at, title, text, by_resident)
