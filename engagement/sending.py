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
- Just before a batch's messages are built, its deliveries are checked again, set-based
  (one statement per batch): residents change their minds between the fan-out and the send
  (a text held overnight, the last batches of a big campaign). A non-essential delivery is
  SUPPRESSED, with the reason, when the profile was erased or merged away, the resident no
  longer has an ACTIVE subscription to one of the campaign's topics on the channel, the
  ledger's latest line for it is a withdrawal (promotional: is not "given"), they asked not
  to be contacted, or they now have an open case a sensitive-case hold names; it is HELD
  while quiet hours are in force on its channel (release_held_deliveries lets it go later).
  An essential delivery is only checked for a live profile and a deliverable address.
  Frequency caps are the fan-out's alone (counted again now, they would count this very
  campaign's later batches against it). Messages already handed to the outbound queue are
  not recalled; `suppress_unsent_deliveries` is how unsubscribing and erasure stop the
  rest at once.
- Content is the campaign's single language (campaigns have one version of each text for
  now); only the footer and the "resident" greeting fallback follow the resident's
  preferred language.
- `follow_outbound_status` is connected to channels' `outbound_status_changed` (apps.py):
  the delivery of a message moves forward, never back, once per change. A spam complaint
  also unsubscribes the resident from the campaign's topics on that channel
  (engagement.subscriptions.unsubscribe). When nothing of a campaign is left to send, the
  campaign is SENT.
"""

# Statements are built from fixed SQL and table names from the models; every value is a
# bound parameter (rules.SqlParams), so nothing a user typed is formatted into SQL.
# ruff: noqa: S608

from __future__ import annotations

import datetime
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.mail import make_msgid
from django.db import connection, transaction
from django.db.models import Exists, OuterRef
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
from engagement.models import (
    Campaign,
    ConsentRecord,
    ContactRule,
    Delivery,
    MessageClass,
    Subscription,
    Topic,
)
from engagement.personalise import personalise
from engagement.rules import (
    DO_NOT_CONTACT_REASON,
    SqlParams,
    consent_allows_sql,
    enabled_rules,
    quiet_hours_in_force,
    quiet_hours_reason,
    quote,
    rules_sql,
    subquery_fence,
)
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
# Why a delivery written at the fan-out was not sent after all (staff read these on the
# citizen 360 and in the campaign's analytics).
NOT_LIVE_REASON = "The profile was erased or merged before sending"
UNSUBSCRIBED_REASON = "Unsubscribed before sending"
CONSENT_WITHDRAWN_REASON = "Consent withdrawn before sending"
# Deliveries not yet handed to the outbound queue, which a change of mind can still stop.
UNSENT = (Delivery.Status.PENDING, Delivery.Status.HELD)
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
    *,
    campaign: Campaign,
    batch_size: int = DEFAULT_BATCH_SIZE,
    max_batches: int | None = None,
    now: datetime.datetime | None = None,
) -> int:
    """Turn the campaign's PENDING deliveries into queued outbound messages, `batch_size` at
    a time, each batch in its own transaction; sending starts as each batch commits.
    Returns how many were queued. Each batch is checked again first (module docstring):
    deliveries that may no longer go are SUPPRESSED or HELD with the reason, those that
    cannot be sent are FAILED with it; none of these is counted. Only a campaign that is
    SENDING is queued; `max_batches` bounds one run (the task runs again for the rest).
    `now` (tests) fixes the clock the quiet hours are read against."""
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
        done, taken = _queue_batch(campaign.pk, accounts, batch_size, now or timezone.now())
        queued += done
        batches += 1
        if taken < batch_size:
            break
    transaction.on_commit(lambda: finish_campaigns_if_done([campaign.pk]))
    return queued


def _queue_batch(
    campaign_id: int,
    accounts: dict[str, Channel | None],
    batch_size: int,
    now: datetime.datetime,
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
        cleared = _check_again(campaign, deliveries, now)
        topics = _unsubscribe_topics(campaign, cleared)
        messages: list[OutboundMessage] = []
        queued: list[Delivery] = []
        for delivery in cleared:
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
            deliveries, ["status", "outbound", "to_value", "rule", "reason", "finished_at"]
        )
        by_channel: dict[int, list[int]] = {}
        for message in messages:
            by_channel.setdefault(message.channel_id, []).append(message.pk)
        transaction.on_commit(lambda: _enqueue_sending(by_channel.values()))
    return len(messages), len(deliveries)


# --- Checking again at sending time -----------------------------------------------------------


@dataclass(frozen=True)
class _SendTimeState:
    """What the database says now about one delivery of a non-essential campaign."""

    subscribed: bool
    consenting: bool
    hold_rule_id: int | None
    hold_reason: str


def _withhold(
    delivery: Delivery,
    status: str,
    reason: str,
    now: datetime.datetime,
    rule_id: int | None = None,
) -> None:
    delivery.status = status
    delivery.rule_id = rule_id
    delivery.reason = reason[:300]
    # A held delivery is not finished: it goes once the quiet hours end.
    delivery.finished_at = now if status == Delivery.Status.SUPPRESSED else None


def _check_again(
    campaign: Campaign, deliveries: Sequence[Delivery], now: datetime.datetime
) -> list[Delivery]:
    """The deliveries of the batch that may still go now; the others are SUPPRESSED or
    HELD (in memory: the batch's bulk_update writes them). The first reason that applies
    is recorded, as the fan-out does: the profile, the subscription, the ledger,
    do-not-contact, sensitive-case holds, then quiet hours."""
    essential = campaign.message_class == MessageClass.ESSENTIAL
    if essential:
        states: dict[int, _SendTimeState] = {}
        rules: list[ContactRule] = []
    else:
        rules = enabled_rules()
        states = _send_time_states(campaign, deliveries, rules, now)
    quiet: dict[str, ContactRule | None] = {}
    cleared = []
    for delivery in deliveries:
        if not delivery.citizen.is_live:
            _withhold(delivery, Delivery.Status.SUPPRESSED, NOT_LIVE_REASON, now)
            continue
        if essential:
            cleared.append(delivery)
            continue
        state = states[delivery.pk]
        if not state.subscribed:
            _withhold(delivery, Delivery.Status.SUPPRESSED, UNSUBSCRIBED_REASON, now)
        elif not state.consenting:
            _withhold(delivery, Delivery.Status.SUPPRESSED, CONSENT_WITHDRAWN_REASON, now)
        elif delivery.citizen.do_not_contact:
            _withhold(delivery, Delivery.Status.SUPPRESSED, DO_NOT_CONTACT_REASON, now)
        elif state.hold_rule_id is not None:
            _withhold(
                delivery,
                Delivery.Status.SUPPRESSED,
                state.hold_reason,
                now,
                rule_id=state.hold_rule_id,
            )
        else:
            if delivery.channel not in quiet:
                quiet[delivery.channel] = quiet_hours_in_force(now, delivery.channel, rules=rules)
            rule = quiet[delivery.channel]
            if rule is not None:
                _withhold(
                    delivery, Delivery.Status.HELD, quiet_hours_reason(rule), now, rule_id=rule.pk
                )
            else:
                cleared.append(delivery)
    return cleared


def _send_time_states(
    campaign: Campaign,
    deliveries: Sequence[Delivery],
    rules: Sequence[ContactRule],
    now: datetime.datetime,
) -> dict[int, _SendTimeState]:
    """Subscription, consent and sensitive-case holds for the whole batch in one statement,
    with the fan-out's predicates: an ACTIVE subscription to one of the campaign's topics
    on the delivery's channel; one such whose topic's latest ledger line allows the message
    class; the first sensitive-case hold that matches, with its reason."""
    params = SqlParams()
    campaign_topics = (
        f"SELECT ct.topic_id FROM {quote(Campaign.topics.through)} ct"
        f" WHERE ct.campaign_id = {params.add(campaign.pk)}"
    )
    subscribed = (
        "s.citizen_id = d.citizen_id AND s.channel = d.channel"
        f" AND s.status = {params.add(Subscription.Status.ACTIVE)}"
        f" AND s.topic_id IN ({campaign_topics})"
    )
    consent = consent_allows_sql(
        campaign.message_class,
        citizen="s.citizen_id",
        purpose="t.slug",
        channel="s.channel",
        params=params,
    )
    holds = rules_sql(
        rules=[rule for rule in rules if rule.kind == ContactRule.Kind.SENSITIVE_CASE_HOLD],
        campaign_id=campaign.pk,
        now=now,
        params=params,
    )
    if holds.verdicts:
        hold_rule = " ".join(
            f"WHEN {condition} THEN {params.add(rule_id)}"
            for condition, _status, rule_id, _reason in holds.verdicts
        )
        hold_reason = " ".join(
            f"WHEN {condition} THEN {reason}"
            for condition, _status, _rule_id, reason in holds.verdicts
        )
        hold = f"CASE {hold_rule} ELSE NULL END, CASE {hold_reason} ELSE '' END"
    else:
        hold = "NULL, ''"
    columns = "".join(f", {column}" for column in holds.columns)
    ids = params.in_list([delivery.pk for delivery in deliveries])
    statement = (
        f"SELECT w.id, w.subscribed, w.consenting, {hold}"
        # The rules' columns read alias a, their conditions alias w (as in the fan-out).
        f" FROM (SELECT a.*{columns} FROM ("
        "SELECT d.id AS id, d.citizen_id AS citizen_id, d.channel AS channel,"
        f" EXISTS (SELECT 1 FROM {quote(Subscription)} s WHERE {subscribed}) AS subscribed,"
        f" EXISTS (SELECT 1 FROM {quote(Subscription)} s"
        f" JOIN {quote(Topic)} t ON t.id = s.topic_id"
        f" WHERE {subscribed} AND {consent}) AS consenting"
        f" FROM {quote(Delivery)} d WHERE d.id IN ({ids})"
        f") a {subquery_fence()}) w"
    )
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return {
            delivery_id: _SendTimeState(bool(subscribed_now), bool(consenting), rule_id, reason)
            for delivery_id, subscribed_now, consenting, rule_id, reason in cursor.fetchall()
        }


def suppress_unsent_deliveries(
    *,
    citizen_id: int,
    channel: str,
    topic_ids: Iterable[int] | None = None,
    reason: str,
) -> int:
    """Stop the resident's not-yet-queued (PENDING or HELD) deliveries of non-essential
    campaigns on `channel`, now: they become SUPPRESSED with `reason`. One UPDATE; returns
    how many. With `topic_ids` (an unsubscribe from some topics), only campaigns about one
    of those topics, and only where the resident has no ACTIVE subscription left on the
    channel to another of the campaign's topics: call it after the subscriptions changed,
    in the same transaction. Without (erasure, "stop everything on this channel"), every
    non-essential campaign. Deliveries already queued are the outbound queue's; sending
    checks every batch again anyway, so this is the prompt path, not the only one."""
    unsent = Delivery.objects.filter(
        citizen_id=citizen_id,
        channel=channel,
        status__in=UNSENT,
        # Subqueries, not joins, so the UPDATE is a single-table statement whose WHERE
        # PostgreSQL checks again on a row a concurrent batch has just queued.
        campaign_id__in=Campaign.objects.exclude(message_class=MessageClass.ESSENTIAL).values("pk"),
    )
    if topic_ids is not None:
        topic_ids = list(topic_ids)
        if not topic_ids:
            return 0
        campaign_topics = Campaign.topics.through.objects
        about_those_topics = campaign_topics.filter(
            campaign_id=OuterRef("campaign_id"), topic_id__in=topic_ids
        )
        still_subscribed = Subscription.objects.filter(
            citizen_id=citizen_id,
            channel=channel,
            status=Subscription.Status.ACTIVE,
            topic_id__in=campaign_topics.filter(
                campaign_id=OuterRef(OuterRef("campaign_id"))
            ).values("topic_id"),
        )
        unsent = unsent.filter(Exists(about_those_topics)).exclude(Exists(still_subscribed))
    return unsent.update(
        status=Delivery.Status.SUPPRESSED,
        rule=None,
        reason=reason[:300],
        finished_at=timezone.now(),
    )


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
    unfinished = Delivery.objects.filter(campaign_id=OuterRef("pk"), status__in=UNFINISHED)
    for campaign_id in campaign_ids:
        # One statement: the check and the change see the same deliveries.
        if (
            Campaign.objects.filter(pk=campaign_id, status=Campaign.Status.SENDING)
            .exclude(Exists(unfinished))
            .update(status=Campaign.Status.SENT, finished_at=timezone.now())
        ):
            finished.append(campaign_id)
            logger.info("campaign %s: every delivery handed over; sent", campaign_id)
    return finished


def campaigns_with_pending_deliveries(
    *, created_before: datetime.datetime | None = None, campaign_id: int | None = None
) -> list[int]:
    """SENDING campaigns with PENDING deliveries (written before `created_before`, when
    given): those the send task has still to queue. One query."""
    pending = Delivery.objects.filter(campaign_id=OuterRef("pk"), status=Delivery.Status.PENDING)
    if created_before is not None:
        pending = pending.filter(created_at__lt=created_before)
    sending = Campaign.objects.filter(status=Campaign.Status.SENDING).filter(Exists(pending))
    if campaign_id is not None:
        sending = sending.filter(pk=campaign_id)
    return list(sending.order_by("pk").values_list("pk", flat=True))
