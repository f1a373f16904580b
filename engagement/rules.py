"""Contact coordination: the ContactRules every non-essential delivery passes, as SQL.

The fan-out (engagement.fanout) writes a campaign's deliveries in one INSERT … SELECT; this
module gives it, for the enabled rules, the per-row columns to compute and the verdict each
rule gives, so every rule is evaluated for the whole audience at once, never row by row in
Python. Rules are tried in a fixed order and the first that matches decides:

1. the citizen asked not to be contacted (Citizen.do_not_contact): suppressed, no rule;
2. sensitive case holds (an open case in one of the rule's services): suppressed;
3. frequency caps (non-essential campaigns in the last `period_days`, all departments):
   suppressed;
4. quiet hours (text messages only, unless the rule names channels), when the fan-out runs
   inside them: held, and released by release_held_deliveries() once they end.

Suppressions come before the hold, so a held message is one that may really go later.

Sending (engagement.sending) asks again, batch by batch, just before messages are built:
residents change their minds and open cases between the fan-out and the send (a text held
overnight, the last batches of a big campaign). It reuses the consent predicate
(`consent_allows_sql`), the sensitive-case holds of `rules_sql` and `quiet_hours_in_force`.
"""

# Statements are built from fixed SQL and table names from the models; every value is a
# bound parameter (rules.SqlParams), so nothing a user typed is formatted into SQL.
# ruff: noqa: S608

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import connection, transaction
from django.db.models import Count
from django.utils import timezone

from citizenhub.models import ChannelKind, Service, ServiceCase
from engagement.models import Campaign, ConsentRecord, ContactRule, Delivery, MessageClass

DO_NOT_CONTACT_REASON = "Asked not to be contacted"

# Deliveries that reached, or are on their way to, the resident count towards a frequency
# cap; suppressed, failed and bounced ones never reached them. Held and pending ones will.
FREQUENCY_COUNTED_STATUSES = (
    Delivery.Status.PENDING,
    Delivery.Status.HELD,
    Delivery.Status.QUEUED,
    Delivery.Status.SENT,
    Delivery.Status.DELIVERED,
    Delivery.Status.COMPLAINED,
)
# A quiet-hours rule without channels keeps its kind's meaning: no text messages at night.
QUIET_HOURS_DEFAULT_CHANNELS = (ChannelKind.SMS,)

# Evaluation order of the rule kinds (see the module docstring).
_KIND_ORDER = {
    ContactRule.Kind.SENSITIVE_CASE_HOLD: 0,
    ContactRule.Kind.FREQUENCY_CAP: 1,
    ContactRule.Kind.QUIET_HOURS: 2,
}


class SqlParams(dict[str, Any]):
    """Named parameters for one raw statement (pyformat, which both PostgreSQL and
    Django's SQLite backend accept): each value gets a fresh name, so fragments built
    separately never clash, and nothing from the database is ever pasted into SQL."""

    def add(self, value: Any) -> str:
        name = f"p{len(self)}"
        if isinstance(value, str):
            value = str(value)  # a TextChoices member as the plain string drivers expect
        if isinstance(value, datetime.datetime):
            # SQLite compares datetimes as Django stores them (text); PostgreSQL takes them as is.
            value = connection.ops.adapt_datetimefield_value(value)
        self[name] = value
        return f"%({name})s"

    def in_list(self, values: Sequence[Any]) -> str:
        """Placeholders for `x IN (…)`; callers never pass an empty list."""
        if not values:
            raise ValueError("an IN list needs at least one value")
        return ", ".join(self.add(value) for value in values)


def quote(model: Any) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def subquery_fence() -> str:
    """Keeps a subquery from being merged into the query around it, so a column computed
    once by a subquery is not evaluated again at every mention (PostgreSQL inlines them)."""
    return "OFFSET 0" if connection.vendor == "postgresql" else "LIMIT -1 OFFSET 0"


def latest_consent_sql(*, citizen: str, purpose: str, channel: str) -> str:
    """The action ('given', 'withdrawn', or '' when none) of the latest consent line for
    the citizen, purpose (a topic slug) and channel named by the SQL expressions given."""
    return (
        f"COALESCE((SELECT cr.action FROM {quote(ConsentRecord)} cr"
        f" WHERE cr.citizen_id = {citizen} AND cr.purpose = {purpose} AND cr.channel = {channel}"
        " ORDER BY cr.occurred_at DESC, cr.id DESC LIMIT 1), '')"
    )


def consent_allows_sql(
    message_class: str, *, citizen: str, purpose: str, channel: str, params: SqlParams
) -> str:
    """The ledger's condition for a non-essential message (PECR): promotional needs the
    latest line to be "given"; informational needs it not to be "withdrawn" (a withdrawal
    recorded elsewhere, on erasure or a merge, wins over a subscription left active)."""
    latest = latest_consent_sql(citizen=citizen, purpose=purpose, channel=channel)
    if message_class == MessageClass.PROMOTIONAL:
        return f"{latest} = {params.add(ConsentRecord.Action.GIVEN)}"
    return f"{latest} <> {params.add(ConsentRecord.Action.WITHDRAWN)}"


def enabled_rules() -> list[ContactRule]:
    """The enabled rules that can match anything, in evaluation order."""
    rules = [rule for rule in ContactRule.objects.filter(enabled=True) if _is_complete(rule)]
    return sorted(rules, key=lambda rule: (_KIND_ORDER[rule.kind], rule.pk))


def _is_complete(rule: ContactRule) -> bool:
    if rule.kind == ContactRule.Kind.SENSITIVE_CASE_HOLD:
        return bool(_codes(rule.service_codes))
    if rule.kind == ContactRule.Kind.FREQUENCY_CAP:
        return rule.max_messages is not None and bool(rule.period_days)
    if rule.kind == ContactRule.Kind.QUIET_HOURS:
        return rule.quiet_start is not None and rule.quiet_end is not None
    return False


def _codes(values: Any) -> list[str]:
    """A rule's JSON list of strings, tolerating what an admin may have typed into it."""
    if not isinstance(values, list):
        return []
    return [value for value in values if isinstance(value, str) and value]


def rule_channels(rule: ContactRule) -> list[str]:
    """The channels a rule applies to; empty means every channel (quiet hours: SMS)."""
    channels = _codes(rule.channels)
    if not channels and rule.kind == ContactRule.Kind.QUIET_HOURS:
        return list(QUIET_HOURS_DEFAULT_CHANNELS)
    return channels


def quiet_hours_in_effect(rule: ContactRule, now: datetime.datetime) -> bool:
    """Whether `now` (local time) falls in the rule's quiet hours; they may span midnight."""
    start, end, clock = rule.quiet_start, rule.quiet_end, timezone.localtime(now).time()
    if start is None or end is None or start == end:
        return False
    if start < end:
        return start <= clock < end
    return clock >= start or clock < end


def quiet_hours_in_force(
    now: datetime.datetime, channel: str, *, rules: Sequence[ContactRule] | None = None
) -> ContactRule | None:
    """The enabled quiet-hours rule that keeps non-essential messages on `channel` back at
    `now` (the first, in evaluation order), or None. `rules`: the enabled rules, when the
    caller has them already (enabled_rules()), saving a query."""
    for rule in enabled_rules() if rules is None else rules:
        if (
            rule.kind == ContactRule.Kind.QUIET_HOURS
            and rule.enabled
            and _is_complete(rule)
            and channel in rule_channels(rule)
            and quiet_hours_in_effect(rule, now)
        ):
            return rule
    return None


def quiet_hours_reason(rule: ContactRule) -> str:
    start, end = f"{rule.quiet_start:%H:%M}", f"{rule.quiet_end:%H:%M}"
    return f"Quiet hours {start}–{end}: held until {end}"  # noqa: RUF001 - en dash


def _frequency_reason_parts(rule: ContactRule) -> tuple[str, str]:
    """The reason reads "3 messages in the last 7 days (limit 2)"; the count comes from SQL."""
    period = "day" if rule.period_days == 1 else f"{rule.period_days} days"
    tail = f"in the last {period} (limit {rule.max_messages})"
    return f"1 message {tail}", f" messages {tail}"


@dataclass
class RuleSql:
    """What the fan-out adds to its statement for the rules: `columns` are computed per
    audience row `a` (alias given), `verdicts` are (condition on `w`, status, rule id,
    reason expression) tried in order, after do-not-contact."""

    columns: list[str] = field(default_factory=list)
    verdicts: list[tuple[str, str, int | None, str]] = field(default_factory=list)


def rules_sql(
    *, rules: Sequence[ContactRule], campaign_id: int, now: datetime.datetime, params: SqlParams
) -> RuleSql:
    """SQL fragments evaluating `rules` for audience rows `a` (citizen_id, channel); the
    conditions and reasons read the computed columns through alias `w`."""
    out = RuleSql()
    for rule in rules:
        column = f"rule_{rule.pk}"
        channels = rule_channels(rule)
        on_channel = f" AND w.channel IN ({params.in_list(channels)})" if channels else ""
        if rule.kind == ContactRule.Kind.SENSITIVE_CASE_HOLD:
            out.columns.append(
                f"(SELECT MIN(sv.code) FROM {quote(ServiceCase)} sc"
                f" JOIN {quote(Service)} sv ON sv.id = sc.service_id"
                " WHERE sc.citizen_id = a.citizen_id"
                f" AND sc.status IN ({params.in_list(ServiceCase.OPEN_STATUSES)})"
                f" AND sv.code IN ({params.in_list(_codes(rule.service_codes))})) AS {column}"
            )
            # "Open adult social care case": the service code in words.
            reason = (
                f"{params.add('Open ')} || REPLACE(w.{column}, '-', ' ') || {params.add(' case')}"
            )
            out.verdicts.append(
                (f"w.{column} IS NOT NULL{on_channel}", Delivery.Status.SUPPRESSED, rule.pk, reason)
            )
        elif rule.kind == ContactRule.Kind.FREQUENCY_CAP:
            since = now - datetime.timedelta(days=rule.period_days)
            counted_channels = f" AND d.channel IN ({params.in_list(channels)})" if channels else ""
            # Messages are campaigns: a bulletin sent by e-mail and text is one message.
            out.columns.append(
                f"(SELECT COUNT(DISTINCT d.campaign_id) FROM {quote(Delivery)} d"
                f" JOIN {quote(Campaign)} cm ON cm.id = d.campaign_id"
                f" WHERE d.citizen_id = a.citizen_id AND d.created_at >= {params.add(since)}"
                f" AND d.status IN ({params.in_list(FREQUENCY_COUNTED_STATUSES)})"
                f" AND d.campaign_id <> {params.add(campaign_id)}"
                f" AND cm.message_class <> {params.add(MessageClass.ESSENTIAL)}"
                f"{counted_channels}) AS {column}"
            )
            one, many = _frequency_reason_parts(rule)
            reason = (
                f"CASE WHEN w.{column} = 1 THEN {params.add(one)}"
                f" ELSE CAST(w.{column} AS TEXT) || {params.add(many)} END"
            )
            condition = f"w.{column} >= {params.add(rule.max_messages)}{on_channel}"
            out.verdicts.append((condition, Delivery.Status.SUPPRESSED, rule.pk, reason))
        elif rule.kind == ContactRule.Kind.QUIET_HOURS:
            if not quiet_hours_in_effect(rule, now):
                continue
            condition = on_channel.removeprefix(" AND ") or "1 = 1"
            reason = params.add(quiet_hours_reason(rule))
            out.verdicts.append((condition, Delivery.Status.HELD, rule.pk, reason))
    return out


def release_held_deliveries(*, now: datetime.datetime | None = None) -> dict[int, int]:
    """Held deliveries whose quiet hours are over become pending again (the rule and reason
    stay, as a record that they waited). Returns {campaign id: deliveries released}, so the
    periodic task can send those campaigns' pending deliveries. Deliveries of a cancelled
    campaign stay held."""
    now = now or timezone.now()
    still_quiet = [
        rule.pk
        for rule in ContactRule.objects.filter(kind=ContactRule.Kind.QUIET_HOURS, enabled=True)
        if quiet_hours_in_effect(rule, now)
    ]
    held = (
        Delivery.objects.filter(status=Delivery.Status.HELD)
        .exclude(rule_id__in=still_quiet)
        .exclude(campaign__status=Campaign.Status.CANCELLED)
    )
    with transaction.atomic():
        released = dict(
            held.values_list("campaign_id")
            .annotate(count=Count("id"))
            .values_list("campaign_id", "count")
        )
        if released:
            held.update(status=Delivery.Status.PENDING)
    return released
