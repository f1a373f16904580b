"""Mailgun inbound e-mail: a route forwards each message, raw MIME and signed, to our webhook.

Mailgun posts the whole message as it arrived in the form field `body-mime` when the
route's forward() URL ends in "mime" (configure `https://<host>/hooks/<slug>/mime`), with
`recipient` (the envelope RCPT TO, comma separated), `sender`, `from`, `subject` and the
signature fields `timestamp`, `token`, `signature`: the hex HMAC-SHA256 of timestamp +
token under the domain's webhook signing key. The signature does not cover the message, so
a captured request could carry another message under the same token: we refuse a token
seen before (within the allowed clock difference) as well as stale timestamps.

Channel settings: `signing_key_env` (environment variable holding the signing key) and
`max_age_seconds` (allowed difference between Mailgun's timestamp and our clock, 900).

The form is parsed here from the capped raw body, never through `request.POST`: Django's
DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB) counts form fields, and `body-mime` is a field, so a
30 MB e-mail would be refused.

Delivery events: the domain's webhooks for "delivered", "permanent failure", "temporary
failure" and "spam complaints" point at `https://<host>/hooks/<slug>/status/`. Mailgun posts
JSON, `{"signature": {"timestamp", "token", "signature"}, "event-data": {...}}`, signed the
same way under the same key, with the same refusal of stale timestamps and reused tokens;
`parse_status_callback` turns it into a DeliveryReport for the message whose Message-ID it
names (stored without angle brackets, as `make_msgid(...)[1:-1]` gives it). Other events
(opened, clicked, unsubscribed, ...) are answered 200 and ignored.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import logging
import math
import time
from email import message_from_bytes
from email.policy import compat32
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

from django.core.cache import cache
from django.db import transaction
from django.utils.http import parse_header_parameters

from channels.adapters import (
    DeliveryReport,
    ParsedMessage,
    RawInbound,
    WebhookRejected,
    register_adapter,
)
from channels.adapters.email_base import EmailAdapter
from channels.email.parsing import external_id_for, parse_email

if TYPE_CHECKING:
    from django.http import HttpRequest

    from channels.models import InboundMessage

logger = logging.getLogger(__name__)

SIGNING_FIELDS = ("timestamp", "token", "signature")
DEFAULT_MAX_AGE_SECONDS = 15 * 60
# A token is claimed while its request is being stored and marked used only once the store
# commits; a claim left by a failed attempt lapses well before Mailgun's first retry
# (10 minutes later), so the retry is not mistaken for a replay and the message not lost.
TOKEN_CLAIM_SECONDS = 120
MULTIPART = "multipart/form-data"
URLENCODED = "application/x-www-form-urlencoded"
# Mailgun posts a handful of fields; thousands of tiny parts are abuse, refused before
# anything is verified.
MAX_FORM_FIELDS = 100
_MAX_PART_HEADER_BYTES = 8192
# Mailgun event → our DeliveryReport status; "failed" is split by its severity.
_EVENT_STATUS = {"delivered": "delivered", "complained": "complaint"}
_FAILED_STATUS = {"permanent": "permanent_failure", "temporary": "temporary_failure"}
_MAX_DETAIL_CHARS = 2000


class FormError(ValueError):
    """The body is not a well-formed HTML form submission."""


def is_form(content_type: str) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type in (MULTIPART, URLENCODED)


def parse_form(body: bytes, content_type: str) -> dict[str, list[bytes]]:
    """Form fields of a multipart/form-data or urlencoded body, values as exact bytes."""
    try:
        media_type, params = parse_header_parameters(content_type or "")
    except ValueError as exc:
        raise FormError(f"unreadable Content-Type: {exc}") from None
    if media_type.lower() == MULTIPART:
        pairs = _multipart_fields(body, _boundary(body, params.get("boundary", "")))
    elif media_type.lower() == URLENCODED:
        pairs = _urlencoded_fields(body)
    else:
        raise FormError(f"expected {MULTIPART} or {URLENCODED}, got {media_type or 'nothing'!r}")
    fields: dict[str, list[bytes]] = {}
    for name, value in pairs:
        fields.setdefault(name, []).append(value)
    return fields


def _boundary(body: bytes, declared: str) -> bytes:
    boundary = declared.strip('"').encode("ascii", "replace")
    # A request kept whole may have had its Content-Type cut at 100 characters (the size of
    # raw_content_type), boundary included; the opening delimiter line says it in full.
    line_end = body.find(b"\r\n")
    if body.startswith(b"--") and line_end > 2:
        opening = body[2:line_end].rstrip(b" \t")
        if opening.startswith(boundary):
            boundary = opening
    if not 1 <= len(boundary) <= 70:  # RFC 2046 section 5.1.1
        raise FormError("multipart body without a valid boundary")
    return boundary


def _multipart_fields(body: bytes, boundary: bytes) -> list[tuple[str, bytes]]:
    """Split a multipart/form-data body (RFC 7578) on its delimiters, copying each value once.

    Values are sliced out by position, so a 30 MB field costs one copy and no per-line work.
    """
    delimiter = b"--" + boundary
    separator = b"\r\n" + delimiter
    if body.startswith(delimiter):
        position = len(delimiter)
    else:  # a preamble before the first delimiter is allowed and ignored
        start = body.find(separator)
        if start < 0:
            raise FormError("the multipart boundary does not occur in the body")
        position = start + len(separator)
    fields: list[tuple[str, bytes]] = []
    while not body.startswith(b"--", position):  # "--" after a delimiter closes the form
        line_end = body.find(b"\r\n", position)
        if line_end < 0 or body[position:line_end].strip(b" \t"):
            raise FormError("malformed multipart delimiter line")
        part_end = body.find(separator, line_end)
        if part_end < 0:
            raise FormError("the multipart body ends without its closing delimiter")
        fields.append(_form_part(body, line_end, part_end))
        if len(fields) > MAX_FORM_FIELDS:
            raise FormError(f"more than {MAX_FORM_FIELDS} form fields")
        position = part_end + len(separator)
    return fields


def _form_part(body: bytes, line_end: int, part_end: int) -> tuple[str, bytes]:
    # The part's header block runs from after the delimiter line's CRLF to an empty line.
    header_end = body.find(b"\r\n\r\n", line_end, part_end)
    if header_end < 0 or header_end - line_end > _MAX_PART_HEADER_BYTES:
        raise FormError("a multipart part has no readable header block")
    headers = message_from_bytes(body[line_end + 2 : header_end + 4], policy=compat32)
    name = headers.get_param("name", header="content-disposition")
    if headers.get_content_disposition() != "form-data" or not name:
        raise FormError("a multipart part is not a named form-data field")
    if isinstance(name, tuple):  # RFC 2231 encoded name
        name = name[2]
    return str(name), body[header_end + 4 : part_end]


def _urlencoded_fields(body: bytes) -> list[tuple[str, bytes]]:
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        raise FormError("an urlencoded body must be ASCII") from None
    try:
        # Latin-1 maps each percent-decoded byte to one character and back, losslessly.
        pairs = parse_qsl(
            text, keep_blank_values=True, encoding="latin-1", max_num_fields=MAX_FORM_FIELDS
        )
    except ValueError as exc:
        raise FormError(str(exc)) from None
    return [
        (name.encode("latin-1").decode("utf-8", "replace"), v.encode("latin-1"))
        for name, v in pairs
    ]


@register_adapter
class MailgunInboundAdapter(EmailAdapter):
    kind = "email-webhook"

    def parse_webhook(self, request: HttpRequest) -> list[RawInbound]:
        """Verify and unpack one Mailgun raw-MIME post.

        403 for a missing, wrong or stale signature; 400 for a body that is not a form or
        lacks `body-mime`. A token already used gives no messages (the caller answers 200,
        so Mailgun stops): with the signature valid, this is a replay, never new mail.

        Call this inside the transaction that stores the result: the token is only marked
        used when that transaction commits.
        """
        try:
            fields = parse_form(request.body, request.META.get("CONTENT_TYPE", ""))
        except FormError as exc:
            raise WebhookRejected(400, f"not a Mailgun form post: {exc}") from None
        max_age = self._max_age()
        token = self._verify_signature(fields, now=time.time(), max_age=max_age)
        mime = self._body_mime(fields)
        if not self._claim_token(token, max_age):
            logger.warning(
                "channel %s: Mailgun token seen before, nothing stored", self.channel.slug
            )
            return []
        return [
            RawInbound(
                external_id=external_id_for(mime), raw=mime, recipients=self._recipients(fields)
            )
        ]

    def parse(self, message: InboundMessage) -> ParsedMessage:
        if not is_form(message.raw_content_type):
            return super().parse(message)
        # A whole request kept by the webhook view because unpacking it failed: unpack it
        # now, checking the signature against the time it was received. Any error here
        # fails the message with its traceback, to be reprocessed after a fix.
        fields = parse_form(bytes(message.raw), message.raw_content_type)
        self._verify_signature(fields, now=message.received_at.timestamp(), max_age=self._max_age())
        recipients = self._recipients(fields)
        if not message.recipients:
            # Routing reads the council addresses from the message; they were in the form.
            message.recipients = list(recipients)
        return parse_email(self._body_mime(fields), recipients)

    def parse_status_callback(self, request: HttpRequest) -> list[DeliveryReport]:
        """Verify and read one Mailgun event webhook (JSON), signed like the inbound posts.

        400 for a body that is not a JSON object or an event lacking what we need; 403 for a
        missing, wrong or stale signature. Events other than delivered, failed and
        complained give no report (answered 200, so Mailgun stops). A token already used
        gives no report either: the signature covers only timestamp + token, so a second
        use could carry another event; with the signature valid it is a replay.
        """
        try:
            payload = json.loads(request.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise WebhookRejected(400, f"not a Mailgun event: invalid JSON: {exc}") from None
        if not isinstance(payload, dict):
            raise WebhookRejected(400, "not a Mailgun event: the body is not a JSON object")
        max_age = self._max_age()
        token = self._verify_signature(
            _signature_fields(payload.get("signature")), now=time.time(), max_age=max_age
        )
        event_data = payload.get("event-data")
        if not isinstance(event_data, dict):
            raise WebhookRejected(400, "Mailgun event without an 'event-data' object")
        event = event_data.get("event")
        if not isinstance(event, str) or not event:
            raise WebhookRejected(400, "Mailgun event-data without an 'event'")
        status = self._report_status(event, event_data)
        if status is None:
            logger.info("channel %s: Mailgun %r event ignored", self.channel.slug, event)
            return []
        report = DeliveryReport(
            provider_message_id=_message_id(event_data),
            status=status,
            detail=_detail(event_data),
            occurred_at=_occurred_at(event_data),
        )
        if not self._claim_token(token, max_age):
            logger.warning(
                "channel %s: Mailgun token seen before, event not applied", self.channel.slug
            )
            return []
        return [report]

    @staticmethod
    def _report_status(event: str, event_data: dict) -> str | None:
        if event in _EVENT_STATUS:
            return _EVENT_STATUS[event]
        if event != "failed":
            return None
        severity = event_data.get("severity")
        if severity not in _FAILED_STATUS:
            raise WebhookRejected(
                400, f"Mailgun failed event with severity {severity!r}, not permanent/temporary"
            )
        return _FAILED_STATUS[severity]

    def _max_age(self) -> int:
        return int(self.channel.setting("max_age_seconds", DEFAULT_MAX_AGE_SECONDS))

    def _verify_signature(
        self, fields: dict[str, list[bytes]], *, now: float, max_age: int
    ) -> bytes:
        """Check Mailgun's signature and timestamp; return the token."""
        values = {}
        for name in SIGNING_FIELDS:
            found = fields.get(name, [])
            if len(found) != 1 or not found[0]:
                raise WebhookRejected(403, f"Mailgun signature field {name!r} missing or repeated")
            values[name] = found[0]
        key = self.channel.secret("signing_key").encode()
        expected = hmac.new(key, values["timestamp"] + values["token"], hashlib.sha256)
        if not hmac.compare_digest(expected.hexdigest().encode(), values["signature"].lower()):
            raise WebhookRejected(403, "Mailgun signature does not match")
        try:
            timestamp = int(values["timestamp"])
        except ValueError:
            raise WebhookRejected(403, "Mailgun timestamp is not a number") from None
        if abs(now - timestamp) > max_age:
            raise WebhookRejected(
                403, f"Mailgun timestamp {timestamp} is more than {max_age}s from our clock"
            )
        return values["token"]

    def _claim_token(self, token: bytes, max_age: int) -> bool:
        # Tokens are hashed into the key: cache backends restrict key length and characters.
        digest = hashlib.sha256(token).hexdigest()
        key = f"channels:webhook-token:{self.channel.pk}:{digest}"
        if not cache.add(key, "claimed", timeout=TOKEN_CLAIM_SECONDS):
            return False
        # A signature stays acceptable until timestamp + max_age, at most 2 * max_age from
        # now, so the token is remembered that long.
        transaction.on_commit(lambda: cache.set(key, "used", timeout=2 * max_age))
        return True

    @staticmethod
    def _body_mime(fields: dict[str, list[bytes]]) -> bytes:
        found = fields.get("body-mime", [])
        if len(found) != 1 or not found[0]:
            raise WebhookRejected(
                400,
                "no body-mime field: the Mailgun route must forward to a URL ending in 'mime'",
            )
        return found[0]

    @staticmethod
    def _recipients(fields: dict[str, list[bytes]]) -> tuple[str, ...]:
        addresses = []
        for value in fields.get("recipient", []):
            text = value.decode("utf-8", "replace")
            addresses.extend(a.strip() for a in text.split(",") if a.strip())
        return tuple(dict.fromkeys(addresses))


def _signature_fields(signature: object) -> dict[str, list[bytes]]:
    """The JSON signature block in the shape `_verify_signature` reads from a form."""
    if not isinstance(signature, dict):
        return {}
    fields = {}
    for name in SIGNING_FIELDS:
        value = signature.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)  # a timestamp sent as a number signs as its digits
        if isinstance(value, str):
            fields[name] = [value.encode("utf-8")]
    return fields


def _message_id(event_data: dict) -> str:
    message = event_data.get("message")
    headers = message.get("headers") if isinstance(message, dict) else None
    value = headers.get("message-id") if isinstance(headers, dict) else None
    if not isinstance(value, str):
        raise WebhookRejected(400, "Mailgun event without message.headers.message-id")
    # Our outbound Message-IDs are stored bare (make_msgid(...)[1:-1]).
    value = value.strip()
    if value.startswith("<") and value.endswith(">"):
        value = value[1:-1].strip()
    if not value:
        raise WebhookRejected(400, "Mailgun event with an empty message-id")
    return value


def _occurred_at(event_data: dict) -> datetime.datetime | None:
    value = event_data.get("timestamp")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise WebhookRejected(400, "Mailgun event timestamp is not a number")
    try:
        return datetime.datetime.fromtimestamp(value, tz=datetime.UTC)
    except (OverflowError, OSError, ValueError):
        raise WebhookRejected(400, "Mailgun event timestamp is out of range") from None


def _detail(event_data: dict) -> str:
    """What the receiving server said (code, message, description), or the failure reason."""
    parts: list[str] = []
    status = event_data.get("delivery-status")
    if isinstance(status, dict):
        for name in ("code", "message", "description"):
            value = status.get(name)
            if isinstance(value, bool) or value in (None, ""):
                continue
            text = str(value).strip()
            if text and text not in parts:
                parts.append(text)
    reason = event_data.get("reason")
    if isinstance(reason, str) and reason.strip() and event_data.get("event") == "failed":
        parts.append(f"({reason.strip()})")
    return " ".join(parts)[:_MAX_DETAIL_CHARS]
