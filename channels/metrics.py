"""`/metrics` for Prometheus: channel counters and health, ingest lag, queue depths.

Who may read it: a Prometheus server sending `Authorization: Bearer <METRICS_TOKEN>` (the
environment variable, at least 16 characters; unset disables token access), or a signed-in
staff user. Anyone else gets 403 rather than 404: the route is no secret in open-source
software, and a 403 makes a wrong or missing scrape token obvious in Prometheus' target page.

Every number comes from a fixed handful of queries whatever the number of channels or
messages: counters are columns on Channel, the lag and the status gauges use the
(status, received_at) and (status, created_at) indexes and are bounded.
"""

from __future__ import annotations

import datetime
import hmac
import logging
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field

import redis
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from kombu.transport.redis import PRIORITY_STEPS
from kombu.transport.redis import Channel as KombuRedisChannel

from channels.models import Channel, InboundMessage, OutboundMessage
from channels.selectors import oldest_waiting_received_at

logger = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MIN_TOKEN_LENGTH = 16
# Gauges that count rows stop at this number so a large backlog cannot make a scrape slow;
# a value equal to the cap means "at least this many".
COUNT_CAP = 10_000
INBOUND_STATUSES_COUNTED = (InboundMessage.Status.RECEIVED, InboundMessage.Status.FAILED)


@dataclass
class MetricFamily:
    name: str
    kind: str  # "counter" or "gauge"
    help: str
    samples: list[tuple[dict[str, str], float]] = field(default_factory=list)

    def add(self, value: float, **labels: str) -> None:
        self.samples.append((labels, value))


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _format_value(value: float) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def render_exposition(families: Iterable[MetricFamily]) -> str:
    """Prometheus text exposition format 0.0.4: HELP, TYPE, then one line per sample."""
    lines = []
    for family in families:
        if not family.samples:
            continue
        lines.append(f"# HELP {family.name} {family.help}")
        lines.append(f"# TYPE {family.name} {family.kind}")
        for labels, value in family.samples:
            label_text = ",".join(f'{k}="{_escape_label(str(v))}"' for k, v in labels.items())
            name = f"{family.name}{{{label_text}}}" if label_text else family.name
            lines.append(f"{name} {_format_value(value)}")
    return "\n".join(lines) + "\n"


def ingest_lag_seconds(now: datetime.datetime | None = None) -> float:
    oldest = oldest_waiting_received_at()
    if oldest is None:
        return 0.0
    return max(((now or timezone.now()) - oldest).total_seconds(), 0.0)


def _bounded_count(queryset) -> int:
    # COUNT over a LIMITed subquery selecting only the indexed status column: an index-only
    # scan that stops after COUNT_CAP entries.
    return queryset.order_by().values("status")[:COUNT_CAP].count()


def broker_queue_depths() -> dict[str, int]:
    """Messages waiting in each Celery queue, read straight from Redis.

    kombu's Redis transport keeps one list per queue and priority step: the queue's own
    name for step 0 and `<queue><sep><step>` (sep is "\\x06\\x16") for steps 3, 6 and 9, so
    a queue's depth is the sum of LLEN over all of them. Tasks a worker has reserved but
    not acknowledged sit in the `unacked` hash instead and are not counted here.
    """
    options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
    steps = options.get("priority_steps", PRIORITY_STEPS)
    sep = options.get("sep", KombuRedisChannel.sep)
    prefix = options.get("global_keyprefix", "")
    names = [queue.name for queue in settings.CELERY_TASK_QUEUES]
    timeout = settings.READINESS_TIMEOUT_SECONDS
    client = redis.Redis.from_url(
        settings.REDIS_URL, socket_connect_timeout=timeout, socket_timeout=timeout
    )
    try:
        with client.pipeline(transaction=False) as pipe:
            for name in names:
                for step in steps:
                    pipe.llen(f"{prefix}{name}{sep}{step}" if step else f"{prefix}{name}")
            lengths = pipe.execute()
    finally:
        client.close()
    per_queue = len(steps)
    return {name: sum(lengths[i * per_queue : (i + 1) * per_queue]) for i, name in enumerate(names)}


CHANNEL_FIELDS = (
    "slug",
    "kind",
    "enabled",
    "received_count",
    "processed_count",
    "failed_count",
    "duplicate_count",
    "consecutive_failures",
    "backoff_until",
    "last_success_at",
)


def collect_metrics() -> list[MetricFamily]:
    now = timezone.now()
    received = MetricFamily(
        "citizenhub_channel_messages_received_total",
        "counter",
        "Inbound messages stored for the first time, per channel.",
    )
    processed = MetricFamily(
        "citizenhub_channel_messages_processed_total",
        "counter",
        "Inbound messages processed (including ignored auto-replies and bounces).",
    )
    failed = MetricFamily(
        "citizenhub_channel_messages_failed_total",
        "counter",
        "Inbound messages that failed processing.",
    )
    duplicates = MetricFamily(
        "citizenhub_channel_messages_duplicates_total",
        "counter",
        "Redeliveries of messages already stored, per channel.",
    )
    failures = MetricFamily(
        "citizenhub_channel_consecutive_failures",
        "gauge",
        "Polls or sends that failed in a row; 0 after a success.",
    )
    up = MetricFamily(
        "citizenhub_channel_up",
        "gauge",
        "1 when the channel is not backing off after failures, else 0.",
    )
    enabled = MetricFamily(
        "citizenhub_channel_enabled", "gauge", "1 when the channel is switched on."
    )
    last_success = MetricFamily(
        "citizenhub_channel_last_success_timestamp_seconds",
        "gauge",
        "Unix time of the channel's last successful poll (absent if it never polled).",
    )
    for row in Channel.objects.order_by("slug").values_list(*CHANNEL_FIELDS):
        slug, kind, is_enabled, n_received, n_processed, n_failed, n_duplicates = row[:7]
        n_failures, backoff_until, last_success_at = row[7:]
        labels = {"channel": slug, "kind": kind}
        received.add(n_received, **labels)
        processed.add(n_processed, **labels)
        failed.add(n_failed, **labels)
        duplicates.add(n_duplicates, **labels)
        failures.add(n_failures, **labels)
        up.add(int(not (backoff_until and backoff_until > now)), **labels)
        enabled.add(int(is_enabled), **labels)
        if last_success_at:
            last_success.add(last_success_at.timestamp(), **labels)

    lag = MetricFamily(
        "citizenhub_ingest_lag_seconds",
        "gauge",
        "Age of the oldest inbound message still waiting to be processed; 0 when none waits.",
    )
    lag.add(ingest_lag_seconds(now))
    inbound = MetricFamily(
        "citizenhub_inbound_messages",
        "gauge",
        f"Inbound messages waiting (received) or failed, counted up to {COUNT_CAP}.",
    )
    for status in INBOUND_STATUSES_COUNTED:
        inbound.add(
            _bounded_count(InboundMessage.objects.filter(status=status)), status=str(status)
        )
    queued = MetricFamily(
        "citizenhub_outbound_messages_queued",
        "gauge",
        f"Replies queued and not yet handed to a provider, counted up to {COUNT_CAP}.",
    )
    queued.add(_bounded_count(OutboundMessage.objects.filter(status=OutboundMessage.Status.QUEUED)))
    families = [
        received,
        processed,
        failed,
        duplicates,
        failures,
        up,
        enabled,
        last_success,
        lag,
        inbound,
        queued,
    ]
    if settings.REDIS_URL:
        families.extend(_broker_families())
    return families


def _broker_families() -> list[MetricFamily]:
    broker_up = MetricFamily(
        "citizenhub_broker_up", "gauge", "1 when the Celery broker (Redis) answered this scrape."
    )
    depth = MetricFamily(
        "citizenhub_queue_depth", "gauge", "Tasks waiting in each Celery queue (all priorities)."
    )
    try:
        depths = broker_queue_depths()
    except redis.RedisError as exc:
        logger.warning("metrics: could not read queue depths from Redis: %r", exc)
        broker_up.add(0)
        return [broker_up]
    broker_up.add(1)
    for name, size in depths.items():
        depth.add(size, queue=name)
    return [broker_up, depth]


def _has_scrape_token(request: HttpRequest) -> bool:
    expected = os.environ.get("METRICS_TOKEN", "")
    if not expected:
        return False
    if len(expected) < MIN_TOKEN_LENGTH:
        logger.warning(
            "METRICS_TOKEN is shorter than %d characters and is ignored", MIN_TOKEN_LENGTH
        )
        return False
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return False
    return hmac.compare_digest(given.strip().encode(), expected.encode())


def may_read_metrics(request: HttpRequest) -> bool:
    # The token is checked first so that a scrape never loads a session or a user.
    if _has_scrape_token(request):
        return True
    user = request.user
    return bool(user.is_authenticated and user.is_active and user.is_staff)


@never_cache
@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    if not may_read_metrics(request):
        return HttpResponse(
            "Forbidden: send Authorization: Bearer <METRICS_TOKEN> or sign in as staff.\n",
            status=403,
            content_type="text/plain; charset=utf-8",
        )
    return HttpResponse(render_exposition(collect_metrics()), content_type=CONTENT_TYPE)
