"""Panels the feature apps add to the core's staff pages, without the core importing them.

The citizen 360 and case pages belong to the hub core, but what they show comes from every
app: conversations (channels), subscriptions and consents (engagement), participation
(democracy). An app registers a provider in its AppConfig.ready():

    register_citizen_panel("conversations", order=20)(conversations_panel)

A provider takes the request and the object and returns a Panel (or None to show nothing).
It must run a constant number of queries whatever the citizen's history, because the
page's query budget is asserted in tests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.http import HttpRequest


@dataclass(frozen=True)
class Panel:
    key: str
    title: str
    template_name: str
    context: dict[str, Any] = field(default_factory=dict)


PanelProvider = Callable[[HttpRequest, Any], Panel | None]

_citizen_panels: dict[str, tuple[int, PanelProvider]] = {}
_case_panels: dict[str, tuple[int, PanelProvider]] = {}


def register_citizen_panel(key: str, *, order: int) -> Callable[[PanelProvider], PanelProvider]:
    def decorator(provider: PanelProvider) -> PanelProvider:
        _citizen_panels[key] = (order, provider)
        return provider

    return decorator


def register_case_panel(key: str, *, order: int) -> Callable[[PanelProvider], PanelProvider]:
    def decorator(provider: PanelProvider) -> PanelProvider:
        _case_panels[key] = (order, provider)
        return provider

    return decorator


def _render(registry: dict[str, tuple[int, PanelProvider]], request: HttpRequest, obj: Any):
    panels = []
    for _order, provider in sorted(registry.values(), key=lambda item: item[0]):
        panel = provider(request, obj)
        if panel is not None:
            panels.append(panel)
    return panels


def citizen_panels(request: HttpRequest, citizen: Any) -> list[Panel]:
    """The panels for a citizen's 360 page, in order."""
    return _render(_citizen_panels, request, citizen)


def case_panels(request: HttpRequest, case: Any) -> list[Panel]:
    """The panels for a case page, in order."""
    return _render(_case_panels, request, case)
