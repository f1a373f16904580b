"""Topic subscriptions with double opt-in, and the consent ledger lines they write.

The life of a subscription (one per citizen, topic and channel):

- `subscribe` makes it PENDING (new, lapsed or unsubscribed before) and sends a confirmation
  link to the address it will use; nothing is ever sent to a pending subscription and no
  consent exists yet, so the ledger is not written.
- `confirm_subscription` (the resident followed the link and pressed the button) makes it
  ACTIVE and appends consent GIVEN to the ledger, with the topic's wording and version, the
  purpose being the topic's slug. Confirming twice is a no-op; a link older than the
  current request (the resident unsubscribed, or asked again, after it was sent) never
  confirms anything.
- `unsubscribe` (some topics, or every topic of a channel) makes it UNSUBSCRIBED, appends
  consent WITHDRAWN wherever the ledger's current state is GIVEN, so withdrawing is one
  step, and suppresses campaign messages of those topics not sent yet. Unsubscribing again
  changes nothing and writes nothing.
- `expire_pending_subscriptions` (periodic) lets unconfirmed requests lapse: back to
  UNSUBSCRIBED, with `unsubscribed_at` left as it was (a lapse is not an opt-out).

So a subscription is ACTIVE exactly when the ledger's latest line for (topic slug, channel)
is GIVEN; campaign audiences read ACTIVE subscriptions (`active_subscriptions`). Where a
withdrawal reached the ledger another way (the API) and left the row ACTIVE, the ledger
wins: the preference pages show it as not subscribed, and subscribing is a new request.

A merge keeps one subscription per topic and channel (`reconcile_subscriptions_on_merge`):
the merged one is active only if neither profile's opt-out is still in force, the same
rule as the ledger's (engagement.services.reconcile_consents_on_merge); a merged request
still waiting is a fresh one, so no link sent before the merge confirms it.
"""

from __future__ import annotations

import datetime
import logging
import smtplib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.db.models import Q, QuerySet
from django.template.loader import render_to_string
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from citizenhub.errors import ApplicationError
from citizenhub.models import (
    AuditEvent,
    ChannelKind,
    Citizen,
    CitizenMerge,
    ContactPoint,
    TimelineEntry,
)
from citizenhub.services.audit import audit_record
from citizenhub.services.identity import follow_merges
from citizenhub.services.timeline import record_timeline_entry
from engagement import tokens
from engagement.models import ConsentRecord, Subscription, Topic
from engagement.services import current_consents, record_consent

logger = logging.getLogger(__name__)

Actor = AbstractBaseUser | AnonymousUser | None

# The channels a resident can subscribe on, and the kind of contact point each sends to.
SUBSCRIBABLE_CHANNELS: tuple[str, ...] = (ChannelKind.EMAIL, ChannelKind.SMS)
_CONTACT_KIND = {
    ChannelKind.EMAIL: ContactPoint.Kind.EMAIL,
    ChannelKind.SMS: ContactPoint.Kind.PHONE,
}
_PROVEN = (ContactPoint.VerificationLevel.CONFIRMED, ContactPoint.VerificationLevel.STAFF_CHECKED)
# Asking again for a pending subscription re-sends its link only after this long, so a
# form posted over and over does not flood the resident's inbox.
RESEND_AFTER = datetime.timedelta(minutes=15)
# Changes made on the resident's behalf are audited; their own choices are in the ledger.
_AUDITED_SOURCES = {
    ConsentRecord.Source.STAFF,
    ConsentRecord.Source.API,
    ConsentRecord.Source.IMPORT,
}
CONFIRMED_BY_LINK = "resident (confirmed by the link sent to them)"


def confirmation_max_age() -> datetime.timedelta:
    return datetime.timedelta(seconds=settings.ENGAGEMENT_CONFIRMATION_MAX_AGE)


def channel_label(channel: str) -> str:
    return str(ChannelKind(channel).label) if channel in ChannelKind.values else channel


# --- Reading ---------------------------------------------------------------------------------


def _addresses(citizen: Citizen, channel: str) -> QuerySet[ContactPoint]:
    points = ContactPoint.objects.filter(
        citizen=citizen,
        kind=_CONTACT_KIND[channel],
        removed_at__isnull=True,
        undeliverable_at__isnull=True,
    )
    if channel == ChannelKind.SMS:
        # A typed number proves nothing: texts go only to a number confirmed by a code.
        points = points.filter(verification_level__in=_PROVEN)
    return points.order_by("-is_primary", "pk")


def subscription_address(citizen: Citizen, channel: str) -> ContactPoint | None:
    """Where messages of `channel` reach the citizen: a live, deliverable e-mail address, or
    a confirmed mobile number; None when there is none."""
    if channel not in _CONTACT_KIND:
        return None
    return _addresses(citizen, channel).first()


def subscribable_channels(citizen: Citizen) -> list[str]:
    """The channels the citizen can subscribe on now (one query)."""
    kinds = set(
        ContactPoint.objects.filter(
            citizen=citizen, removed_at__isnull=True, undeliverable_at__isnull=True
        )
        .filter(
            Q(kind=ContactPoint.Kind.EMAIL)
            | Q(kind=ContactPoint.Kind.PHONE, verification_level__in=_PROVEN)
        )
        .values_list("kind", flat=True)
    )
    return [channel for channel in SUBSCRIBABLE_CHANNELS if _CONTACT_KIND[channel] in kinds]


def is_waiting(subscription: Subscription, now: datetime.datetime | None = None) -> bool:
    """Pending and its link still good."""
    now = now or timezone.now()
    return subscription.status == Subscription.Status.PENDING and (
        subscription.confirm_by is None or subscription.confirm_by > now
    )


def active_subscriptions(*, topic_ids: list[int], channel: str) -> QuerySet[Subscription]:
    """Who may hear about these topics on `channel`: confirmed subscriptions of live profiles
    to active topics. Pending and unsubscribed ones are never part of an audience."""
    return Subscription.objects.filter(
        topic_id__in=topic_ids,
        channel=channel,
        status=Subscription.Status.ACTIVE,
        topic__is_active=True,
        citizen__status__in=(Citizen.Status.ACTIVE, Citizen.Status.PROVISIONAL),
    )


def consenting_q(*, topic_ids: list[int], channel: str, prefix: str = "") -> Q:
    """A filter on Citizen (or on a model reaching it through `prefix`, e.g. "citizen__")
    for the confirmed subscribers of any of the topics on `channel`. Use it inside
    Exists()/subqueries or with .distinct(): a citizen subscribed to two topics matches
    twice in a plain join."""
    return Q(
        **{
            f"{prefix}subscriptions__topic_id__in": topic_ids,
            f"{prefix}subscriptions__channel": channel,
            f"{prefix}subscriptions__status": Subscription.Status.ACTIVE,
        }
    )


# --- Choices on the preference pages ---------------------------------------------------------


@dataclass
class TopicChoice:
    """One topic on the preference pages with its state per channel offered."""

    topic: Topic
    title: str
    states: dict[str, str] = field(default_factory=dict)  # channel -> subscribed|waiting|none
    # An internal topic the resident is subscribed to: they may leave it, not join it on
    # another channel.
    leave_only: bool = False


@dataclass
class PreferenceChoices:
    channels: list[str]
    groups: list[tuple[str, list[TopicChoice]]]  # (Topic.Kind, topics): service, ward, theme

    @property
    def topics(self) -> list[TopicChoice]:
        return [choice for _label, choices in self.groups for choice in choices]

    def value(self, choice: TopicChoice, channel: str) -> str:
        return f"{choice.topic.slug}:{channel}"

    def offered(self) -> dict[str, tuple[Topic, str]]:
        return {
            self.value(choice, channel): (choice.topic, channel)
            for choice in self.topics
            for channel in self.channels
        }

    def chosen_now(self) -> set[str]:
        return {
            self.value(choice, channel)
            for choice in self.topics
            for channel, state in choice.states.items()
            if state in ("subscribed", "waiting")
        }


def topic_title(topic: Topic) -> str:
    from engagement.purposes import purpose_title

    title = purpose_title(topic.slug)
    return str(title) if title else topic.name


KIND_ORDER = (Topic.Kind.SERVICE, Topic.Kind.WARD, Topic.Kind.THEME)


def preference_choices(citizen: Citizen) -> PreferenceChoices:
    """The public topics, grouped by kind, with the citizen's state on each channel they can
    receive on (four queries whatever the number of topics). Internal topics (for
    staff-built audiences) appear only to a resident subscribed to them, so that they can
    leave; they are never offered to anyone else (`TopicChoice.leave_only`)."""
    now = timezone.now()
    channels = subscribable_channels(citizen)
    subscriptions = {
        (sub.topic_id, sub.channel): sub
        for sub in Subscription.objects.filter(citizen=citizen).only(
            "topic_id", "channel", "status", "confirm_by", "unsubscribed_at"
        )
    }
    ledger = {key: record.action for key, record in current_consents(citizen).items()}
    # Consent given before topics existed (the ledger only): shown as subscribed, so the
    # resident can withdraw it here.
    given = {key for key, action in ledger.items() if action == ConsentRecord.Action.GIVEN}
    withdrawn = {key for key, action in ledger.items() if action == ConsentRecord.Action.WITHDRAWN}
    theirs = [
        topic_id
        for (topic_id, _channel), sub in subscriptions.items()
        if sub.status == Subscription.Status.ACTIVE or is_waiting(sub, now)
    ]
    by_kind: dict[str, list[TopicChoice]] = {kind: [] for kind in KIND_ORDER}
    for topic in Topic.objects.filter(
        Q(is_public=True) | Q(pk__in=theirs) | Q(slug__in={slug for slug, _ch in given}),
        is_active=True,
    ).order_by("name", "pk"):
        choice = TopicChoice(topic=topic, title=topic_title(topic), leave_only=not topic.is_public)
        for channel in channels:
            sub = subscriptions.get((topic.pk, channel))
            if (
                sub is not None
                and sub.status == Subscription.Status.ACTIVE
                and (topic.slug, channel) in withdrawn
            ):
                # Withdrawn in the ledger since (through the API, say): no consent, so not
                # subscribed, whatever the row still says; ticking again asks to confirm.
                state = "none"
            elif sub is not None and sub.status == Subscription.Status.ACTIVE:
                state = "subscribed"
            elif sub is not None and is_waiting(sub, now):
                state = "waiting"
            elif (sub is None or sub.unsubscribed_at is None) and (topic.slug, channel) in given:
                state = "subscribed"
            else:
                state = "none"
            choice.states[channel] = state
        by_kind.setdefault(topic.kind, []).append(choice)
    groups = [(kind, by_kind[kind]) for kind in by_kind if by_kind[kind]]
    return PreferenceChoices(channels=channels, groups=groups)


@dataclass(frozen=True)
class PreferenceChanges:
    subscribed: list[Subscription]
    unsubscribed: list[Subscription]
    withdrawn: list[ConsentRecord]

    @property
    def changed(self) -> bool:
        return bool(self.subscribed or self.unsubscribed or self.withdrawn)


def apply_preference_choices(
    *,
    citizen: Citizen,
    choices: PreferenceChoices,
    chosen: set[str],
    source: str,
    actor: Actor = None,
    ip_address: str | None = None,
) -> PreferenceChanges:
    """The preference pages' one submit: subscribe where a box was ticked, unsubscribe where
    one was unticked, and nothing where nothing changed. `chosen` holds values from
    `choices.offered()` (the form checks that)."""
    before = choices.chosen_now()
    offered = choices.offered()
    subscribed, unsubscribed, withdrawn = [], [], []
    with transaction.atomic():
        for value, (topic, channel) in offered.items():
            if value in chosen and value not in before and not topic.is_public:
                raise ApplicationError(
                    _(
                        "You can leave %(topic)s, but the council does not offer it to new "
                        "subscribers."
                    )
                    % {"topic": topic_title(topic)},
                    code="topic_not_offered",
                )
            if value in chosen and value not in before:
                subscribed.append(
                    subscribe(
                        citizen=citizen,
                        topic=topic,
                        channel=channel,
                        source=source,
                        actor=actor,
                        ip_address=ip_address,
                    )
                )
            elif value not in chosen and value in before:
                result = unsubscribe(
                    citizen=citizen,
                    topic=topic,
                    channel=channel,
                    source=source,
                    actor=actor,
                    ip_address=ip_address,
                )
                unsubscribed.extend(result.subscriptions)
                withdrawn.extend(result.withdrawn)
    return PreferenceChanges(subscribed, unsubscribed, withdrawn)


# --- Writing ---------------------------------------------------------------------------------


def _check_channel(channel: str) -> None:
    if channel not in SUBSCRIBABLE_CHANNELS:
        raise ValidationError({"channel": f"{channel!r} is not a channel residents subscribe on."})


def _live(citizen: Citizen) -> Citizen:
    citizen = follow_merges(citizen)
    if not citizen.is_live:
        raise ApplicationError(
            "Subscriptions cannot be changed for an erased profile.", code="erased"
        )
    return citizen


def _lock(citizen: Citizen) -> None:
    # One writer per resident: two quick submits cannot both create a subscription.
    Citizen.objects.select_for_update().filter(pk=citizen.pk).first()


def _timeline(citizen: Citizen, summary: str, channel: str, *, kind: str = "subscription") -> None:
    record_timeline_entry(
        citizen=citizen,
        kind=kind,
        summary=summary,
        channel=channel,
        department="Engagement",
        visibility=TimelineEntry.Visibility.RESIDENT,
    )


def _audit(subscription: Subscription, *, source: str, actor: Actor, reason: str) -> None:
    if source in _AUDITED_SOURCES:
        audit_record(
            action=AuditEvent.Action.UPDATE,
            target=subscription,
            actor=actor,
            citizen=subscription.citizen,
            reason=reason,
            details={
                "topic": subscription.topic.slug,
                "channel": subscription.channel,
                "status": subscription.status,
            },
        )


def subscribe(
    *,
    citizen: Citizen,
    topic: Topic,
    channel: str,
    source: str,
    actor: Actor = None,
    ip_address: str | None = None,
) -> Subscription:
    """Ask to hear about `topic` on `channel`: the subscription waits (PENDING) for the
    resident to confirm by the link sent to them, which works for
    ENGAGEMENT_CONFIRMATION_MAX_AGE. Already subscribed: unchanged. Already waiting: the
    link is sent again (at most every RESEND_AFTER). No consent is recorded until the
    resident confirms. `ip_address` is accepted for the API's symmetry; the ledger takes
    the address of the confirmation."""
    _check_channel(channel)
    if source not in ConsentRecord.Source.values:
        raise ValidationError({"source": f"{source!r} is not a source."})
    citizen = _live(citizen)
    if not topic.is_active:
        raise ApplicationError(_("This topic is closed."), code="topic_closed")
    if subscription_address(citizen, channel) is None:
        raise ApplicationError(
            _("There is no email address or confirmed mobile number to send this to."),
            code="no_address",
        )
    now = timezone.now()
    with transaction.atomic():
        _lock(citizen)
        subscription = (
            Subscription.objects.select_for_update()
            .filter(citizen=citizen, topic=topic, channel=channel)
            .first()
        )
        if (
            subscription is not None
            and subscription.status == Subscription.Status.ACTIVE
            and not _withdrawn_in_ledger(citizen, topic, channel)
        ):
            return subscription
        if subscription is not None and is_waiting(subscription, now):
            # confirm_by is set each time the link is sent.
            last_sent = (
                subscription.confirm_by - confirmation_max_age()
                if subscription.confirm_by
                else subscription.requested_at
            )
            if last_sent > now - RESEND_AFTER:
                return subscription
            subscription.confirm_by = now + confirmation_max_age()
            subscription.save(update_fields=["confirm_by"])
        else:
            # New, lapsed or unsubscribed: a new request, whose link is the only one that
            # confirms it (older links predate requested_at).
            subscription = subscription or Subscription(
                citizen=citizen, topic=topic, channel=channel
            )
            subscription.status = Subscription.Status.PENDING
            subscription.requested_at = now
            subscription.confirm_by = now + confirmation_max_age()
            subscription.source = source
            subscription.save()
            _timeline(
                citizen,
                f"Asked to subscribe to {topic.name} by {channel_label(channel)}; "
                "waiting for confirmation",
                channel,
            )
            _audit(subscription, source=source, actor=actor, reason="Subscription requested")
        transaction.on_commit(lambda: _enqueue_confirmation(subscription.pk))
    return subscription


def _withdrawn_in_ledger(citizen: Citizen, topic: Topic, channel: str) -> bool:
    """The ledger's latest line for the topic and channel is a withdrawal (recorded through
    the API, say, with the subscription left active): subscribing is a new request, which
    the resident confirms again."""
    latest = (
        ConsentRecord.objects.filter(citizen=citizen, purpose=topic.slug, channel=channel)
        .order_by("-occurred_at", "-id")
        .values_list("action", flat=True)
        .first()
    )
    return latest == ConsentRecord.Action.WITHDRAWN


def _enqueue_confirmation(subscription_id: int) -> None:
    from engagement.subscription_tasks import send_subscription_confirmation_task

    send_subscription_confirmation_task.delay(subscription_id)


_CONFIRMATION_PROBLEMS = {
    "not_found": "There is no such subscription.",
    "superseded": "This link was replaced or withdrawn.",
    "expired": "The time to confirm has passed.",
    "topic_closed": "This topic is closed.",
}


def confirmation_problem(
    subscription: Subscription | None,
    *,
    link_issued_at: datetime.datetime | None,
    now: datetime.datetime | None = None,
) -> str | None:
    """Why a link cannot confirm this (pending or unsubscribed) subscription, as a code of
    _CONFIRMATION_PROBLEMS, or None when it can."""
    now = now or timezone.now()
    if subscription is None or not subscription.citizen.is_live:
        return "not_found"
    if subscription.status != Subscription.Status.PENDING or (
        link_issued_at is not None
        # Signed timestamps are whole seconds. A link older than the current request, or
        # than the latest unsubscribe (a merge can bring an older request together with a
        # later opt-out), is not the resident's latest word.
        and (
            link_issued_at < subscription.requested_at.replace(microsecond=0)
            or (
                subscription.unsubscribed_at is not None
                and link_issued_at < subscription.unsubscribed_at.replace(microsecond=0)
            )
        )
    ):
        return "superseded"
    if subscription.confirm_by is not None and subscription.confirm_by <= now:
        return "expired"
    if not subscription.topic.is_active:
        return "topic_closed"
    return None


def confirm_subscription(
    *,
    subscription_id: int,
    link_issued_at: datetime.datetime | None = None,
    ip_address: str | None = None,
    actor: Actor = None,
) -> tuple[Subscription, bool]:
    """The resident confirmed by the link: PENDING becomes ACTIVE and consent GIVEN is
    appended to the ledger. Returns (subscription, confirmed_now); confirming an active one
    again is a no-op (False).

    Refused (ApplicationError) when: there is no such subscription ("not_found"); it is
    unsubscribed or lapsed, or the link was issued before the current request
    (`link_issued_at` < requested_at: the resident unsubscribed or asked again since;
    "superseded"); its time to confirm has passed ("expired"); the topic is closed."""
    now = timezone.now()
    with transaction.atomic():
        subscription = (
            Subscription.objects.select_for_update(of=("self",))
            .select_related("topic", "citizen")
            .filter(pk=subscription_id)
            .first()
        )
        if subscription is not None and subscription.status == Subscription.Status.ACTIVE:
            return subscription, False
        problem = confirmation_problem(subscription, link_issued_at=link_issued_at, now=now)
        if problem is not None:
            raise ApplicationError(_CONFIRMATION_PROBLEMS[problem], code=problem)
        subscription.status = Subscription.Status.ACTIVE
        subscription.confirmed_at = now
        subscription.save(update_fields=["status", "confirmed_at"])
        topic = subscription.topic
        record_consent(
            citizen=subscription.citizen,
            purpose=topic.slug,
            channel=subscription.channel,
            action=ConsentRecord.Action.GIVEN,
            wording=topic.consent_wording,
            wording_version=topic.consent_wording_version,
            source=subscription.source,
            actor=actor,
            actor_label=CONFIRMED_BY_LINK,
            ip_address=ip_address,
            occurred_at=now,
        )
        _timeline(
            subscription.citizen,
            f"Subscribed to {topic.name} by {channel_label(subscription.channel)}",
            subscription.channel,
        )
    return subscription, True


@dataclass(frozen=True)
class UnsubscribeResult:
    subscriptions: list[Subscription]
    withdrawn: list[ConsentRecord]

    @property
    def changed(self) -> bool:
        return bool(self.subscriptions or self.withdrawn)


def unsubscribe(
    *,
    citizen: Citizen,
    channel: str,
    source: str,
    topic: Topic | None = None,
    topics: Sequence[Topic] = (),
    actor: Actor = None,
    ip_address: str | None = None,
    wording: str = "",
    actor_label: str = "resident",
) -> UnsubscribeResult:
    """Stop `topic` and `topics` (or, with neither, every non-essential message) on
    `channel`: active and pending subscriptions become UNSUBSCRIBED, consent still given in
    the ledger for them is withdrawn, with `wording` (what the resident was shown; a default
    saying how it was done otherwise), and campaign messages of those topics not sent yet
    are suppressed. Idempotent: nothing left to stop writes nothing.
    Essential service messages are not subscriptions and still reach the resident."""
    if channel not in ChannelKind.values:
        raise ValidationError({"channel": f"{channel!r} is not a channel."})
    citizen = _live(citizen)
    leaving = list({t.pk: t for t in [*([topic] if topic else []), *topics]}.values())
    slugs = {t.slug for t in leaving}
    now = timezone.now()
    with transaction.atomic():
        _lock(citizen)
        subscriptions = (
            Subscription.objects.select_for_update(of=("self",))
            .select_related("topic")
            .filter(
                citizen=citizen,
                channel=channel,
                status__in=(Subscription.Status.PENDING, Subscription.Status.ACTIVE),
            )
            .order_by("pk")
        )
        if leaving:
            subscriptions = subscriptions.filter(topic__in=leaving)
        subscriptions = list(subscriptions)
        given = [
            record
            for (purpose, record_channel), record in current_consents(citizen).items()
            if record_channel == channel
            and record.action == ConsentRecord.Action.GIVEN
            and (not leaving or purpose in slugs)
        ]
        for subscription in subscriptions:
            subscription.status = Subscription.Status.UNSUBSCRIBED
            subscription.unsubscribed_at = now
            subscription.save(update_fields=["status", "unsubscribed_at"])
            _timeline(
                citizen,
                f"Unsubscribed from {subscription.topic.name} by {channel_label(channel)}",
                channel,
            )
            _audit(subscription, source=source, actor=actor, reason="Unsubscribed")
        default_wording = (
            f"Unsubscribed from {', '.join(t.name for t in leaving)} ({channel_label(channel)})"
            if leaving
            else f"Unsubscribed from every non-essential message by {channel_label(channel)}"
        )
        withdrawn = [
            record_consent(
                citizen=citizen,
                purpose=record.purpose,
                channel=channel,
                action=ConsentRecord.Action.WITHDRAWN,
                wording=wording or default_wording,
                wording_version=record.wording_version,
                lawful_basis=record.lawful_basis,
                source=source,
                actor=actor,
                actor_label=actor_label,
                ip_address=ip_address,
                occurred_at=now,
            )
            for record in given
        ]
        # Always, even when nothing above changed: messages may have been materialised
        # for an opt-out recorded elsewhere (the API, a merge) before this.
        suppress_unsent_campaign_messages(
            citizen_id=citizen.pk,
            channel=channel,
            topic_ids=[t.pk for t in leaving] if leaving else None,
            reason=UNSUBSCRIBED_REASON,
        )
    return UnsubscribeResult(subscriptions=subscriptions, withdrawn=withdrawn)


UNSUBSCRIBED_REASON = "Unsubscribed before sending"


def suppress_unsent_campaign_messages(
    *, citizen_id: int, channel: str, topic_ids: list[int] | None, reason: str
) -> int:
    """Campaign messages already materialised for the resident (pending, or held by a
    contact rule) that an opt-out must stop: engagement.sending marks them SUPPRESSED."""
    from engagement import sending

    suppress = getattr(sending, "suppress_unsent_deliveries", None)
    if suppress is None:  # E3's function; until it lands, the fan-out's next run decides
        logger.warning("sending.suppress_unsent_deliveries is missing: nothing suppressed")
        return 0
    return suppress(citizen_id=citizen_id, channel=channel, topic_ids=topic_ids, reason=reason)


def expire_pending_subscriptions(*, now: datetime.datetime | None = None, limit: int = 1000) -> int:
    """Let requests nobody confirmed in time lapse (back to UNSUBSCRIBED; `unsubscribed_at`
    untouched: a lapse is not an opt-out). Bounded runs; returns how many lapsed."""
    now = now or timezone.now()
    with transaction.atomic():
        lapsing = list(
            Subscription.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("topic", "citizen")
            .filter(status=Subscription.Status.PENDING, confirm_by__lte=now)
            .order_by("confirm_by", "pk")[:limit]
        )
        Subscription.objects.filter(pk__in=[sub.pk for sub in lapsing]).update(
            status=Subscription.Status.UNSUBSCRIBED
        )
        for subscription in lapsing:
            record_timeline_entry(
                citizen=subscription.citizen,
                kind=TimelineEntry.Kind.SUBSCRIPTION,
                summary=(
                    f"Request to subscribe to {subscription.topic.name} by "
                    f"{channel_label(subscription.channel)} lapsed: it was not confirmed"
                ),
                occurred_at=now,
                channel=subscription.channel,
                department="Engagement",
                visibility=TimelineEntry.Visibility.RESIDENT,
            )
    return len(lapsing)


# --- The confirmation message ----------------------------------------------------------------


class ConfirmationNotSent(Exception):
    """Sending failed for a reason that may pass (mail server or SMS provider down)."""


def send_subscription_confirmation(*, subscription_id: int) -> str:
    """Send the confirmation link of a pending subscription, in the citizen's language: by
    e-mail (text and HTML) or by text message through the first enabled SMS channel.
    Returns what happened; raises ConfirmationNotSent when a retry may succeed."""
    subscription = (
        Subscription.objects.select_related("topic", "citizen").filter(pk=subscription_id).first()
    )
    if subscription is None or not is_waiting(subscription) or not subscription.citizen.is_live:
        return "skipped"
    address = subscription_address(subscription.citizen, subscription.channel)
    if address is None:
        return "no_address"
    link = tokens.confirm_url(subscription.pk)
    with translation.override(subscription.citizen.preferred_language or "en-gb"):
        context = {
            "topic_title": topic_title(subscription.topic),
            "channel": channel_label(subscription.channel),
            "confirm_url": link,
            "link_days": max(1, settings.ENGAGEMENT_CONFIRMATION_MAX_AGE // (24 * 60 * 60)),
            "council_name": settings.COUNCIL_NAME,
        }
        if subscription.channel == ChannelKind.EMAIL:
            return _send_confirmation_email(address, context)
        masked = dict(context, confirm_url=_("(link removed)"))
        return _send_confirmation_text(
            subscription,
            address,
            body=render_to_string("engagement/email/subscription_confirm_sms.txt", context).strip(),
            stored_body=render_to_string(
                "engagement/email/subscription_confirm_sms.txt", masked
            ).strip(),
        )


def _send_confirmation_email(address: ContactPoint, context: dict[str, Any]) -> str:
    subject = " ".join(
        render_to_string("engagement/email/subscription_confirm_subject.txt", context).split()
    )
    message = EmailMultiAlternatives(
        subject=subject,
        body=render_to_string("engagement/email/subscription_confirm_message.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[address.normalised],
    )
    message.attach_alternative(
        render_to_string("engagement/email/subscription_confirm_message.html", context),
        "text/html",
    )
    try:
        message.send()
    except (smtplib.SMTPException, OSError) as exc:
        raise ConfirmationNotSent(str(exc)) from exc
    return "sent"


def _send_confirmation_text(
    subscription: Subscription, address: ContactPoint, *, body: str, stored_body: str
) -> str:
    # Like a verification code (channels.portal.verification): not conversation, so no
    # thread; the record of the send keeps the text without the link, which would let
    # whoever reads it confirm on the resident's behalf.
    from channels.adapters import TransientChannelError, adapter_for
    from channels.models import OutboundMessage
    from channels.portal.verification import sms_channel_for_codes

    channel = sms_channel_for_codes()
    if channel is None:
        raise ConfirmationNotSent("No SMS channel is enabled.")
    outbound = OutboundMessage.objects.create(
        channel=channel,
        thread=None,
        citizen=subscription.citizen,
        to_value=address.normalised,
        body_text=stored_body,
        status=OutboundMessage.Status.SENDING,
        attempts=1,
    )
    outbound.body_text = body  # the real text only in memory, for the adapter
    try:
        result = adapter_for(channel).send(outbound)
    except Exception as exc:
        OutboundMessage.objects.filter(pk=outbound.pk).update(
            status=OutboundMessage.Status.FAILED, last_error=f"{type(exc).__name__}: {exc}"[:2000]
        )
        if isinstance(exc, TransientChannelError):
            raise ConfirmationNotSent(str(exc)) from exc
        logger.warning("subscription %s: confirmation text not sent: %s", subscription.pk, exc)
        return "failed"
    OutboundMessage.objects.filter(pk=outbound.pk).update(
        status=OutboundMessage.Status.SENT,
        sent_at=timezone.now(),
        provider_message_id=result.provider_message_id[:255],
    )
    return "sent"


# --- Merging profiles ------------------------------------------------------------------------

_STATE_FIELDS = (
    "status",
    "requested_at",
    "confirm_by",
    "confirmed_at",
    "unsubscribed_at",
    "source",
)


def _opted_out(subscription: Subscription | None, ledger_withdrawn: bool) -> bool:
    """The profile's opt-out for a topic and channel is in force: it unsubscribed and has
    not confirmed again since (pending again is not consent), or its ledger says withdrawn."""
    if ledger_withdrawn:
        return True
    return (
        subscription is not None
        and subscription.unsubscribed_at is not None
        and subscription.status != Subscription.Status.ACTIVE
    )


def merged_subscription_state(
    survivor: Subscription | None,
    duplicate: Subscription | None,
    *,
    survivor_withdrawn: bool = False,
    duplicate_withdrawn: bool = False,
) -> dict[str, Any]:
    """The state one subscription takes when two profiles' (either may be missing) become
    one. The rule, whatever the order things happened in:

    - ACTIVE only if a side is active and neither side's opt-out is in force: an
      unsubscribe (or a withdrawal in the ledger) on one profile is never undone by a
      subscription on the other, even a later one. The resident can subscribe again.
    - otherwise PENDING if a side is waiting for confirmation (still only a request),
    - otherwise UNSUBSCRIBED, keeping the latest unsubscribe time.
    """
    sides = [sub for sub in (survivor, duplicate) if sub is not None]
    opted_out = _opted_out(survivor, survivor_withdrawn) or _opted_out(
        duplicate, duplicate_withdrawn
    )
    unsubscribed_at = max(
        (sub.unsubscribed_at for sub in sides if sub.unsubscribed_at), default=None
    )
    active = [sub for sub in sides if sub.status == Subscription.Status.ACTIVE]
    waiting = [sub for sub in sides if is_waiting(sub)]
    base = survivor or duplicate
    state = {name: getattr(base, name) for name in _STATE_FIELDS}
    state["unsubscribed_at"] = unsubscribed_at
    if active and not opted_out:
        state.update(
            status=Subscription.Status.ACTIVE,
            confirmed_at=min(sub.confirmed_at or sub.requested_at for sub in active),
            source=active[0].source,
        )
    elif waiting:
        # A fresh request time: no link sent to either profile before the merge confirms
        # the merged request (one of them may predate the other profile's opt-out). Nothing
        # is re-sent (the resident may have opted out since asking); asking again on the
        # preference page sends a new link, and the request lapses at confirm_by otherwise.
        latest = max(waiting, key=lambda sub: sub.requested_at)
        state.update(
            status=Subscription.Status.PENDING,
            requested_at=timezone.now(),
            confirm_by=latest.confirm_by,
            source=latest.source,
        )
    else:
        state["status"] = Subscription.Status.UNSUBSCRIBED
    return state


def _json_state(subscription: Subscription) -> dict[str, Any]:
    state = {}
    for name in _STATE_FIELDS:
        value = getattr(subscription, name)
        state[name] = value.isoformat() if isinstance(value, datetime.datetime) else value
    return state


def _from_json_state(state: dict[str, Any]) -> dict[str, Any]:
    return {
        name: datetime.datetime.fromisoformat(value)
        if name not in ("status", "source") and value
        else value
        for name, value in state.items()
    }


def reconcile_subscriptions_on_merge(
    *, survivor: Citizen, duplicate: Citizen, merge: CitizenMerge, **_kwargs: Any
) -> None:
    """Receiver of citizen_merging (before rows move). One subscription per topic and
    channel survives: where both profiles have one, the survivor's takes the merged state
    (merged_subscription_state) and the duplicate's is removed, its state kept in the merge
    snapshot so undoing the merge puts it back. Where only the duplicate has one, it moves
    as it is, unless the survivor's ledger withdrew that consent: then it moves
    unsubscribed. Either way a merge never makes an opt-out into a subscription."""
    survivor_ledger = current_consents(survivor)
    duplicate_ledger = current_consents(duplicate)

    def withdrawn(ledger: dict, sub: Subscription) -> bool:
        record = ledger.get((sub.topic.slug, sub.channel))
        return record is not None and record.action == ConsentRecord.Action.WITHDRAWN

    kept = {
        (sub.topic_id, sub.channel): sub
        for sub in Subscription.objects.select_for_update()
        .select_related("topic")
        .filter(citizen=survivor)
    }
    removed, changed = [], []
    for sub in (
        Subscription.objects.select_for_update().select_related("topic").filter(citizen=duplicate)
    ):
        other = kept.get((sub.topic_id, sub.channel))
        survivor_withdrawn = withdrawn(survivor_ledger, sub)
        duplicate_withdrawn = withdrawn(duplicate_ledger, sub)
        state = merged_subscription_state(
            other,
            sub,
            survivor_withdrawn=survivor_withdrawn,
            duplicate_withdrawn=duplicate_withdrawn,
        )
        if other is not None:
            removed.append({"topic": sub.topic_id, "channel": sub.channel, **_json_state(sub)})
            changed.append({"id": other.pk, "before": _json_state(other), "citizen": "survivor"})
            sub.delete()
            Subscription.objects.filter(pk=other.pk).update(**state)
        elif state["status"] != sub.status:
            changed.append({"id": sub.pk, "before": _json_state(sub), "citizen": "duplicate"})
            Subscription.objects.filter(pk=sub.pk).update(**state)
    # The survivor's own subscriptions the duplicate's ledger opted out of.
    for _key, sub in kept.items():
        if any(entry["id"] == sub.pk for entry in changed):
            continue
        if sub.status == Subscription.Status.ACTIVE and withdrawn(duplicate_ledger, sub):
            changed.append({"id": sub.pk, "before": _json_state(sub), "citizen": "survivor"})
            Subscription.objects.filter(pk=sub.pk).update(
                status=Subscription.Status.UNSUBSCRIBED, unsubscribed_at=timezone.now()
            )
    if removed or changed:
        merge.snapshot.setdefault("engagement", {})["subscriptions"] = {
            "removed": removed,
            "changed": changed,
        }


def restore_subscriptions_on_unmerge(*, merge: CitizenMerge, **_kwargs: Any) -> None:
    """Receiver of citizen_unmerged: the duplicate gets back the subscriptions the merge
    removed or changed, as they were (its own ledger lines are back too). The survivor's
    stay as the merge left them: its ledger keeps the merge's withdrawal (append-only), so
    it stays opted out until it subscribes again."""
    saved = merge.snapshot.get("engagement", {}).get("subscriptions")
    if not saved:
        return
    for entry in saved["removed"]:
        Subscription.objects.get_or_create(
            citizen=merge.duplicate,
            topic_id=entry["topic"],
            channel=entry["channel"],
            defaults=_from_json_state({name: entry[name] for name in _STATE_FIELDS}),
        )
    for entry in saved["changed"]:
        if entry["citizen"] == "duplicate":
            Subscription.objects.filter(pk=entry["id"], citizen=merge.duplicate).update(
                **_from_json_state(entry["before"])
            )
