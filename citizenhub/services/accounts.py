"""Residents' portal accounts: linking a verified e-mail address to the profile it belongs
to, and the contact details a resident manages themselves."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from citizenhub.errors import ApplicationError
from citizenhub.models import (
    AuditEvent,
    ChannelKind,
    Citizen,
    ContactPoint,
    DuplicateCandidate,
    Language,
    TimelineEntry,
)
from citizenhub.normalise import normalise_identity
from citizenhub.services.audit import audit_record
from citizenhub.services.citizens import contact_point_verify
from citizenhub.services.identity import follow_merges
from citizenhub.services.timeline import record_timeline_entry

logger = logging.getLogger(__name__)

SIGNED_UP_SUMMARY = "Signed up to the residents' portal"
# Written as DuplicateCandidate.method when two accounts proved the same e-mail address.
SHARED_EMAIL_METHOD = "portal-verified-email"
# Levels at or above "confirmed": a verified e-mail never lowers them.
_PROVEN = {ContactPoint.VerificationLevel.CONFIRMED, ContactPoint.VerificationLevel.STAFF_CHECKED}


@dataclass(frozen=True)
class AccountLink:
    citizen: Citizen
    # "existing" (a profile that owned the address), "provisional" (made from an unknown
    # sender, now active), "new", "already" (linked before), or "separate" (the address
    # belongs to another account's profile: a new profile, and staff are asked to review).
    outcome: str


def _proven(point: ContactPoint) -> None:
    """Raise an e-mail contact point to "confirmed" (never lower a staff check)."""
    if point.verification_level in _PROVEN:
        return
    point.verification_level = ContactPoint.VerificationLevel.CONFIRMED
    point.verified_at = timezone.now()
    point.save(update_fields=["verification_level", "verified_at"])


def _suggest_same_person(first: Citizen, second: Citizen, *, email: str) -> None:
    """Put the pair in the staff duplicates queue: two accounts proved one mailbox."""
    citizen_a, citizen_b = sorted((first, second), key=lambda citizen: citizen.pk)
    candidate, created = DuplicateCandidate.objects.get_or_create(
        citizen_a=citizen_a,
        citizen_b=citizen_b,
        defaults={
            "score": 1.0,
            "method": SHARED_EMAIL_METHOD,
            "reasons": [{"field": "email", "reason": f"both accounts verified {email}"}],
        },
    )
    if created:
        for citizen in (citizen_a, citizen_b):
            audit_record(
                action=AuditEvent.Action.CREATE,
                target=candidate,
                citizen=citizen,
                reason="the same e-mail address was verified by two portal accounts",
            )


def _record_sign_up(citizen: Citizen, user: AbstractBaseUser, outcome: str) -> None:
    audit_record(
        action=AuditEvent.Action.CREATE
        if outcome in ("new", "separate")
        else AuditEvent.Action.UPDATE,
        target=citizen,
        actor=user,
        reason="signed up to the residents' portal",
        details={"account_link": outcome},
    )
    # The account is the source: a repeated confirmation cannot add a second entry.
    record_timeline_entry(
        citizen=citizen,
        kind=TimelineEntry.Kind.PROFILE,
        summary=SIGNED_UP_SUMMARY,
        channel=ChannelKind.WEB,
        visibility=TimelineEntry.Visibility.RESIDENT,
        source=user,
    )


def _new_profile(
    user: AbstractBaseUser, language: str, *, email_point: tuple[str, str, str] | None
) -> Citizen:
    citizen = Citizen.objects.create(user=user, preferred_language=language)
    if email_point is not None:
        value, normalised, match_key = email_point
        ContactPoint.objects.create(
            citizen=citizen,
            kind=ContactPoint.Kind.EMAIL,
            value=value,
            normalised=normalised,
            match_key=match_key,
            is_primary=True,
            source=ContactPoint.Source.PORTAL,
            verification_level=ContactPoint.VerificationLevel.CONFIRMED,
            verified_at=timezone.now(),
        )
    return citizen


def _hand_over(owner: Citizen, owner_point: ContactPoint) -> bool:
    """Whether proving the mailbox is enough to take over the profile that holds it: a
    provisional profile (made from messages sent from that mailbox, nothing more), or one
    where the address was already proven (a code or link came back, or staff checked it).
    A staff-typed, unproven address on a full profile is not: its cases and history could
    belong to someone else."""
    return owner.status == Citizen.Status.PROVISIONAL or owner_point.verification_level in (
        ContactPoint.VerificationLevel.CONFIRMED,
        ContactPoint.VerificationLevel.STAFF_CHECKED,
    )


def _link_once(user: AbstractBaseUser, email: str, language: str) -> AccountLink:
    existing = Citizen.objects.filter(user=user).first()
    if existing is not None:
        return AccountLink(follow_merges(existing), "already")
    identity = normalise_identity(ContactPoint.Kind.EMAIL, email, field="email")
    owner_point = (
        ContactPoint.objects.select_for_update(of=("self",))
        .filter(kind=ContactPoint.Kind.EMAIL, match_key=identity.match_key, removed_at__isnull=True)
        .first()
    )
    if owner_point is None:
        citizen = _new_profile(
            user,
            language,
            email_point=(email.strip()[:320], identity.normalised, identity.match_key),
        )
        return AccountLink(citizen, "new")
    owner = Citizen.objects.select_for_update().get(
        pk=follow_merges(Citizen.objects.get(pk=owner_point.citizen_id)).pk
    )
    if owner.user_id is None and owner.is_live and _hand_over(owner, owner_point):
        outcome = "provisional" if owner.status == Citizen.Status.PROVISIONAL else "existing"
        owner.user = user
        owner.status = Citizen.Status.ACTIVE
        owner.save(update_fields=["user", "status", "updated_at"])
        _proven(owner_point)
        return AccountLink(owner, outcome)
    # The address is on the profile of another account (or of an erased profile), or on a
    # profile that never proved it. Proving a mailbox today does not prove being that
    # person: the same resident with a second account, a shared family mailbox, a typo by
    # staff, a recycled address. Nothing of the other profile is handed over; the new
    # account gets its own profile, and staff decide in the duplicates queue.
    citizen = _new_profile(user, language, email_point=None)
    if owner.is_live:
        _suggest_same_person(citizen, owner, email=identity.normalised)
    logger.info("verified e-mail already on profile %s; new profile %s", owner.pk, citizen.pk)
    return AccountLink(citizen, "separate")


def link_account_to_citizen(
    *, user: AbstractBaseUser, email: str, language: str = Language.ENGLISH
) -> AccountLink:
    """Give a portal account its Citizen profile, once its e-mail address is verified.

    The live profile owning that address and no account is linked to it (a provisional one
    becomes active); otherwise a new profile is made, in the language the resident signed
    up in. Idempotent: an account already linked keeps its profile. Safe when two requests
    race: the unique live identity and the one-profile-per-account constraints decide, and
    the loser reads the winner's result.
    """
    if language not in Language.values:
        language = Language.ENGLISH
    for attempt in range(3):
        try:
            with transaction.atomic():
                link = _link_once(user, email, language)
                if link.outcome != "already":
                    _record_sign_up(link.citizen, user, link.outcome)
            return link
        except IntegrityError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def account_email_confirmed(
    *, user: AbstractBaseUser, email: str, language: str = Language.ENGLISH
) -> AccountLink:
    """An account verified an e-mail address: its first (sign-up), or a new one (change of
    address). A new address is added to the resident's profile as confirmed and primary;
    the old one stays on the profile as a contact point (the resident can remove it)."""
    existing = Citizen.objects.filter(user=user).first()
    if existing is None:
        return link_account_to_citizen(user=user, email=email, language=language)
    citizen = follow_merges(existing)
    identity = normalise_identity(ContactPoint.Kind.EMAIL, email, field="email")
    with transaction.atomic():
        own = citizen.contact_points.filter(
            kind=ContactPoint.Kind.EMAIL, match_key=identity.match_key, removed_at__isnull=True
        ).first()
        try:
            if own is None or own.verification_level not in _PROVEN:
                with transaction.atomic():
                    own = contact_point_verify(
                        citizen=citizen, kind=ContactPoint.Kind.EMAIL, value=email, by=user
                    )
        except ApplicationError as exc:
            if exc.code != "identity_on_another_profile":
                raise
            other = ContactPoint.objects.get(
                kind=ContactPoint.Kind.EMAIL,
                match_key=identity.match_key,
                removed_at__isnull=True,
            ).citizen
            _suggest_same_person(citizen, follow_merges(other), email=identity.normalised)
            return AccountLink(citizen, "separate")
        citizen.contact_points.filter(kind=ContactPoint.Kind.EMAIL, is_primary=True).exclude(
            pk=own.pk
        ).update(is_primary=False)
        if not own.is_primary:
            own.is_primary = True
            own.save(update_fields=["is_primary"])
    return AccountLink(citizen, "already")


def login_email_match_key(user: AbstractBaseUser) -> str | None:
    """The match key of the address the account signs in with (never removed from /my/)."""
    email = getattr(user, "email", "") or ""
    if not email:
        return None
    return normalise_identity(ContactPoint.Kind.EMAIL, email, field="email").match_key


def resident_contact_point_remove(
    *, citizen: Citizen, contact_point: ContactPoint, by: AbstractBaseUser
) -> ContactPoint:
    """A resident removes one of their own contact points. Soft: the row stays (the record
    of past messages refers to it) with removed_at set, and no longer identifies them. The
    address the account signs in with is changed on the account's e-mail page instead."""
    if contact_point.citizen_id != citizen.pk:
        raise ApplicationError(_("That contact detail is not on your profile."), code="not_yours")
    if (
        contact_point.kind == ContactPoint.Kind.EMAIL
        and contact_point.match_key == login_email_match_key(by)
    ):
        raise ApplicationError(
            _("You sign in with this email address. Change it on the email address page."),
            code="login_email",
        )
    with transaction.atomic():
        point = ContactPoint.objects.select_for_update().get(pk=contact_point.pk)
        if point.removed_at is not None:
            return point
        point.removed_at = timezone.now()
        point.is_primary = False
        point.save(update_fields=["removed_at", "is_primary"])
        if contact_point.is_primary:
            successor = (
                citizen.contact_points.filter(kind=point.kind, removed_at__isnull=True)
                .order_by("-verified_at", "-created_at")
                .first()
            )
            if successor is not None:
                successor.is_primary = True
                successor.save(update_fields=["is_primary"])
        audit_record(
            action=AuditEvent.Action.UPDATE,
            target=citizen,
            actor=by,
            reason="contact point removed by the resident",
            details={"kind": point.kind},
        )
    return point
