"""Read queries of the hub core shared by the API, pages and tasks."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db.models import Prefetch, Q, QuerySet

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
