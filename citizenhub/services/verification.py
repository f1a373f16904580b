"""One-time codes that prove a resident holds a contact point (a phone number): sending,
with throttles, and checking, with a limited number of attempts.

The core does not know how a code travels: an app registers a sender per contact point
kind in its AppConfig.ready() (channels sends texts):

    register_code_sender(ContactPoint.Kind.PHONE, send_code_by_sms)

A sender takes (contact_point, code, language) and raises CodeNotSent with a message fit
to show the resident when it cannot send. Only a keyed hash of a code is stored.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone
from django.utils.crypto import constant_time_compare, salted_hmac
from django.utils.translation import gettext as _

from citizenhub.errors import ApplicationError
from citizenhub.models import ContactPoint, ContactVerification, Language
from citizenhub.services.citizens import contact_point_verify

CODE_DIGITS = 6
_HASH_SALT = "citizenhub.services.verification"

CodeSender = Callable[[ContactPoint, str, str], None]
_senders: dict[str, CodeSender] = {}


class CodeNotSent(Exception):
    """A sender could not send the code; `message` is safe to show the resident."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def register_code_sender(kind: str, sender: CodeSender) -> None:
    _senders[kind] = sender


def code_sender_for(kind: str) -> CodeSender | None:
    return _senders.get(kind)


def _code_hash(contact_point_id: int, code: str) -> str:
    # Keyed by SECRET_KEY and bound to the contact point: a leaked table cannot be brute
    # forced offline (a million codes) without the key, and a hash is no use elsewhere.
    return salted_hmac(_HASH_SALT, f"{contact_point_id}:{code}", algorithm="sha256").hexdigest()


def _check_can_send(contact_point: ContactPoint) -> None:
    now = timezone.now()
    recent = list(
        ContactVerification.objects.filter(
            contact_point=contact_point, sent_at__gte=now - timedelta(hours=1)
        ).values_list("sent_at", flat=True)
    )
    wait = timedelta(seconds=settings.PORTAL_CODE_RESEND_SECONDS)
    if recent and max(recent) > now - wait:
        raise ApplicationError(
            _("We sent a code a moment ago. Wait a minute before asking for another."),
            code="code_too_soon",
        )
    if len(recent) >= settings.PORTAL_CODES_PER_HOUR:
        raise ApplicationError(
            _("You have asked for too many codes. Try again in an hour."),
            code="code_too_many",
        )


def send_verification_code(
    *, contact_point: ContactPoint, language: str = Language.ENGLISH
) -> ContactVerification:
    """Send a new code to `contact_point`; earlier codes stop working.

    At most one code a minute and PORTAL_CODES_PER_HOUR an hour per contact point, checked
    under a lock on the contact point so two quick clicks send one code. The code is sent
    after the commit (a slow provider holds no lock); if it cannot be sent it is retired
    and ApplicationError says why.
    """
    sender = code_sender_for(contact_point.kind)
    if sender is None:
        raise ApplicationError(
            _("We cannot send codes to this kind of contact detail."), code="no_sender"
        )
    code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
    now = timezone.now()
    with transaction.atomic():
        point = ContactPoint.objects.select_for_update().get(pk=contact_point.pk)
        if point.removed_at is not None:
            raise ApplicationError(_("That contact detail has been removed."), code="removed")
        _check_can_send(point)
        ContactVerification.objects.filter(contact_point=point, used_at__isnull=True).update(
            used_at=now
        )
        verification = ContactVerification.objects.create(
            contact_point=point,
            code_hash=_code_hash(point.pk, code),
            sent_at=now,
            expires_at=now + timedelta(seconds=settings.PORTAL_CODE_TTL_SECONDS),
        )
    try:
        sender(point, code, language)
    except CodeNotSent as exc:
        ContactVerification.objects.filter(pk=verification.pk).update(used_at=timezone.now())
        raise ApplicationError(exc.message, code="code_not_sent") from exc
    return verification


def check_verification_code(
    *, contact_point: ContactPoint, code: str, for_citizen=None, by: AbstractBaseUser | None = None
) -> ContactPoint:
    """Check a code typed by the resident. Right: the contact point is confirmed on
    `for_citizen` (default: its owner; a provisional profile owning it is merged in by
    contact_point_verify). Wrong: the attempt is counted (and kept) and ApplicationError
    says so; after PORTAL_CODE_MAX_ATTEMPTS the code stops working."""
    code = "".join(code.split())
    if not (len(code) == CODE_DIGITS and code.isascii() and code.isdigit()):
        raise ApplicationError(
            _("Enter the 6-digit code from the text message."), code="code_format"
        )
    now = timezone.now()
    with transaction.atomic():
        verification = (
            ContactVerification.objects.select_for_update()
            .filter(contact_point=contact_point, used_at__isnull=True, expires_at__gt=now)
            .order_by("-sent_at")
            .first()
        )
        if verification is None:
            outcome = "none"
        elif verification.attempts >= settings.PORTAL_CODE_MAX_ATTEMPTS:
            outcome = "exhausted"
        else:
            verification.attempts += 1
            right = constant_time_compare(
                verification.code_hash, _code_hash(contact_point.pk, code)
            )
            if right:
                verification.used_at = now
            verification.save(update_fields=["attempts", "used_at"])
            outcome = "right" if right else "wrong"
            if right:
                point = contact_point_verify(
                    citizen=for_citizen or contact_point.citizen,
                    kind=contact_point.kind,
                    value=contact_point.normalised,
                    by=by,
                )
    # Raised after the commit, so a wrong attempt still counts.
    if outcome == "none":
        raise ApplicationError(_("This code has expired. Ask for a new code."), code="code_expired")
    if outcome == "exhausted":
        raise ApplicationError(
            _("You have entered a wrong code too many times. Ask for a new code."),
            code="code_attempts",
        )
    if outcome == "wrong":
        raise ApplicationError(
            _("The code is not right. Check the text message and try again."), code="code_wrong"
        )
    return point
