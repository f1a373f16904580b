"""Read queries of the hub core shared by the API, pages and tasks."""

from __future__ import annotations

import base64
import binascii
import datetime
import json
from collections.abc import Iterable
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db.models import Prefetch, Q, QuerySet

from citizenhub.case_selectors import catalogue_summary
from citizenhub.models import Citizen, ContactPoint, TimelineEntry
from citizenhub.normalise import normalise_email, normalise_phone

SEARCH_TERM_LIMIT = 200


def citizens_with_contact_points() -> QuerySet[Citizen]:
    """Citizens with their live contact points prefetched (one extra query per page)."""
    return Citizen.objects.select_related("merged_into").prefetch_related(
        Prefetch(
            "contact_points",
            queryset=ContactPoint.objects.filter(removed_at__isnull=True).order_by(
                "kind", "-is_primary", "id"
            ),
            to_attr="live_contact_points",
        )
    )


def _identity_match(kind: str, match_key: str) -> Q:
    return Q(
        contact_points__kind=kind,
        contact_points__match_key=match_key,
        contact_points__removed_at__isnull=True,
    )


def citizen_search(queryset: QuerySet[Citizen], term: str) -> QuerySet[Citizen]:
    """Find citizens by e-mail, phone (any written form) or name; bounded and wildcard-safe."""
    term = " ".join(term.split())[:SEARCH_TERM_LIMIT]
    if not term:
        return queryset
    if "@" in term:
        try:
            key = normalise_email(term).match_key
        except ValidationError:
            return queryset.none()
        return queryset.filter(_identity_match("email", key))
    if any(ch.isdigit() for ch in term) and not any(ch.isalpha() for ch in term):
        try:
            key = normalise_phone(term).match_key
        except ValidationError:
            return queryset.none()
        return queryset.filter(_identity_match("phone", key))
    condition = Q()
    # icontains escapes % and _ itself, so user input never becomes a LIKE pattern.
    for word in term.split()[:5]:
        condition &= Q(given_name__icontains=word) | Q(family_name__icontains=word)
    return queryset.filter(condition)


def citizen_by_identity(queryset: QuerySet[Citizen], kind: str, match_key: str) -> QuerySet:
    return queryset.filter(_identity_match(kind, match_key))


def timeline_entries() -> QuerySet[TimelineEntry]:
    return TimelineEntry.objects.select_related("source_type")


# --- The citizen 360 page (staff): a keyset page of the timeline and what goes around it ---

TIMELINE_PAGE_SIZE = 25
# Departments offered in the timeline filter: the catalogue's, and those of the citizen's
# most recent entries (bounded, so a citizen with a huge history costs the same).
RECENT_DEPARTMENTS_SCAN = 500


@dataclass(frozen=True)
class TimelinePage:
    entries: list[TimelineEntry]
    next_cursor: str | None


def encode_timeline_cursor(entry: TimelineEntry) -> str:
    """The position after `entry` in newest-first order: same format as the API's cursor."""
    values = [entry.occurred_at.isoformat(), entry.pk]
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


def decode_timeline_cursor(raw: str) -> tuple[datetime.datetime, int]:
    """Raises ValidationError (field "before") for anything but a cursor we made."""
    invalid = ValidationError({"before": "This page link is not valid."})
    try:
        values = json.loads(base64.urlsafe_b64decode(raw.encode("ascii") + b"=="))
    except (ValueError, binascii.Error, UnicodeError):
        raise invalid from None
    if not isinstance(values, list) or len(values) != 2:
        raise invalid
    occurred, pk = values
    if not isinstance(occurred, str) or not isinstance(pk, int) or isinstance(pk, bool):
        raise invalid
    try:
        when = datetime.datetime.fromisoformat(occurred)
    except ValueError:
        raise invalid from None
    if when.tzinfo is None:
        raise invalid
    return when, pk


def timeline_page(
    citizen: Citizen,
    *,
    kinds: Iterable[str] = (),
    channels: Iterable[str] = (),
    department: str = "",
    before: tuple[datetime.datetime, int] | None = None,
    size: int = TIMELINE_PAGE_SIZE,
) -> TimelinePage:
    """One page of a citizen's timeline, newest first, after the `before` position.

    One query on the (citizen, -occurred_at, -id) index whatever the history: it reads
    the citizen's entries from the cursor down and stops after size + 1 matching rows
    (filters by kind, channel or department are checked on those rows, which for one
    citizen is cheap). No COUNT: the page only says whether there are older entries.
    """
    queryset = TimelineEntry.objects.filter(citizen=citizen).only(
        "id",
        "citizen_id",
        "occurred_at",
        "kind",
        "channel",
        "department",
        "service_code",
        "summary",
        "visibility",
    )
    kinds, channels = list(kinds), list(channels)
    if kinds:
        queryset = queryset.filter(kind__in=kinds)
    if channels:
        queryset = queryset.filter(channel__in=channels)
    if department:
        queryset = queryset.filter(department=department)
    if before is not None:
        when, pk = before
        # The plain `<=` bound is what lets PostgreSQL start the index scan at the cursor;
        # the OR settles ties on occurred_at by id.
        queryset = queryset.filter(occurred_at__lte=when).filter(
            Q(occurred_at__lt=when) | Q(occurred_at=when, pk__lt=pk)
        )
    rows = list(queryset.order_by("-occurred_at", "-id")[: size + 1])
    has_more = len(rows) > size
    rows = rows[:size]
    return TimelinePage(
        entries=rows, next_cursor=encode_timeline_cursor(rows[-1]) if has_more else None
    )


def timeline_departments(citizen: Citizen) -> list[str]:
    """Departments to offer in a citizen's timeline filter, sorted."""
    catalogue = set(catalogue_summary().departments)
    recent = (
        TimelineEntry.objects.filter(citizen=citizen)
        .order_by("-occurred_at", "-id")
        .values_list("department", flat=True)[:RECENT_DEPARTMENTS_SCAN]
    )
    return sorted((catalogue | set(recent)) - {""}, key=str.casefold)
