"""Turning an outage of the database or Redis into a friendly 503 page, not a stack trace."""

from __future__ import annotations

import logging

import redis
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from kombu.exceptions import OperationalError as BrokerError

logger = logging.getLogger(__name__)

OUTAGE_ERRORS = (
    OperationalError,
    InterfaceError,
    redis.ConnectionError,
    redis.TimeoutError,
    BrokerError,
)


class ServiceUnavailableMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            return self.get_response(request)
        except OUTAGE_ERRORS as exc:
            # Raised by middleware below us (sessions, auth) before any view runs.
            return self._unavailable(request, exc)

    def process_exception(self, request: HttpRequest, exc: Exception) -> HttpResponse | None:
        if isinstance(exc, OUTAGE_ERRORS):
            return self._unavailable(request, exc)
        return None

    def _unavailable(self, request: HttpRequest, exc: Exception) -> HttpResponse:
        logger.error("service unavailable on %s: %r", request.path, exc)
        if request.path.startswith(("/api/", "/open311/")):
            response = HttpResponse(
                '{"error": {"code": "service_unavailable", "message": '
                '"A service CitizenHub depends on is unavailable. Please try again shortly."}}',
                content_type="application/json",
                status=503,
            )
        else:
            # Rendered without a request context: the context processors need the database.
            response = HttpResponse(render_to_string("503.html"), status=503)
        response["Retry-After"] = "30"
        return response
