"""Read queries of the channels app: the inbox and a thread's messages."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Prefetch, QuerySet

from channels.models import Attachment, InboundMessage, OutboundMessage, Thread


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
