"""A resident's data rights: the self-service export (UK GDPR Art 15), "who viewed my
record", and subject access and erasure requests opened as cases.

`export_citizen_data` is the one assembly of what the council holds about a person: the JSON
download and the readable web page are both rendered from it, so they never disagree. The
hub core writes its own sections; feature apps add theirs through
`citizenhub.portal.registry.register_export_section` (messages, consents, ...).

What the self-service export leaves out, on purpose (the page says so and offers a formal
request, which an officer answers with judgement the code cannot apply):
- the staff-only history of cases (internal notes, who the case was assigned to) and
  staff-only timeline entries, which can be about other people or contain advice the law
  lets the council withhold (DPA 2018 Sch 2 and 3 exemptions);
- the title and description of a case in a sensitive service (social care, bereavement)
  that the resident did not write themselves: staff write those, often about third parties;
- the names and user names of officers: "who viewed my record" names teams;
- whatever the council holds in other systems (council tax, housing, social care records).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.db.models import Prefetch, Q
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from citizenhub.errors import ApplicationError
from citizenhub.models import (
    AuditEvent,
    CaseEvent,
    Citizen,
    Service,
    ServiceCase,
    Team,
    TimelineEntry,
)
from citizenhub.models.portal import CaseAttachment
from citizenhub.portal.registry import export_sections
from citizenhub.portal.selectors import case_details_shown, withheld_details_text
from citizenhub.services.audit import audit_record
from citizenhub.services.cases import open_case

EXPORT_SCHEMA_VERSION = "1.0"
SUBJECT_ACCESS_SERVICE_CODE = "subject-access"
ERASURE_SERVICE_CODE = "erasure-request"
EXPLANATION_LIMIT = 2000

# The audit actions "who viewed my record" lists: reading, exporting and changing it.
WHO_VIEWED_ACTIONS = (AuditEvent.Action.VIEW, AuditEvent.Action.EXPORT, AuditEvent.Action.UPDATE)
# Reasons the staff pages write when the officer gave none; shown as the action in words.
_DEFAULT_REASONS = frozenset({"Citizen 360 page"})


def _iso(value: datetime.date | datetime.datetime | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime.datetime):
        return timezone.localtime(value).isoformat(timespec="seconds")
    return value.isoformat()


def person_q(citizen: Citizen, field: str = "citizen") -> Q:
    """Rows of the profile and of the profiles merged into it (a merge repoints earlier
    merges to the survivor, so one level is all of them). Most rows moved with the merge;
    the audit log stays on the profile it was written about."""
    return Q(**{field: citizen}) | Q(**{f"{field}__merged_into": citizen})


# --- Who viewed my record ------------------------------------------------------------------


@dataclass(frozen=True)
class RecordAccess:
    """One time council staff read, exported or changed the resident's record: when, which
    teams the officer works in (never who), and why."""

    occurred_at: datetime.datetime
    action: str
    teams: tuple[str, ...]
    what: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "date": _iso(self.occurred_at),
            "teams": list(self.teams),
            "what": self.what,
            "reason": self.reason,
        }


def _what_in_words(action: str, case_reference: str | None, is_case: bool) -> str:
    if is_case:
        if action == AuditEvent.Action.VIEW:
            return (
                _("Looked at your case %(reference)s") % {"reference": case_reference}
                if case_reference
                else _("Looked at one of your cases")
            )
        if action == AuditEvent.Action.UPDATE:
            return (
                _("Changed your case %(reference)s") % {"reference": case_reference}
                if case_reference
                else _("Changed one of your cases")
            )
    if action == AuditEvent.Action.VIEW:
        return _("Looked at your record")
    if action == AuditEvent.Action.EXPORT:
        return _("Exported your information")
    if action == AuditEvent.Action.UPDATE:
        return _("Changed your record")
    return str(AuditEvent.Action(action).label)


def record_accesses(citizen: Citizen, *, limit: int | None = None) -> list[RecordAccess]:
    """Staff reads, exports and changes of the citizen's record, newest first, in three
    queries whatever their number: the audit events, the officers' teams, case references."""
    events = list(
        AuditEvent.objects.filter(
            person_q(citizen),
            action__in=WHO_VIEWED_ACTIONS,
            actor__is_staff=True,
        )
        .order_by("-occurred_at", "-id")
        .values(
            "occurred_at", "action", "actor_id", "reason", "details", "target_type_id", "target_id"
        )[:limit]
    )
    if not events:
        return []
    recorded_team_ids = {
        team_id
        for event in events
        for team_id in (event["details"] or {}).get("team_ids") or ()
        if isinstance(team_id, int)
    }
    teams_by_user: dict[int, list[str]] = {}
    team_names: dict[int, str] = {}
    for team_id, user_id, name in (
        Team.objects.filter(
            Q(members__in={event["actor_id"] for event in events}) | Q(pk__in=recorded_team_ids)
        )
        .order_by("name")
        .values_list("pk", "members", "name")
    ):
        team_names[team_id] = name
        if user_id is not None:
            teams_by_user.setdefault(user_id, []).append(name)
    case_type_id = ContentType.objects.get_for_model(ServiceCase).pk
    case_ids = {event["target_id"] for event in events if event["target_type_id"] == case_type_id}
    references = {}
    if case_ids:
        # Only the resident's own cases: a reference of anyone else's never reaches the page.
        references = {
            str(pk): reference
            for pk, reference in ServiceCase.objects.filter(
                person_q(citizen), pk__in=[i for i in case_ids if i.isdigit()]
            ).values_list("pk", "reference")
        }
    staff_label = _("Council staff")
    accesses = []
    for event in events:
        # Teams as they were when the officer looked (audit_record keeps their ids); the
        # officer's teams now for events older than that.
        recorded = (event["details"] or {}).get("team_ids")
        if isinstance(recorded, list):
            teams = tuple(sorted(team_names[i] for i in recorded if i in team_names))
        else:
            teams = tuple(teams_by_user.get(event["actor_id"], ()))
        is_case = event["target_type_id"] == case_type_id
        reason = event["reason"] if event["reason"] not in _DEFAULT_REASONS else ""
        accesses.append(
            RecordAccess(
                occurred_at=event["occurred_at"],
                action=event["action"],
                teams=teams or (staff_label,),
                what=_what_in_words(event["action"], references.get(event["target_id"]), is_case),
                reason=reason,
            )
        )
    return accesses


# --- The export ----------------------------------------------------------------------------

# Section titles of the core; apps give theirs when they register.
CORE_SECTION_TITLES = {
    "profile": gettext_lazy("Your profile"),
    "contact_points": gettext_lazy("Your contact details"),
    "addresses": gettext_lazy("Your addresses"),
    "cases": gettext_lazy("Your cases"),
    "timeline": gettext_lazy("Your contacts with the council"),
    "record_accesses": gettext_lazy("Who viewed your record"),
}


def _profile(citizen: Citizen) -> dict[str, Any]:
    user = citizen.user
    return {
        "reference": str(citizen.public_id),
        "given_name": citizen.given_name,
        "family_name": citizen.family_name,
        "date_of_birth": _iso(citizen.date_of_birth),
        "preferred_language": citizen.get_preferred_language_display(),
        "preferred_channel": citizen.get_preferred_channel_display(),
        "accessibility_needs": citizen.accessibility_needs,
        "do_not_contact": citizen.do_not_contact,
        "created_at": _iso(citizen.created_at),
        "account": (
            {
                "email": user.email,
                "date_joined": _iso(user.date_joined),
                "last_login": _iso(user.last_login),
            }
            if user is not None
            else None
        ),
    }


def _contact_points(citizen: Citizen) -> list[dict[str, Any]]:
    return [
        {
            "kind": point.get_kind_display(),
            "value": point.value,
            "verification": point.get_verification_level_display(),
            "verified_at": _iso(point.verified_at),
            "primary": point.is_primary,
            "source": point.get_source_display(),
            "added_at": _iso(point.created_at),
            "undeliverable_since": _iso(point.undeliverable_at),
            "removed_at": _iso(point.removed_at),
        }
        for point in citizen.contact_points.order_by("kind", "created_at", "id")
    ]


def _addresses(citizen: Citizen) -> list[dict[str, Any]]:
    return [
        {
            "address": ", ".join(
                part
                for part in (
                    address.line1,
                    address.line2,
                    address.line3,
                    address.town,
                    address.postcode,
                )
                if part
            ),
            "uprn": address.uprn,
            "primary": address.is_primary,
            "added_at": _iso(address.created_at),
        }
        for address in citizen.addresses.order_by("-is_primary", "id")
    ]


def _cases(citizen: Citizen) -> list[dict[str, Any]]:
    status_labels = {key: str(label) for key, label in ServiceCase.Status.choices}
    kind_labels = {key: str(label) for key, label in CaseEvent.Kind.choices}
    cases = (
        ServiceCase.objects.filter(person_q(citizen))
        .select_related("service")
        .prefetch_related(
            Prefetch(
                "events",
                queryset=CaseEvent.objects.filter(
                    visibility=CaseEvent.Visibility.RESIDENT
                ).order_by("created_at", "id"),
                to_attr="resident_events",
            ),
            Prefetch(
                "attachments",
                queryset=CaseAttachment.objects.order_by("created_at", "id"),
                to_attr="all_attachments",
            ),
        )
        .order_by("-opened_at", "-id")
    )
    rows = []
    for case in cases:
        shown = case_details_shown(case, citizen.user_id)
        withheld = withheld_details_text()
        rows.append(
            {
                "reference": case.reference,
                "service": case.service.name,
                "title": case.title if shown else withheld,
                "description": case.description if shown else withheld,
                "location": case.location_text,
                "postcode": case.postcode,
                "status": status_labels.get(case.status, case.status),
                "opened_at": _iso(case.opened_at),
                "due_on": _iso(case.due_on),
                "resolved_at": _iso(case.resolved_at),
                "closed_at": _iso(case.closed_at),
                "resolution": case.resolution,
                "history": [
                    {
                        "date": _iso(event.created_at),
                        "event": kind_labels.get(event.kind, event.kind),
                        "status": status_labels.get(event.to_status, event.to_status),
                        # The opening event repeats the title: withheld with it.
                        "text": (
                            event.text
                            if shown or event.kind != CaseEvent.Kind.CREATED
                            else withheld
                        ),
                    }
                    for event in case.resident_events
                ],
                "attachments": [
                    {
                        "file_name": attachment.original_name,
                        "type": attachment.content_type,
                        "size_bytes": attachment.size,
                        "added_at": _iso(attachment.created_at),
                    }
                    for attachment in case.all_attachments
                ],
            }
        )
    return rows


def _timeline(citizen: Citizen) -> list[dict[str, Any]]:
    kinds = {key: str(label) for key, label in TimelineEntry.Kind.choices}
    # A case's timeline lines repeat its title: withheld with it (case_details_shown).
    withheld = [
        case.reference
        for case in ServiceCase.objects.filter(
            person_q(citizen), service__is_sensitive=True, created_by__isnull=False
        )
        .select_related("service")
        .only("reference", "created_by", "service__is_sensitive")
        if not case_details_shown(case, citizen.user_id)
    ]

    def summary(entry: TimelineEntry) -> str:
        if entry.kind == TimelineEntry.Kind.CASE:
            for reference in withheld:
                if reference in entry.summary:
                    return f"{reference}: {withheld_details_text()}"
        return entry.summary

    return [
        {
            "date": _iso(entry.occurred_at),
            "kind": kinds.get(entry.kind, entry.kind),
            "channel": str(entry.get_channel_display()) if entry.channel else "",
            "department": entry.department,
            "summary": summary(entry),
        }
        for entry in TimelineEntry.objects.filter(
            person_q(citizen), visibility=TimelineEntry.Visibility.RESIDENT
        ).order_by("-occurred_at", "-id")
    ]


def export_citizen_data(citizen: Citizen) -> dict[str, Any]:
    """Everything the resident's self-service copy contains, as JSON-serialisable data:
    {"schema_version", "generated_at", "council", "sections": {key: {"title", "data"}}}.
    A constant number of queries for the core, plus each provider's."""
    sections: dict[str, dict[str, Any]] = {}
    core = (
        ("profile", _profile),
        ("contact_points", _contact_points),
        ("addresses", _addresses),
        ("cases", _cases),
        ("timeline", _timeline),
    )
    for key, build in core:
        sections[key] = {"title": str(CORE_SECTION_TITLES[key]), "data": build(citizen)}
    for key, title, provider in export_sections():
        sections[key] = {"title": str(title), "data": provider(citizen)}
    sections["record_accesses"] = {
        "title": str(CORE_SECTION_TITLES["record_accesses"]),
        "data": [access.as_dict() for access in record_accesses(citizen)],
    }
    return {
        "schema_version": EXPORT_SCHEMA_VERSION,
        "generated_at": _iso(timezone.now()),
        "council": settings.COUNCIL_NAME,
        "sections": sections,
    }


def record_export(*, citizen: Citizen, actor: AbstractBaseUser, export_format: str) -> AuditEvent:
    """The audit line every export writes (the resident's own, or an officer's)."""
    return audit_record(
        action=AuditEvent.Action.EXPORT,
        target=citizen,
        actor=actor,
        citizen=citizen,
        reason="Self-service data export" if actor.pk == citizen.user_id else "Data export",
        details={"format": export_format, "schema_version": EXPORT_SCHEMA_VERSION},
    )


# --- Subject access and erasure requests ---------------------------------------------------


@dataclass(frozen=True)
class DataRequest:
    case: ServiceCase
    created: bool


def open_request_for(citizen: Citizen, service_code: str) -> ServiceCase | None:
    """The resident's open request of that kind, if there is one."""
    return (
        ServiceCase.objects.filter(
            person_q(citizen),
            service__code=service_code,
            status__in=ServiceCase.OPEN_STATUSES,
        )
        .select_related("service")
        .order_by("opened_at", "id")
        .first()
    )


def open_data_request(
    *,
    citizen: Citizen,
    service_code: str,
    explanation: str = "",
    actor: AbstractBaseUser | None = None,
    opened_at: datetime.datetime | None = None,
) -> DataRequest:
    """Open a subject access or erasure request as a case for the resident, due by the
    statutory one-month clock of its service. While one of that kind is open, that one is
    returned instead of opening a second."""
    if service_code not in (SUBJECT_ACCESS_SERVICE_CODE, ERASURE_SERVICE_CODE):
        raise ApplicationError(f"{service_code!r} is not a data request.", code="not_data_request")
    explanation = (explanation or "").strip()
    if len(explanation) > EXPLANATION_LIMIT:
        raise ApplicationError(
            _("Your explanation must be %(limit)s characters or fewer.")
            % {"limit": f"{EXPLANATION_LIMIT:,}"},
            code="too_long",
        )
    service = Service.objects.filter(code=service_code, is_active=True).first()
    if service is None:
        raise ApplicationError(
            _("This request cannot be made online at the moment. Please contact the council."),
            code="service_missing",
        )
    with transaction.atomic():
        # Lock the profile: two quick submissions must not open two requests.
        Citizen.objects.select_for_update().filter(pk=citizen.pk).first()
        existing = open_request_for(citizen, service_code)
        if existing is not None:
            return DataRequest(existing, created=False)
        title = (
            "Subject access request"
            if service_code == SUBJECT_ACCESS_SERVICE_CODE
            else "Erasure request"
        )
        case = open_case(
            service=service,
            title=f"{title} from the residents' portal",
            description=explanation,
            citizen=citizen,
            actor=actor,
            source_channel="web",
            opened_at=opened_at,
        )
    return DataRequest(case, created=True)
