"""What every SMS provider adapter shares: reading webhook bodies, texts into ParsedMessage.

An SMS provider's webhook carries one text: who sent it, to which of our numbers, the text
and sometimes when. Each provider module says how to authenticate its requests and where
those four things are in its payload (`InboundText`); everything after that is here.

Conversations: a text has no thread id, so the pair (resident's number, our number) is
the conversation key, and a text more than `conversation_window_hours` (setting, default
72) after the conversation's last message starts a new thread.

Raw storage: the provider's body is stored as it came (`notify:<id>` / `twilio:<sid>`).
A request the webhook view kept after an unexpected error (`request-sha256:...`) cannot be
authenticated later (bearer tokens and signatures are not stored), so `parse` refuses it:
it stays failed and visible to staff instead of reaching a resident's record unverified.
"""

from __future__ import annotations

import datetime
import hmac
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.core.exceptions import ValidationError

from channels.adapters import ChannelAdapter, ParsedMessage, WebhookRejected, parse_iso_time
from channels.adapters.email_webhook import FormError, parse_form
from citizenhub.normalise import normalise_phone

if TYPE_CHECKING:
    from django.http import HttpRequest

    from channels.models import InboundMessage

DEFAULT_WINDOW_HOURS = 72
# A provider's SMS callback is a few hundred bytes; anything this large is not one.
MAX_SMS_WEBHOOK_BYTES = 64 * 1024
KEPT_REQUEST_PREFIX = "request-sha256:"


class KeptRequestError(Exception):
    """A kept webhook request cannot be authenticated after the fact."""


@dataclass(frozen=True)
class InboundText:
    """One received text, as every provider describes it."""

    provider_id: str
    source_number: str
    destination_number: str
    body: str
    sent_at: datetime.datetime | None = None


def phone_or_raw(value: str) -> str:
    """E.164 for a number in any UK (or international) format; short codes and sender
    names, which are not phone numbers, as given."""
    try:
        return normalise_phone(value).normalised
    except ValidationError:
        return value.strip()


def conversation_key(source_number: str, destination_number: str) -> str:
    return f"{phone_or_raw(source_number)}->{phone_or_raw(destination_number)}"


def parse_timestamp(value: object) -> datetime.datetime | None:
    """A provider's ISO 8601 time (Notify: "2017-05-14T12:15:30.000000Z"), UTC if no zone."""
    return parse_iso_time(value)


def clean_text(value: str) -> str:
    # PostgreSQL text cannot hold NUL; everything else (emoji, RTL marks) is kept as sent.
    return value.replace("\x00", "")


def json_object(body: bytes, what: str) -> dict:
    """The JSON object in a webhook body, or 400 with the reason."""
    try:
        payload = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise WebhookRejected(400, f"{what}: the body is not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise WebhookRejected(400, f"{what}: the body is not valid JSON ({exc})") from None
    if not isinstance(payload, dict):
        raise WebhookRejected(400, f"{what}: expected a JSON object, got {type(payload).__name__}")
    return payload


def form_fields(body: bytes, content_type: str, what: str) -> dict[str, list[str]]:
    """Fields of an urlencoded (or multipart) body as text, or 400 with the reason.

    Parsed from the capped body ourselves rather than `request.POST`, so the exact bytes
    that were signed are the ones read.
    """
    try:
        raw_fields = parse_form(body, content_type)
    except FormError as exc:
        raise WebhookRejected(400, f"{what}: not a form post ({exc})") from None
    fields: dict[str, list[str]] = {}
    for name, values in raw_fields.items():
        try:
            fields[name] = [value.decode("utf-8") for value in values]
        except UnicodeDecodeError:
            raise WebhookRejected(400, f"{what}: field {name!r} is not UTF-8") from None
    return fields


def required_text(payload: dict, name: str, what: str, *, allow_empty: bool = False) -> str:
    value = payload.get(name)
    if not isinstance(value, str) or (not value and not allow_empty):
        raise WebhookRejected(400, f"{what}: field {name!r} is missing or not text")
    return value


def single_field(fields: dict[str, list[str]], name: str, what: str) -> str:
    values = fields.get(name, [])
    if len(values) != 1:
        raise WebhookRejected(400, f"{what}: field {name!r} is missing or repeated")
    return values[0]


def bearer_token_matches(request: HttpRequest, expected: str) -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return False
    return hmac.compare_digest(token.strip().encode(), expected.encode())


class SmsAdapter(ChannelAdapter):
    """Base of the SMS provider adapters: providers read texts, this builds messages."""

    def check_size(self, request: HttpRequest) -> bytes:
        body = request.body
        if len(body) > MAX_SMS_WEBHOOK_BYTES:
            raise WebhookRejected(
                413, f"SMS callbacks are limited to {MAX_SMS_WEBHOOK_BYTES} bytes."
            )
        return body

    def read_inbound(self, raw: bytes, content_type: str) -> InboundText:
        """The text in a stored payload; raises WebhookRejected(400) if it is not one."""
        raise NotImplementedError

    def parse(self, message: InboundMessage) -> ParsedMessage:
        if message.external_id.startswith(KEPT_REQUEST_PREFIX):
            raise KeptRequestError(
                "This request was kept because it could not be checked when it arrived; "
                "its token or signature is not stored, so it cannot be authenticated now. "
                "Read it in the admin and record it by hand if it is genuine."
            )
        try:
            text = self.read_inbound(bytes(message.raw), message.raw_content_type)
        except WebhookRejected as exc:
            raise ValueError(exc.reason) from None
        return self.parsed_message(text)

    def parsed_message(self, text: InboundText) -> ParsedMessage:
        body = clean_text(text.body)
        return ParsedMessage(
            sender_kind="phone",
            sender_value=text.source_number.strip(),
            subject="",
            body_text=body,
            # No quoted replies or signatures in a text: the whole of it is the new part.
            summary_text=body.strip(),
            sent_at=text.sent_at,
            conversation_key=conversation_key(text.source_number, text.destination_number),
            conversation_window_hours=int(
                self.channel.setting("conversation_window_hours", DEFAULT_WINDOW_HOURS)
            ),
        )

    def webhook_base_url(self) -> str:
        return str(self.channel.setting("webhook_base_url", "") or "").rstrip("/")

    def secret_or_none(self, key: str) -> str | None:
        """A secret if its setting is present; None when the channel does not use it."""
        if not self.channel.settings.get(f"{key}_env"):
            return None
        return self.channel.secret(key)
