"""Sending rates per channel: a per-minute limiter shared by every worker (in the cache,
Redis in production), and the error a provider's own rate limit (HTTP 429) becomes.

GOV.UK Notify allows 3,000 messages per API key in any rolling 60 seconds and answers 429
RateLimitError beyond it. A campaign of thousands of texts must stay under that across all
workers, so the send path takes a token here before handing a message to the provider; a
task that gets none puts the message back and runs again when the window has room.
"""

from __future__ import annotations

import logging
import math
import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.core.cache import cache

from channels.adapters import TransientChannelError
from citizenhub.middleware import OUTAGE_ERRORS

if TYPE_CHECKING:
    from channels.models import Channel

logger = logging.getLogger(__name__)

WINDOW_SECONDS = 60
# Counts are kept per 5-second bucket: a rolling minute touches 13 keys (one MGET).
BUCKET_SECONDS = 5
# The channel setting that caps a channel's sends per rolling minute (0 or absent: none,
# unless the provider has a default below).
SEND_PER_MINUTE_SETTING = "send_per_minute"
# Provider defaults: a little under Notify's 3,000, because our clock (when the token is
# taken) and Notify's (when the request arrives) differ by the request's journey.
DEFAULT_SEND_PER_MINUTE = {"sms-notify": 2_900}


class ProviderRateLimited(TransientChannelError):
    """Sending must wait: the provider answered 429, or our own limiter has no token.

    Not a failure of the message nor of the channel: the message stays queued and is sent
    when the window has room. `retry_after` is how long to wait, when known."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class PerMinuteLimiter:
    """At most `per_minute` events for a key in ANY rolling 60 seconds, across processes.

    A sliding window over 5-second buckets: an event is allowed only if the buckets that
    overlap the last 60 seconds (the oldest one counted whole) hold fewer than the limit.
    Counting the partial oldest bucket whole is what makes the bound exact for every
    rolling window, at the price of up to one bucket of unused budget. Each attempt counts
    itself first and backs out if over, so of many workers asking at once none slips
    through between a read and a write.

    When the cache is unavailable nothing is limited (logged): the provider's own 429 is
    the backstop, and stopping every send because Redis restarts would be worse.
    """

    scope: str
    per_minute: int

    def _bucket(self, now: float) -> int:
        return int(now // BUCKET_SECONDS)

    def _key(self, key: str, bucket: int) -> str:
        return f"ratelimit:{self.scope}:{key}:{bucket}"

    def acquire(self, key: str) -> float | None:
        """Take one token now: None if granted, else the seconds until one may be free."""
        now = time.time()
        current = self._bucket(now)
        span = math.ceil(WINDOW_SECONDS / BUCKET_SECONDS)
        buckets = list(range(current - span, current + 1))
        current_key = self._key(key, current)
        try:
            # The bucket's key outlives the window that can still count it.
            cache.add(current_key, 0, timeout=WINDOW_SECONDS + 2 * BUCKET_SECONDS)
            try:
                cache.incr(current_key)
            except ValueError:  # expired between add and incr
                cache.set(current_key, 1, timeout=WINDOW_SECONDS + 2 * BUCKET_SECONDS)
            counts = cache.get_many([self._key(key, bucket) for bucket in buckets])
        except OUTAGE_ERRORS:
            logger.warning("%s: rate limit cache unavailable; not limiting", self.scope)
            return None
        in_window = [counts.get(self._key(key, bucket), 0) or 0 for bucket in buckets]
        if sum(in_window) <= self.per_minute:
            return None
        try:
            cache.decr(current_key)
        except (ValueError, *OUTAGE_ERRORS):
            pass  # gone already: nothing to give back
        # Room comes back when the oldest counted bucket leaves the window.
        oldest = next(
            (bucket for bucket, count in zip(buckets, in_window, strict=True) if count),
            current,
        )
        free_at = (oldest + 1) * BUCKET_SECONDS + WINDOW_SECONDS
        return max(0.5, free_at - now)


def channel_send_limit(channel: Channel) -> int | None:
    """Sends per rolling minute a channel may make: its `send_per_minute` setting, else its
    provider's default (Notify), else None (no limit)."""
    configured = channel.setting(SEND_PER_MINUTE_SETTING)
    if configured is None:
        return DEFAULT_SEND_PER_MINUTE.get(channel.kind)
    try:
        limit = int(configured)
    except (TypeError, ValueError):
        logger.warning(
            "channel %s: %s=%r is not a number", channel.slug, SEND_PER_MINUTE_SETTING, configured
        )
        return DEFAULT_SEND_PER_MINUTE.get(channel.kind)
    return limit if limit > 0 else None


def take_send_token(channel: Channel) -> None:
    """Take one send from the channel's per-minute budget, or raise ProviderRateLimited
    with the wait. The key is the channel's id and slug, so a channel recreated under
    another slug does not inherit a stranger's count."""
    limit = channel_send_limit(channel)
    if limit is None:
        return
    wait = PerMinuteLimiter("channels.send", limit).acquire(f"{channel.pk}:{channel.slug}")
    if wait is not None:
        raise ProviderRateLimited(
            f"{channel.slug}: {limit} sends per minute reached; waiting {wait:.0f} s",
            retry_after=wait,
        )


def rate_limited_backoff(times: int, *, base: float = 2.0, cap: float = 30.0) -> float:
    """How long to wait after the provider's n-th 429 in a row: exponential with equal
    jitter (never near zero, so a refused batch does not hammer the provider)."""
    ceiling = min(cap, base * 2**times)
    return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - jitter, not security
