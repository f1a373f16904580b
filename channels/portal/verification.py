"""Sending a resident's phone verification code by text (registered in ChannelsConfig.ready()
with citizenhub.services.verification).

A code is not conversation: it goes through the first enabled SMS channel (GOV.UK Notify
preferred) straight to its adapter, with a record of the send (an OutboundMessage with no
thread, so delivery receipts still apply) but no thread, no inbox item and no timeline
entry. The stored body has the code masked: the code itself exists only in the request
that sends it and in the provider's hands.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db.models import Case, IntegerField, Value, When
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from channels.adapters import adapter_for
from channels.models import Channel, OutboundMessage
from citizenhub.models import ContactPoint, ContactVerification
from citizenhub.services.verification import (
    CodeNotSent,
    register_code_sender,
)

logger = logging.getLogger(__name__)

SMS_KINDS = (Channel.Kind.SMS_NOTIFY, Channel.Kind.SMS_TWILIO)
MASKED_CODE = "******"


def sms_channel_for_codes() -> Channel | None:
    return (
        Channel.objects.filter(kind__in=SMS_KINDS, enabled=True)
        .annotate(
            preference=Case(
                When(kind=Channel.Kind.SMS_NOTIFY, then=Value(0)),
                default=Value(1),
                output_field=IntegerField(),
            )
        )
        .order_by("preference", "pk")
        .first()
    )


def code_message(code: str, language: str) -> str:
    with translation.override(language):
        return _("Your %(council)s code is %(code)s") % {
            "council": settings.COUNCIL_NAME,
            "code": code,
        }


def send_code_by_sms(verification: ContactVerification, code: str, language: str) -> None:
    channel = sms_channel_for_codes()
    if channel is None:
        raise CodeNotSent(
            _(
                "We cannot send text messages at the moment, so we could not send you a code. "
                "Try again later."
            )
        )
    outbound = OutboundMessage.objects.create(
        channel=channel,
        thread=None,
        citizen=verification.citizen,
        to_value=verification.normalised,
        body_text=code_message(MASKED_CODE, language),
        status=OutboundMessage.Status.SENDING,
        attempts=1,
    )
    # The real text only in memory, for the adapter.
    outbound.body_text = code_message(code, language)
    try:
        result = adapter_for(channel).send(outbound)
    except Exception as exc:  # any failure: the resident asks again; nothing to retry later
        logger.warning("verification code %s not sent: %s", verification.pk, exc)
        OutboundMessage.objects.filter(pk=outbound.pk).update(
            status=OutboundMessage.Status.FAILED, last_error=f"{type(exc).__name__}: {exc}"[:2000]
        )
        raise CodeNotSent(
            _("We could not send the text message just now. Try again in a few minutes.")
        ) from exc
    OutboundMessage.objects.filter(pk=outbound.pk).update(
        status=OutboundMessage.Status.SENT,
        sent_at=timezone.now(),
        provider_message_id=result.provider_message_id[:255],
    )


# Imported by ChannelsConfig.ready(): the core sends phone codes through this from then on.
register_code_sender(ContactPoint.Kind.PHONE, send_code_by_sms)
