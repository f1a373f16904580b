"""Provider adapters behind one interface, and the registry that picks one per channel kind.

Adapters do protocol work only (talking to providers, verifying signatures, parsing
payloads); the ingest pipeline in channels.services does every database write.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from importlib import import_module
from typing import TYPE_CHECKING, ClassVar

from django.utils.dateparse import parse_datetime

if TYPE_CHECKING:
    from django.http import HttpRequest, HttpResponse

    from channels.models import Channel, InboundMessage, OutboundMessage


@dataclass(frozen=True)
class RawInbound:
    """A message exactly as a provider handed it over, before any parsing."""

    external_id: str
    raw: bytes
    content_type: str = "message/rfc822"
    recipients: tuple[str, ...] = ()
    received_at: datetime.datetime | None = None


@dataclass
class ParsedAttachment:
    filename: str
    declared_type: str
    content: bytes


@dataclass
class ParsedMessage:
    """What the pipeline needs from any channel's message, whatever the provider."""

    classification: str = "message"  # InboundMessage.Classification
    sender_kind: str = ""  # ContactPoint.Kind
    sender_value: str = ""
    sender_name: str = ""
    subject: str = ""
    body_text: str = ""
    summary_text: str = ""
    body_html: str = ""
    message_id: str = ""
    in_reply_to: str = ""
    references: list[str] = field(default_factory=list)
    sent_at: datetime.datetime | None = None
    attachments: list[ParsedAttachment] = field(default_factory=list)
    # Thread hints: the secret reply token and the [CH-123] reference we put in replies,
    # and a provider conversation id for channels that have one.
    reply_token: str = ""
    thread_number: int | None = None
    conversation_key: str = ""
    # For conversations keyed by sender (SMS: the number pair), a message older than this
    # many hours since the thread's last message starts a new thread. None: no window
    # (social platforms give an explicit conversation id).
    conversation_window_hours: int | None = None
    # A public post (mention, comment) rather than a private message.
    is_public: bool = False
    # For bounces: the addresses that could not be delivered to.
    bounced_recipients: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class FetchResult:
    messages: list[RawInbound]
    # Commit the cursor only after the messages are stored: (key, state) pairs.
    cursors: list[tuple[str, dict]] = field(default_factory=list)


@dataclass(frozen=True)
class SendResult:
    provider_message_id: str = ""


@dataclass(frozen=True)
class DeliveryReport:
    """A provider's word on a message we sent: delivered, or failed for good or for now."""

    provider_message_id: str
    # "delivered", "permanent_failure", "temporary_failure", "technical_failure", or
    # "complaint" (the recipient marked it as spam; it was delivered)
    status: str
    detail: str = ""
    occurred_at: datetime.datetime | None = None


def parse_iso_time(value: object) -> datetime.datetime | None:
    """A provider's ISO 8601 time; UTC when it names no zone; None when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = parse_datetime(value)
    except ValueError:
        return None
    if parsed is not None and parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.UTC)
    return parsed


class WebhookRejected(Exception):
    """The webhook request is not acceptable; `status` is the HTTP status to answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class PermanentSendError(Exception):
    """The provider refused the message for good (bad address); retrying cannot help."""


class TransientChannelError(Exception):
    """The provider is down, slow or rate-limiting; retry later with back-off."""


class ChannelAdapter:
    """Base of every provider adapter. Push-only adapters leave `fetch` unimplemented."""

    kind: ClassVar[str]
    polls: ClassVar[bool] = False
    # Replies on this channel carry a subject line (e-mail) or not (SMS, social).
    uses_subject: ClassVar[bool] = False
    # The longest reply the provider accepts, checked before anything is queued.
    max_reply_chars: ClassVar[int | None] = None

    def __init__(self, channel: Channel) -> None:
        self.channel = channel

    def fetch(self) -> FetchResult:
        raise NotImplementedError(f"{self.kind} channels do not poll")

    def parse_webhook(self, request: HttpRequest) -> list[RawInbound]:
        raise WebhookRejected(404, f"{self.kind} channels take no webhooks")

    def webhook_success_response(self, stored: int, duplicates: int) -> HttpResponse | None:
        """The provider's expected answer to a delivered webhook; None for our JSON reply."""
        return None

    def webhook_handshake(self, request: HttpRequest) -> HttpResponse:
        """Answer a provider's GET verification request (e.g. Facebook's hub.challenge)."""
        raise WebhookRejected(405, "Webhooks are delivered with POST.")

    def parse_status_callback(self, request: HttpRequest) -> list[DeliveryReport]:
        """Verify and read a delivery-receipt callback (POST /hooks/<slug>/status/)."""
        raise WebhookRejected(404, f"{self.kind} channels send no delivery receipts")

    def parse(self, message: InboundMessage) -> ParsedMessage:
        raise NotImplementedError

    def send(self, outbound: OutboundMessage) -> SendResult:
        raise NotImplementedError(f"{self.kind} channels cannot send")


_REGISTRY: dict[str, type[ChannelAdapter]] = {}


def register_adapter(cls: type[ChannelAdapter]) -> type[ChannelAdapter]:
    _REGISTRY[cls.kind] = cls
    return cls


def adapter_for(channel: Channel) -> ChannelAdapter:
    _load_adapters()
    try:
        return _REGISTRY[channel.kind](channel)
    except KeyError:
        raise LookupError(f"no adapter for channel kind {channel.kind!r}") from None


def registered_kinds() -> list[str]:
    _load_adapters()
    return sorted(_REGISTRY)


# Provider modules, imported on first use so that importing the registry does not import
# every provider's client library.
ADAPTER_MODULES = (
    "email_smtp",
    "email_imap",
    "email_webhook",
    "sms_notify",
    "sms_twilio",
    "webform",
    "mastodon",
    "x",
    "facebook",
)


def _load_adapters() -> None:
    for name in ADAPTER_MODULES:
        import_module(f"channels.adapters.{name}")
