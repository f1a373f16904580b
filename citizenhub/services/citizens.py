"""Creating citizen profiles and adding contact points to them."""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Sequence

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from citizenhub.errors import ApplicationError
from citizenhub.models import AuditEvent, ChannelKind, Citizen, ContactPoint, Language
from citizenhub.normalise import NormalisedIdentity, normalise_identity
from citizenhub.services.audit import audit_record
from citizenhub.services.identity import live_contact_point
from citizenhub.services.merge import citizen_merge


def _identity_taken(kind: str, identity: NormalisedIdentity, field: str) -> ValidationError:
    return ValidationError(
        {
            field: ValidationError(
                f"{identity.normalised} already belongs to another profile.", code="identity_taken"
            )
        }
    )


def _check_contact_point(
    kind: str, value: str, field: str, *, owner: Citizen | None
) -> NormalisedIdentity:
    identity = normalise_identity(kind, value, field=field)
    if kind != ContactPoint.Kind.POSTAL:
        existing = live_contact_point(kind, identity.match_key)
        if existing is not None and existing.citizen_id != getattr(owner, "pk", None):
            raise _identity_taken(kind, identity, field)
    return identity


def contact_point_add(
    *,
    citizen: Citizen,
    kind: str,
    value: str,
    source: str = ContactPoint.Source.STAFF,
    is_primary: bool = False,
    verification_level: str = ContactPoint.VerificationLevel.UNVERIFIED,
    actor: AbstractBaseUser | None = None,
) -> ContactPoint:
    """Add an identity to a profile; adding one it already has returns the existing row."""
    if not citizen.is_live:
        raise ApplicationError(
            f"Profile {citizen.public_id} is {citizen.status}; it takes no new contact points.",
            code="not_live",
        )
    identity = _check_contact_point(kind, value, "value", owner=citizen)
    existing = citizen.contact_points.filter(
        kind=kind, match_key=identity.match_key, removed_at__isnull=True
    ).first()
    if existing is not None:
        return existing
    verified_at = (
        timezone.now() if verification_level != ContactPoint.VerificationLevel.UNVERIFIED else None
    )
    try:
        with transaction.atomic():
            if is_primary:
                citizen.contact_points.filter(kind=kind, is_primary=True).update(is_primary=False)
            contact_point = ContactPoint.objects.create(
                citizen=citizen,
                kind=kind,
                value=value.strip()[:320],
                normalised=identity.normalised,
                match_key=identity.match_key,
                is_primary=is_primary,
                source=source,
                verification_level=verification_level,
                verified_at=verified_at,
            )
            audit_record(
                action=AuditEvent.Action.UPDATE,
                target=citizen,
                actor=actor,
                reason="contact point added",
                details={"kind": kind},
            )
    except IntegrityError:
        # Someone else claimed it between our check and our insert.
        raise _identity_taken(kind, identity, "value") from None
    return contact_point


def citizen_create(
    *,
    given_name: str = "",
    family_name: str = "",
    date_of_birth: datetime.date | None = None,
    preferred_language: str = "en",
    preferred_channel: str = "",
    accessibility_needs: str = "",
    contact_points: Sequence[tuple[str, str]] = (),
    source: str = ContactPoint.Source.STAFF,
    actor: AbstractBaseUser | None = None,
    public_id: uuid.UUID | None = None,
) -> Citizen:
    """Create an active profile with its contact points; any invalid one saves nothing."""
    errors: dict[str, list[ValidationError]] = {}
    identities: list[tuple[str, str, NormalisedIdentity]] = []
    for index, (kind, value) in enumerate(contact_points):
        field = f"contact_points[{index}].value"
        try:
            identities.append((kind, value, _check_contact_point(kind, value, field, owner=None)))
        except ValidationError as exc:
            for key, messages in exc.message_dict.items():
                errors.setdefault(key, []).extend(ValidationError(m) for m in messages)
    if date_of_birth and date_of_birth > timezone.localdate():
        errors.setdefault("date_of_birth", []).append(
            ValidationError("Date of birth cannot be in the future.")
        )
    if errors:
        raise ValidationError(errors)

    try:
        with transaction.atomic():
            citizen = Citizen(
                given_name=given_name.strip(),
                family_name=family_name.strip(),
                date_of_birth=date_of_birth,
                preferred_language=preferred_language,
                preferred_channel=preferred_channel,
                accessibility_needs=accessibility_needs,
            )
            if public_id is not None:  # a caller-chosen id makes re-imports idempotent
                citizen.public_id = public_id
            citizen.full_clean(exclude=["merged_into", "user"])
            citizen.save()
            seen_kinds: set[str] = set()
            for kind, value, identity in identities:
                ContactPoint.objects.create(
                    citizen=citizen,
                    kind=kind,
                    value=value.strip()[:320],
                    normalised=identity.normalised,
                    match_key=identity.match_key,
                    is_primary=kind not in seen_kinds,
                    source=source,
                )
                seen_kinds.add(kind)
            audit_record(action=AuditEvent.Action.CREATE, target=citizen, actor=actor)
    except IntegrityError:
        raise ValidationError(
            {"contact_points": "One of these contact points was just claimed by another profile."}
        ) from None
    return citizen


def contact_point_verify(
    *,
    citizen: Citizen,
    kind: str,
    value: str,
    level: str = ContactPoint.VerificationLevel.CONFIRMED,
    by: AbstractBaseUser | None = None,
) -> ContactPoint:
    """Record that `citizen` proved they own an identity (a code or link came back).

    Call it after the proof succeeded (the portal sends and checks the code). If the
    identity is on a provisional profile, made automatically from an unknown sender, that
    profile is this same person: it is merged into `citizen`, so their timeline holds
    both channels' history. An identity on another confirmed profile is never taken over
    automatically; staff must review it.
    """
    identity = normalise_identity(kind, value, field="value")
    with transaction.atomic():
        owner_point = (
            ContactPoint.objects.select_for_update(of=("self",))
            .select_related("citizen")
            .filter(kind=kind, match_key=identity.match_key, removed_at__isnull=True)
            .exclude(kind=ContactPoint.Kind.POSTAL)
            .first()
        )
        if owner_point is not None and owner_point.citizen_id != citizen.pk:
            other = owner_point.citizen
            if other.status != Citizen.Status.PROVISIONAL:
                raise ApplicationError(
                    f"{identity.normalised} belongs to another confirmed profile; a member of "
                    "staff must check whether they are the same person before merging.",
                    code="identity_on_another_profile",
                    extra={"other_profile": str(other.public_id)},
                )
            citizen_merge(
                survivor=citizen,
                duplicate=other,
                by=by,
                reason=f"{citizen.display_name} verified ownership of {identity.normalised}",
            )
            owner_point.refresh_from_db()
        if owner_point is None:
            owner_point = contact_point_add(
                citizen=citizen,
                kind=kind,
                value=value,
                source=ContactPoint.Source.PORTAL,
                actor=by,
            )
        owner_point.verification_level = level
        owner_point.verified_at = timezone.now()
        owner_point.save(update_fields=["verification_level", "verified_at"])
        audit_record(
            action=AuditEvent.Action.UPDATE,
            target=citizen,
            actor=by,
            reason="identity verified",
            details={"kind": kind, "level": level},
        )
    return owner_point


def citizen_set_preferred_language(
    *, citizen: Citizen, language: str, actor: AbstractBaseUser | None = None
) -> Citizen:
    """Save the language the resident reads (English or Welsh): the portal shows it and
    messages to them are written in it."""
    if language not in dict(Language.choices):
        raise ValidationError({"preferred_language": f"{language!r} is not a language we offer."})
    if citizen.preferred_language == language:
        return citizen
    before = citizen.preferred_language
    citizen.preferred_language = language
    citizen.save(update_fields=["preferred_language", "updated_at"])
    audit_record(
        action=AuditEvent.Action.UPDATE,
        target=citizen,
        actor=actor,
        details={"preferred_language": [before, language]},
    )
    return citizen


# How the council may write first to a resident about their requests, and the contact point
# kind each way needs (confirmed, for a text message: a wrong number texts a stranger).
PREFERRED_CHANNEL_NEEDS = {
    ChannelKind.EMAIL: ContactPoint.Kind.EMAIL,
    ChannelKind.SMS: ContactPoint.Kind.PHONE,
}


def citizen_set_preferred_channel(
    *, citizen: Citizen, channel: str, actor: AbstractBaseUser | None = None
) -> Citizen:
    """Save how the resident wants to hear about their requests (e-mail or text message).

    A text message needs a confirmed mobile number on the profile; an e-mail needs an
    address we can deliver to.
    """
    kind = PREFERRED_CHANNEL_NEEDS.get(channel)
    if kind is None:
        raise ValidationError({"preferred_channel": _("Choose email or text message.")})
    points = citizen.contact_points.filter(
        kind=kind, removed_at__isnull=True, undeliverable_at__isnull=True
    )
    if kind == ContactPoint.Kind.PHONE:
        points = points.filter(
            verification_level__in=(
                ContactPoint.VerificationLevel.CONFIRMED,
                ContactPoint.VerificationLevel.STAFF_CHECKED,
            )
        )
    if not points.exists():
        raise ValidationError(
            {
                "preferred_channel": _("Add and confirm a mobile phone number first.")
                if kind == ContactPoint.Kind.PHONE
                else _("Add an email address we can deliver to first.")
            }
        )
    if citizen.preferred_channel == channel:
        return citizen
    before = citizen.preferred_channel
    citizen.preferred_channel = channel
    citizen.save(update_fields=["preferred_channel", "updated_at"])
    audit_record(
        action=AuditEvent.Action.UPDATE,
        target=citizen,
        actor=actor,
        details={"preferred_channel": [before, channel]},
    )
    return citizen
