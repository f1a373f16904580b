"""Resolving an identity (an address, a number, a handle) to the one citizen who owns it."""

from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q

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


@dataclass(frozen=True)
class IdentityClaim:
    """One identity to resolve in a batch: kind, the value as received, an optional name."""

    kind: str
    value: str
    display_name: str = ""


@dataclass(frozen=True)
class ResolvedIdentity:
    citizen_id: int
    contact_point_id: int
    created: bool


def resolve_identities(
    claims: list[IdentityClaim], *, source: str = ContactPoint.Source.INBOUND
) -> dict[tuple[str, str], ResolvedIdentity | ValidationError]:
    """Resolve many identities with a handful of queries (the ingest pipeline's batches).

    Returns, per (kind, value) as given, the owner or the validation error for that value.
    Same guarantees as `resolve_identity`: unknown identities get one provisional profile
    each, and a concurrent resolver creating the same identity wins or loses cleanly on the
    unique index (our orphaned provisional profiles are removed in the same transaction).
    """
    results: dict[tuple[str, str], ResolvedIdentity | ValidationError] = {}
    keys: dict[tuple[str, str], tuple[str, str]] = {}  # (kind, value) -> (kind, match_key)
    normalised: dict[tuple[str, str], str] = {}
    names: dict[tuple[str, str], str] = {}
    for claim in claims:
        given = (claim.kind, claim.value)
        if given in keys or given in results:
            continue
        try:
            if claim.kind == ContactPoint.Kind.POSTAL:
                raise ValidationError({"value": "A postal address cannot identify a person."})
            identity = normalise_identity(claim.kind, claim.value, field="value")
        except ValidationError as exc:
            results[given] = exc
            continue
        key = (claim.kind, identity.match_key)
        keys[given] = key
        normalised.setdefault(key, identity.normalised)
        names.setdefault(key, claim.display_name)

    with transaction.atomic():
        owners = _live_owners(set(keys.values()))
        missing = [key for key in dict.fromkeys(keys.values()) if key not in owners]
        created = set()
        if missing:
            citizens = Citizen.objects.bulk_create(
                [
                    Citizen(status=Citizen.Status.PROVISIONAL, **_name_fields(names[key]))
                    for key in missing
                ]
            )
            points = [
                ContactPoint(
                    citizen=citizen,
                    kind=kind,
                    value=normalised[(kind, match_key)],
                    normalised=normalised[(kind, match_key)],
                    match_key=match_key,
                    is_primary=True,
                    source=source,
                )
                for citizen, (kind, match_key) in zip(citizens, missing, strict=True)
            ]
            ContactPoint.objects.bulk_create(points, ignore_conflicts=True)
            winners = _live_owners(set(missing))
            ours = {c.pk for c in citizens}
            lost = [c.pk for c in citizens if c.pk not in {o[0] for o in winners.values()}]
            if lost:  # another resolver created these identities first
                Citizen.objects.filter(pk__in=lost).delete()
            for key, owner in winners.items():
                owners[key] = owner
                if owner[0] in ours:
                    created.add(key)
    for given, key in keys.items():
        citizen_id, contact_point_id = owners[key]
        results[given] = ResolvedIdentity(citizen_id, contact_point_id, key in created)
    return results


def _name_fields(display_name: str) -> dict[str, str]:
    if not display_name:
        return {}
    given_name, family_name = split_display_name(display_name)
    return {"given_name": given_name, "family_name": family_name}


def _live_owners(keys: set[tuple[str, str]]) -> dict[tuple[str, str], tuple[int, int]]:
    """(kind, match_key) -> (live citizen id, contact point id) for the keys that exist."""
    if not keys:
        return {}
    by_kind: dict[str, list[str]] = {}
    for kind, match_key in keys:
        by_kind.setdefault(kind, []).append(match_key)
    condition = Q()
    for kind, match_keys in by_kind.items():
        condition |= Q(kind=kind, match_key__in=match_keys)
    rows = ContactPoint.objects.filter(condition, removed_at__isnull=True).values_list(
        "kind", "match_key", "pk", "citizen_id", "citizen__status", "citizen__merged_into_id"
    )
    owners = {}
    for kind, match_key, point_id, citizen_id, status, merged_into_id in rows:
        # Contact points move with a merge, so a merged owner is rare (a race with a merge).
        owner = merged_into_id if status == Citizen.Status.MERGED else citizen_id
        owners[(kind, match_key)] = (owner, point_id)
    return owners
