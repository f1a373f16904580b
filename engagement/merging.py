"""Campaign deliveries when two profiles of one person are merged, and when that is undone.

A delivery is unique per campaign, citizen and channel (a retried fan-out must never send
twice). When both profiles received the same campaign on the same channel, the duplicate's
row cannot move: it is removed, kept whole in the merge snapshot, and put back by unmerge,
so the history of what was sent to whom survives both ways.
"""

from __future__ import annotations

from typing import Any

from citizenhub.models import Citizen, CitizenMerge
from engagement.models import Delivery

_FIELDS = (
    "id",
    "campaign_id",
    "channel",
    "contact_point_id",
    "to_value",
    "status",
    "rule_id",
    "reason",
    "outbound_id",
    "created_at",
    "sent_at",
    "finished_at",
)
_DATES = ("created_at", "sent_at", "finished_at")


def _json(delivery: Delivery) -> dict[str, Any]:
    row = {name: getattr(delivery, name) for name in _FIELDS}
    for name in _DATES:
        row[name] = row[name].isoformat() if row[name] else None
    return row


def reconcile_deliveries_on_merge(
    *, survivor: Citizen, duplicate: Citizen, merge: CitizenMerge, **_kwargs: Any
) -> None:
    """Receiver of citizen_merging (before rows move)."""
    survivor_keys = set(
        Delivery.objects.filter(citizen=survivor).values_list("campaign_id", "channel")
    )
    clashing = [
        delivery
        for delivery in Delivery.objects.select_for_update().filter(citizen=duplicate)
        if (delivery.campaign_id, delivery.channel) in survivor_keys
    ]
    if not clashing:
        return
    merge.snapshot.setdefault("engagement", {})["deliveries_removed"] = [
        _json(delivery) for delivery in clashing
    ]
    Delivery.objects.filter(pk__in=[delivery.pk for delivery in clashing]).delete()


def restore_deliveries_on_unmerge(*, merge: CitizenMerge, **_kwargs: Any) -> None:
    """Receiver of citizen_unmerged: the duplicate's removed deliveries come back as they
    were (same ids, so their outbound messages and reports still point at them)."""
    from django.utils.dateparse import parse_datetime

    rows = (merge.snapshot.get("engagement") or {}).get("deliveries_removed") or []
    restored = []
    for row in rows:
        values = {name: row[name] for name in _FIELDS}
        for name in _DATES:
            values[name] = parse_datetime(values[name]) if values[name] else None
        restored.append(Delivery(citizen_id=merge.duplicate_id, **values))
    if restored:
        Delivery.objects.bulk_create(restored)
