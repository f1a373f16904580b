"""A campaign's figures for its analytics page: deliveries by status and channel, and what
the contact rules held back, by rule and by reason. Two queries whatever the audience."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from django.db.models import Count

from citizenhub.models import ChannelKind
from engagement.models import Campaign, Delivery
from engagement.rules import DO_NOT_CONTACT_REASON

HELD_BACK = (Delivery.Status.HELD, Delivery.Status.SUPPRESSED)


def _channel_label(channel: str) -> str:
    return str(ChannelKind(channel).label) if channel in ChannelKind.values else channel


def campaign_summary(campaign: Campaign) -> dict[str, Any]:
    """{
        "total": int,
        "by_status": [{"status", "label", "count"}] for every Delivery.Status, in order,
        "by_channel": [{"channel", "label", "total", "by_status": {status: count}}],
        "by_rule": [{"rule_id", "name", "kind", "held", "suppressed", "total"}], largest
            first; rule_id None is the residents who asked not to be contacted,
        "by_reason": [{"rule_id", "rule_name", "status", "reason", "count"}], largest first,
    }"""
    deliveries = Delivery.objects.filter(campaign=campaign).order_by()
    statuses: dict[str, int] = defaultdict(int)
    channels: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for channel, status, count in deliveries.values_list("channel", "status").annotate(
        count=Count("id")
    ):
        statuses[status] += count
        channels[channel][status] += count

    rules: dict[int | None, dict[str, Any]] = {}
    reasons = []
    held_back = (
        deliveries.filter(status__in=HELD_BACK)
        .values_list("rule_id", "rule__name", "rule__kind", "status", "reason")
        .annotate(count=Count("id"))
    )
    for rule_id, name, kind, status, reason, count in held_back:
        name = name or ("Do not contact" if rule_id is None else "Deleted rule")
        entry = rules.setdefault(
            rule_id,
            {"rule_id": rule_id, "name": name, "kind": kind or "", "held": 0, "suppressed": 0},
        )
        entry[status] += count
        reasons.append(
            {
                "rule_id": rule_id,
                "rule_name": name,
                "status": status,
                "reason": reason or (DO_NOT_CONTACT_REASON if rule_id is None else ""),
                "count": count,
            }
        )
    for entry in rules.values():
        entry["total"] = entry["held"] + entry["suppressed"]

    return {
        "total": sum(statuses.values()),
        "by_status": [
            {"status": value, "label": str(label), "count": statuses.get(value, 0)}
            for value, label in Delivery.Status.choices
        ],
        "by_channel": [
            {
                "channel": channel,
                "label": _channel_label(channel),
                "total": sum(counts.values()),
                "by_status": dict(counts),
            }
            for channel, counts in sorted(channels.items())
        ],
        "by_rule": sorted(rules.values(), key=lambda entry: (-entry["total"], entry["name"])),
        "by_reason": sorted(reasons, key=lambda entry: (-entry["count"], entry["reason"])),
    }
