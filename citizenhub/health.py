"""Liveness and readiness probes for the load balancer and the orchestrator."""

from __future__ import annotations

import redis
from django.conf import settings
from django.db import DatabaseError, connections
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """The process is up and serving requests; touches nothing else."""
    return JsonResponse({"status": "ok"})


def check_database() -> str | None:
    try:
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as exc:
        return f"database unreachable: {exc.__class__.__name__}"
    return None


def check_redis() -> str | None:
    if not settings.REDIS_URL:
        return None
    timeout = settings.READINESS_TIMEOUT_SECONDS
    client = redis.Redis.from_url(
        settings.REDIS_URL, socket_connect_timeout=timeout, socket_timeout=timeout
    )
    try:
        client.ping()
    except redis.RedisError as exc:
        return f"redis unreachable: {exc.__class__.__name__}"
    finally:
        client.close()
    return None


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """Ready to take traffic: the database and (when configured) Redis answer."""
    results = {"database": check_database()}
    if settings.REDIS_URL:
        results["redis"] = check_redis()
    checks = {name: ("ok" if problem is None else problem) for name, problem in results.items()}
    down = sorted(name for name, problem in results.items() if problem is not None)
    if down:
        return JsonResponse({"status": "unavailable", "down": down, "checks": checks}, status=503)
    return JsonResponse({"status": "ok", "checks": checks})
