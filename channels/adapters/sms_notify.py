"""GOV.UK Notify text messages: received-text and delivery-receipt callbacks, and sending.

Callbacks (POST, JSON) carry `Authorization: Bearer <token>`, the token the council typed
into Notify's callback settings; it is compared in constant time, and a missing or wrong
one is refused with 403 before the body is read. Notify retries a failed callback every
5 minutes, up to 5 times, so a redelivery is normal and stored once (`notify:<id>`).
- Received text (/hooks/<slug>/): id, source_number ("447700912345"), destination_number
  ("07700987654"), message, date_received (UTC, "2017-05-14T12:15:30.000000Z").
- Delivery receipt (/hooks/<slug>/status/): id (the notification id sending returned),
  reference (ours: the outbound message id), to, status (delivered, permanent-failure,
  temporary-failure, technical-failure), created_at, completed_at, sent_at, ...

Sending goes through notifications-python-client. The API key reads
`<key name>-<service id>-<secret>`; the client signs every request with a fresh JWT
(HS256 under the secret, iss = service id, iat = now; Notify refuses an iat more than 30
seconds from its clock). Notify sends texts from templates only: `template_id` names an
SMS template whose whole content is ((body)).

Channel settings: `callback_token_env`, optionally `status_callback_token_env` (when the
receipts callback has its own token), `api_key_env`, `template_id`, `sms_sender_id`
(optional), `api_base_url`, `send_timeout_seconds`, `conversation_window_hours`.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

from notifications_python_client.errors import APIError, InvalidResponse
from notifications_python_client.notifications import NotificationsAPIClient

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
    bearer_token_matches,
    json_object,
    parse_timestamp,
    required_text,
)
from channels.models import ChannelConfigError
from channels.ratelimit import ProviderRateLimited

if TYPE_CHECKING:
    from django.http import HttpRequest

    from channels.models import OutboundMessage

logger = logging.getLogger(__name__)

DEFAULT_API_BASE_URL = "https://api.notifications.service.gov.uk"
DEFAULT_SEND_TIMEOUT_SECONDS = 15
MAX_PROVIDER_ID_LENGTH = 200
_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_API_KEY = re.compile(rf".+-{_UUID}-{_UUID}")

# Notify's receipt statuses, and what each means for the resident's number (Notify's
# "Text message status descriptions").
RECEIPT_STATUSES = {
    "delivered": ("delivered", ""),
    "permanent-failure": (
        "permanent_failure",
        "the number is wrong or the network rejected the message",
    ),
    "temporary-failure": (
        "temporary_failure",
        "the phone is off, has no signal or its inbox is full",
    ),
    "technical-failure": (
        "technical_failure",
        "Notify could not hand the message to the network; send it again",
    ),
}


@register_adapter
class NotifySmsAdapter(SmsAdapter):
    kind = "sms-notify"
    # Notify refuses texts over 918 characters (six concatenated messages).
    max_reply_chars = 918

    def parse_webhook(self, request: HttpRequest) -> list[RawInbound]:
        body = self.check_size(request)
        self._authenticate(request, "callback_token")
        text = self.read_inbound(body, request.content_type or "application/json")
        return [
            RawInbound(
                external_id=f"notify:{text.provider_id}",
                raw=body,
                content_type="application/json",
            )
        ]

    def read_inbound(self, raw: bytes, content_type: str) -> InboundText:
        what = "Notify received-text callback"
        payload = json_object(raw, what)
        return InboundText(
            provider_id=_provider_id(payload, what),
            source_number=required_text(payload, "source_number", what),
            destination_number=required_text(payload, "destination_number", what),
            body=required_text(payload, "message", what, allow_empty=True),
            sent_at=parse_timestamp(payload.get("date_received")),
        )

    def parse_status_callback(self, request: HttpRequest) -> list[DeliveryReport]:
        body = self.check_size(request)
        token_key = (
            "status_callback_token"
            if self.channel.settings.get("status_callback_token_env")
            else "callback_token"
        )
        self._authenticate(request, token_key)
        what = "Notify delivery receipt"
        payload = json_object(body, what)
        notification_id = _provider_id(payload, what)
        status = required_text(payload, "status", what)
        if status not in RECEIPT_STATUSES:
            # "sent" (international, no more news will come), "pending", ...: nothing final.
            logger.info(
                "Notify receipt %s with status %r: nothing to record", notification_id, status
            )
            return []
        outcome, meaning = RECEIPT_STATUSES[status]
        return [
            DeliveryReport(
                provider_message_id=notification_id,
                status=outcome,
                detail=f"Notify: {status}" + (f" ({meaning})" if meaning else ""),
                occurred_at=parse_timestamp(payload.get("completed_at"))
                or parse_timestamp(payload.get("sent_at")),
            )
        ]

    def send(self, outbound: OutboundMessage) -> SendResult:
        try:
            client = NotificationsAPIClient(
                self._api_key(),
                base_url=str(self.channel.setting("api_base_url", DEFAULT_API_BASE_URL)),
                timeout=float(
                    self.channel.setting("send_timeout_seconds", DEFAULT_SEND_TIMEOUT_SECONDS)
                ),
            )
            template_id = self._template_id()
        except ChannelConfigError as exc:
            # The operator can fix settings; until then the reply waits, queued, not lost.
            raise TransientChannelError(f"channel settings incomplete: {exc}") from exc
        try:
            response = client.send_sms_notification(
                phone_number=outbound.to_value,
                template_id=template_id,
                personalisation={"body": outbound.body_text},
                reference=str(outbound.pk),
                sms_sender_id=self.channel.setting("sms_sender_id") or None,
            )
        except InvalidResponse as exc:
            # Notify answered 2xx but unreadably: it may have accepted the text, and
            # sending again could text the resident twice.
            raise PermanentSendError(f"Notify's answer could not be read: {exc}") from exc
        except APIError as exc:
            # The client reports connection errors and timeouts as status 503.
            message = f"Notify {exc.status_code}: {_error_text(exc)}"
            if exc.status_code == 429:
                # Not a failure: the text waits its turn (channels.ratelimit).
                raise ProviderRateLimited(message, retry_after=_rate_limit_wait(exc)) from exc
            if exc.status_code >= 500:
                raise TransientChannelError(message) from exc
            raise PermanentSendError(message) from exc
        return SendResult(provider_message_id=str((response or {}).get("id", "")))

    def _authenticate(self, request: HttpRequest, token_key: str) -> None:
        expected = self.channel.secret(token_key)
        if not bearer_token_matches(request, expected):
            raise WebhookRejected(403, "Notify callback without the configured bearer token")

    def _api_key(self) -> str:
        key = self.channel.secret("api_key").strip()
        if not _API_KEY.fullmatch(key):
            raise ChannelConfigError(
                f"channel {self.channel.slug}: the Notify API key is not "
                "'<key name>-<service id>-<secret>'"
            )
        return key

    def _template_id(self) -> str:
        template_id = str(self.channel.setting("template_id", "") or "")
        if not template_id:
            raise ChannelConfigError(
                f"channel {self.channel.slug}: setting 'template_id' (a ((body)) template) "
                "is not set"
            )
        return template_id


def _provider_id(payload: dict, what: str) -> str:
    value = required_text(payload, "id", what)
    if len(value) > MAX_PROVIDER_ID_LENGTH:
        raise WebhookRejected(400, f"{what}: field 'id' is longer than a Notify id")
    return value


# Notify's two 429s: RateLimitError (3,000 per rolling minute: room comes back within the
# minute, back off briefly) and TooManyRequestsError (the service's daily limit: wait long,
# yet below the broker's visibility timeout so the retry is never delivered twice).
DAILY_LIMIT_WAIT_SECONDS = 600


def _rate_limit_wait(exc: APIError) -> float | None:
    """Seconds to wait after a 429, or None to back off by how often it happened."""
    message = exc.message if isinstance(exc.message, list) else []
    kinds = {item.get("error") for item in message if isinstance(item, dict)}
    return DAILY_LIMIT_WAIT_SECONDS if "TooManyRequestsError" in kinds else None


def _error_text(exc: APIError) -> str:
    message = exc.message
    if isinstance(message, list):  # Notify: {"errors": [{"error": ..., "message": ...}]}
        return "; ".join(
            f"{item.get('error', '')}: {item.get('message', '')}"
            if isinstance(item, dict)
            else str(item)
            for item in message
        )
    return str(message)
