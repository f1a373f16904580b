"""Replies and messages to citizens: queued in the database, sent by a task, idempotent."""

from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.mail import make_msgid
from django.db import transaction
from django.utils import timezone

from channels.adapters import (
    DeliveryReport,
    PermanentSendError,
    TransientChannelError,
    adapter_for,
)
from channels.adapters.email_base import RecipientRefused
from channels.models import Channel, InboundMessage, OutboundMessage, Thread, ThreadParticipant
from channels.ratelimit import take_send_token
from channels.signals import (
    BOUNCED,
    COMPLAINED,
    DELIVERED,
    FAILED,
    SENT,
    OutboundStatusChange,
    outbound_status_changed,
)
from citizenhub.errors import ApplicationError
from citizenhub.models import ChannelKind, Citizen, ContactPoint, ServiceCase, Team, TimelineEntry
from citizenhub.services.timeline import record_timeline_entry

logger = logging.getLogger(__name__)
MAX_REFERENCES = 20
BODY_LIMIT = 50_000


# The channels the council can write first on, and the contact point kind each sends to.
_STARTABLE = {ChannelKind.EMAIL: ContactPoint.Kind.EMAIL, ChannelKind.SMS: ContactPoint.Kind.PHONE}


def _enqueue_send(outbound_id: int) -> None:
    from channels.tasks import send_outbound_message

    send_outbound_message.delay(outbound_id)


def _reply_subject(thread: Thread) -> str:
    subject = thread.subject or "Your message to the council"
    if not subject.lower().startswith("re:"):
        subject = f"Re: {subject}"
    if f"[{thread.reference}]" not in subject:
        subject = f"{subject} [{thread.reference}]"
    return subject[:300]


def _recipient(thread: Thread, last_inbound: InboundMessage | None) -> str:
    """Reply to the address the resident last wrote from, if we can still deliver there.

    On a conversation the council started (no message in yet) that is the address it was
    started with; failing both, the resident's best address of the kind this channel sends
    to (a text message never goes to an e-mail address).
    """
    if last_inbound and last_inbound.contact_point_id:
        point = ContactPoint.objects.filter(
            pk=last_inbound.contact_point_id, removed_at__isnull=True
        ).first()
        if point and not point.undeliverable_at:
            return point.normalised
    channel_kind = _STARTABLE.get(thread.channel.timeline_channel, ContactPoint.Kind.EMAIL)
    if last_inbound is None:
        participant = (
            ContactPoint.objects.filter(
                threadparticipant__thread=thread,
                kind=channel_kind,
                removed_at__isnull=True,
                undeliverable_at__isnull=True,
            )
            .order_by("-pk")
            .first()
        )
        if participant is not None:
            return participant.normalised
    kind = last_inbound.sender_kind if last_inbound else channel_kind
    point = (
        thread.citizen.contact_points.filter(
            kind=kind, removed_at__isnull=True, undeliverable_at__isnull=True
        )
        .order_by("-is_primary", "-created_at")
        .first()
    )
    if point is None:
        raise ApplicationError(
            "This resident has no deliverable address on this channel; add one first.",
            code="no_recipient",
        )
    return point.normalised


def thread_reply(
    *, thread: Thread, body: str, by: AbstractBaseUser | None, subject: str | None = None
) -> OutboundMessage:
    """Queue a reply in the thread's own channel; a task sends it after commit.

    A reply on a disabled or failing channel is still queued (never lost); it carries the
    reason as its last error and goes out when the channel is working again.
    """
    body = body.strip()
    if not body:
        raise ApplicationError("Write a reply before sending.", code="empty_reply")
    adapter = adapter_for(thread.channel)
    limit = min(BODY_LIMIT, adapter.max_reply_chars or BODY_LIMIT)
    if len(body) > limit:
        raise ApplicationError(
            f"Replies on {thread.channel.name} can be at most {limit:,} characters; this one "
            f"has {len(body):,}.",
            code="reply_too_long",
        )
    with transaction.atomic():
        thread = (
            Thread.objects.select_for_update()
            .select_related("channel", "citizen")
            .get(pk=thread.pk)
        )
        last_inbound = (
            thread.inbound_messages.exclude(classification=InboundMessage.Classification.DUPLICATE)
            .order_by("-received_at", "-pk")
            .first()
        )
        references = []
        in_reply_to = ""
        if last_inbound and last_inbound.message_id:
            in_reply_to = last_inbound.message_id
            references = [*last_inbound.references, last_inbound.message_id][-MAX_REFERENCES:]
        outbound = OutboundMessage.objects.create(
            channel=thread.channel,
            thread=thread,
            citizen=thread.citizen,
            to_value=_recipient(thread, last_inbound),
            subject=(subject or _reply_subject(thread))[:300] if adapter.uses_subject else "",
            body_text=body,
            message_id=make_msgid(domain=settings.CHANNELS_MESSAGE_ID_DOMAIN)[1:-1],
            in_reply_to=in_reply_to,
            references=references,
            created_by=by,
            last_error=""
            if thread.channel.enabled
            else "Channel is disabled; queued until it is enabled again.",
        )
        thread.status = Thread.Status.WAITING
        thread.last_message_at = timezone.now()
        thread.save(update_fields=["status", "last_message_at"])
        if thread.channel.enabled:
            transaction.on_commit(lambda: _enqueue_send(outbound.pk))
    return outbound


# Channels a conversation can be started on, and the kind of address each sends to.
# Social channels are left out: they can only answer people who wrote to us first.


def start_conversation(
    *,
    citizen: Citizen,
    channel: Channel,
    subject: str,
    body: str,
    by: AbstractBaseUser | None,
    case: ServiceCase | None = None,
    team: Team | None = None,
    service_code: str = "",
    department: str = "",
) -> OutboundMessage:
    """Write to a citizen who has no conversation to answer: a new thread (waiting on the
    resident) with one queued message, sent by a task after commit.

    The message goes to the citizen's primary deliverable address of the channel's kind;
    the thread reference in the subject and the reply address bring their answer back to it.
    """
    body = body.strip()
    if not body:
        raise ApplicationError("Write a message before sending.", code="empty_reply")
    kind = _STARTABLE.get(channel.timeline_channel)
    if kind is None:
        raise ApplicationError(
            f"Conversations cannot be started on {channel.name}; residents must write first.",
            code="cannot_start",
        )
    adapter = adapter_for(channel)
    limit = min(BODY_LIMIT, adapter.max_reply_chars or BODY_LIMIT)
    if len(body) > limit:
        raise ApplicationError(
            f"Messages on {channel.name} can be at most {limit:,} characters; this one has "
            f"{len(body):,}.",
            code="reply_too_long",
        )
    point = (
        citizen.contact_points.filter(
            kind=kind, removed_at__isnull=True, undeliverable_at__isnull=True
        )
        .order_by("-is_primary", "-created_at", "-pk")
        .first()
    )
    if point is None:
        raise ApplicationError(
            f"This resident has no deliverable {ContactPoint.Kind(kind).label.lower()}.",
            code="no_recipient",
        )
    subject = (subject or "A message from the council").strip()
    now = timezone.now()
    with transaction.atomic():
        thread = Thread.objects.create(
            channel=channel,
            citizen=citizen,
            subject=subject[:300],
            status=Thread.Status.WAITING,
            department=department[:100],
            service_code=service_code[:32],
            team=team,
            case=case,
            last_message_at=now,
        )
        ThreadParticipant.objects.create(thread=thread, contact_point=point)
        outbound = OutboundMessage.objects.create(
            channel=channel,
            thread=thread,
            citizen=citizen,
            to_value=point.normalised,
            subject=f"{subject} [{thread.reference}]"[:300] if adapter.uses_subject else "",
            body_text=body,
            message_id=make_msgid(domain=settings.CHANNELS_MESSAGE_ID_DOMAIN)[1:-1],
            created_by=by,
            created_at=now,
            last_error=""
            if channel.enabled
            else "Channel is disabled; queued until it is enabled again.",
        )
        if channel.enabled:
            transaction.on_commit(lambda: _enqueue_send(outbound.pk))
    return outbound


def _claim_for_sending(outbound_id: int) -> OutboundMessage | None:
    """Move a queued message to `sending`, or return None if it is not ours to send.

    Raises ProviderRateLimited, with nothing changed, when the channel's per-minute budget
    (channels.ratelimit) has no room: the token is taken only for a message that will
    really be handed to the provider, under the row lock."""
    with transaction.atomic():
        outbound = (
            OutboundMessage.objects.select_for_update(of=("self",))
            .select_related("channel", "thread")
            .filter(pk=outbound_id)
            .first()
        )
        if outbound is None or outbound.status != OutboundMessage.Status.QUEUED:
            return None
        if not outbound.channel.enabled:
            outbound.last_error = "Channel is disabled; queued until it is enabled again."
            outbound.save(update_fields=["last_error"])
            return None
        take_send_token(outbound.channel)
        outbound.status = OutboundMessage.Status.SENDING
        outbound.attempts += 1
        outbound.save(update_fields=["status", "attempts"])
    return outbound


def send_outbound(*, outbound_id: int) -> str:
    """Send one queued message through its channel's adapter. Idempotent: only a `queued`
    message is sent, and it is marked `sending` in its own transaction before the provider
    is called, so a redelivered task never sends twice.

    Raises TransientChannelError (after putting the message back to `queued`) so the task
    retries with back-off; its subclass ProviderRateLimited when the provider (429) or the
    channel's own per-minute budget says to wait. Every change of status is announced
    with `outbound_status_changed` in the transaction that writes it.
    """
    outbound = _claim_for_sending(outbound_id)
    if outbound is None:
        return "skipped"
    try:
        result = adapter_for(outbound.channel).send(outbound)
    except TransientChannelError as exc:
        OutboundMessage.objects.filter(pk=outbound.pk).update(
            status=OutboundMessage.Status.QUEUED, last_error=str(exc)[:2000]
        )
        _channel_failed(outbound.channel, exc)
        raise
    except (PermanentSendError, Exception) as exc:
        logger.exception("sending outbound message %s failed", outbound.pk)
        error = f"{type(exc).__name__}: {exc}"[:2000]
        with transaction.atomic():
            OutboundMessage.objects.filter(pk=outbound.pk).update(
                status=OutboundMessage.Status.FAILED, last_error=error
            )
            outcome = FAILED
            if isinstance(exc, RecipientRefused):
                # The address does not exist: like a bounce, nobody should keep sending there.
                outcome = BOUNCED
                _mark_undeliverable(outbound, timezone.now())
            _announce([OutboundStatusChange(outbound.pk, outcome, error, timezone.now())])
        return "failed"
    with transaction.atomic():
        outbound.status = OutboundMessage.Status.SENT
        outbound.sent_at = timezone.now()
        outbound.provider_message_id = result.provider_message_id[:255]
        outbound.last_error = ""
        outbound.save(update_fields=["status", "sent_at", "provider_message_id", "last_error"])
        record_timeline_entry(
            citizen=outbound.citizen,
            kind=TimelineEntry.Kind.MESSAGE_OUT,
            occurred_at=outbound.sent_at,
            summary=(
                f"{outbound.subject}: {outbound.body_text}"
                if outbound.subject
                else outbound.body_text
            ),
            channel=outbound.channel.timeline_channel,
            department=outbound.thread.department if outbound.thread else "",
            visibility=TimelineEntry.Visibility.RESIDENT,
            source=outbound,
        )
        _announce([OutboundStatusChange(outbound.pk, SENT, "", outbound.sent_at)])
    return "sent"


def _announce(changes: list[OutboundStatusChange]) -> None:
    if changes:
        outbound_status_changed.send(sender=OutboundMessage, changes=changes)


def _mark_undeliverable(message: OutboundMessage, when: datetime.datetime) -> None:
    ContactPoint.objects.filter(
        citizen_id=message.citizen_id,
        normalised=message.to_value,
        undeliverable_at__isnull=True,
    ).update(undeliverable_at=when)


def _channel_failed(channel: Channel, exc: Exception) -> None:
    Channel.objects.filter(pk=channel.pk).update(
        last_error=f"send: {type(exc).__name__}: {exc}"[:2000], last_error_at=timezone.now()
    )


def release_queued_outbound(*, channel: Channel) -> int:
    """Enqueue every queued message of a channel (after it is enabled or recovers)."""
    ids = list(
        OutboundMessage.objects.filter(
            channel=channel, status=OutboundMessage.Status.QUEUED
        ).values_list("pk", flat=True)
    )
    for outbound_id in ids:
        transaction.on_commit(lambda outbound_id=outbound_id: _enqueue_send(outbound_id))
    return len(ids)


def stale_queued_ids(*, older_than_seconds: int = 120, limit: int = 1000) -> list[int]:
    """Queued replies on enabled channels that have waited longer than a send should take."""
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    return list(
        OutboundMessage.objects.filter(
            status=OutboundMessage.Status.QUEUED, created_at__lt=cutoff, channel__enabled=True
        )
        .order_by("created_at")
        .values_list("pk", flat=True)[:limit]
    )


@dataclass(frozen=True)
class AppliedReports:
    updated: int
    unknown: int


# A later report may not undo a final state: "delivered" stays delivered.
_FINAL = {OutboundMessage.Status.DELIVERED, OutboundMessage.Status.FAILED}


def record_delivery_reports(*, channel: Channel, reports: list[DeliveryReport]) -> AppliedReports:
    """Apply providers' delivery receipts to our outbound messages.

    Receipts for messages we never sent (or sent through another channel) are logged and
    counted, not errors: the provider must get a 2xx or it retries for hours. A permanent
    failure marks the recipient's contact point undeliverable, so nobody keeps sending to a
    dead number. A "complaint" (the recipient reported the message as spam) changes nothing
    here, the message was delivered, but is announced like every change of status
    (`outbound_status_changed`) for the apps that act on it.
    """
    if not reports:
        return AppliedReports(0, 0)
    by_id = {report.provider_message_id: report for report in reports if report.provider_message_id}
    updated = 0
    changes: list[OutboundStatusChange] = []
    with transaction.atomic():
        messages = {
            m.provider_message_id: m
            for m in OutboundMessage.objects.select_for_update(of=("self",)).filter(
                channel=channel, provider_message_id__in=list(by_id)
            )
        }
        for provider_id, report in by_id.items():
            message = messages.get(provider_id)
            if message is None:
                logger.info(
                    "delivery report for unknown message %s on %s ignored",
                    provider_id,
                    channel.slug,
                )
                continue
            when = report.occurred_at or timezone.now()
            if report.status == "complaint":
                # Comes after delivery, whatever the message's state; the receivers keep
                # it once (a repeated report finds the delivery already marked).
                changes.append(OutboundStatusChange(message.pk, COMPLAINED, report.detail, when))
                updated += 1
                continue
            if message.status in _FINAL:
                continue
            if report.status == "delivered":
                message.status = OutboundMessage.Status.DELIVERED
                message.delivered_at = when
                changes.append(OutboundStatusChange(message.pk, DELIVERED, report.detail, when))
            elif report.status in ("permanent_failure", "technical_failure"):
                message.status = OutboundMessage.Status.FAILED
                message.last_error = f"{report.status}: {report.detail}"[:2000]
                outcome = FAILED
                if report.status == "permanent_failure":
                    outcome = BOUNCED
                    _mark_undeliverable(message, when)
                changes.append(OutboundStatusChange(message.pk, outcome, report.detail, when))
            else:  # temporary failure: the provider keeps trying; note it
                message.last_error = f"{report.status}: {report.detail}"[:2000]
            message.save(update_fields=["status", "delivered_at", "last_error"])
            updated += 1
        _announce(changes)
    return AppliedReports(updated, len(by_id) - updated)
