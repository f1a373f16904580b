"""Celery tasks of the channels app: thin wrappers that take ids and call services."""

from __future__ import annotations

import random
import traceback

from celery import shared_task
from django.db import InterfaceError, OperationalError

from channels.adapters import TransientChannelError
from channels.services import ingest, outbound, polling

TRANSIENT_DB_ERRORS = (OperationalError, InterfaceError)


def backoff_seconds(retries: int, *, base: int = 5, cap: int = 600) -> float:
    """Exponential back-off with full jitter; capped well below the broker's visibility
    timeout so a retry never overlaps a redelivery."""
    return random.uniform(0, min(cap, base * 2**retries))  # noqa: S311 - jitter, not security


@shared_task(bind=True, name="channels.ingest_batch", max_retries=6, ignore_result=True)
def ingest_inbound_batch(self, message_ids: list[int]) -> dict:
    try:
        report = ingest.ingest_inbound_messages(message_ids)
    except TRANSIENT_DB_ERRORS as exc:
        if self.request.is_eager:
            # In-process (demo) there is no broker to retry through: the rows stay
            # `received` and the sweeper picks them up again.
            return {"deferred": len(message_ids)}
        if self.request.retries >= self.max_retries:
            ingest.mark_failed(message_ids=message_ids, error=f"database unavailable: {exc}")
            return {"failed": len(message_ids)}
        raise self.retry(exc=exc, countdown=backoff_seconds(self.request.retries)) from exc
    except Exception:
        # An unexpected error in a set-based step: split the batch so that one bad message
        # cannot hold the others back, then give the lone message its retries.
        if len(message_ids) > 1:
            for message_id in message_ids:
                ingest_inbound_batch.delay([message_id])
            return {"split": len(message_ids)}
        if self.request.retries >= self.max_retries or self.request.is_eager:
            ingest.mark_failed(message_ids=message_ids, error=traceback.format_exc(limit=8))
            return {"failed": 1}
        raise self.retry(countdown=backoff_seconds(self.request.retries)) from None
    return {
        "processed": len(report.processed),
        "ignored": len(report.ignored),
        "failed": len(report.failed),
        "skipped": report.skipped,
    }


@shared_task(bind=True, name="channels.send_outbound", max_retries=8, ignore_result=True)
def send_outbound_message(self, outbound_id: int) -> str:
    try:
        return outbound.send_outbound(outbound_id=outbound_id)
    except (TransientChannelError, *TRANSIENT_DB_ERRORS) as exc:
        if self.request.retries >= self.max_retries or self.request.is_eager:
            # Left `queued` with its error, visible to staff; the sweeper tries it again.
            return "queued"
        raise self.retry(exc=exc, countdown=backoff_seconds(self.request.retries, base=15)) from exc


@shared_task(name="channels.poll_channel", ignore_result=True)
def poll_channel(channel_id: int) -> str:
    return polling.poll_channel(channel_id=channel_id).status


@shared_task(name="channels.poll_due", ignore_result=True)
def poll_due_channels() -> int:
    due = polling.due_polling_channels()
    for channel_id in due:
        poll_channel.delay(channel_id)
    return len(due)


@shared_task(name="channels.sweep_stale", ignore_result=True)
def sweep_stale_messages() -> dict:
    """The database is the outbox: re-enqueue inbound messages still `received` and replies
    still `queued` after a while, whether the publish was lost after commit, a worker died or
    retries ran out. Enqueueing twice is harmless: both steps lock and check status first."""
    received = ingest.stale_received_ids()
    for start in range(0, len(received), 200):
        ingest_inbound_batch.delay(received[start : start + 200])
    queued = outbound.stale_queued_ids()
    for outbound_id in queued:
        send_outbound_message.delay(outbound_id)
    return {"inbound": len(received), "outbound": len(queued)}
