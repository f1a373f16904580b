"""Contact logged by staff: phone calls and visits, recorded with the timeline entry they make."""

from __future__ import annotations

import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from channels.models import (
    LOGGED_CONTACT_MAX_SECONDS,
    LOGGED_CONTACT_NOTES_LIMIT,
    LoggedContact,
    Thread,
)
from citizenhub.models import ChannelKind, Citizen, TimelineEntry
from citizenhub.services.identity import follow_merges
from citizenhub.services.timeline import record_timeline_entry

# Clocks of phones and PCs drift: "now" from a slightly fast clock is not the future.
FUTURE_TOLERANCE = datetime.timedelta(minutes=2)

_TIMELINE = {
    LoggedContact.Kind.CALL: (TimelineEntry.Kind.CALL, ChannelKind.PHONE),
    LoggedContact.Kind.VISIT: (TimelineEntry.Kind.VISIT, ChannelKind.IN_PERSON),
}
_HEADLINES = {
    (LoggedContact.Kind.CALL, LoggedContact.Direction.INBOUND): "Phone call from the resident",
    (LoggedContact.Kind.CALL, LoggedContact.Direction.OUTBOUND): "Phone call to the resident",
    (LoggedContact.Kind.VISIT, LoggedContact.Direction.INBOUND): "Visit by the resident",
    (LoggedContact.Kind.VISIT, LoggedContact.Direction.OUTBOUND): "Visit to the resident",
}


def format_duration(seconds: int) -> str:
    """12 -> "12 s", 750 -> "12 min 30 s", 3720 -> "1 h 2 min"."""
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    if minutes:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    return f"{secs} s"


def _summary(contact: LoggedContact) -> str:
    parts = [_HEADLINES[(contact.kind, contact.direction)]]
    if contact.duration_seconds is not None:
        parts[0] += f" ({format_duration(contact.duration_seconds)})"
    parts.append(f"outcome: {contact.get_outcome_display()}")
    if contact.department:
        parts.append(contact.department)
    summary = ", ".join(parts) + "."
    return f"{summary} {contact.notes}" if contact.notes else summary


def _check(
    *,
    citizen: Citizen,
    kind: str,
    direction: str,
    occurred_at: datetime.datetime,
    duration_seconds: int | None,
    outcome: str,
    notes: str,
    department: str,
    thread: Thread | None,
) -> None:
    errors: dict[str, str] = {}
    if not citizen.is_live:
        errors["citizen"] = "This profile has been erased; contact cannot be logged against it."
    if kind not in LoggedContact.Kind.values:
        errors["kind"] = f"{kind!r} is not a kind of contact: use call or visit."
    if direction not in LoggedContact.Direction.values:
        errors["direction"] = f"{direction!r} is not a direction: use inbound or outbound."
    if outcome not in LoggedContact.Outcome.values:
        errors["outcome"] = f"{outcome!r} is not an outcome."
    if timezone.is_naive(occurred_at):
        errors["occurred_at"] = "Give the time with its time zone."
    elif occurred_at > timezone.now() + FUTURE_TOLERANCE:
        errors["occurred_at"] = "Contact cannot be logged in the future."
    if duration_seconds is not None and not 0 <= duration_seconds <= LOGGED_CONTACT_MAX_SECONDS:
        errors["duration_seconds"] = (
            f"A duration is from 0 to {LOGGED_CONTACT_MAX_SECONDS} seconds (24 hours)."
        )
    if len(notes) > LOGGED_CONTACT_NOTES_LIMIT:
        errors["notes"] = f"Notes can be at most {LOGGED_CONTACT_NOTES_LIMIT:,} characters."
    if len(department) > 100:
        errors["department"] = "A department name can be at most 100 characters."
    if thread is not None and follow_merges(thread.citizen) != citizen:
        errors["thread"] = "This thread belongs to another resident."
    if errors:
        raise ValidationError(errors)


def contact_log(
    *,
    citizen: Citizen,
    kind: str,
    direction: str,
    occurred_at: datetime.datetime,
    duration_seconds: int | None,
    outcome: str,
    notes: str,
    department: str,
    by: AbstractBaseUser | None,
    thread: Thread | None = None,
) -> LoggedContact:
    """Record a call or visit and its staff-only timeline entry, in one transaction.

    A contact logged against a merged profile lands on the profile it was merged into.
    Raises ValidationError keyed by argument name for anything that cannot be recorded.
    """
    citizen = follow_merges(citizen)
    notes = notes.strip()
    department = department.strip()
    _check(
        citizen=citizen,
        kind=kind,
        direction=direction,
        occurred_at=occurred_at,
        duration_seconds=duration_seconds,
        outcome=outcome,
        notes=notes,
        department=department,
        thread=thread,
    )
    entry_kind, channel = _TIMELINE[kind]
    with transaction.atomic():
        contact = LoggedContact.objects.create(
            citizen=citizen,
            kind=kind,
            direction=direction,
            occurred_at=occurred_at,
            duration_seconds=duration_seconds,
            outcome=outcome,
            notes=notes,
            department=department,
            thread=thread,
            logged_by=by,
        )
        record_timeline_entry(
            citizen=citizen,
            kind=entry_kind,
            summary=_summary(contact),
            occurred_at=occurred_at,
            channel=channel,
            department=department,
            service_code=thread.service_code if thread else "",
            visibility=TimelineEntry.Visibility.STAFF,
            source=contact,
        )
    return contact
