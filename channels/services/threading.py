"""Threading inbound messages into conversations, without ever leaking one person's thread.

A message joins an existing thread through, in order: the secret reply token in the
address it was sent to, In-Reply-To, References (newest first), the [CH-n] reference in the
subject, or the provider's conversation id. Whatever found the thread, the message joins it
only if its sender is a participant: the same citizen, or a contact point on the thread.
Otherwise it starts a new thread. Lookups are batched: a few queries per ingest batch.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from django.db.models import Q

from channels.adapters import ParsedMessage
from channels.models import InboundMessage, OutboundMessage, Thread, ThreadParticipant
from channels.services.routing import RoutingDecision


class ThreadAssigner:
    def __init__(
        self,
        messages: list[InboundMessage],
        parsed: dict[int, ParsedMessage],
        decisions: dict[int, RoutingDecision],
    ) -> None:
        self.messages = messages
        self.parsed = parsed
        self.decisions = decisions

    def assign(self) -> None:
        self.new_thread_ids: set[int] = set()
        if not self.messages:
            return
        self._load_candidates()
        new_threads: list[Thread] = []
        touched: dict[int, Thread] = {}
        assignments: list[tuple[InboundMessage, Thread]] = []
        for message in self.messages:
            thread = self._existing_thread_for(message)
            if thread is None:
                thread = self._new_thread(message)
                new_threads.append(thread)
            elif thread.pk:
                touched[thread.pk] = thread
            if message.message_id:
                self.batch_threads[message.message_id] = thread
            if self.parsed[message.pk].conversation_key:
                key = (message.channel_id, self.parsed[message.pk].conversation_key)
                self.by_conversation[key] = thread
            thread.last_message_at = max(thread.last_message_at, message.received_at)
            assignments.append((message, thread))

        Thread.objects.bulk_create(new_threads)
        # Told to the casework hook: routing rules that open cases act on new threads only.
        self.new_thread_ids = {thread.pk for thread in new_threads}
        for thread in touched.values():
            if thread.status != Thread.Status.OPEN:
                thread.status = Thread.Status.OPEN  # a new message reopens the conversation
        Thread.objects.bulk_update(list(touched.values()), ["last_message_at", "status"])
        participants = set()
        for message, thread in assignments:
            message.thread = thread
            participants.add((thread.pk, message.contact_point_id))
        ThreadParticipant.objects.bulk_create(
            [ThreadParticipant(thread_id=t, contact_point_id=c) for t, c in participants],
            ignore_conflicts=True,
        )

    def _load_candidates(self) -> None:
        tokens, numbers, references, conversations = set(), set(), set(), set()
        for message in self.messages:
            parsed = self.parsed[message.pk]
            if parsed.reply_token:
                tokens.add(parsed.reply_token)
            if parsed.thread_number:
                numbers.add(parsed.thread_number)
            if parsed.in_reply_to:
                references.add(parsed.in_reply_to)
            references.update(parsed.references)
            if parsed.conversation_key:
                conversations.add((message.channel_id, parsed.conversation_key))

        by_reference: dict[str, int] = {}
        if references:
            for model in (OutboundMessage, InboundMessage):
                rows = model.objects.filter(
                    message_id__in=references, thread__isnull=False
                ).values_list("message_id", "thread_id")
                for message_id, thread_id in rows:
                    by_reference.setdefault(message_id, thread_id)
        condition = Q(pk__in=set(by_reference.values()) | numbers) | Q(reply_token__in=tokens)
        for channel_id, key in conversations:
            condition |= Q(channel_id=channel_id, conversation_key=key)
        threads = (
            list(Thread.objects.filter(condition).order_by("last_message_at"))
            if (references or numbers or tokens or conversations)
            else []
        )
        self.threads = {t.pk: t for t in threads}
        self.by_token = {t.reply_token: t for t in threads}
        self.by_reference = {
            mid: self.threads[tid] for mid, tid in by_reference.items() if tid in self.threads
        }
        # Ordered by last_message_at, so the newest thread of a conversation wins.
        self.by_conversation = {
            (t.channel_id, t.conversation_key): t for t in threads if t.conversation_key
        }
        self.participants = (
            set(
                ThreadParticipant.objects.filter(thread_id__in=list(self.threads)).values_list(
                    "thread_id", "contact_point_id"
                )
            )
            if self.threads
            else set()
        )
        self.batch_threads: dict[str, Thread] = {}

    def _may_join(self, thread: Thread, message: InboundMessage) -> bool:
        return thread.citizen_id == message.citizen_id or (
            thread.pk is not None and (thread.pk, message.contact_point_id) in self.participants
        )

    def _candidates(self, message: InboundMessage) -> Iterable[Thread | None]:
        parsed = self.parsed[message.pk]
        yield self.by_token.get(parsed.reply_token) if parsed.reply_token else None
        for reference in [parsed.in_reply_to, *reversed(parsed.references)]:
            if reference:
                yield self.batch_threads.get(reference) or self.by_reference.get(reference)
        if parsed.thread_number:
            yield self.threads.get(parsed.thread_number)
        if parsed.conversation_key:
            thread = self.by_conversation.get((message.channel_id, parsed.conversation_key))
            window = parsed.conversation_window_hours
            # A text weeks later is a new conversation, even from the same number.
            if (
                thread is not None
                and window is not None
                and message.received_at - thread.last_message_at > timedelta(hours=window)
            ):
                thread = None
            yield thread

    def _existing_thread_for(self, message: InboundMessage) -> Thread | None:
        for thread in self._candidates(message):
            if thread is not None and self._may_join(thread, message):
                return thread
        return None

    def _new_thread(self, message: InboundMessage) -> Thread:
        decision = self.decisions[message.pk]
        parsed = self.parsed[message.pk]
        return Thread(
            channel_id=message.channel_id,
            citizen_id=message.citizen_id,
            subject=(message.subject or message.summary_text[:80] or "(no subject)")[:300],
            conversation_key=parsed.conversation_key[:255],
            is_public=parsed.is_public,
            department=decision.department,
            service_code=decision.service_code,
            team_id=decision.team_id,
            last_message_at=message.received_at,
        )
