"""Sending a campaign: its PENDING deliveries become outbound messages on the council's
e-mail and SMS channels, in batches, and each delivery then follows its message (sent,
delivered, failed, bounced, marked as spam) as the channels app reports it.

- `queue_deliveries` takes up to `batch_size` pending deliveries at a time (rows locked,
  skipping rows another run holds), writes one personalised OutboundMessage per delivery
  with bulk inserts, marks the deliveries QUEUED (or FAILED with the reason, when no channel
  or address can carry them) and, after commit, hands the messages to
  `channels.send_outbound_batch` tasks of SEND_BATCH_SIZE. Re-running it finds no pending
  delivery left to queue: nothing is queued twice (and the channels' claim-before-send
  means nothing is sent twice).
- Bulk e-mail carries `List-Unsubscribe: <https://…/unsubscribe/<token>/>` and
  `List-Unsubscribe-Post: List-Unsubscribe=One-Click` (RFC 8058), an HTML alternative when
  the campaign has one, and a footer with the unsubscribe and preference links when the
  officer's text has no `{{ unsubscribe_url }}` of its own.
- Content is the campaign's single language (campaigns have one version of each text for
  now); only the footer and the "resident" greeting fallback follow the resident's
  preferred language.
- `follow_outbound_status` is connected to channels' `outbound_status_changed` (apps.py):
  the delivery of a message moves forward, never back, once per change. A spam complaint
  also unsubscribes the resident from the campaign's topics on that channel
  (engagement.subscriptions.unsubscribe). When nothing of a campaign is left to send, the
  campaign is SENT.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.mail import make_msgid
from django.db import transaction
from django.utils import timezone
from django.utils.html import escape, strip_tags
from django.utils.translation import gettext, override

from channels.models import Channel, OutboundMessage
from channels.signals import (
    BOUNCED,
    COMPLAINED,
    DELIVERED,
    FAILED,
    SENT,
    OutboundStatusChange,
)
from citizenhub.models import ChannelKind, Citizen
from engagement.models import Campaign, ConsentRecord, Delivery, Subscription
from engagement.personalise import personalise
from engagement.tokens import UnsubscribeTarget, preferences_url, unsubscribe_url

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 500
# Messages per sending task: small enough to spread a campaign over every worker, large
# enough that 200,000 messages are not 200,000 tasks.
SEND_BATCH_SIZE = 100
# The account kinds that send each campaign channel, in order of preference.
SENDING_KINDS: dict[str, tuple[str, ...]] = {
    ChannelKind.EMAIL: (
        Channel.Kind.EMAIL_SMTP,
        Channel.Kind.EMAIL_IMAP,
        Channel.Kind.EMAIL_WEBHOOK,
    ),
    ChannelKind.SMS: (Channel.Kind.SMS_NOTIFY, Channel.Kind.SMS_TWILIO),
}
ONE_CLICK = "List-Unsubscribe=One-Click"
# A delivery still on its way: while any is left, the campaign is sending.
UNFINISHED = (Delivery.Status.PENDING, Delivery.Status.HELD, Delivery.Status.QUEUED)
# How each reported outcome moves a delivery, and from which states (never backwards:
# a late "sent" does not undo "delivered", a repeated receipt changes nothing).
_FOLLOW: dict[str, tuple[str, tuple[str, ...]]] = {
    SENT: (Delivery.Status.SENT, (Delivery.Status.QUEUED,)),
    DELIVERED: (Delivery.Status.DELIVERED, (Delivery.Status.QUEUED, Delivery.Status.SENT)),
    FAILED: (Delivery.Status.FAILED, (Delivery.Status.QUEUED, Delivery.Status.SENT)),
    # A bounce or a complaint can come after the provider said "delivered" (e-mail).
    BOUNCED: (
        Delivery.Status.BOUNCED,
        (Delivery.Status.QUEUED, Delivery.Status.SENT, Delivery.Status.DELIVERED),
    ),
    COMPLAINED: (
        Delivery.Status.COMPLAINED,
        (Delivery.Status.QUEUED, Delivery.Status.SENT, Delivery.Status.DELIVERED),
    ),
}
COMPLAINT_WORDING = (
    "Reported our message as spam to their e-mail provider; treated as a request to stop "
    "receiving these messages."
)


# --- Choosing the channel account ------------------------------------------------------------


def sending_channel(kind: str) -> Channel | None:
    """The enabled account that sends campaign messages of `kind` ("email", "sms"): the one
    named by ENGAGEMENT_SENDING_CHANNELS ({"email": "<slug>", ...}) if set and enabled,
    else the first enabled account of the preferred provider kinds."""
    kinds = SENDING_KINDS.get(kind)
    if not kinds:
        return None
    enabled = Channel.objects.filter(kind__in=kinds, enabled=True)
    named = (getattr(settings, "ENGAGEMENT_SENDING_CHANNELS", None) or {}).get(kind)
    if named:
        return enabled.filter(slug=named).first()
    accounts = list(enabled.order_by("pk"))
    return min(accounts, key=lambda account: kinds.index(account.kind), default=None)


# --- Content -------------------------------------------------------------------------------


@dataclass(frozen=True)
class MessageContent:
    subject: str
    body_text: str
    body_html: str
    headers: dict[str, str]


def message_links(
    *, citizen_id: int, channel: str, topic_id: int | None, campaign_id: int
) -> dict[str, str]:
    """The resident's own signed links for one campaign message."""
    preferences = preferences_url(citizen_id)
    return {
        "preferences_url": preferences,
        "unsubscribe_url": unsubscribe_url(
            UnsubscribeTarget(citizen_id, topic_id, channel, campaign_id)
        ),
        # Campaigns answer by reply or keyword; the link leads to the preference page, as
        # in the preview (engagement.campaigns.sample_links).
        "response_url": preferences,
    }


def _mentions_unsubscribe(text: str) -> bool:
    return "unsubscribe_url" in text


def email_content(campaign: Campaign, citizen: Citizen, links: dict[str, str]) -> MessageContent:
    """One resident's e-mail: personalised subject, text and HTML, the footer with the
    unsubscribe and preference links unless the officer placed them, and the one-click
    unsubscribe headers."""
    text_source = campaign.email_text or strip_tags(campaign.email_html)
    body_text = personalise(text_source, citizen=citizen, html=False, links=links)
    body_html = personalise(campaign.email_html, citizen=citizen, html=True, links=links)
    with override(citizen.preferred_language or "en"):
        unsubscribe_label = gettext("Unsubscribe")
        preferences_label = gettext("Choose what the council sends you")
    if not _mentions_unsubscribe(text_source):
        body_text = (
            f"{body_text.rstrip()}\n\n-- \n"
            f"{unsubscribe_label}: {links['unsubscribe_url']}\n"
            f"{preferences_label}: {links['preferences_url']}\n"
        )
    if body_html and not _mentions_unsubscribe(campaign.email_html):
        body_html = (
            f'{body_html}\n<p><a href="{escape(links["unsubscribe_url"])}">'
            f"{escape(unsubscribe_label)}</a> | "
            f'<a href="{escape(links["preferences_url"])}">{escape(preferences_label)}</a></p>'
        )
    return MessageContent(
        # No links in a subject line.
        subject=personalise(campaign.email_subject, citizen=citizen, html=False)[:300],
        body_text=body_text,
        body_html=body_html,
        headers={
            "List-Unsubscribe": f"<{links['unsubscribe_url']}>",
            "List-Unsubscribe-Post": ONE_CLICK,
        },
    )


def sms_content(campaign: Campaign, citizen: Citizen, links: dict[str, str]) -> MessageContent:
    # No automatic footer: a 150-character link would add a segment to every text; the
    # officer places {{ unsubscribe_url }} where wanted (the preview counts segments).
    body = personalise(campaign.sms_text, citizen=citizen, html=False, links=links)
    return MessageContent(subject="", body_text=body, body_html="", headers={})


_CONTENT = {ChannelKind.EMAIL: email_content, ChannelKind.SMS: sms_content}


# --- Queueing -----------------------------------------------------------------------------


def queue_deliveries(
    *, campaign: Campaign, batch_size: int = DEFAULT_BATCH_SIZE, max_batches: int | None = None
) -> int:
    """Turn the campaign's PENDING deliveries into queued outbound messages, `batch_size` at
    a time, each batch in its own transaction; sending starts as each batch commits.
    Returns how many were queued (deliveries that cannot be sent are marked FAILED with the
    reason and not counted). Only a campaign that is SENDING is queued; `max_batches` bounds
    one run (the task runs again for the rest)."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    if not str(getattr(settings, "SITE_URL", "")).startswith(("https://", "http://")):
        # Every message carries unsubscribe and preference links: relative ones would be
        # dead in every inbox. Nothing is taken; the deliveries wait, pending, for the fix.
        raise ImproperlyConfigured("SITE_URL must be the site's public address to send campaigns.")
    queued = 0
    batches = 0
    accounts = {kind: sending_channel(kind) for kind in _CONTENT}
    while max_batches is None or batches < max_batches:
        done, taken = _queue_batch(campaign.pk, accounts, batch_size)
        queued += done
        batches += 1
        if taken < batch_size:
            break
    transaction.on_commit(lambda: finish_campaigns_if_done([campaign.pk]))
    return queued


def _queue_batch(
    campaign_id: int, accounts: dict[str, Channel | None], batch_size: int
) -> tuple[int, int]:
    """One batch: (deliveries queued, deliveries taken)."""
    with transaction.atomic():
        campaign = Campaign.objects.filter(pk=campaign_id).first()
        if campaign is None or campaign.status != Campaign.Status.SENDING:
            return 0, 0
        deliveries = list(
            Delivery.objects.select_for_update(of=("self",), skip_locked=True)
            .filter(campaign_id=campaign_id, status=Delivery.Status.PENDING)
            .select_related("citizen", "contact_point")
            .order_by("pk")[:batch_size]
        )
        if not deliveries:
            return 0, 0
        topics = _unsubscribe_topics(campaign, deliveries)
        now = timezone.now()
        messages: list[OutboundMessage] = []
        queued: list[Delivery] = []
        for delivery in deliveries:
            message = _message_for(delivery, campaign, accounts, topics, now)
            if message is None:
                continue
            messages.append(message)
            queued.append(delivery)
        OutboundMessage.objects.bulk_create(messages)
        for delivery, message in zip(queued, messages, strict=True):
            delivery.status = Delivery.Status.QUEUED
            delivery.outbound = message
            delivery.to_value = message.to_value
        Delivery.objects.bulk_update(
            deliveries, ["status", "outbound", "to_value", "reason", "finished_at"]
        )
        by_channel: dict[int, list[int]] = {}
        for message in messages:
            by_channel.setdefault(message.channel_id, []).append(message.pk)
        transaction.on_commit(lambda: _enqueue_sending(by_channel.values()))
    return len(messages), len(deliveries)


def _fail(delivery: Delivery, reason: str, now: datetime.datetime) -> None:
    delivery.status = Delivery.Status.FAILED
    delivery.reason = reason[:300]
    delivery.finished_at = now


def _message_for(
    delivery: Delivery,
    campaign: Campaign,
    accounts: dict[str, Channel | None],
    topics: dict[tuple[int, str], int],
    now: datetime.datetime,
) -> OutboundMessage | None:
    """The outbound message for one delivery, or None after marking it FAILED with why."""
    build = _CONTENT.get(delivery.channel)
    if build is None:
        _fail(delivery, f"Campaigns cannot send on {delivery.channel} yet.", now)
        return None
    account = accounts.get(delivery.channel)
    if account is None:
        label = ChannelKind(delivery.channel).label.lower()
        _fail(delivery, f"No enabled {label} channel can send campaign messages.", now)
        return None
    point = delivery.contact_point
    if point is not None and (point.undeliverable_at or point.removed_at):
        _fail(delivery, "The address was removed or marked undeliverable before sending.", now)
        return None
    to_value = delivery.to_value or (point.normalised if point else "")
    if not to_value:
        _fail(delivery, "No address to send to.", now)
        return None
    links = message_links(
        citizen_id=delivery.citizen_id,
        channel=delivery.channel,
        topic_id=topics.get((delivery.citizen_id, delivery.channel)),
        campaign_id=campaign.pk,
    )
    content = build(campaign, delivery.citizen, links)
    if not content.body_text.strip():
        _fail(delivery, "The campaign has no content for this channel.", now)
        return None
    return OutboundMessage(
        channel=account,
        thread=None,
        citizen_id=delivery.citizen_id,
        to_value=to_value,
        subject=content.subject,
        body_text=content.body_text,
        body_html=content.body_html,
        headers=content.headers,
        message_id=(
            make_msgid(domain=settings.CHANNELS_MESSAGE_ID_DOMAIN)[1:-1]
            if delivery.channel == ChannelKind.EMAIL
            else ""
        ),
        created_by_id=campaign.created_by_id,
        created_at=now,
    )


def _unsubscribe_topics(
    campaign: Campaign, deliveries: Sequence[Delivery]
) -> dict[tuple[int, str], int]:
    """(citizen, channel) -> the campaign topic the resident is subscribed to there (the
    first, when several), for the unsubscribe link; absent when none (an essential
    message to everyone affected): the link then stops every non-essential message on the
    channel."""
    topic_ids = list(campaign.topics.values_list("pk", flat=True))
    if not topic_ids:
        return {}
    rows = (
        Subscription.objects.filter(
            topic_id__in=topic_ids,
            citizen_id__in={delivery.citizen_id for delivery in deliveries},
            status=Subscription.Status.ACTIVE,
        )
        .order_by("topic_id")
        .values_list("citizen_id", "channel", "topic_id")
    )
    found: dict[tuple[int, str], int] = {}
    for citizen_id, channel, topic_id in rows:
        found.setdefault((citizen_id, channel), topic_id)
    return found


def _enqueue_sending(batches: Iterable[list[int]]) -> None:
    from channels.tasks import send_outbound_batch

    for ids in batches:
        for start in range(0, len(ids), SEND_BATCH_SIZE):
            send_outbound_batch.delay(ids[start : start + SEND_BATCH_SIZE])


# --- Following the messages -----------------------------------------------------------------


def on_outbound_status_changed(
    sender: type, changes: list[OutboundStatusChange], **kwargs: object
) -> None:
    """Receiver of channels.signals.outbound_status_changed (connected in apps.py)."""
    follow_outbound_status(changes=changes)


def follow_outbound_status(*, changes: Sequence[OutboundStatusChange]) -> int:
    """Move the deliveries of these outbound messages along; returns how many moved.
    Messages that belong to no delivery (thread replies) cost one query and are ignored."""
    outbound_ids = [change.outbound_id for change in changes if change.outcome in _FOLLOW]
    if not outbound_ids:
        return 0
    deliveries = {
        row.outbound_id: row
        for row in Delivery.objects.filter(outbound_id__in=outbound_ids).only(
            "pk", "outbound_id", "campaign_id", "citizen_id", "channel", "status"
        )
    }
    moved = 0
    campaigns: set[int] = set()
    for change in changes:
        delivery = deliveries.get(change.outbound_id)
        if delivery is None or change.outcome not in _FOLLOW:
            continue
        if _follow(delivery, change):
            moved += 1
            campaigns.add(delivery.campaign_id)
    if campaigns:
        # After commit, so the last of several workers to commit sees every other one's.
        transaction.on_commit(lambda: finish_campaigns_if_done(sorted(campaigns)))
    return moved


def _follow(delivery: Delivery, change: OutboundStatusChange) -> bool:
    status, from_statuses = _FOLLOW[change.outcome]
    when = change.occurred_at or timezone.now()
    fields: dict[str, object] = {"status": status}
    if change.outcome == SENT:
        fields["sent_at"] = when
    else:
        fields["finished_at"] = when
    if change.outcome in (FAILED, BOUNCED, COMPLAINED) and change.detail:
        fields["reason"] = change.detail[:300]
    # Conditional: of two reports racing, one moves it; a repeat finds it moved already.
    if not Delivery.objects.filter(pk=delivery.pk, status__in=from_statuses).update(**fields):
        return False
    if change.outcome == COMPLAINED:
        _unsubscribe_complainer(delivery)
    return True


def _unsubscribe_complainer(delivery: Delivery) -> None:
    """A spam report is a request to stop: unsubscribe the resident from the campaign's
    topics on that channel (or, for a campaign without topics, from every non-essential
    message there). Failing must not lose the receipt that brought it: logged, and the
    delivery's reason says so for staff."""
    from engagement import subscriptions

    campaign = Campaign.objects.get(pk=delivery.campaign_id)
    topics = list(campaign.topics.all()) or [None]
    try:
        with transaction.atomic():
            citizen = Citizen.objects.get(pk=delivery.citizen_id)
            for topic in topics:
                subscriptions.unsubscribe(
                    citizen=citizen,
                    channel=delivery.channel,
                    topic=topic,
                    source=ConsentRecord.Source.API,
                    wording=COMPLAINT_WORDING,
                    actor_label="spam complaint (provider report)",
                )
    except Exception:
        logger.exception("delivery %s: unsubscribing after a spam complaint failed", delivery.pk)
        Delivery.objects.filter(pk=delivery.pk).update(
            reason="Marked as spam; unsubscribing failed, unsubscribe the resident by hand."
        )


def finish_campaigns_if_done(campaign_ids: Iterable[int]) -> list[int]:
    """Campaigns SENDING with nothing left pending, held or queued become SENT."""
    finished = []
    for campaign_id in campaign_ids:
        if Delivery.objects.filter(campaign_id=campaign_id, status__in=UNFINISHED).exists():
            continue
        if Campaign.objects.filter(pk=campaign_id, status=Campaign.Status.SENDING).update(
            status=Campaign.Status.SENT, finished_at=timezone.now()
        ):
            finished.append(campaign_id)
            logger.info("campaign %s: every delivery handed over; sent", campaign_id)
    return finished
