"""Read queries of the channels app: the inbox and a thread's messages."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import F, OuterRef, Prefetch, Q, QuerySet, Subquery, Window
from django.db.models.functions import RowNumber, Substr

from channels.models import Attachment, Channel, InboundMessage, OutboundMessage, Thread
from citizenhub.case_selectors import (
    case_content_visible_to_teams,
    hidden_service_codes,
    user_team_ids,
)
from citizenhub.models import Citizen, ServiceCase, Team

PREVIEW_CHARS = 160
INBOX_PAGE_SIZE = 50
INBOX_DEFAULT_STATUSES = (Thread.Status.OPEN, Thread.Status.WAITING)


def inbox_threads() -> QuerySet[Thread]:
    return Thread.objects.select_related("channel", "citizen", "assigned_to")


# --- Who may read what: sensitive conversations ----------------------------------------


@dataclass(frozen=True)
class ContentAccess:
    """What one officer may read of conversations about sensitive services, loaded once per
    request (two queries) and applied to every row in Python.

    A conversation linked to a case follows the case's rule (content for the case's team
    and the service's team). One not linked to a case is hidden when its service code is
    a sensitive service the officer's teams do not run, unless it was routed to one of the
    officer's teams.
    """

    team_ids: frozenset[int]
    hidden_codes: frozenset[str]

    def case_visible(self, case: ServiceCase) -> bool:
        return case_content_visible_to_teams(case, self.team_ids)

    def thread_visible(self, thread: Thread) -> bool:
        if thread.case_id is not None:
            return self.case_visible(thread.case)
        return thread.service_code not in self.hidden_codes or thread.team_id in self.team_ids


def content_access(user: AbstractBaseUser | AnonymousUser) -> ContentAccess:
    if not getattr(user, "is_authenticated", False) or not user.is_staff:
        return ContentAccess(frozenset(), frozenset())
    return ContentAccess(user_team_ids(user), hidden_service_codes(user))


# --- The inbox list ------------------------------------------------------------------------


def _with_preview(queryset: QuerySet[Thread]) -> QuerySet[Thread]:
    """Each thread with the start of the resident's latest message, in the same query."""
    latest = (
        InboundMessage.objects.filter(thread_id=OuterRef("pk"))
        .exclude(classification=InboundMessage.Classification.DUPLICATE)
        .order_by("-received_at", "-pk")
        .values(start=Substr("summary_text", 1, PREVIEW_CHARS))[:1]
    )
    return queryset.annotate(preview=Subquery(latest))


def _inbox_base() -> QuerySet[Thread]:
    return Thread.objects.select_related(
        "channel", "citizen", "assigned_to", "team", "case__service"
    )


@dataclass(frozen=True)
class InboxRow:
    """One line of the inbox as an officer may see it: subject and preview are empty when
    the conversation is sensitive and the officer is outside its team."""

    thread: Thread
    content_visible: bool
    subject: str
    preview: str


def inbox_rows(threads: Iterable[Thread], access: ContentAccess) -> list[InboxRow]:
    rows = []
    for thread in threads:
        visible = access.thread_visible(thread)
        rows.append(
            InboxRow(
                thread=thread,
                content_visible=visible,
                subject=thread.subject if visible else "",
                preview=(getattr(thread, "preview", "") or "") if visible else "",
            )
        )
    return rows


def inbox_page(
    *,
    user: AbstractBaseUser,
    channel: Channel | None = None,
    team: Team | None = None,
    statuses: Collection[str] = INBOX_DEFAULT_STATUSES,
    unassigned: bool = False,
    mine: bool = False,
    after: tuple[datetime, int] | None = None,
    limit: int | None = None,
) -> tuple[list[Thread], bool]:
    """A page of the unified inbox, newest activity first: (threads, whether more follow).

    Keyset paging on (last_message_at, id): new messages arriving while an officer pages
    never shift rows between pages. Sensitive threads are listed (redacted by the caller
    with `inbox_rows`) so that nobody misses that a conversation exists.
    """
    limit = limit or INBOX_PAGE_SIZE
    queryset = _with_preview(_inbox_base())
    if statuses:
        queryset = queryset.filter(status__in=list(statuses))
    if channel is not None:
        queryset = queryset.filter(channel=channel)
    if team is not None:
        queryset = queryset.filter(team=team)
    if unassigned:
        queryset = queryset.filter(assigned_to__isnull=True)
    if mine:
        queryset = queryset.filter(assigned_to=user)
    if after is not None:
        at, pk = after
        queryset = queryset.filter(Q(last_message_at__lt=at) | Q(last_message_at=at, pk__lt=pk))
    threads = list(queryset.order_by("-last_message_at", "-pk")[: limit + 1])
    return threads[:limit], len(threads) > limit


def inbox_thread(pk: int) -> Thread | None:
    """One thread with everything its page shows about it (one query)."""
    return (
        Thread.objects.select_related(
            "channel", "citizen", "assigned_to", "team", "case__service", "case__team"
        )
        .filter(pk=pk)
        .first()
    )


def citizen_threads(citizen: Citizen, *, limit: int = 20) -> list[Thread]:
    """A citizen's conversations, newest activity first, with a preview (one query).

    Joins only what the 360's panel shows and the sensitivity rule needs: planning the
    inbox's seven-table join cost more than running it on a citizen's few threads."""
    panel_fields = (
        *("id", "subject", "status", "last_message_at", "team_id", "service_code", "case_id"),
        *("channel__name", "channel__kind", "case__reference", "case__team_id"),
        *("case__service__is_sensitive", "case__service__team_id"),
    )
    return list(
        _with_preview(Thread.objects.select_related("channel", "case__service").only(*panel_fields))
        .filter(citizen=citizen)
        .order_by("-last_message_at", "-pk")[:limit]
    )


def case_threads_with_messages(
    case: ServiceCase, *, threads: int = 10, messages: int = 5
) -> list[tuple[Thread, list[ThreadMessage]]]:
    """The conversations linked to a case (newest first) with each one's latest messages,
    oldest first, in three queries however long the conversations are."""
    linked = list(
        Thread.objects.filter(case=case)
        .select_related("channel", "assigned_to")
        .order_by("-last_message_at", "-pk")[:threads]
    )
    if not linked:
        return []
    ids = [t.pk for t in linked]

    def newest_first(at: str) -> Window:
        return Window(
            RowNumber(), partition_by=[F("thread_id")], order_by=[F(at).desc(), F("pk").desc()]
        )

    inbound = (
        InboundMessage.objects.filter(thread_id__in=ids)
        .exclude(classification=InboundMessage.Classification.DUPLICATE)
        .defer("raw", "body_html")
        .annotate(position=newest_first("received_at"))
        .filter(position__lte=messages)
    )
    outbound = (
        OutboundMessage.objects.filter(thread_id__in=ids)
        .select_related("created_by")
        .annotate(position=newest_first("created_at"))
        .filter(position__lte=messages)
    )
    by_thread: dict[int, list[ThreadMessage]] = {pk: [] for pk in ids}
    for message in inbound:
        by_thread[message.thread_id].append(ThreadMessage("in", message, message.received_at))
    for message in outbound:
        by_thread[message.thread_id].append(
            ThreadMessage("out", message, message.sent_at or message.created_at)
        )
    result = []
    for thread in linked:
        items = sorted(
            by_thread[thread.pk],
            key=lambda item: (item.occurred_at, item.direction, item.message.pk),
        )
        result.append((thread, items[-messages:]))
    return result


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
