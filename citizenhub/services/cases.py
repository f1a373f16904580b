"""Service cases: opening, moving through the workflow, assigning, noting, and retention.

Every change to a case goes through these functions. Each takes the `expected_version`
the officer's screen was showing: if somebody else saved the case meanwhile, the change
is refused with a ConflictError instead of silently overwriting theirs. Each writes a
CaseEvent (the case history) and, where the resident would care, a timeline entry.
"""

from __future__ import annotations

import datetime
from typing import Any

import django.dispatch
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from citizenhub import workdays
from citizenhub.errors import ApplicationError, ConflictError
from citizenhub.models import (
    Address,
    CaseEvent,
    CaseReferenceSequence,
    Citizen,
    Service,
    ServiceCase,
    Team,
    TimelineEntry,
)
from citizenhub.services.attachments import delete_stored_files
from citizenhub.services.audit import actor_label_for, audit_record
from citizenhub.services.identity import follow_merges
from citizenhub.services.timeline import record_timeline_entry

Status = ServiceCase.Status
Actor = AbstractBaseUser | AnonymousUser | None

# Sent after a case is opened, and after each status change, inside the transaction
# (receivers that talk to the outside world should use transaction.on_commit). The
# channels app listens to send the resolution text to the resident.
case_opened = django.dispatch.Signal()
case_status_changed = django.dispatch.Signal()

ALLOWED_TRANSITIONS: dict[str, tuple[str, ...]] = {
    Status.NEW: (Status.OPEN, Status.IN_PROGRESS, Status.WAITING, Status.RESOLVED, Status.CLOSED),
    Status.OPEN: (Status.IN_PROGRESS, Status.WAITING, Status.RESOLVED),
    Status.IN_PROGRESS: (Status.OPEN, Status.WAITING, Status.RESOLVED),
    Status.WAITING: (Status.OPEN, Status.IN_PROGRESS, Status.RESOLVED),
    Status.RESOLVED: (Status.CLOSED, Status.OPEN),
    Status.CLOSED: (Status.OPEN,),
}
# Reopening (resolved/closed -> open) and closing without a resolution need a reason.
NEEDS_REASON = {
    (Status.RESOLVED, Status.OPEN),
    (Status.CLOSED, Status.OPEN),
    (Status.NEW, Status.CLOSED),
}
TITLE_LIMIT = ServiceCase._meta.get_field("title").max_length
DESCRIPTION_LIMIT = 20_000
NOTE_LIMIT = 10_000
ANONYMISED_TEXT = "[removed after the retention period]"


def allowed_transitions(status: str) -> tuple[str, ...]:
    return ALLOWED_TRANSITIONS.get(status, ())


def next_case_reference(year: int) -> str:
    """The next reference of the year, e.g. CH-2026-000123; gap-free under concurrency
    because the counter row is locked for the rest of the transaction."""
    with transaction.atomic():
        updated = CaseReferenceSequence.objects.filter(year=year).update(
            last_number=F("last_number") + 1
        )
        if not updated:
            try:
                with transaction.atomic():
                    CaseReferenceSequence.objects.create(year=year, last_number=1)
            except IntegrityError:
                # Another transaction created the year's row first; count after it.
                CaseReferenceSequence.objects.filter(year=year).update(
                    last_number=F("last_number") + 1
                )
        number = CaseReferenceSequence.objects.get(year=year).last_number
    return f"CH-{year}-{number:06d}"


def _label(actor: Actor, actor_label: str) -> str:
    return actor_label_for(actor, actor_label)


def _user(actor: Actor) -> Any:
    return actor if actor is not None and getattr(actor, "is_authenticated", False) else None


def _add_event(
    case: ServiceCase,
    *,
    kind: str,
    actor: Actor,
    actor_label: str = "system",
    text: str = "",
    from_status: str = "",
    to_status: str = "",
    data: dict[str, Any] | None = None,
    visibility: str = CaseEvent.Visibility.STAFF,
    at: datetime.datetime | None = None,
) -> CaseEvent:
    return CaseEvent.objects.create(
        case=case,
        kind=kind,
        text=text,
        from_status=from_status,
        to_status=to_status,
        data=data or {},
        visibility=visibility,
        actor=_user(actor),
        actor_label=_label(actor, actor_label),
        created_at=at or timezone.now(),
    )


def _timeline(case: ServiceCase, event: CaseEvent, summary: str) -> None:
    if case.citizen_id is None:
        return
    record_timeline_entry(
        citizen=case.citizen,
        kind=TimelineEntry.Kind.CASE,
        summary=summary,
        occurred_at=event.created_at,
        channel=case.source_channel if event.kind == CaseEvent.Kind.CREATED else "",
        department=case.service.department,
        service_code=case.service.code,
        visibility=TimelineEntry.Visibility.RESIDENT,
        source=event,
    )


def _clean_text(value: str, field: str, limit: int, *, required: bool = False) -> str:
    value = (value or "").strip()
    if required and not value:
        raise ValidationError({field: "This field is required."})
    if len(value) > limit:
        raise ValidationError(
            {field: f"Must be at most {limit:,} characters (it has {len(value):,})."}
        )
    return value


def open_case(
    *,
    service: Service,
    title: str,
    description: str = "",
    citizen: Citizen | None = None,
    actor: Actor = None,
    actor_label: str = "system",
    source_channel: str = "",
    priority: int = ServiceCase.Priority.NORMAL,
    team: Team | None = None,
    assignee: AbstractBaseUser | None = None,
    address: Address | None = None,
    location_text: str = "",
    uprn: str = "",
    postcode: str = "",
    latitude: Any = None,
    longitude: Any = None,
    ward_code: str = "",
    opened_at: datetime.datetime | None = None,
) -> ServiceCase:
    """Open a case for a citizen (or anonymously), due by the service's clock."""
    title = _clean_text(title, "title", TITLE_LIMIT, required=True)
    description = _clean_text(description, "description", DESCRIPTION_LIMIT)
    if not service.is_active:
        raise ApplicationError(
            f"The service “{service.name}” is no longer offered.", code="inactive"
        )
    if priority not in ServiceCase.Priority.values:
        raise ValidationError({"priority": f"{priority!r} is not a priority."})
    if citizen is not None:
        citizen = follow_merges(citizen)
        if not citizen.is_live:
            raise ApplicationError("Cases cannot be opened for an erased profile.", code="erased")
    opened_at = opened_at or timezone.now()
    if address is not None:
        uprn = uprn or address.uprn
        postcode = postcode or address.postcode
        ward_code = ward_code or address.ward_code
        latitude = latitude if latitude is not None else address.latitude
        longitude = longitude if longitude is not None else address.longitude
    with transaction.atomic():
        case = ServiceCase(
            reference=next_case_reference(timezone.localtime(opened_at).year),
            citizen=citizen,
            service=service,
            title=title,
            description=description,
            address=address,
            location_text=location_text[:300],
            uprn=uprn[:12],
            postcode=postcode[:8],
            latitude=latitude,
            longitude=longitude,
            ward_code=ward_code[:9],
            priority=priority,
            team=team or service.team,
            assignee=assignee,
            source_channel=source_channel,
            opened_at=opened_at,
            due_on=workdays.due_date(
                received=timezone.localtime(opened_at).date(),
                clock_type=service.clock_type,
                sla_days=service.sla_days,
            ),
            created_by=_user(actor),
        )
        case.full_clean(exclude=["reference", "team", "service", "citizen", "address"])
        case.save()
        event = _add_event(
            case,
            kind=CaseEvent.Kind.CREATED,
            actor=actor,
            actor_label=actor_label,
            to_status=case.status,
            text=title,
            visibility=CaseEvent.Visibility.RESIDENT,
            at=opened_at,
        )
        _timeline(case, event, f"Case {case.reference} opened: {title}")
        audit_record(
            action="create", target=case, actor=actor, actor_label=actor_label, citizen=citizen
        )
        case_opened.send(sender=ServiceCase, case=case, actor=actor)
    return case


# The events whose changes bump the version; notes and messages never conflict, so they
# are not who "changed the case since you opened it".
_VERSIONED_EVENT_KINDS = (
    CaseEvent.Kind.STATUS,
    CaseEvent.Kind.ASSIGNED,
    CaseEvent.Kind.PRIORITY,
    CaseEvent.Kind.DETAILS,
    CaseEvent.Kind.LEGAL_HOLD,
    CaseEvent.Kind.ANONYMISED,
)


def _last_changed_by(case: ServiceCase) -> str:
    """Who made the latest versioned change, as a person reads it (name, not "user:jo")."""
    last = (
        case.events.filter(kind__in=_VERSIONED_EVENT_KINDS)
        .select_related("actor")
        .order_by("-created_at", "-id")
        .first()
    )
    if last is None:
        return ""
    if last.actor is not None:
        return last.actor.get_full_name() or last.actor.get_username()
    return last.actor_label


def _locked(case: ServiceCase, expected_version: int | None) -> ServiceCase:
    """The case row locked for update, refusing if it changed since the caller read it."""
    # Lock the case row only ("of self"): PostgreSQL cannot lock the nullable side of the
    # outer join to citizen, and the service and citizen rows need no lock. NO KEY UPDATE
    # still serialises officers saving the same case but lets history rows referencing it
    # be inserted meanwhile.
    locked = (
        ServiceCase.objects.select_for_update(no_key=True, of=("self",))
        .select_related("service", "citizen")
        .get(pk=case.pk)
    )
    if expected_version is not None and locked.version != expected_version:
        changed_by = _last_changed_by(locked)
        who = f" by {changed_by}" if changed_by else ""
        raise ConflictError(
            f"Case {locked.reference} was changed{who} since you opened it. "
            "Reload it to see the change, then try again.",
            code="conflict",
            extra={"current_version": locked.version, "changed_by": changed_by},
        )
    if locked.anonymised_at is not None:
        raise ApplicationError(
            f"Case {locked.reference} was anonymised after its retention period.", code="anonymised"
        )
    return locked


def _save(case: ServiceCase, fields: list[str]) -> None:
    case.version += 1
    case.save(update_fields=[*fields, "version", "updated_at"])


def case_transition(
    *,
    case: ServiceCase,
    to_status: str,
    expected_version: int | None,
    actor: Actor = None,
    actor_label: str = "system",
    reason: str = "",
    resolution: str = "",
    at: datetime.datetime | None = None,
) -> ServiceCase:
    """Move a case to `to_status` if the workflow allows it; nothing changes otherwise."""
    reason = _clean_text(reason, "reason", NOTE_LIMIT)
    resolution = _clean_text(resolution, "resolution", DESCRIPTION_LIMIT)
    at = at or timezone.now()
    with transaction.atomic():
        case_row = _locked(case, expected_version)
        from_status = case_row.status
        if to_status not in Status.values:
            raise ValidationError({"status": f"{to_status!r} is not a case status."})
        if to_status not in allowed_transitions(from_status):
            allowed = ", ".join(str(Status(s).label) for s in allowed_transitions(from_status))
            raise ApplicationError(
                f"A case that is {Status(from_status).label.lower()} cannot move to "
                f"“{Status(to_status).label}”. Allowed: {allowed or 'none'}.",
                code="illegal_transition",
                extra={"allowed": list(allowed_transitions(from_status))},
            )
        if (from_status, to_status) in NEEDS_REASON and not reason:
            raise ValidationError({"reason": "Say why (it goes in the case history)."})
        if to_status == Status.RESOLVED and not (resolution or case_row.resolution):
            raise ValidationError({"resolution": "Write the resolution the resident will receive."})
        fields = ["status"]
        today = timezone.localtime(at).date()
        if from_status == Status.WAITING and case_row.clock_stopped_at is not None:
            case_row.due_on = workdays.extend_for_stopped_clock(
                due_on=case_row.due_on,
                stopped=timezone.localtime(case_row.clock_stopped_at).date(),
                restarted=today,
                clock_type=case_row.service.clock_type,
            )
            case_row.clock_stopped_at = None
            fields += ["due_on", "clock_stopped_at"]
        if to_status == Status.WAITING:
            case_row.clock_stopped_at = at
            fields.append("clock_stopped_at")
        if to_status == Status.RESOLVED:
            case_row.resolved_at = at
            if resolution:
                case_row.resolution = resolution
            case_row.breached = today > case_row.due_on
            fields += ["resolved_at", "resolution", "breached"]
        if to_status == Status.CLOSED:
            case_row.closed_at = at
            fields.append("closed_at")
        if to_status == Status.OPEN and from_status in (Status.RESOLVED, Status.CLOSED):
            case_row.resolved_at = None
            case_row.closed_at = None
            fields += ["resolved_at", "closed_at"]
        case_row.status = to_status
        _save(case_row, fields)
        event = _add_event(
            case_row,
            kind=CaseEvent.Kind.STATUS,
            actor=actor,
            actor_label=actor_label,
            from_status=from_status,
            to_status=to_status,
            text=resolution if to_status == Status.RESOLVED else reason,
            visibility=CaseEvent.Visibility.RESIDENT,
            at=at,
        )
        _timeline(
            case_row,
            event,
            f"Case {case_row.reference} {Status(to_status).label.lower()}"
            + (f": {resolution}" if to_status == Status.RESOLVED and resolution else ""),
        )
        case_status_changed.send(
            sender=ServiceCase,
            case=case_row,
            from_status=from_status,
            to_status=to_status,
            event=event,
            actor=actor,
        )
    return case_row


def case_assign(
    *,
    case: ServiceCase,
    expected_version: int | None,
    assignee: AbstractBaseUser | None,
    team: Team | None = None,
    actor: Actor = None,
    actor_label: str = "system",
    at: datetime.datetime | None = None,
) -> ServiceCase:
    """Give the case to an officer (or nobody) and, optionally, to another team."""
    with transaction.atomic():
        case_row = _locked(case, expected_version)
        new_team = team or case_row.team
        if assignee is not None:
            if not (assignee.is_active and assignee.is_staff):
                raise ApplicationError(
                    f"{assignee.get_username()} is not an active officer.", code="not_staff"
                )
            if not new_team.members.filter(pk=assignee.pk).exists():
                raise ApplicationError(
                    f"{assignee.get_username()} is not in the team “{new_team.name}”.",
                    code="not_in_team",
                )
        before = {"assignee": case_row.assignee_id, "team": case_row.team_id}
        case_row.assignee = assignee
        case_row.team = new_team
        _save(case_row, ["assignee", "team"])
        _add_event(
            case_row,
            kind=CaseEvent.Kind.ASSIGNED,
            actor=actor,
            actor_label=actor_label,
            text=(
                f"Assigned to {assignee.get_full_name() or assignee.get_username()}"
                if assignee
                else "Unassigned"
            )
            + f" in {new_team.name}",
            data={
                "before": before,
                "after": {"assignee": getattr(assignee, "pk", None), "team": new_team.pk},
            },
            at=at,
        )
    return case_row


def case_update_details(
    *,
    case: ServiceCase,
    expected_version: int | None,
    actor: Actor = None,
    actor_label: str = "system",
    **changes: Any,
) -> ServiceCase:
    """Edit title, description, priority or location; the history keeps the old values."""
    editable = {"title", "description", "priority", "location_text", "postcode", "uprn"}
    unknown = set(changes) - editable
    if unknown:
        raise ValidationError({name: "This field cannot be changed here." for name in unknown})
    if "title" in changes:
        changes["title"] = _clean_text(changes["title"], "title", TITLE_LIMIT, required=True)
    if "description" in changes:
        changes["description"] = _clean_text(
            changes["description"], "description", DESCRIPTION_LIMIT
        )
    if "priority" in changes and changes["priority"] not in ServiceCase.Priority.values:
        raise ValidationError({"priority": f"{changes['priority']!r} is not a priority."})
    with transaction.atomic():
        case_row = _locked(case, expected_version)
        before = {name: getattr(case_row, name) for name in changes}
        changed = [name for name, value in changes.items() if before[name] != value]
        if not changed:
            return case_row
        for name in changed:
            setattr(case_row, name, changes[name])
        case_row.full_clean(exclude=["reference", "team", "service", "citizen", "address"])
        _save(case_row, changed)
        _add_event(
            case_row,
            kind=CaseEvent.Kind.PRIORITY if changed == ["priority"] else CaseEvent.Kind.DETAILS,
            actor=actor,
            actor_label=actor_label,
            text=", ".join(changed) + " changed",
            data={"before": {name: before[name] for name in changed}},
        )
    return case_row


def case_add_note(
    *,
    case: ServiceCase,
    text: str,
    actor: Actor = None,
    actor_label: str = "system",
    at: datetime.datetime | None = None,
) -> CaseEvent:
    """An internal note: staff only, never shown to the resident. Notes never conflict."""
    text = _clean_text(text, "text", NOTE_LIMIT, required=True)
    with transaction.atomic():
        case_row = _locked(case, None)
        return _add_event(
            case_row,
            kind=CaseEvent.Kind.NOTE,
            actor=actor,
            actor_label=actor_label,
            text=text,
            at=at,
        )


def case_record_message(
    *,
    case: ServiceCase,
    kind: str,
    text: str,
    data: dict[str, Any],
    actor: Actor = None,
    actor_label: str = "system",
    at: datetime.datetime | None = None,
) -> CaseEvent:
    """Note in the history that a message was linked to, sent from or received on the case
    (the channels app calls this; `data` carries its ids, e.g. thread and message)."""
    if kind not in (CaseEvent.Kind.LINKED, CaseEvent.Kind.REPLY, CaseEvent.Kind.RESIDENT_UPDATE):
        raise ValidationError({"kind": f"{kind!r} is not a message event."})
    visibility = (
        CaseEvent.Visibility.STAFF
        if kind == CaseEvent.Kind.LINKED
        else CaseEvent.Visibility.RESIDENT
    )
    with transaction.atomic():
        case_row = _locked(case, None)
        return _add_event(
            case_row,
            kind=kind,
            actor=actor,
            actor_label=actor_label,
            text=text[:NOTE_LIMIT],
            data=data,
            visibility=visibility,
            at=at,
        )


RESIDENT_LABEL = "resident"


def case_resident_update(
    *,
    case: ServiceCase,
    text: str,
    data: dict[str, Any] | None = None,
    actor: Actor = None,
    actor_label: str = RESIDENT_LABEL,
    at: datetime.datetime | None = None,
    on_timeline: bool = False,
) -> CaseEvent:
    """What a resident adds to their case, whichever way it came (a message on a linked
    conversation, the portal, the API): recorded in the history, visible to them, and a
    case waiting on the resident goes back to "in progress" (its clock restarts).

    A resolved or closed case is not reopened by it: reopening is the resident's explicit
    choice (case_resident_reopen) or an officer's, so SLA figures are not rewritten by a
    "thank you". `on_timeline` adds a timeline entry, for routes where nothing else
    recorded the resident's words (a channel's message already has its own entry).
    """
    text = (text or "").strip()[:NOTE_LIMIT]
    if not text:
        raise ValidationError({"text": "Write what you want to add."})
    at = at or timezone.now()
    with transaction.atomic():
        case_row = _locked(case, None)
        event = _add_event(
            case_row,
            kind=CaseEvent.Kind.RESIDENT_UPDATE,
            actor=actor,
            actor_label=actor_label,
            text=text,
            data=data,
            visibility=CaseEvent.Visibility.RESIDENT,
            at=at,
        )
        if on_timeline:
            _timeline(case_row, event, f"Information added to case {case_row.reference}")
        # The status is read under the row lock, so several updates in one batch move the
        # case once.
        if case_row.status == Status.WAITING:
            case_transition(
                case=case_row,
                to_status=Status.IN_PROGRESS,
                expected_version=None,
                actor=actor,
                actor_label=actor_label,
                reason="The resident replied.",
                at=at,
            )
    return event


def resident_can_reopen(
    case: ServiceCase, *, reopen_days: int, at: datetime.datetime | None = None
) -> bool:
    """Whether the resident may still reopen the case themselves: it was resolved (and
    perhaps closed since) at most `reopen_days` calendar days ago. A case closed without
    ever being resolved (withdrawn, a duplicate) is not theirs to reopen."""
    if case.anonymised_at is not None or case.resolved_at is None:
        return False
    if case.status not in (Status.RESOLVED, Status.CLOSED):
        return False
    today = timezone.localtime(at or timezone.now()).date()
    return (today - timezone.localtime(case.resolved_at).date()).days <= reopen_days


def case_resident_reopen(
    *,
    case: ServiceCase,
    reason: str,
    reopen_days: int,
    actor: Actor = None,
    actor_label: str = RESIDENT_LABEL,
    at: datetime.datetime | None = None,
) -> ServiceCase:
    """The resident says the problem is not fixed: the case goes back to "open" with their
    reason in the history, if it was resolved at most `reopen_days` days ago. After that it
    is refused (code "reopen_too_late"): they report the problem again, as a new case with
    a new clock."""
    reason = _clean_text(reason, "reason", NOTE_LIMIT, required=True)
    at = at or timezone.now()
    with transaction.atomic():
        case_row = _locked(case, None)
        if case_row.status not in (Status.RESOLVED, Status.CLOSED):
            raise ApplicationError(f"Case {case_row.reference} is still open.", code="not_resolved")
        if not resident_can_reopen(case_row, reopen_days=reopen_days, at=at):
            raise ApplicationError(
                f"Case {case_row.reference} was resolved more than {reopen_days} days ago "
                "and can no longer be reopened; report the problem again.",
                code="reopen_too_late",
            )
        return case_transition(
            case=case_row,
            to_status=Status.OPEN,
            expected_version=None,
            actor=actor,
            actor_label=actor_label,
            reason=reason,
            at=at,
        )


def case_set_legal_hold(
    *, case: ServiceCase, hold: bool, reason: str, actor: Actor = None, actor_label: str = "system"
) -> ServiceCase:
    reason = _clean_text(reason, "reason", NOTE_LIMIT, required=True)
    with transaction.atomic():
        case_row = _locked(case, None)
        case_row.legal_hold = hold
        _save(case_row, ["legal_hold"])
        _add_event(
            case_row,
            kind=CaseEvent.Kind.LEGAL_HOLD,
            actor=actor,
            actor_label=actor_label,
            text=("Legal hold placed: " if hold else "Legal hold lifted: ") + reason,
        )
        audit_record(
            action="update",
            target=case_row,
            actor=actor,
            actor_label=actor_label,
            citizen=case_row.citizen,
            reason=reason,
            details={"legal_hold": hold},
        )
    return case_row


def overdue_q(today: datetime.date, prefix: str = "") -> Q:
    """Open cases past their due date. A case waiting on the resident has its clock stopped:
    it is late only if it was already past due on the day the clock stopped (its due date
    moves when the clock restarts)."""
    return Q(**{f"{prefix}status__in": ServiceCase.OPEN_STATUSES, f"{prefix}due_on__lt": today}) & (
        Q(**{f"{prefix}clock_stopped_at__isnull": True})
        | Q(**{f"{prefix}clock_stopped_at__date__gt": F(f"{prefix}due_on")})
    )


def is_overdue(case: ServiceCase, today: datetime.date) -> bool:
    """`overdue_q` for one case already in memory."""
    if not case.is_open or case.due_on >= today:
        return False
    if case.clock_stopped_at is None:
        return True
    return timezone.localtime(case.clock_stopped_at).date() > case.due_on


def mark_breached_cases(*, today: datetime.date | None = None) -> int:
    """Flag open cases past their due date (beat runs this; the flag feeds SLA reports)."""
    today = today or timezone.localdate()
    return ServiceCase.objects.filter(overdue_q(today), breached=False).update(breached=True)


def anonymise_case(*, case: ServiceCase, at: datetime.datetime | None = None) -> ServiceCase:
    """Strip a closed case of everything that identifies or describes the person, leaving a
    tombstone (reference, service, team, dates, status) for statistics and the audit."""
    at = at or timezone.now()
    with transaction.atomic():
        case_row = _locked(case, None)
        if case_row.status != Status.CLOSED or case_row.legal_hold:
            raise ApplicationError(
                f"Case {case_row.reference} is not closed or is under legal hold.",
                code="not_expired",
            )
        citizen = case_row.citizen
        for name in ("title",):
            setattr(case_row, name, ANONYMISED_TEXT)
        case_row.description = ""
        case_row.resolution = ""
        case_row.location_text = ""
        case_row.uprn = ""
        case_row.postcode = case_row.postcode.split(" ")[0] if case_row.postcode else ""
        case_row.latitude = None
        case_row.longitude = None
        case_row.address = None
        case_row.citizen = None
        case_row.anonymised_at = at
        _save(
            case_row,
            [
                "title",
                "description",
                "resolution",
                "location_text",
                "uprn",
                "postcode",
                "latitude",
                "longitude",
                "address",
                "citizen",
                "anonymised_at",
            ],
        )
        case_row.events.update(text="", data={})
        # Photos show the place and often the person: they go with the description.
        attachments = list(case_row.attachments.all())
        case_row.attachments.all().delete()
        transaction.on_commit(lambda: delete_stored_files(attachments))
        TimelineEntry.objects.filter(
            source_type__app_label="citizenhub",
            source_type__model="caseevent",
            source_id__in=[str(pk) for pk in case_row.events.values_list("pk", flat=True)],
        ).update(summary=f"Case {case_row.reference} {ANONYMISED_TEXT}")
        _add_event(
            case_row,
            kind=CaseEvent.Kind.ANONYMISED,
            actor=None,
            actor_label="retention",
            text=f"Anonymised {case_row.service.retention_days} days after closing.",
            at=at,
        )
        audit_record(
            action="erase",
            target=case_row,
            actor_label="retention",
            citizen=citizen,
            reason="Retention period ended",
            details={
                "service": case_row.service.code,
                "closed_at": case_row.closed_at.isoformat(),
                "attachments_deleted": len(attachments),
            },
        )
    return case_row


def anonymise_expired_cases(*, now: datetime.datetime | None = None, limit: int = 500) -> int:
    """Anonymise closed cases whose service's retention period has ended (not on hold).

    One indexed query per service (the catalogue is tens of rows), oldest first, at most
    `limit` cases a run so a backlog is worked off in bounded beats."""
    now = now or timezone.now()
    done = 0
    for service in Service.objects.only("pk", "retention_days").order_by("pk"):
        cutoff = now - datetime.timedelta(days=service.retention_days)
        expired = (
            ServiceCase.objects.filter(
                service=service,
                status=Status.CLOSED,
                anonymised_at__isnull=True,
                legal_hold=False,
                closed_at__lte=cutoff,
            )
            .order_by("closed_at")
            .values_list("pk", flat=True)[: limit - done]
        )
        for pk in list(expired):
            anonymise_case(case=ServiceCase(pk=pk), at=now)
            done += 1
        if done >= limit:
            break
    return done
