"""Read queries of the channels app: the inbox and a thread's messages."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Prefetch, QuerySet

from channels.models import Attachment, Channel, InboundMessage, OutboundMessage, Thread


def inbox_threads() -> QuerySet[Thread]:
    return Thread.objects.select_related("channel", "citizen", "assigned_to")


@dataclass(frozen=True)
class ThreadMessage:
    """One message of a conversation, whichever direction it went."""

    direction: str  # "in" or "out"
    message: InboundMessage | OutboundMessage
    occurred_at: datetime


def thread_messages(thread: Thread) -> list[ThreadMessage]:
    """Both directions, oldest first; copies of a message received twice are left out."""
    inbound = (
        thread.inbound_messages.exclude(classification=InboundMessage.Classification.DUPLICATE)
        .defer("raw")
        .prefetch_related(Prefetch("attachments", queryset=Attachment.objects.order_by("pk")))
    )
    outbound = thread.outbound_messages.select_related("created_by")
    items = [ThreadMessage("in", m, m.received_at) for m in inbound]
    items += [ThreadMessage("out", m, m.sent_at or m.created_at) for m in outbound]
    return sorted(items, key=lambda item: (item.occurred_at, item.direction, item.message.pk))


def oldest_waiting_received_at() -> datetime.datetime | None:
    """When the oldest message still waiting to be processed arrived (an index range scan)."""
    return (
        InboundMessage.objects.filter(status=InboundMessage.Status.RECEIVED)
        .order_by("received_at")
        .values_list("received_at", flat=True)
        .first()
    )


# --- Social channels: what an adapter may look up about the conversations it serves. -----


def social_conversation_key(*, channel: Channel, provider_message_id: str, message_id: str) -> str:
    """The conversation key of the thread holding a post that a new post replies to: one of
    our replies (found by the provider's id for it) or a message we received (by its message
    id), on this channel only; "" when we do not hold that post."""
    key = None
    if provider_message_id:
        key = (
            OutboundMessage.objects.filter(
                channel=channel, provider_message_id=provider_message_id, thread__isnull=False
            )
            .values_list("thread__conversation_key", flat=True)
            .first()
        )
    if key is None and message_id:
        key = (
            InboundMessage.objects.filter(
                channel=channel, message_id=message_id, thread__isnull=False
            )
            .values_list("thread__conversation_key", flat=True)
            .first()
        )
    return key or ""


def replied_message(outbound: OutboundMessage) -> InboundMessage | None:
    """The resident's message a reply answers (its In-Reply-To), raw payload included."""
    if not outbound.in_reply_to or not outbound.thread_id:
        return None
    return (
        InboundMessage.objects.filter(
            thread_id=outbound.thread_id,
            channel_id=outbound.channel_id,
            message_id=outbound.in_reply_to,
        )
        .order_by("pk")
        .first()
    )


def thread_has_earlier_reply(outbound: OutboundMessage) -> bool:
    """Whether another reply in this reply's thread already reached the provider."""
    if not outbound.thread_id:
        return False
    return (
        OutboundMessage.objects.filter(
            thread_id=outbound.thread_id,
            status__in=[OutboundMessage.Status.SENT, OutboundMessage.Status.DELIVERED],
        )
        .exclude(pk=outbound.pk)
        .exists()
    )
