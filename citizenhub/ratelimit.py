"""Counting requests per hour, per resident or per address, in the cache (Redis in
production): web forms, anonymous reports and other doors open to anyone.

Addresses are never kept: a salted hash of the address (IPv6 by /64, the block one
subscriber usually holds) is enough to count. When the cache is down nothing is limited and
a warning is logged: refusing residents because Redis is restarting would be worse.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest
from django.utils.crypto import salted_hmac

from citizenhub.middleware import OUTAGE_ERRORS

logger = logging.getLogger(__name__)

WINDOW_SECONDS = 60 * 60


def client_address(request: HttpRequest) -> str:
    """The resident's address. Behind proxies (a load balancer), CHANNELS_TRUSTED_PROXY_COUNT
    says how many X-Forwarded-For entries from the right were added by our own proxies;
    without it every resident would share the proxy's address and one rate limit."""
    proxies = int(getattr(settings, "CHANNELS_TRUSTED_PROXY_COUNT", 0) or 0)
    if proxies:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        if len(hops) >= proxies:
            return hops[-proxies]
    return request.META.get("REMOTE_ADDR", "")


def address_hash(address: str, *, salt: str = "channels.webform.address") -> str:
    """A salted hash of the address: enough to count, never stored as the address itself."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        key = address
    else:
        key = str(ipaddress.ip_network(f"{ip}/64", strict=False)) if ip.version == 6 else str(ip)
    return salted_hmac(salt, key).hexdigest()[:32]


@dataclass(frozen=True)
class HourlyLimit:
    """At most `per_hour` actions in a clock hour for one key (an address hash, a profile)."""

    scope: str
    per_hour: int

    def _key(self, key: str) -> tuple[str, int]:
        now = time.time()
        window = int(now // WINDOW_SECONDS)
        retry_after = WINDOW_SECONDS - int(now % WINDOW_SECONDS)
        return f"ratelimit:{self.scope}:{key}:{window}", retry_after

    def retry_after(self, key: str) -> int | None:
        """Seconds until `key` may act again, or None while it is under the limit."""
        cache_key, retry_after = self._key(key)
        try:
            count = cache.get(cache_key, 0)
        except OUTAGE_ERRORS:
            logger.warning("%s: rate limit cache unavailable; not limiting", self.scope)
            return None
        return retry_after if count >= self.per_hour else None

    def consume(self, key: str) -> int | None:
        """Count one attempt now; seconds to wait if that went over the limit, else None.
        Counting before acting is what holds under concurrency: of many requests at once,
        only those within the limit get through (check-then-count lets them all pass)."""
        cache_key, retry_after = self._key(key)
        try:
            cache.add(cache_key, 0, timeout=WINDOW_SECONDS + 60)
            count = cache.incr(cache_key)
        except ValueError:  # expired between add and incr: a new window has begun
            cache.set(cache_key, 1, timeout=WINDOW_SECONDS + 60)
            count = 1
        except OUTAGE_ERRORS:
            logger.warning("%s: rate limit cache unavailable; not limiting", self.scope)
            return None
        return retry_after if count > self.per_hour else None

    def count(self, key: str) -> None:
        """Count one action of `key` (after it happened)."""
        self.consume(key)
