"""Celery tasks of the channels app: thin wrappers that take ids and call services."""

from __future__ import annotations

import random
import traceback

from celery import shared_task
from django.db import InterfaceError, OperationalError

from channels.adapters import TransientChannelError
from channels.ratelimit import ProviderRateLimited, rate_limited_backoff
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


def _rate_limit_wait(exc: ProviderRateLimited, times: int) -> float:
    return exc.retry_after if exc.retry_after is not None else rate_limited_backoff(times)


@shared_task(bind=True, name="channels.send_outbound", max_retries=8, ignore_result=True)
def send_outbound_message(self, outbound_id: int, rate_limited: int = 0) -> str:
    try:
        return outbound.send_outbound(outbound_id=outbound_id)
    except ProviderRateLimited as exc:
        if self.request.is_eager:
            return "queued"
        # Waiting for room in the provider's rate limit is not a failure: it uses none of
        # the retries (a new task, not self.retry), however long a campaign keeps it busy.
        send_outbound_message.apply_async(
            (outbound_id,),
            {"rate_limited": rate_limited + 1},
            countdown=_rate_limit_wait(exc, rate_limited),
        )
        return "rate_limited"
    except (TransientChannelError, *TRANSIENT_DB_ERRORS) as exc:
        if self.request.retries >= self.max_retries or self.request.is_eager:
            # Left `queued` with its error, visible to staff; the sweeper tries it again.
            return "queued"
        raise self.retry(exc=exc, countdown=backoff_seconds(self.request.retries, base=15)) from exc


# A batch task that met this many transient errors in a row (provider or database down)
# stops; its messages stay queued, visible to staff, and the stale sweep sends them later.
MAX_BATCH_FAILURES = 8


@shared_task(bind=True, name="channels.send_outbound_batch", ignore_result=True)
def send_outbound_batch(
    self, outbound_ids: list[int], failures: int = 0, rate_limited: int = 0
) -> dict:
    """Send queued messages one after the other (a campaign's batch: e-mail or texts).

    When the provider or the channel's budget says wait (429, or no token), or the provider
    is down, the messages not yet sent go to a new task with a countdown and this one ends:
    nothing is lost (they stay `queued`) and nothing is sent twice (each send claims its
    message first). Rate limits never count as failures; outages give up after
    MAX_BATCH_FAILURES in a row and leave the rest to the stale sweep.
    """
    done: dict[str, int] = {}
    for index, outbound_id in enumerate(outbound_ids):
        try:
            result = outbound.send_outbound(outbound_id=outbound_id)
        except ProviderRateLimited as exc:
            wait = _rate_limit_wait(exc, rate_limited)
            return _send_rest_later(
                self, outbound_ids[index:], done, wait, failures=0, rate_limited=rate_limited + 1
            )
        except (TransientChannelError, *TRANSIENT_DB_ERRORS):
            if failures + 1 >= MAX_BATCH_FAILURES:
                done["queued"] = len(outbound_ids) - index
                return done
            wait = backoff_seconds(failures, base=15)
            return _send_rest_later(
                self, outbound_ids[index:], done, wait, failures=failures + 1, rate_limited=0
            )
        done[result] = done.get(result, 0) + 1
        failures = rate_limited = 0
    return done


def _send_rest_later(
    task, rest: list[int], done: dict[str, int], wait: float, *, failures: int, rate_limited: int
) -> dict:
    if task.request.is_eager:
        # In-process (demo, unit tests) there is no broker to wait with: the messages stay
        # queued and the stale sweep sends them.
        done["queued"] = len(rest)
        return done
    send_outbound_batch.apply_async(
        (rest,), {"failures": failures, "rate_limited": rate_limited}, countdown=wait
    )
    done["later"] = len(rest)
    return done


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
