"""Writing the timeline: the single way anything records what happened with a citizen."""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from dataclasses import dataclass

from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db import connection, models, transaction
from django.utils import timezone

from citizenhub.models import ChannelKind, Citizen, TimelineEntry
from citizenhub.services.identity import follow_merges

SUMMARY_LIMIT = TimelineEntry._meta.get_field("summary").max_length
_KINDS = frozenset(TimelineEntry.Kind.values)
_CHANNELS = frozenset(ChannelKind.values) | {""}
_VISIBILITIES = frozenset(TimelineEntry.Visibility.values)


@dataclass(frozen=True)
class TimelineEntryData:
    """One entry for bulk recording (ingest batches, imports): ids only, no model instances."""

    citizen_id: int
    kind: str
    occurred_at: datetime.datetime
    summary: str
    channel: str = ""
    department: str = ""
    service_code: str = ""
    visibility: str = TimelineEntry.Visibility.STAFF
    source_type_id: int | None = None
    source_id: str = ""


def _summary(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= SUMMARY_LIMIT else text[: SUMMARY_LIMIT - 1] + "…"


def _check(kind: str, channel: str, visibility: str, occurred_at: datetime.datetime) -> None:
    errors = {}
    if kind not in _KINDS:
        errors["kind"] = f"{kind!r} is not a timeline entry kind."
    if channel not in _CHANNELS:
        errors["channel"] = f"{channel!r} is not a channel."
    if visibility not in _VISIBILITIES:
        errors["visibility"] = f"{visibility!r} is not a visibility."
    if timezone.is_naive(occurred_at):
        errors["occurred_at"] = "Times must carry a time zone."
    if errors:
        raise ValidationError(errors)


def record_timeline_entry(
    *,
    citizen: Citizen,
    kind: str,
    summary: str,
    occurred_at: datetime.datetime | None = None,
    channel: str = "",
    department: str = "",
    service_code: str = "",
    visibility: str = TimelineEntry.Visibility.STAFF,
    source: models.Model | None = None,
) -> TimelineEntry:
    """Record one entry. With a `source`, recording the same source and kind again returns the
    first entry instead of adding another, so a retried task cannot double the timeline."""
    occurred_at = occurred_at or timezone.now()
    _check(kind, channel, visibility, occurred_at)
    citizen = follow_merges(citizen)
    fields = {
        "citizen": citizen,
        "occurred_at": occurred_at,
        "channel": channel,
        "department": department[:100],
        "service_code": service_code[:32],
        "summary": _summary(summary),
        "visibility": visibility,
    }
    if source is None:
        return TimelineEntry.objects.create(kind=kind, **fields)
    entry, _created = TimelineEntry.objects.get_or_create(
        source_type=ContentType.objects.get_for_model(source),
        source_id=str(source.pk),
        kind=kind,
        defaults=fields,
    )
    return entry


def record_timeline_entries(entries: Iterable[TimelineEntryData], *, batch_size: int = 2000) -> int:
    """Record many entries with one INSERT per batch; entries whose source already has an
    entry of that kind are skipped. Returns how many entries were offered.

    Callers pass live citizen ids (the ingest pipeline resolves merges before batching).
    """
    offered = 0
    recorded_at = timezone.now()
    batch: list[tuple] = []
    with transaction.atomic():
        for data in entries:
            _check(data.kind, data.channel, data.visibility, data.occurred_at)
            batch.append(
                (
                    data.citizen_id,
                    data.occurred_at,
                    data.kind,
                    data.channel,
                    data.department[:100],
                    data.service_code[:32],
                    _summary(data.summary),
                    data.visibility,
                    data.source_type_id,
                    data.source_id,
                    recorded_at,
                )
            )
            if len(batch) >= batch_size:
                _insert_entries(batch)
                offered += len(batch)
                batch = []
        if batch:
            _insert_entries(batch)
            offered += len(batch)
    return offered


# The columns of a bulk-recorded entry, in the order record_timeline_entries builds rows.
_BULK_COLUMNS = (
    "citizen_id",
    "occurred_at",
    "kind",
    "channel",
    "department",
    "service_code",
    "summary",
    "visibility",
    "source_type_id",
    "source_id",
    "created_at",
)


def _insert_entries(rows: list[tuple]) -> None:
    """INSERT ... ON CONFLICT DO NOTHING for one batch.

    On PostgreSQL the rows go straight into the statement: every value already is what the
    driver takes (text, ids, aware datetimes), and a model instance per row plus Django's
    per-value preparation cost more than the INSERT itself. Other databases (the SQLite
    demo) keep bulk_create, which also converts datetimes to their storage format.
    """
    if connection.vendor != "postgresql":
        TimelineEntry.objects.bulk_create(
            [TimelineEntry(**dict(zip(_BULK_COLUMNS, row, strict=True))) for row in rows],
            ignore_conflicts=True,
        )
        return
    quote = connection.ops.quote_name
    columns = ", ".join(quote(column) for column in _BULK_COLUMNS)
    row_placeholder = "(" + ", ".join(["%s"] * len(_BULK_COLUMNS)) + ")"
    values = ", ".join([row_placeholder] * len(rows))
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {quote(TimelineEntry._meta.db_table)} ({columns}) "  # noqa: S608
            f"VALUES {values} ON CONFLICT DO NOTHING",
            [value for row in rows for value in row],
        )
