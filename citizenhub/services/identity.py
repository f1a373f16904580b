"""Resolving an identity (an address, a number, a handle) to the one citizen who owns it."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import IntegrityError, transaction

from citizenhub.errors import ApplicationError
from citizenhub.models import Citizen, ContactPoint
from citizenhub.normalise import normalise_identity


@dataclass(frozen=True)
class IdentityResolution:
    citizen: Citizen
    contact_point: ContactPoint
    created: bool  # True when a new provisional profile was made for an unknown sender


def live_contact_point(kind: str, match_key: str) -> ContactPoint | None:
    return (
        ContactPoint.objects.select_related("citizen")
        .filter(kind=kind, match_key=match_key, removed_at__isnull=True)
        .first()
    )


def follow_merges(citizen: Citizen) -> Citizen:
    """The live profile a (possibly merged) citizen now lives on."""
    seen = set()
    while citizen.status == Citizen.Status.MERGED and citizen.merged_into_id not in seen:
        seen.add(citizen.pk)
        citizen = Citizen.objects.get(pk=citizen.merged_into_id)
    return citizen


def split_display_name(display_name: str) -> tuple[str, str]:
    parts = " ".join(display_name.split()).rsplit(" ", 1)
    if len(parts) == 2:
        return parts[0][:150], parts[1][:150]
    return parts[0][:150], ""


def resolve_identity(
    *,
    kind: str,
    value: str,
    source: str = ContactPoint.Source.INBOUND,
    display_name: str = "",
    default_instance: str | None = None,
) -> IdentityResolution:
    """Return the citizen owning this contact point, or make a provisional profile for it.

    Safe under concurrency: the partial unique index on (kind, match_key) decides which of
    two simultaneous resolvers creates the profile; the loser's insert fails, its savepoint
    is rolled back (taking its would-be profile with it) and it reads the winner's row.
    """
    if kind == ContactPoint.Kind.POSTAL:
        raise ApplicationError(
            "A postal address can be shared by a household, so it cannot identify one person.",
            code="not_an_identity",
        )
    identity = normalise_identity(kind, value, field="value", default_instance=default_instance)
    existing = live_contact_point(kind, identity.match_key)
    if existing is not None:
        return IdentityResolution(follow_merges(existing.citizen), existing, created=False)

    given_name, family_name = split_display_name(display_name) if display_name else ("", "")
    try:
        with transaction.atomic():
            citizen = Citizen.objects.create(
                status=Citizen.Status.PROVISIONAL, given_name=given_name, family_name=family_name
            )
            contact_point = ContactPoint.objects.create(
                citizen=citizen,
                kind=kind,
                value=value.strip()[:320],
                normalised=identity.normalised,
                match_key=identity.match_key,
                is_primary=True,
                source=source,
            )
    except IntegrityError:
        existing = live_contact_point(kind, identity.match_key)
        if existing is None:  # the conflict was something else: do not hide it
            raise
        return IdentityResolution(follow_merges(existing.citizen), existing, created=False)
    return IdentityResolution(citizen, contact_point, created=True)
