"""Who a campaign reaches, and writing its deliveries for the whole audience in one statement.

The audience depends on the message class (PECR, UK GDPR):

- informational: the ACTIVE subscribers of the campaign's (active) topics, on each of the campaign's
  channels they subscribed on, unless their latest consent line for that topic and channel
  is a withdrawal (a withdrawal recorded elsewhere, say on erasure or a merge, wins over a
  subscription left active);
- promotional: the same, and their latest consent line for the topic (slug) and channel must
  be "given";
- essential: everyone affected, whatever their preferences: with topics, everyone who
  confirmed a subscription to one of them (active or since unsubscribed; a pending or
  lapsed one was never confirmed, so it is not evidence the person is affected); without
  topics, every citizen matching the segment. Each campaign channel they can be reached on.

Pending subscriptions never receive anything. Without topics, informational and
promotional campaigns reach nobody. All classes are narrowed by the segment (ward of the
primary address, preferred language, an open case in given services) and reach only live
profiles (not merged, not erased) through a contact point that is not removed and not
marked undeliverable: the primary one of the channel's kind first. Text messages need a
number that was confirmed by code or checked by staff. A citizen without such a contact
point on a channel gets no delivery on it.

Non-essential deliveries then pass the contact rules (engagement.rules); do-not-contact
suppresses them, but not essential ones, which are service information about the person's
own services. The whole thing is one INSERT … SELECT … ON CONFLICT DO NOTHING, portable
between PostgreSQL and SQLite; a repeated run writes nothing new for people already done.
"""

# Statements are built from fixed SQL and table names from the models; every value is a
# bound parameter (rules.SqlParams), so nothing a user typed is formatted into SQL.
# ruff: noqa: S608

from __future__ import annotations

import datetime
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from django.db import connection, transaction
from django.db.models import Count
from django.utils import timezone

from citizenhub.errors import ApplicationError
from citizenhub.models import Address, Citizen, ContactPoint, Service, ServiceCase
from engagement.models import (
    Campaign,
    Delivery,
    MessageClass,
    Subscription,
    Topic,
)
from engagement.rules import (
    DO_NOT_CONTACT_REASON,
    SqlParams,
    consent_allows_sql,
    enabled_rules,
    quote,
    rules_sql,
    subquery_fence,
)

# The campaign channels the fan-out can address, and the contact point kind each needs.
CHANNEL_CONTACT_KINDS: dict[str, str] = {
    "email": ContactPoint.Kind.EMAIL,
    "sms": ContactPoint.Kind.PHONE,
}
# A text to a number nobody confirmed may reach a stranger; e-mail bounces mark themselves.
SMS_VERIFICATION_LEVELS = (
    ContactPoint.VerificationLevel.CONFIRMED,
    ContactPoint.VerificationLevel.STAFF_CHECKED,
)
LIVE_STATUSES = (Citizen.Status.ACTIVE, Citizen.Status.PROVISIONAL)
# Campaigns whose deliveries may be written: approved (about to start) or sending. Never
# before the second officer approved it, nor once sent (a late retry would add people who
# subscribed after it went).
MATERIALISABLE_STATUSES = (Campaign.Status.APPROVED, Campaign.Status.SENDING)


@dataclass(frozen=True)
class Segment:
    """The optional narrowing of an audience (Campaign.segment). Tags are not modelled yet:
    a segment naming them is refused rather than silently ignored, which would widen it."""

    ward_codes: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    open_case_services: tuple[str, ...] = ()


SEGMENT_KEYS = ("ward_codes", "languages", "open_case_services")


def clean_segment(raw: Any) -> Segment:
    """A campaign's segment JSON as a Segment; ApplicationError says what is wrong."""
    if raw in (None, ""):
        return Segment()
    if not isinstance(raw, dict):
        raise ApplicationError("The audience segment must be a set of filters.", code="segment")
    unknown = sorted(set(raw) - set(SEGMENT_KEYS))
    if unknown:
        raise ApplicationError(
            f"The audience cannot be narrowed by {', '.join(unknown)}.",
            code="segment",
            extra={"unknown": unknown},
        )
    values: dict[str, tuple[str, ...]] = {}
    for key in SEGMENT_KEYS:
        items = raw.get(key) or []
        if not isinstance(items, list) or not all(
            isinstance(item, str) and item.strip() for item in items
        ):
            raise ApplicationError(
                f"The segment's {key.replace('_', ' ')} must be a list of codes.",
                code="segment",
                extra={"field": key},
            )
        values[key] = tuple(dict.fromkeys(item.strip() for item in items))
    return Segment(**values)


def _campaign_channels(campaign: Campaign) -> list[str]:
    channels = campaign.channels if isinstance(campaign.channels, list) else []
    unknown = [channel for channel in channels if channel not in CHANNEL_CONTACT_KINDS]
    if unknown:
        raise ApplicationError(
            "Campaigns can be sent by e-mail and text message only.",
            code="channel",
            extra={"unknown": unknown},
        )
    return list(dict.fromkeys(channels))


def _members_sql(campaign: Campaign, channels: list[str], params: SqlParams) -> str | None:
    """(citizen_id, channel) pairs the message class allows, before contact points and
    the segment; None when nobody can be in the audience."""
    topics = Campaign.topics.through
    campaign_topics = (
        f"SELECT ct.topic_id FROM {quote(topics)} ct"
        f" WHERE ct.campaign_id = {params.add(campaign.pk)}"
    )
    has_topics = campaign.topics.exists()
    if campaign.message_class == MessageClass.ESSENTIAL:
        channel_rows = " UNION ALL ".join(
            f"SELECT {params.add(channel)} AS channel" for channel in channels
        )
        if not has_topics:
            return (
                f"SELECT c0.id AS citizen_id, ch.channel AS channel"
                f" FROM {quote(Citizen)} c0 CROSS JOIN ({channel_rows}) ch"
            )
        # Active, or unsubscribed after being confirmed: UNSUBSCRIBED also covers requests
        # that lapsed unconfirmed, which are no evidence the person is affected.
        return (
            "SELECT DISTINCT s.citizen_id AS citizen_id, ch.channel AS channel"
            f" FROM {quote(Subscription)} s CROSS JOIN ({channel_rows}) ch"
            f" WHERE s.topic_id IN ({campaign_topics})"
            f" AND (s.status = {params.add(Subscription.Status.ACTIVE)}"
            f" OR (s.status = {params.add(Subscription.Status.UNSUBSCRIBED)}"
            " AND s.confirmed_at IS NOT NULL))"
        )
    if not has_topics:
        return None
    consent = consent_allows_sql(
        campaign.message_class,
        citizen="s.citizen_id",
        purpose="t.slug",
        channel="s.channel",
        params=params,
    )
    return (
        "SELECT s.citizen_id AS citizen_id, s.channel AS channel"
        f" FROM {quote(Subscription)} s JOIN {quote(Topic)} t ON t.id = s.topic_id"
        f" WHERE s.topic_id IN ({campaign_topics})"
        f" AND s.channel IN ({params.in_list(channels)})"
        f" AND s.status = {params.add(Subscription.Status.ACTIVE)} AND t.is_active"
        f" AND {consent}"
        " GROUP BY s.citizen_id, s.channel"
    )


def _audience_sql(campaign: Campaign, params: SqlParams) -> str | None:
    """Rows (citizen_id, channel, contact_point_id, to_value, do_not_contact), one per
    citizen and channel; None for an audience that is empty by definition."""
    channels = _campaign_channels(campaign)
    segment = clean_segment(campaign.segment)
    if not channels:
        return None
    members = _members_sql(campaign, channels, params)
    if members is None:
        return None
    kind_for_channel = " ".join(
        f"WHEN {params.add(channel)} THEN {params.add(kind)}"
        for channel, kind in CHANNEL_CONTACT_KINDS.items()
    )
    # The contact point per citizen and channel: primary first, then the oldest, as
    # engagement.subscriptions.subscription_address picks the one confirmations go to.
    contact_point = (
        f"SELECT x.id FROM {quote(ContactPoint)} x"
        f" WHERE x.citizen_id = m.citizen_id AND x.kind = CASE m.channel {kind_for_channel} END"
        " AND x.removed_at IS NULL AND x.undeliverable_at IS NULL"
        f" AND (m.channel <> {params.add('sms')}"
        f" OR x.verification_level IN ({params.in_list(SMS_VERIFICATION_LEVELS)}))"
        " ORDER BY x.is_primary DESC, x.id LIMIT 1"
    )
    where = [f"c.status IN ({params.in_list(LIVE_STATUSES)})"]
    if segment.languages:
        where.append(f"c.preferred_language IN ({params.in_list(segment.languages)})")
    if segment.ward_codes:
        where.append(
            f"EXISTS (SELECT 1 FROM {quote(Address)} ad WHERE ad.citizen_id = c.id"
            f" AND ad.is_primary AND ad.ward_code IN ({params.in_list(segment.ward_codes)}))"
        )
    if segment.open_case_services:
        where.append(
            f"EXISTS (SELECT 1 FROM {quote(ServiceCase)} oc"
            f" JOIN {quote(Service)} os ON os.id = oc.service_id WHERE oc.citizen_id = c.id"
            f" AND oc.status IN ({params.in_list(ServiceCase.OPEN_STATUSES)})"
            f" AND os.code IN ({params.in_list(segment.open_case_services)}))"
        )
    return (
        "SELECT m.citizen_id AS citizen_id, m.channel AS channel,"
        " cp.id AS contact_point_id, cp.normalised AS to_value,"
        " c.do_not_contact AS do_not_contact"
        f" FROM ({members}) m"
        f" JOIN {quote(Citizen)} c ON c.id = m.citizen_id"
        f" JOIN {quote(ContactPoint)} cp ON cp.id = ({contact_point})"
        f" WHERE {' AND '.join(where)}"
    )


def audience_count(campaign: Campaign) -> int:
    """How many people the campaign reaches before contact rules (do-not-contact and the
    ContactRules may still hold some back): distinct citizens, whatever their channels."""
    params = SqlParams()
    audience = _audience_sql(campaign, params)
    if audience is None:
        return 0
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(DISTINCT a.citizen_id) FROM ({audience}) a", params)
        return cursor.fetchone()[0]


@dataclass(frozen=True)
class FanoutResult:
    """The campaign's materialised deliveries after a fan-out (all of them, including those
    of earlier runs); `created` is how many this run wrote."""

    created: int
    pending: int
    held: int
    suppressed: int
    # Held and suppressed deliveries per ContactRule id; None: do-not-contact.
    by_rule: dict[int | None, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return self.pending + self.held + self.suppressed


def materialise_statement(
    campaign: Campaign, *, now: datetime.datetime, params: SqlParams
) -> str | None:
    """The SELECT of the deliveries to write: (campaign_id, citizen_id, channel,
    contact_point_id, to_value, status, rule_id, reason, created_at). Public so the
    benchmark can run exactly this SELECT into a scratch table."""
    audience = _audience_sql(campaign, params)
    if audience is None:
        return None
    campaign_id, created_at = params.add(campaign.pk), params.add(now)
    if campaign.message_class == MessageClass.ESSENTIAL:
        # Service information: no contact rule applies, do-not-contact included.
        return (
            f"SELECT {campaign_id}, a.citizen_id, a.channel, a.contact_point_id, a.to_value,"
            f" {params.add(Delivery.Status.PENDING)}, NULL, '', {created_at}"
            f" FROM ({audience}) a"
        )
    rules = rules_sql(rules=enabled_rules(), campaign_id=campaign.pk, now=now, params=params)
    verdicts = [
        ("w.do_not_contact", Delivery.Status.SUPPRESSED, None, params.add(DO_NOT_CONTACT_REASON)),
        *rules.verdicts,
    ]
    # verdict 0: passes every rule; n: the n-th verdict decided.
    verdict = " ".join(
        f"WHEN {condition} THEN {number}"
        for number, (condition, _status, _rule, _reason) in enumerate(verdicts, start=1)
    )
    status = " ".join(
        f"WHEN {number} THEN {params.add(status)}"
        for number, (_condition, status, _rule, _reason) in enumerate(verdicts, start=1)
    )
    rule_ids = " ".join(
        f"WHEN {number} THEN {rule_id}"
        for number, (_condition, _status, rule_id, _reason) in enumerate(verdicts, start=1)
        if rule_id is not None
    )
    reasons = " ".join(
        f"WHEN {number} THEN {reason}"
        for number, (_condition, _status, _rule, reason) in enumerate(verdicts, start=1)
    )
    columns = "".join(f", {column}" for column in rules.columns)
    fence = subquery_fence()
    return (
        f"SELECT {campaign_id}, w.citizen_id, w.channel, w.contact_point_id, w.to_value,"
        f" CASE w.verdict {status} ELSE {params.add(Delivery.Status.PENDING)} END,"
        f" {f'CASE w.verdict {rule_ids} ELSE NULL END' if rule_ids else 'NULL'},"
        f" CASE w.verdict {reasons} ELSE '' END, {created_at}"
        # The rules' columns and conditions read alias w in both layers.
        f" FROM (SELECT w.*, CASE {verdict} ELSE 0 END AS verdict"
        f" FROM (SELECT a.*{columns} FROM ({audience}) a {fence}) w {fence}) w"
    )


DELIVERY_COLUMNS = (
    "campaign_id",
    "citizen_id",
    "channel",
    "contact_point_id",
    "to_value",
    "status",
    "rule_id",
    "reason",
    "created_at",
)


def materialise_deliveries(
    *, campaign: Campaign, now: datetime.datetime | None = None
) -> FanoutResult:
    """Write the campaign's deliveries for its whole audience, with the contact rules
    applied, in one statement: PENDING to send, HELD until quiet hours end, SUPPRESSED with
    the rule and reason. Safe to run again: existing (citizen, channel) rows are kept."""
    now = now or timezone.now()
    with transaction.atomic():
        locked = Campaign.objects.select_for_update().get(pk=campaign.pk)
        if locked.status not in MATERIALISABLE_STATUSES:
            raise ApplicationError(
                f"Deliveries are written once a campaign is approved; this one is "
                f"{locked.get_status_display().lower()}.",
                code="campaign_status",
            )
        params = SqlParams()
        select = materialise_statement(locked, now=now, params=params)
        created = 0
        if select is not None:
            columns = ", ".join(connection.ops.quote_name(name) for name in DELIVERY_COLUMNS)
            with connection.cursor() as cursor:
                # WHERE 1 = 1: SQLite would read ON CONFLICT as a join's ON without it.
                cursor.execute(
                    f"INSERT INTO {quote(Delivery)} ({columns}) {select} WHERE 1 = 1"
                    " ON CONFLICT (campaign_id, citizen_id, channel) DO NOTHING",
                    params,
                )
                created = max(cursor.rowcount, 0)
        return _result(locked, created)


def _result(campaign: Campaign, created: int) -> FanoutResult:
    statuses: Counter[str] = Counter()
    by_rule: Counter[int | None] = Counter()
    rows = (
        Delivery.objects.filter(
            campaign=campaign,
            status__in=(Delivery.Status.PENDING, Delivery.Status.HELD, Delivery.Status.SUPPRESSED),
        )
        .values_list("status", "rule_id")
        .annotate(count=Count("id"))
        .order_by()
    )
    for status, rule_id, count in rows:
        statuses[status] += count
        if status != Delivery.Status.PENDING:
            by_rule[rule_id] += count
    return FanoutResult(
        created=created,
        pending=statuses[Delivery.Status.PENDING],
        held=statuses[Delivery.Status.HELD],
        suppressed=statuses[Delivery.Status.SUPPRESSED],
        by_rule=dict(by_rule),
    )
