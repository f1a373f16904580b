"""Celery tasks of the hub core; thin: they take ids, call a service and return."""

from __future__ import annotations

import datetime

from celery import shared_task
from django.core.cache import cache
from django.utils import timezone

from citizenhub import services
from citizenhub.models import Citizen
from citizenhub.services import cases as case_services

HEARTBEAT_CACHE_KEY = "citizenhub:worker-heartbeat"


@shared_task(name="citizenhub.record_worker_heartbeat", ignore_result=True)
def record_worker_heartbeat() -> str:
    """Beat sends this every minute; readiness and metrics read when a worker last ran one."""
    now = timezone.now().isoformat()
    cache.set(HEARTBEAT_CACHE_KEY, now, timeout=600)
    return now


@shared_task(name="citizenhub.record_timeline_entry", ignore_result=True)
def record_timeline_entry_task(
    *,
    citizen_public_id: str,
    kind: str,
    summary: str,
    occurred_at: str | None = None,
    channel: str = "",
    department: str = "",
    visibility: str = "staff",
) -> int:
    """Record a timeline entry from another process or system (JSON arguments only)."""
    citizen = Citizen.objects.get(public_id=citizen_public_id)
    entry = services.record_timeline_entry(
        citizen=citizen,
        kind=kind,
        summary=summary,
        occurred_at=datetime.datetime.fromisoformat(occurred_at) if occurred_at else None,
        channel=channel,
        department=department,
        visibility=visibility,
    )
    return entry.pk


@shared_task(name="citizenhub.mark_breached_cases", ignore_result=True)
def mark_breached_cases_task() -> int:
    """Beat runs this early each day: flag open cases past their due date (idempotent: a
    case already flagged is not counted again)."""
    return case_services.mark_breached_cases()


@shared_task(name="citizenhub.anonymise_expired_cases", ignore_result=True)
def anonymise_expired_cases_task(*, limit: int = 500) -> int:
    """Beat runs this nightly: anonymise closed cases past their service's retention period,
    at most `limit` a run (an anonymised case is never picked again, so reruns are safe)."""
    return case_services.anonymise_expired_cases(limit=limit)


@shared_task(name="citizenhub.find_duplicate_candidates", ignore_result=True)
def find_duplicate_candidates_task(*, limit_blocks: int | None = None) -> dict[str, int]:
    """Nightly: suggest profiles that may be one person (idempotent; decisions are kept)."""
    from citizenhub.duplicates import find_duplicate_candidates

    return find_duplicate_candidates(limit_blocks=limit_blocks)
