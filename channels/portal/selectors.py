"""Read queries of "My messages": the signed-in resident's own conversations, in words a
resident reads (never raw payloads, officers' names or staff notes). Every query starts
from the resident's profile, so another resident's conversation is simply not found."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Q, QuerySet

from channels.models import (
    KIND_TO_TIMELINE_CHANNEL,
    Channel,
    InboundMessage,
    OutboundMessage,
    Thread,
)
from citizenhub.models import ChannelKind, Citizen

THREADS_PAGE_SIZE = 20
REFERENCE_MAX_CHARS = 20


def channel_in_words(channel: Channel) -> str:
    """ "E-mail", "Text message": how the resident knows the channel, not our account name."""
    return str(ChannelKind(KIND_TO_TIMELINE_CHANNEL[channel.kind]).label)


def resident_threads(citizen: Citizen, *, case_reference: str = "") -> QuerySet[Thread]:
    """The resident's conversations, newest activity first (one query a page)."""
    threads = (
        Thread.objects.filter(citizen=citizen)
        .select_related("channel", "case")
        .only(
            "id",
            "subject",
            "last_message_at",
            "created_at",
            "channel__id",
            "channel__kind",
            "case__id",
            "case__reference",
        )
        .order_by("-last_message_at", "-pk")
    )
    if case_reference:
        threads = threads.filter(case__reference=case_reference[:REFERENCE_MAX_CHARS])
    return threads


def resident_thread(citizen: Citizen, thread_id: int) -> Thread | None:
    return (
        Thread.objects.filter(citizen=citizen, pk=thread_id)
        .select_related("channel", "case")
        .only(
            "id",
            "subject",
            "last_message_at",
            "channel__id",
            "channel__kind",
            "case__id",
            "case__reference",
        )
        .first()
    )


@dataclass(frozen=True)
class ResidentMessage:
    """One message of a conversation as the resident sees it."""

    direction: str  # "in": from the resident; "out": from the council
    at: datetime
    subject: str
    text: str
    channel: str
    undelivered: bool = False


def _people_messages() -> QuerySet[InboundMessage]:
    # Auto-replies, bounces and copies received twice are not something the resident wrote.
    return (
        InboundMessage.objects.filter(classification=InboundMessage.Classification.MESSAGE)
        .select_related("channel")
        .only(
            *("id", "thread_id", "received_at", "subject", "body_text", "summary_text"),
            *("channel__id", "channel__kind"),
        )
    )


def _outbound_messages() -> QuerySet[OutboundMessage]:
    return OutboundMessage.objects.select_related("channel").only(
        *("id", "thread_id", "created_at", "sent_at", "subject", "body_text", "status"),
        *("channel__id", "channel__kind"),
    )


def _inbound_item(message: InboundMessage, *, full: bool) -> ResidentMessage:
    text = message.body_text if full else (message.summary_text or message.body_text)
    return ResidentMessage(
        "in",
        message.received_at,
        message.subject,
        (text or "").strip(),
        channel_in_words(message.channel),
    )


def _outbound_item(message: OutboundMessage) -> ResidentMessage:
    return ResidentMessage(
        "out",
        message.sent_at or message.created_at,
        message.subject,
        message.body_text.strip(),
        channel_in_words(message.channel),
        undelivered=message.status == OutboundMessage.Status.FAILED,
    )


def _ordered(items: list[ResidentMessage]) -> list[ResidentMessage]:
    return sorted(items, key=lambda item: (item.at, item.direction))


def resident_thread_messages(thread: Thread) -> list[ResidentMessage]:
    """Both directions, oldest first, in two queries."""
    items = [_inbound_item(m, full=False) for m in _people_messages().filter(thread=thread)]
    items += [_outbound_item(m) for m in _outbound_messages().filter(thread=thread)]
    return _ordered(items)


def resident_messages_by_thread(
    citizen: Citizen,
) -> tuple[list[Thread], dict[int | None, list[ResidentMessage]]]:
    """Every conversation of the resident, oldest first, and every message to or from them
    with its full text, by thread id (messages outside any conversation under None): three
    queries however many there are."""
    threads = list(resident_threads(citizen).order_by("created_at", "pk"))
    thread_ids = [thread.pk for thread in threads]
    mine = Q(citizen=citizen) | Q(thread_id__in=thread_ids)
    by_thread: dict[int | None, list[ResidentMessage]] = {pk: [] for pk in thread_ids}
    for message in _people_messages().filter(mine):
        key = message.thread_id if message.thread_id in by_thread else None
        by_thread.setdefault(key, []).append(_inbound_item(message, full=True))
    for message in _outbound_messages().filter(mine):
        key = message.thread_id if message.thread_id in by_thread else None
        by_thread.setdefault(key, []).append(_outbound_item(message))
    return threads, {key: _ordered(items) for key, items in by_thread.items()}
