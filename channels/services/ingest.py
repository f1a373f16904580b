"""The ingest pipeline: store raw first, then parse, resolve, thread, route and record.

Every channel goes through these two steps:
1. `store_raw_messages` writes the provider's payload as it came, unique on
   (channel, external_id), before any parsing: a redelivery is a no-op and a crash later
   loses nothing. It enqueues the new rows for step 2 once the transaction commits.
2. `ingest_inbound_messages` processes a batch with set-based queries (a handful of
   round trips per batch, not per message) and marks each message processed, ignored
   or failed. Processing is idempotent: only messages still `received` are touched, and
   rows are locked (SKIP LOCKED on PostgreSQL) so two workers never process one message.
"""

from __future__ import annotations

import hashlib
import json
import logging
import traceback
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial

import django.dispatch
import filetype
from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import connection, models, transaction
from django.db.models import F, Field
from django.utils import timezone

from channels.adapters import ParsedMessage, RawInbound, adapter_for
from channels.models import Attachment, Channel, InboundMessage
from channels.services.routing import RoutingDecision, enabled_rules, route_message
from channels.services.threading import ThreadAssigner
from citizenhub.models import ContactPoint, TimelineEntry
from citizenhub.services.identity import IdentityClaim, resolve_identities
from citizenhub.services.timeline import TimelineEntryData, record_timeline_entries

logger = logging.getLogger(__name__)

INSERT_CHUNK = 500
# Sent inside the ingest transaction with the ids of messages just processed (not
# redeliveries, not ignored auto-replies; copies of one e-mail sent to two council
# addresses included), `routing` (message id -> RoutingDecision, for the messages routed
# in this batch) and `new_thread_ids` (the threads this batch started):
# channels.services.casework opens cases and records resident updates here.
inbound_messages_processed = django.dispatch.Signal()


@dataclass(frozen=True)
class StoredBatch:
    new_ids: list[int]
    duplicates: int


@dataclass
class IngestReport:
    processed: list[int] = field(default_factory=list)
    ignored: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    skipped: int = 0  # already processed, or locked by another worker


def _enqueue_ingest(ids: list[int]) -> None:
    from channels.tasks import ingest_inbound_batch

    size = settings.CHANNELS_INGEST_BATCH_SIZE
    for start in range(0, len(ids), size):
        ingest_inbound_batch.delay(ids[start : start + size])


def _value_preparer(field: Field) -> Callable[[object], object]:
    """What `field.get_db_prep_save` does, without its per-value call chain where the value
    already is what the database adapter takes (text, numbers, ids, aware datetimes).

    PostgreSQL only: SQLite needs Django's adaptation (aware datetimes to UTC text).
    """
    if connection.vendor != "postgresql":
        return partial(_prepare_with_field, field)
    if isinstance(field, models.JSONField):
        encoder = field.encoder

        def prepare_json(value: object) -> object:
            return None if value is None else json.dumps(value, cls=encoder)

        return prepare_json
    if isinstance(field, models.DateTimeField):

        def prepare_datetime(value: object) -> object:
            if value is None or getattr(value, "tzinfo", None) is not None:
                return value
            return field.get_db_prep_save(value, connection)  # naive: Django's warning path

        return prepare_datetime
    if isinstance(field, models.CharField | models.TextField | models.IntegerField) or (
        isinstance(field, models.ForeignKey)
        and isinstance(field.target_field, models.AutoField | models.BigAutoField)
    ):
        return _unchanged
    return partial(_prepare_with_field, field)


def _unchanged(value: object) -> object:
    return value


def _prepare_with_field(field: Field, value: object) -> object:
    return field.get_db_prep_save(value, connection)


def _insert_new(rows: list[InboundMessage]) -> list[int]:
    """INSERT ... ON CONFLICT (channel, external_id) DO NOTHING RETURNING id.

    Django's bulk_create cannot say which rows a conflict skipped; this can, so we enqueue
    exactly the new rows and count duplicates exactly.
    """
    meta = InboundMessage._meta
    fields = [f for f in meta.concrete_fields if not f.primary_key]
    columns_and_preparers = [(f.attname, _value_preparer(f)) for f in fields]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(f.column) for f in fields)
    row_placeholder = "(" + ", ".join(["%s"] * len(fields)) + ")"
    new_ids: list[int] = []
    with connection.cursor() as cursor:
        for start in range(0, len(rows), INSERT_CHUNK):
            chunk = rows[start : start + INSERT_CHUNK]
            params: list = []
            for row in chunk:
                row_values = row.__dict__
                params.extend(
                    prepare(row_values[attname]) for attname, prepare in columns_and_preparers
                )
            # Table and column names come from the model; values are parameters.
            values = ", ".join([row_placeholder] * len(chunk))
            conflict = f"({quote('channel_id')}, {quote('external_id')})"
            sql = (
                f"INSERT INTO {quote(meta.db_table)} ({columns}) VALUES {values} "  # noqa: S608
                f"ON CONFLICT {conflict} DO NOTHING RETURNING {quote('id')}"
            )
            cursor.execute(sql, params)
            new_ids.extend(row[0] for row in cursor.fetchall())
    return new_ids


def _update_messages(messages: list[InboundMessage], field_names: Sequence[str]) -> None:
    """Write the named fields of many messages back, each its own values.

    On PostgreSQL one `UPDATE ... FROM (VALUES ...)` per chunk; Django's bulk_update builds a
    CASE WHEN expression per field and row, which costs more Python time than the rest of
    an ingest batch put together. Other databases (the SQLite demo) use bulk_update.
    """
    if not messages:
        return
    if connection.vendor != "postgresql":
        InboundMessage.objects.bulk_update(messages, field_names)
        return
    meta = InboundMessage._meta
    fields = [meta.get_field(name) for name in field_names]
    attnames_and_preparers = [(f.attname, _value_preparer(f)) for f in fields]
    quote = connection.ops.quote_name
    # VALUES columns come as text unless typed; strings stay text so that a value too long
    # for its varchar column fails as it would in a plain UPDATE instead of being cut.
    assignments = ", ".join(
        f"{quote(f.column)} = v.{quote(f.column)}"
        + (
            ""
            if isinstance(f, models.CharField | models.TextField)
            else f"::{f.cast_db_type(connection)}"
        )
        for f in fields
    )
    value_columns = ", ".join(["id", *(quote(f.column) for f in fields)])
    row_placeholder = "(" + ", ".join(["%s"] * (len(fields) + 1)) + ")"
    table = quote(meta.db_table)
    with connection.cursor() as cursor:
        for start in range(0, len(messages), INSERT_CHUNK):
            chunk = messages[start : start + INSERT_CHUNK]
            params: list = []
            for message in chunk:
                # As bulk_update does: refuses unsaved related objects and picks up the id of
                # one saved after it was assigned.
                message._prepare_related_fields_for_save(
                    operation_name="bulk_update", fields=fields
                )
                row_values = message.__dict__
                params.append(message.pk)
                params.extend(
                    prepare(row_values[attname]) for attname, prepare in attnames_and_preparers
                )
            rows = ", ".join([row_placeholder] * len(chunk))
            cursor.execute(
                f"UPDATE {table} AS t SET {assignments} "  # noqa: S608 - names from the model
                f"FROM (VALUES {rows}) AS v({value_columns}) WHERE t.id = v.id",
                params,
            )


def store_raw_messages(*, channel: Channel, raws: Sequence[RawInbound]) -> StoredBatch:
    """Store raw inbound messages before parsing; duplicates are counted, never re-stored.

    A duplicate that reached another council address (same message, second recipient)
    adds that address to the stored message's recipients.
    """
    if not raws:
        return StoredBatch([], 0)
    by_external_id: dict[str, RawInbound] = {}
    extra_recipients: dict[str, list[str]] = defaultdict(list)
    for raw in raws:
        if raw.external_id in by_external_id:
            extra_recipients[raw.external_id].extend(raw.recipients)
        else:
            by_external_id[raw.external_id] = raw
    now = timezone.now()
    rows = [
        InboundMessage(
            channel=channel,
            external_id=raw.external_id[:255],
            raw=raw.raw,
            raw_content_type=raw.content_type[:100],
            raw_size=len(raw.raw),
            recipients=sorted(set(raw.recipients)),
            received_at=raw.received_at or now,
        )
        for raw in by_external_id.values()
    ]
    with transaction.atomic():
        new_ids = _insert_new(rows)
        duplicates = len(raws) - len(new_ids)
        inserted = set(new_ids)
        known = {
            external_id: raw.recipients
            for external_id, raw in by_external_id.items()
            if raw.recipients
        }
        for external_id, more in extra_recipients.items():
            known.setdefault(external_id, ())
            known[external_id] = (*known[external_id], *more)
        if duplicates and known:
            _add_recipients(channel, known, inserted)
        Channel.objects.filter(pk=channel.pk).update(
            received_count=F("received_count") + len(new_ids),
            duplicate_count=F("duplicate_count") + duplicates,
        )
        if new_ids:
            transaction.on_commit(lambda: _enqueue_ingest(new_ids))
    return StoredBatch(new_ids, duplicates)


def _add_recipients(
    channel: Channel, recipients: dict[str, Sequence[str]], inserted_ids: set[int]
) -> None:
    existing = (
        InboundMessage.objects.select_for_update()
        .filter(channel=channel, external_id__in=list(recipients))
        .exclude(pk__in=inserted_ids)
        .only("pk", "external_id", "recipients")
    )
    changed = []
    for message in existing:
        merged = sorted(set(message.recipients) | set(recipients[message.external_id]))
        if merged != message.recipients:
            message.recipients = merged
            changed.append(message)
    InboundMessage.objects.bulk_update(changed, ["recipients"])


def _locked_batch(message_ids: Sequence[int]) -> list[InboundMessage]:
    queryset = (
        InboundMessage.objects.filter(
            pk__in=list(message_ids), status=InboundMessage.Status.RECEIVED
        )
        .select_related("channel")
        .order_by("received_at", "pk")
    )
    if connection.features.has_select_for_update_skip_locked:
        queryset = queryset.select_for_update(skip_locked=True, of=("self",))
    return list(queryset)


def _safe_parse(message: InboundMessage, parsers: dict[int, Callable]) -> ParsedMessage | str:
    """Parse one message; a parser crash fails that message alone, with its traceback."""
    try:
        if message.channel_id not in parsers:
            parsers[message.channel_id] = adapter_for(message.channel).parse
        return parsers[message.channel_id](message)
    except Exception:
        logger.exception("could not parse inbound message %s", message.pk)
        return "parse error:\n" + traceback.format_exc(limit=5)


def ingest_inbound_messages(message_ids: Sequence[int]) -> IngestReport:
    """Process stored messages: parse, resolve senders, thread, route, record, mark done."""
    report = IngestReport()
    with transaction.atomic():
        messages = _locked_batch(message_ids)
        report.skipped = len(set(message_ids)) - len(messages)
        if not messages:
            return report
        parsers: dict[int, Callable] = {}
        parsed: dict[int, ParsedMessage] = {}
        for message in messages:
            result = _safe_parse(message, parsers)
            if isinstance(result, str):
                _fail(message, result, report)
            else:
                parsed[message.pk] = result
                _apply_parsed(message, result)

        people = [m for m in messages if m.pk in parsed and m.classification == "message"]
        _handle_non_people(
            [m for m in messages if m.pk in parsed and m.classification != "message"],
            parsed,
            report,
        )
        people = _resolve_senders(people, parsed, report)
        people = _mark_cross_channel_copies(people, report)
        rules = enabled_rules()
        decisions = {m.pk: route_message(m, parsed[m.pk], rules) for m in people}
        assigner = ThreadAssigner(people, parsed, decisions)
        assigner.assign()
        _store_attachments(people, parsed)
        _record_timeline(people, decisions)
        now = timezone.now()
        for message in people:
            message.status = InboundMessage.Status.PROCESSED
            message.processed_at = now
            report.processed.append(message.pk)
        _update_messages(messages, _UPDATED_FIELDS)
        _count(messages)
        if report.processed:
            inbound_messages_processed.send(
                sender=InboundMessage,
                message_ids=list(report.processed),
                routing=decisions,
                new_thread_ids=frozenset(assigner.new_thread_ids),
            )
    return report


_UPDATED_FIELDS = [
    "status",
    "processed_at",
    "attempts",
    "last_error",
    "classification",
    "message_id",
    "in_reply_to",
    "references",
    "sender_kind",
    "sender_value",
    "sender_name",
    "subject",
    "body_text",
    "summary_text",
    "body_html",
    "sent_at",
    "citizen",
    "contact_point",
    "thread",
    "duplicate_of",
    "recipients",
]


def _apply_parsed(message: InboundMessage, parsed: ParsedMessage) -> None:
    message.attempts += 1
    message.classification = parsed.classification
    message.message_id = parsed.message_id[:255]
    message.in_reply_to = parsed.in_reply_to[:255]
    message.references = parsed.references
    message.sender_kind = parsed.sender_kind
    message.sender_value = parsed.sender_value[:320]
    message.sender_name = parsed.sender_name[:200]
    message.subject = parsed.subject[:300]
    message.body_text = parsed.body_text
    message.summary_text = parsed.summary_text
    message.body_html = parsed.body_html
    message.sent_at = parsed.sent_at


def _fail(message: InboundMessage, error: str, report: IngestReport) -> None:
    message.status = InboundMessage.Status.FAILED
    message.last_error = error[:5000]
    report.failed.append(message.pk)


def _handle_non_people(
    messages: list[InboundMessage], parsed: dict[int, ParsedMessage], report: IngestReport
) -> None:
    """Auto-replies and bounces are kept and marked ignored; they make no profile or thread.
    A bounce marks the addresses it reports as undeliverable."""
    bounced: set[str] = set()
    for message in messages:
        message.status = InboundMessage.Status.IGNORED
        message.processed_at = timezone.now()
        report.ignored.append(message.pk)
        for address in parsed[message.pk].bounced_recipients:
            try:
                from citizenhub.normalise import normalise_email

                bounced.add(normalise_email(address).match_key)
            except ValidationError:
                continue
    if bounced:
        ContactPoint.objects.filter(
            kind=ContactPoint.Kind.EMAIL, match_key__in=bounced, undeliverable_at__isnull=True
        ).update(undeliverable_at=timezone.now())


def _resolve_senders(
    messages: list[InboundMessage], parsed: dict[int, ParsedMessage], report: IngestReport
) -> list[InboundMessage]:
    claims = [
        IdentityClaim(m.sender_kind, m.sender_value, parsed[m.pk].sender_name)
        for m in messages
        if m.sender_value
    ]
    resolved = resolve_identities(claims)
    kept = []
    for message in messages:
        if not message.sender_value:
            _fail(
                message,
                "No usable sender address (From, Sender and Reply-To are missing or unreadable).",
                report,
            )
            continue
        outcome = resolved[(message.sender_kind, message.sender_value)]
        if isinstance(outcome, ValidationError):
            _fail(
                message,
                f"Sender {message.sender_value!r} is not valid: {'; '.join(outcome.messages)}",
                report,
            )
            continue
        message.citizen_id = outcome.citizen_id
        message.contact_point_id = outcome.contact_point_id
        kept.append(message)
    return kept


def _mark_cross_channel_copies(
    messages: list[InboundMessage], report: IngestReport
) -> list[InboundMessage]:
    """The same e-mail (same Message-ID and sender) received at two council addresses is one
    conversation: the later copy points at the first, which records both addresses."""
    ids = {m.message_id for m in messages if m.message_id}
    if not ids:
        return messages
    originals = {
        (o.message_id, o.contact_point_id): o
        for o in InboundMessage.objects.select_for_update()
        .filter(
            message_id__in=ids,
            status=InboundMessage.Status.PROCESSED,
            duplicate_of__isnull=True,
        )
        .exclude(pk__in=[m.pk for m in messages])
    }
    originals_changed = {}
    unique = []
    for message in messages:
        key = (message.message_id, message.contact_point_id)
        original = originals.get(key) if message.message_id else None
        if original is None:
            if message.message_id:
                originals[key] = message
            unique.append(message)
            continue
        message.classification = InboundMessage.Classification.DUPLICATE
        message.status = InboundMessage.Status.PROCESSED
        message.processed_at = timezone.now()
        message.duplicate_of = original
        message.thread_id = original.thread_id
        original.recipients = sorted(set(original.recipients) | set(message.recipients))
        if original.pk not in {m.pk for m in messages}:
            originals_changed[original.pk] = original
        report.processed.append(message.pk)
    InboundMessage.objects.bulk_update(list(originals_changed.values()), ["recipients"])
    return unique


def _store_attachments(messages: list[InboundMessage], parsed: dict[int, ParsedMessage]) -> None:
    limit = settings.CHANNELS_MAX_ATTACHMENT_BYTES
    rows = []
    for message in messages:
        for item in parsed[message.pk].attachments:
            digest = hashlib.sha256(item.content).hexdigest()
            kind = filetype.guess(item.content[:8192]) if item.content else None
            sniffed = kind.mime if kind else ""
            attachment = Attachment(
                message=message,
                filename=item.filename,
                declared_type=item.declared_type,
                sniffed_type=sniffed,
                size=len(item.content),
                sha256=digest,
            )
            if len(item.content) > limit:
                attachment.rejected_reason = (
                    f"Larger than the {limit // (1024 * 1024)} MB limit; the original is kept "
                    "inside the raw message."
                )
            elif sniffed in settings.CHANNELS_REFUSED_ATTACHMENT_TYPES:
                attachment.rejected_reason = f"Files of type {sniffed} are not accepted."
            else:
                attachment.file.save(digest, ContentFile(item.content), save=False)
            rows.append(attachment)
    Attachment.objects.bulk_create(rows)


def _record_timeline(messages: list[InboundMessage], decisions: dict[int, RoutingDecision]) -> None:
    source_type = ContentType.objects.get_for_model(InboundMessage)
    entries = []
    for message in messages:
        text = message.summary_text or message.body_text
        summary = f"{message.subject}: {text}" if message.subject else text
        entries.append(
            TimelineEntryData(
                citizen_id=message.citizen_id,
                kind=TimelineEntry.Kind.MESSAGE_IN,
                occurred_at=message.received_at,
                summary=summary or "(empty message)",
                channel=message.channel.timeline_channel,
                department=decisions[message.pk].department,
                service_code=decisions[message.pk].service_code,
                visibility=TimelineEntry.Visibility.RESIDENT,
                source_type_id=source_type.pk,
                source_id=str(message.pk),
            )
        )
    record_timeline_entries(entries)


def _count(messages: list[InboundMessage]) -> None:
    tallies: dict[int, dict[str, int]] = defaultdict(lambda: {"processed": 0, "failed": 0})
    for message in messages:
        if message.status == InboundMessage.Status.FAILED:
            tallies[message.channel_id]["failed"] += 1
        else:
            tallies[message.channel_id]["processed"] += 1
    for channel_id, tally in tallies.items():
        Channel.objects.filter(pk=channel_id).update(
            processed_count=F("processed_count") + tally["processed"],
            failed_count=F("failed_count") + tally["failed"],
        )


def mark_failed(*, message_ids: Sequence[int], error: str) -> int:
    """Give up on messages after retries: they stay stored, visible as failed, reprocessable."""
    with transaction.atomic():
        messages = list(
            InboundMessage.objects.select_for_update().filter(
                pk__in=list(message_ids), status=InboundMessage.Status.RECEIVED
            )
        )
        for message in messages:
            message.status = InboundMessage.Status.FAILED
            message.last_error = error[:5000]
            message.attempts += 1
        InboundMessage.objects.bulk_update(messages, ["status", "last_error", "attempts"])
        _count(messages)
    return len(messages)


def reprocess_messages(*, message_ids: Sequence[int]) -> int:
    """Put failed messages back in the queue (after a fix); processed ones are left alone."""
    with transaction.atomic():
        ids = list(
            InboundMessage.objects.filter(
                pk__in=list(message_ids), status=InboundMessage.Status.FAILED
            ).values_list("pk", flat=True)
        )
        InboundMessage.objects.filter(pk__in=ids).update(
            status=InboundMessage.Status.RECEIVED, last_error=""
        )
        if ids:
            transaction.on_commit(lambda: _enqueue_ingest(ids))
    return len(ids)


def stale_received_ids(*, older_than_seconds: int = 120, limit: int = 5000) -> list[int]:
    """Messages stored but still not processed after longer than ingest should take."""
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    return list(
        InboundMessage.objects.filter(status=InboundMessage.Status.RECEIVED, received_at__lt=cutoff)
        .order_by("received_at")
        .values_list("pk", flat=True)[:limit]
    )
