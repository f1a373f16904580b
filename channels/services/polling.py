"""Polling channels (IMAP, social APIs): one poller per channel, cursors, back-off."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from channels.adapters import adapter_for, registered_kinds
from channels.models import Channel, ChannelCursor
from channels.services.ingest import store_raw_messages

logger = logging.getLogger(__name__)
MAX_BACKOFF_SECONDS = 3600


@dataclass(frozen=True)
class PollOutcome:
    status: str  # "polled", "locked", "backing_off", "disabled", "failed"
    stored: int = 0
    duplicates: int = 0
    error: str = ""


def _lock_key(channel_id: int) -> str:
    return f"channels:poll-lock:{channel_id}"


def polling_kinds() -> list[str]:
    from channels.adapters import _REGISTRY

    registered_kinds()
    return [kind for kind, adapter in _REGISTRY.items() if adapter.polls]


def backoff_delay(channel: Channel, failures: int) -> timedelta:
    """Exponential back-off from the poll interval, capped at an hour, with 10% jitter so a
    provider outage does not make every channel retry in the same second."""
    base = max(channel.poll_interval_seconds, 5) * (2 ** min(failures - 1, 12))
    capped = min(base, MAX_BACKOFF_SECONDS)
    return timedelta(seconds=capped * random.uniform(0.9, 1.1))  # noqa: S311 - jitter


def record_poll_failure(channel: Channel, exc: Exception) -> Channel:
    """Back off after a failure. A channel is never silently disabled: it keeps retrying at
    a slower pace and shows its error on the health page and in /metrics."""
    with transaction.atomic():
        channel = Channel.objects.select_for_update().get(pk=channel.pk)
        channel.consecutive_failures += 1
        now = timezone.now()
        channel.last_error = f"{type(exc).__name__}: {exc}"[:2000]
        channel.last_error_at = now
        channel.backoff_until = now + backoff_delay(channel, channel.consecutive_failures)
        channel.save(
            update_fields=["consecutive_failures", "last_error", "last_error_at", "backoff_until"]
        )
    return channel


def poll_channel(*, channel_id: int) -> PollOutcome:
    """Fetch new messages from one channel and store them raw; cursors advance only in the
    same transaction that stored the messages, so a crash re-fetches instead of losing."""
    channel = Channel.objects.get(pk=channel_id)
    if not channel.enabled:
        return PollOutcome("disabled")
    now = timezone.now()
    if channel.backoff_until and channel.backoff_until > now:
        return PollOutcome("backing_off")
    lock_seconds = settings.CELERY_TASK_TIME_LIMIT + 60
    if not cache.add(_lock_key(channel_id), "1", timeout=lock_seconds):
        return PollOutcome("locked")
    try:
        Channel.objects.filter(pk=channel_id).update(last_poll_at=now)
        try:
            result = adapter_for(channel).fetch()
        except Exception as exc:
            logger.warning("polling channel %s failed: %r", channel.slug, exc)
            record_poll_failure(channel, exc)
            return PollOutcome("failed", error=str(exc))
        try:
            with transaction.atomic():
                stored = store_raw_messages(channel=channel, raws=result.messages)
                for key, state in result.cursors:
                    ChannelCursor.objects.update_or_create(
                        channel=channel, key=key, defaults={"state": state}
                    )
                Channel.objects.filter(pk=channel_id).update(
                    last_success_at=timezone.now(),
                    consecutive_failures=0,
                    backoff_until=None,
                    last_error="",
                )
        except Exception as exc:
            # Nothing was stored and no cursor moved: the next poll fetches the same again.
            logger.exception("storing messages polled from %s failed", channel.slug)
            record_poll_failure(channel, exc)
            return PollOutcome("failed", error=str(exc))
        return PollOutcome("polled", len(stored.new_ids), stored.duplicates)
    finally:
        cache.delete(_lock_key(channel_id))


def due_polling_channels() -> list[int]:
    """Enabled polling channels whose interval has passed and that are not backing off."""
    now = timezone.now()
    due = []
    channels = Channel.objects.filter(enabled=True, kind__in=polling_kinds()).filter(
        Q(backoff_until__isnull=True) | Q(backoff_until__lte=now)
    )
    for channel in channels:
        interval = timedelta(seconds=channel.poll_interval_seconds)
        if channel.last_poll_at is None or channel.last_poll_at + interval <= now:
            due.append(channel.pk)
    return due
