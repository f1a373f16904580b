"""What the feature apps add to the residents' portal, without the core importing them.

The portal's "My account" page and the resident's data export belong to the hub core, but
their content comes from every app: messages (channels), preferences and consents
(engagement), participation (democracy). An app registers in its AppConfig.ready():

    register_my_section("messages", order=20, title=_("My messages"), url_name="my-messages:list")
    register_export_section("messages", order=20)(export_messages)

An export provider takes the Citizen and returns a JSON-serialisable value (lists of dicts
with ISO dates); the HTML export renders the same data, so the two never disagree.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from citizenhub.models import Citizen


@dataclass(frozen=True)
class MySection:
    key: str
    order: int
    title: str
    description: str
    url_name: str


ExportProvider = Callable[[Citizen], Any]

_my_sections: dict[str, MySection] = {}
_export_sections: dict[str, tuple[int, str, ExportProvider]] = {}


def register_my_section(
    key: str, *, order: int, title: str, description: str, url_name: str
) -> None:
    _my_sections[key] = MySection(key, order, title, description, url_name)


def my_sections() -> list[MySection]:
    return sorted(_my_sections.values(), key=lambda section: (section.order, section.key))


def register_export_section(
    key: str, *, order: int, title: str
) -> Callable[[ExportProvider], ExportProvider]:
    def decorator(provider: ExportProvider) -> ExportProvider:
        _export_sections[key] = (order, title, provider)
        return provider

    return decorator


def export_sections() -> list[tuple[str, str, ExportProvider]]:
    ordered = sorted(_export_sections.items(), key=lambda item: (item[1][0], item[0]))
    return [(key, title, provider) for key, (_order, title, provider) in ordered]
