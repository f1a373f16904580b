"""Twilio text messages: incoming-message and status-callback webhooks, and sending.

Twilio posts application/x-www-form-urlencoded requests signed in `X-Twilio-Signature`:
HMAC-SHA1 under the account's auth token over the URL Twilio called followed by every
POST parameter (name + value, sorted by name). The signature is checked with the SDK's
RequestValidator over the URL Twilio was given, which behind the council's proxy is not
what Django sees: `webhook_base_url` (e.g. "https://contact.northmoor.gov.uk") + the
request path when set, else the request's own absolute URL. Parameters come from the
capped raw body, never `request.POST`, so the bytes that were signed are the bytes read.
A request signed with a Webhooks Rule SharedKey says so in
X-Twilio-Webhooks-Signature-Settings and is checked with `webhook_shared_key` instead.
- Incoming message (/hooks/<slug>/): MessageSid, From, To, Body, NumMedia, ... stored
  once as `twilio:<MessageSid>` (Twilio's signature has no timestamp: a replay is only
  ever a duplicate).
- Status callback (/hooks/<slug>/status/, set per message when sending): MessageSid,
  MessageStatus (queued, sent, delivered, undelivered, failed, ...), ErrorCode.

Sending uses twilio.rest.Client(account_sid, auth_token).messages.create(...).

Channel settings: `account_sid`, `auth_token_env`, `webhook_base_url`, `from_number` (when
the channel's address is not the sending number) or `messaging_service_sid`,
`webhook_shared_key_env` (only with a Webhooks Rule), `send_timeout_seconds`,
`conversation_window_hours`.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import requests
from django.http import HttpResponse
from django.urls import reverse
from django.utils.datastructures import MultiValueDict
from twilio.base.exceptions import TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
from twilio.request_validator import (
    SIGNATURE_HEADER,
    SIGNATURE_SETTINGS_HEADER,
    RequestValidator,
    get_signature_algorithm,
)
from twilio.rest import Client

from channels.adapters import (
    DeliveryReport,
    PermanentSendError,
    RawInbound,
    SendResult,
    TransientChannelError,
    WebhookRejected,
    register_adapter,
)
from channels.adapters.sms_base import (
    InboundText,
    SmsAdapter,
    form_fields,
    phone_or_raw,
    single_field,
)
from channels.models import ChannelConfigError

if TYPE_CHECKING:
    from django.http import HttpRequest

    from channels.models import OutboundMessage

logger = logging.getLogger(__name__)

DEFAULT_SEND_TIMEOUT_SECONDS = 15
MAX_SID_LENGTH = 64
FORM_TYPE = "application/x-www-form-urlencoded"
# Delivery errors that say the number itself cannot take texts (30005 unknown handset,
# 30006 landline or unreachable carrier). Other failures (30003 phone off, 30001 queue
# overflow, 30002 account suspended, 30007 filtered) are no reason to stop using a number.
NUMBER_CANNOT_RECEIVE = {"30005", "30006"}


@register_adapter
class TwilioSmsAdapter(SmsAdapter):
    kind = "sms-twilio"
    # Twilio's limit for one message body.
    max_reply_chars = 1600

    def webhook_success_response(self, stored: int, duplicates: int) -> HttpResponse | None:
        # Twilio expects TwiML; an empty <Response/> means "no automatic reply".
        return HttpResponse(
            '<?xml version="1.0" encoding="UTF-8"?><Response></Response>',
            content_type="text/xml",
        )

    def parse_webhook(self, request: HttpRequest) -> list[RawInbound]:
        body = self.check_size(request)
        content_type = request.META.get("CONTENT_TYPE") or FORM_TYPE
        self._verified_fields(request, body, "Twilio message webhook")
        text = self.read_inbound(body, content_type)
        return [
            RawInbound(
                external_id=f"twilio:{text.provider_id}", raw=body, content_type=content_type
            )
        ]

    def read_inbound(self, raw: bytes, content_type: str) -> InboundText:
        what = "Twilio message webhook"
        fields = form_fields(raw, content_type, what)
        if _media_count(fields):
            # UK numbers take SMS only; pictures (MMS elsewhere) are not fetched.
            logger.info(
                "channel %s: a Twilio message came with media, not fetched", self.channel.slug
            )
        return InboundText(
            provider_id=_sid(fields, what),
            source_number=single_field(fields, "From", what),
            destination_number=single_field(fields, "To", what),
            body=fields.get("Body", [""])[0],
        )

    def parse_status_callback(self, request: HttpRequest) -> list[DeliveryReport]:
        body = self.check_size(request)
        what = "Twilio status callback"
        fields = self._verified_fields(request, body, what)
        sid = _sid(fields, what)
        status = single_field(fields, "MessageStatus", what)
        if status == "delivered":
            return [DeliveryReport(provider_message_id=sid, status="delivered")]
        if status not in ("undelivered", "failed"):
            return []  # queued, sending, sent, accepted, ...: nothing final yet
        code = fields.get("ErrorCode", [""])[0]
        message = fields.get("ErrorMessage", [""])[0]
        detail = f"Twilio: {status}, error {code or 'not given'}" + (
            f": {message}" if message else ""
        )
        outcome = "permanent_failure" if code in NUMBER_CANNOT_RECEIVE else "technical_failure"
        return [DeliveryReport(provider_message_id=sid, status=outcome, detail=detail)]

    def send(self, outbound: OutboundMessage) -> SendResult:
        try:
            client = Client(
                self._account_sid(),
                self.channel.secret("auth_token"),
                http_client=TwilioHttpClient(
                    timeout=float(
                        self.channel.setting("send_timeout_seconds", DEFAULT_SEND_TIMEOUT_SECONDS)
                    )
                ),
            )
            arguments = {"to": outbound.to_value, "body": outbound.body_text, **self._sender()}
        except ChannelConfigError as exc:
            # The operator can fix settings; until then the reply waits, queued, not lost.
            raise TransientChannelError(f"channel settings incomplete: {exc}") from exc
        callback = self.status_callback_url()
        if callback:
            arguments["status_callback"] = callback
        try:
            message = client.messages.create(**arguments)
        except (TwilioRestException, TwilioServiceException) as exc:
            text = f"Twilio {exc.status}: {_error_text(exc)}"
            if exc.status == 429 or exc.status >= 500:
                raise TransientChannelError(text) from exc
            raise PermanentSendError(text) from exc
        except requests.RequestException as exc:
            raise TransientChannelError(f"Twilio unreachable: {exc}") from exc
        return SendResult(provider_message_id=message.sid or "")

    def status_callback_url(self) -> str:
        base = self.webhook_base_url()
        if not base:
            return ""
        return base + reverse("channels:delivery-status", kwargs={"slug": self.channel.slug})

    def _verified_fields(
        self, request: HttpRequest, body: bytes, what: str
    ) -> dict[str, list[str]]:
        signature = request.headers.get(SIGNATURE_HEADER, "")
        if not signature:
            raise WebhookRejected(403, f"{what} without {SIGNATURE_HEADER}")
        fields = form_fields(body, request.META.get("CONTENT_TYPE") or FORM_TYPE, what)
        settings_header = request.headers.get(SIGNATURE_SETTINGS_HEADER, "")
        if settings_header:
            key = self.secret_or_none("webhook_shared_key")
            if key is None:
                raise WebhookRejected(
                    403, f"{what} signed with a SharedKey, but this channel has none set"
                )
        else:
            key = self.channel.secret("auth_token")
        valid = RequestValidator(key).validate(
            self._signed_url(request),
            MultiValueDict(fields),
            signature,
            get_signature_algorithm(settings_header),
        )
        if not valid:
            raise WebhookRejected(403, f"{what}: {SIGNATURE_HEADER} does not match")
        return fields

    def _signed_url(self, request: HttpRequest) -> str:
        base = self.webhook_base_url()
        if base:
            return base + request.get_full_path()
        return request.build_absolute_uri()

    def _account_sid(self) -> str:
        sid = str(self.channel.setting("account_sid", "") or "")
        if not sid:
            raise ChannelConfigError(
                f"channel {self.channel.slug}: setting 'account_sid' is not set"
            )
        return sid

    def _sender(self) -> dict[str, str]:
        service = str(self.channel.setting("messaging_service_sid", "") or "")
        if service:
            return {"messaging_service_sid": service}
        number = self.channel.address or str(self.channel.setting("from_number", "") or "")
        if not number:
            raise ChannelConfigError(
                f"channel {self.channel.slug}: no sending number (address or 'from_number')"
            )
        return {"from_": phone_or_raw(number)}


def _sid(fields: dict[str, list[str]], what: str) -> str:
    sid = single_field(fields, "MessageSid", what)
    if not sid or len(sid) > MAX_SID_LENGTH:
        raise WebhookRejected(400, f"{what}: MessageSid is empty or too long")
    return sid


def _media_count(fields: dict[str, list[str]]) -> int:
    try:
        return int(fields.get("NumMedia", ["0"])[0] or 0)
    except ValueError:
        return 0


def _error_text(exc: TwilioRestException | TwilioServiceException) -> str:
    if isinstance(exc, TwilioServiceException):
        return f"error {exc.code}: {exc.detail or exc.title}"
    return f"error {exc.code}: {exc.msg}"
