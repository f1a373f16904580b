"""One-time codes that prove a resident holds a phone number: sending, with throttles, and
checking, with a limited number of attempts; only a proven number becomes a contact point.

A number the resident types is held in a ContactVerification (a pending claim), never as a
live ContactPoint: live contact points identify their holder to the channels, so an unproven
one would hand a stranger's texts to whoever typed the number. On the right code the number
is added to the resident's profile, confirmed (contact_point_verify: a provisional profile
holding it is merged in; one on another real profile is refused).

The core does not know how a code travels: an app registers a sender per kind in its
AppConfig.ready() (channels sends texts):

    register_code_sender(ContactPoint.Kind.PHONE, send_code_by_sms)

A sender takes (verification, code, language) and raises CodeNotSent with a message fit to
show the resident when it cannot send.

Limits (counted over the rows in the database, exact under a lock on the resident's
profile, and still in force when the cache is down; the rows are the record of codes sent):
per number, one code a minute and PORTAL_CODES_PER_HOUR an hour, whoever asks; per
resident, PORTAL_CODES_PER_RESIDENT_PER_HOUR an hour and PORTAL_CODES_PER_RESIDENT_PER_DAY
a day, whatever the number; and PORTAL_CODE_FAILURES_PER_DAY wrong codes a day per resident,
across all numbers and codes, after which no code is sent or checked until tomorrow.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone
from django.utils.crypto import constant_time_compare, salted_hmac
from django.utils.translation import gettext as _

from citizenhub.errors import ApplicationError
from citizenhub.models import Citizen, ContactPoint, ContactVerification, Language
from citizenhub.normalise import normalise_identity
from citizenhub.services.citizens import contact_point_verify

CODE_DIGITS = 6
_HASH_SALT = "citizenhub.services.verification"
# Rows are kept this long: long enough for the daily counts, then deleted (they hold a
# number someone typed, which may not even be theirs).
KEEP_ROWS_FOR = timedelta(days=2)

CodeSender = Callable[[ContactVerification, str, str], None]
_senders: dict[str, CodeSender] = {}


def _setting(name: str, default: int) -> int:
    return int(getattr(settings, name, default))


def codes_per_number_per_hour() -> int:
    return _setting("PORTAL_CODES_PER_HOUR", 5)


def codes_per_resident_per_hour() -> int:
    return _setting("PORTAL_CODES_PER_RESIDENT_PER_HOUR", 10)


def codes_per_resident_per_day() -> int:
    return _setting("PORTAL_CODES_PER_RESIDENT_PER_DAY", 20)


def failures_per_resident_per_day() -> int:
    return _setting("PORTAL_CODE_FAILURES_PER_DAY", 10)


class CodeNotSent(Exception):
    """A sender could not send the code; `message` is safe to show the resident."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def register_code_sender(kind: str, sender: CodeSender) -> None:
    _senders[kind] = sender


def code_sender_for(kind: str) -> CodeSender | None:
    return _senders.get(kind)


def _code_hash(citizen_id: int, match_key: str, code: str) -> str:
    # Keyed by SECRET_KEY and bound to the resident and the number: a leaked table cannot
    # be brute forced offline (a million codes) without the key, and a hash is no use
    # for another resident or number.
    return salted_hmac(
        _HASH_SALT, f"{citizen_id}:{match_key}:{code}", algorithm="sha256"
    ).hexdigest()


def _failures_today(citizen: Citizen, now) -> int:
    total = ContactVerification.objects.filter(
        citizen=citizen, sent_at__gte=now - timedelta(days=1)
    ).aggregate(total=Sum("failed_attempts"))["total"]
    return total or 0


def wrong_codes_blocked_today(citizen: Citizen) -> bool:
    """Whether the resident has typed so many wrong codes today that none is checked."""
    return _failures_today(citizen, timezone.now()) >= failures_per_resident_per_day()


def too_many_wrong_codes_message() -> str:
    return _(
        "You have entered a wrong code too many times today. Try again tomorrow, "
        "or contact the council."
    )


def _too_many_failures() -> ApplicationError:
    return ApplicationError(too_many_wrong_codes_message(), code="code_failures_today")


def _check_can_send(citizen: Citizen, kind: str, match_key: str, now) -> None:
    """Raise ApplicationError if a code may not be sent now. The caller holds a lock on
    the citizen row, so the resident's own counts cannot be raced past."""
    if _failures_today(citizen, now) >= failures_per_resident_per_day():
        raise _too_many_failures()
    to_number = ContactVerification.objects.filter(
        kind=kind, match_key=match_key, sent_at__gte=now - timedelta(hours=1)
    ).values_list("sent_at", flat=True)
    to_number = list(to_number)
    wait = timedelta(seconds=settings.PORTAL_CODE_RESEND_SECONDS)
    if to_number and max(to_number) > now - wait:
        raise ApplicationError(
            _("We sent a code a moment ago. Wait a minute before asking for another."),
            code="code_too_soon",
        )
    if len(to_number) >= codes_per_number_per_hour():
        raise ApplicationError(
            _("Too many codes have been sent to this number. Try again in an hour."),
            code="code_too_many_number",
        )
    by_resident = ContactVerification.objects.filter(
        citizen=citizen, sent_at__gte=now - timedelta(days=1)
    ).values_list("sent_at", flat=True)
    by_resident = list(by_resident)
    if len(by_resident) >= codes_per_resident_per_day():
        raise ApplicationError(
            _("You have asked for too many codes today. Try again tomorrow."),
            code="code_too_many_day",
        )
    if sum(sent > now - timedelta(hours=1) for sent in by_resident) >= (
        codes_per_resident_per_hour()
    ):
        raise ApplicationError(
            _("You have asked for too many codes. Try again in an hour."),
            code="code_too_many",
        )


def send_verification_code(
    *, citizen: Citizen, kind: str, value: str, language: str = Language.ENGLISH
) -> ContactVerification:
    """Start (or restart) proving that `citizen` holds `value`: a new code is sent to it
    and the resident's earlier codes for it stop working. Nothing is added to the profile.

    It does not matter who else holds the number: the code goes to the number either way,
    so the answer says nothing about what the council knows (the check happens when the
    code comes back). Throttled as the module says, under a lock on the citizen row so two
    quick clicks send one code. The code is sent after the commit (a slow provider holds no
    lock); if it cannot be sent it is retired and ApplicationError says why. A bad value
    raises ValidationError (keyed "value").
    """
    sender = code_sender_for(kind)
    if sender is None:
        raise ApplicationError(
            _("We cannot send codes to this kind of contact detail."), code="no_sender"
        )
    identity = normalise_identity(kind, value, field="value")
    code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
    now = timezone.now()
    with transaction.atomic():
        Citizen.objects.select_for_update().filter(pk=citizen.pk).first()
        _check_can_send(citizen, kind, identity.match_key, now)
        ContactVerification.objects.filter(sent_at__lt=now - KEEP_ROWS_FOR).delete()
        ContactVerification.objects.filter(
            citizen=citizen, kind=kind, match_key=identity.match_key, used_at__isnull=True
        ).update(used_at=now)
        verification = ContactVerification.objects.create(
            citizen=citizen,
            kind=kind,
            value=value.strip()[:320],
            normalised=identity.normalised,
            match_key=identity.match_key,
            code_hash=_code_hash(citizen.pk, identity.match_key, code),
            sent_at=now,
            expires_at=now + timedelta(seconds=settings.PORTAL_CODE_TTL_SECONDS),
        )
    try:
        sender(verification, code, language)
    except CodeNotSent as exc:
        ContactVerification.objects.filter(pk=verification.pk).update(used_at=timezone.now())
        raise ApplicationError(exc.message, code="code_not_sent") from exc
    return verification


def cannot_be_added_message() -> str:
    return _("This number cannot be added online. If it is yours, contact the council.")


def check_verification_code(
    *, verification: ContactVerification, code: str, by: AbstractBaseUser | None = None
) -> ContactPoint:
    """Check a code the resident typed for their pending `verification`.

    Right: the number becomes a confirmed contact point of the resident (added if nobody
    holds it, a provisional profile holding it merged in by contact_point_verify). If it
    is on another real profile by now, ApplicationError with one neutral message: only
    someone who holds the phone ever sees it. Wrong: the attempt is counted (and kept)
    and ApplicationError says so; after PORTAL_CODE_MAX_ATTEMPTS wrong codes the code
    stops working, and after PORTAL_CODE_FAILURES_PER_DAY in a day no code is checked.
    """
    code = "".join(code.split())
    if not (len(code) == CODE_DIGITS and code.isascii() and code.isdigit()):
        raise ApplicationError(
            _("Enter the 6-digit code from the text message."), code="code_format"
        )
    now = timezone.now()
    point = None
    with transaction.atomic():
        citizen = Citizen.objects.select_for_update().get(pk=verification.citizen_id)
        row = ContactVerification.objects.select_for_update().get(pk=verification.pk)
        if _failures_today(citizen, now) >= failures_per_resident_per_day():
            outcome = "failures_today"
        elif row.used_at is not None or row.expires_at <= now:
            outcome = "expired"
        elif row.failed_attempts >= settings.PORTAL_CODE_MAX_ATTEMPTS:
            outcome = "exhausted"
        elif not constant_time_compare(row.code_hash, _code_hash(citizen.pk, row.match_key, code)):
            row.failed_attempts += 1
            row.save(update_fields=["failed_attempts"])
            outcome = "wrong"
        else:
            row.used_at = now
            row.save(update_fields=["used_at"])
            try:
                with transaction.atomic():  # a refusal keeps the code used
                    point = contact_point_verify(
                        citizen=citizen, kind=row.kind, value=row.value, by=by
                    )
                outcome = "right"
            except (ApplicationError, ValidationError):
                # On another real profile (or claimed by one a moment ago): staff decide.
                outcome = "refused"
    # Raised after the commit, so a wrong attempt still counts.
    if outcome == "failures_today":
        raise _too_many_failures()
    if outcome == "expired":
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
    if outcome == "refused":
        raise ApplicationError(cannot_be_added_message(), code="cannot_be_added")
    return point


def verification_erasure_plan(citizen: Citizen) -> tuple[list, list]:
    """Erasure: the resident's pending codes (and the numbers they typed) go."""
    from citizenhub.services.erasure import ErasureItem

    count = ContactVerification.objects.filter(citizen=citizen).count()
    if not count:
        return [], []
    return [
        ErasureItem(
            key="contact_verifications",
            what=_("Codes we texted you to confirm a phone number"),
            count=count,
        )
    ], []


def verification_erase(citizen: Citizen, *, case=None, actor=None) -> None:
    ContactVerification.objects.filter(citizen=citizen).delete()
