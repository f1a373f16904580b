"""Following an anonymous report by e-mail (double opt-in): the address a reporter gave waits
on the case in a staff-only note until the link e-mailed to it is used; only then does the
case join the profile that owns the address.

Typing an address proves nothing, so a report is never attached to anyone at submission:
otherwise anybody could put a case, with text and photos of their choosing, into a
stranger's "My cases", data export and council record.
"""

from __future__ import annotations

import logging
import smtplib
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core import signing
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone

from citizenhub.errors import ApplicationError
from citizenhub.models import (
    AuditEvent,
    CaseAttachment,
    CaseEvent,
    ChannelKind,
    Citizen,
    ContactPoint,
    ServiceCase,
    TimelineEntry,
)
from citizenhub.normalise import normalise_identity
from citizenhub.services.audit import actor_label_for, audit_record
from citizenhub.services.citizens import contact_point_verify
from citizenhub.services.identity import follow_merges, resolve_identity
from citizenhub.services.timeline import record_timeline_entry

logger = logging.getLogger(__name__)

Actor = AbstractBaseUser | AnonymousUser | None

FOLLOW_TOKEN_SALT = "citizenhub.report.follow"  # noqa: S105 (a signing salt)
# CaseEvent.data["purpose"] of the note holding the address the reporter gave.
FOLLOW_REQUEST_PURPOSE = "report_follow"
CONFIRMED_ACTOR_LABEL = "resident (confirmed their email address by a link)"
_PROVEN_LEVELS = {
    ContactPoint.VerificationLevel.CONFIRMED,
    ContactPoint.VerificationLevel.STAFF_CHECKED,
}


def follow_link_max_age() -> int:
    """Seconds a confirmation link works for (PORTAL_REPORT_FOLLOW_LINK_MAX_AGE)."""
    return settings.PORTAL_REPORT_FOLLOW_LINK_MAX_AGE


@dataclass(frozen=True)
class FollowRequest:
    """An address waiting to follow a case: the note that holds it, and its case."""

    event: CaseEvent
    case: ServiceCase
    email: str


def case_request_follow(*, case: ServiceCase, email: str) -> FollowRequest:
    """Record, staff-only, the address an anonymous reporter gave to get updates.

    Officers see it in the case history; nothing is linked until the address confirms.
    """
    identity = normalise_identity(ContactPoint.Kind.EMAIL, email, field="email")
    event = CaseEvent.objects.create(
        case=case,
        kind=CaseEvent.Kind.NOTE,
        visibility=CaseEvent.Visibility.STAFF,
        text=(
            f"The reporter gave the email address {identity.normalised} to get updates. "
            "It is not confirmed: a link to confirm it was sent to that address."
        ),
        data={"purpose": FOLLOW_REQUEST_PURPOSE, "email": identity.normalised},
        actor_label="system",
    )
    return FollowRequest(event=event, case=case, email=identity.normalised)


def follow_token_make(follow: FollowRequest) -> str:
    # The token names the note, not the address: links end up in logs and browser histories,
    # and the address is read from the note (cleared when the case is anonymised).
    return signing.dumps({"case": follow.case.pk, "note": follow.event.pk}, salt=FOLLOW_TOKEN_SALT)


def follow_request_from_token(token: str) -> FollowRequest:
    """The request a link stands for; ApplicationError(code="invalid_link" or "expired_link")
    for a tampered, unknown, expired or anonymised one."""
    try:
        payload = signing.loads(token, salt=FOLLOW_TOKEN_SALT, max_age=follow_link_max_age())
    except signing.SignatureExpired:
        raise ApplicationError("This link has expired.", code="expired_link") from None
    except signing.BadSignature:
        raise ApplicationError("This link is not valid.", code="invalid_link") from None
    case_id = payload.get("case") if isinstance(payload, dict) else None
    note_id = payload.get("note") if isinstance(payload, dict) else None
    if not isinstance(case_id, int) or not isinstance(note_id, int):
        raise ApplicationError("This link is not valid.", code="invalid_link")
    event = (
        CaseEvent.objects.select_related("case__service")
        .filter(
            pk=note_id,
            case_id=case_id,
            kind=CaseEvent.Kind.NOTE,
            case__anonymised_at__isnull=True,
        )
        .first()
    )
    email = event.data.get("email") if event is not None else None
    if event is None or event.data.get("purpose") != FOLLOW_REQUEST_PURPOSE or not email:
        raise ApplicationError("This link is not valid.", code="invalid_link")
    return FollowRequest(event=event, case=event.case, email=email)


def follow_confirmation_send(*, follow: FollowRequest, confirm_url: str) -> bool:
    """E-mail the link to the address, in the active language. Returns False (and logs) when
    the mail server refused: the report itself is saved, and the page says the same
    whatever happened, so it never tells whether an address exists."""
    context = {
        "case": follow.case,
        "service_name": follow.case.service.name,
        "reported_at": timezone.localtime(follow.case.opened_at),
        "confirm_url": confirm_url,
        "link_days": max(1, follow_link_max_age() // (24 * 60 * 60)),
        "council_name": settings.COUNCIL_NAME,
    }
    subject = " ".join(render_to_string("portal/email/report_follow_subject.txt", context).split())
    body = render_to_string("portal/email/report_follow_message.txt", context)
    message = EmailMultiAlternatives(
        subject=subject, body=body, from_email=settings.DEFAULT_FROM_EMAIL, to=[follow.email]
    )
    try:
        message.send()
    except (smtplib.SMTPException, OSError):
        logger.exception("Could not send the follow link for case %s", follow.case.reference)
        return False
    return True


def case_set_citizen(
    *,
    case: ServiceCase,
    citizen: Citizen,
    actor: Actor = None,
    actor_label: str = "system",
    reason: str,
) -> ServiceCase:
    """Give a case without a citizen its citizen (its photos too): the case then shows in
    their account and data export, and updates reach them.

    A case that already has a citizen is never moved to another one here (ApplicationError
    code="has_citizen"); linking it to the same one again changes nothing.
    """
    citizen = follow_merges(citizen)
    if not citizen.is_live:
        raise ApplicationError("Cases cannot be given to an erased profile.", code="erased")
    with transaction.atomic():
        # Lock the case row only: the citizen side of the join is nullable.
        case_row = (
            ServiceCase.objects.select_for_update(no_key=True, of=("self",))
            .select_related("service")
            .get(pk=case.pk)
        )
        if case_row.anonymised_at is not None:
            raise ApplicationError(
                f"Case {case_row.reference} was anonymised after its retention period.",
                code="anonymised",
            )
        if case_row.citizen_id == citizen.pk:
            return case_row
        if case_row.citizen_id is not None:
            raise ApplicationError(
                f"Case {case_row.reference} already belongs to a profile.", code="has_citizen"
            )
        case_row.citizen = citizen
        # A change of whose case it is: an officer's open edit form must notice it.
        case_row.version += 1
        case_row.save(update_fields=["citizen", "version", "updated_at"])
        CaseAttachment.objects.filter(case=case_row, citizen__isnull=True).update(citizen=citizen)
        user = actor if actor is not None and getattr(actor, "is_authenticated", False) else None
        event = CaseEvent.objects.create(
            case=case_row,
            kind=CaseEvent.Kind.DETAILS,
            visibility=CaseEvent.Visibility.STAFF,
            text=f"Linked to the profile of {citizen.display_name}: {reason}",
            data={"citizen": str(citizen.public_id), "reason": reason},
            actor=user,
            actor_label=actor_label_for(actor, actor_label),
        )
        record_timeline_entry(
            citizen=citizen,
            kind=TimelineEntry.Kind.CASE,
            summary=f"Case {case_row.reference} linked to this profile: {case_row.title}",
            occurred_at=event.created_at,
            channel=case_row.source_channel or ChannelKind.WEB,
            department=case_row.service.department,
            service_code=case_row.service.code,
            visibility=TimelineEntry.Visibility.RESIDENT,
            source=event,
        )
        audit_record(
            action=AuditEvent.Action.UPDATE,
            target=case_row,
            actor=actor,
            actor_label=actor_label,
            citizen=citizen,
            reason=reason,
            details={"citizen": str(citizen.public_id)},
        )
    return case_row


def report_follow_confirm(*, follow: FollowRequest) -> tuple[ServiceCase, bool]:
    """The link came back: the address is proven, so the case joins the profile owning it
    (a new provisional profile when nobody does). Returns (case, linked_now); linked_now
    is False when the case already had its citizen (confirming twice is fine)."""
    with transaction.atomic():
        case_row = (
            ServiceCase.objects.select_for_update(no_key=True, of=("self",))
            .select_related("service")
            .get(pk=follow.case.pk)
        )
        if case_row.citizen_id is not None:
            # Checked before resolving, so a second click makes no provisional profile.
            return case_row, False
        resolution = resolve_identity(
            kind=ContactPoint.Kind.EMAIL, value=follow.email, source=ContactPoint.Source.PORTAL
        )
        citizen = resolution.citizen
        if resolution.contact_point.verification_level not in _PROVEN_LEVELS:
            # The owner of the point is `citizen` itself, so this never merges anything.
            contact_point_verify(citizen=citizen, kind=ContactPoint.Kind.EMAIL, value=follow.email)
        case_row = case_set_citizen(
            case=case_row,
            citizen=citizen,
            actor_label=CONFIRMED_ACTOR_LABEL,
            reason=f"the reporter confirmed {follow.email} by the link sent to it",
        )
    return case_row, True
