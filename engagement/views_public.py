"""Pages reached from links in messages, without signing in (being built: issue 7)."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse


def preferences(request: HttpRequest, token: str) -> HttpResponse:
    raise Http404


def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    raise Http404


def confirm(request: HttpRequest, token: str) -> HttpResponse:
    raise Http404
