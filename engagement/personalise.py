"""Personalisation of campaign content: the ONE function that turns `{{ given_name }}` and
the link placeholders into a resident's values, used by the preview and test send
(engagement.campaigns) and by sending (engagement.sending).

Only the placeholders in PLACEHOLDERS are replaced; anything else between double braces is
left exactly as written (campaign_submit refuses content with unknown placeholders, so a
typo never reaches a resident as "{{ given_nmae }}"). No template engine runs on officers'
text: content cannot reach settings, objects or tags. In HTML every value is escaped.
"""

from __future__ import annotations

import html as html_lib
import re
from collections.abc import Mapping
from typing import Protocol

from django.utils.translation import override, pgettext

# A name and the links a message may carry. Link values come from `links`
# (engagement.tokens builds them per resident); a link the caller did not give becomes "".
NAME_PLACEHOLDERS = ("given_name", "family_name", "full_name")
LINK_PLACEHOLDERS = ("preferences_url", "unsubscribe_url", "response_url")
PLACEHOLDERS = NAME_PLACEHOLDERS + LINK_PLACEHOLDERS

# `{{ name }}` with optional spaces inside the braces; names are lower-case words.
PLACEHOLDER_RE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


class Addressee(Protocol):
    """What personalisation reads from a resident: a Citizen, or a preview's sample."""

    given_name: str
    family_name: str
    preferred_language: str


def placeholders_in(text: str) -> list[str]:
    """The placeholder names used in `text`, in order of first use."""
    seen: dict[str, None] = {}
    for match in PLACEHOLDER_RE.finditer(text or ""):
        seen.setdefault(match.group(1), None)
    return list(seen)


def unknown_placeholders(text: str) -> list[str]:
    """Placeholders in `text` that personalise() would leave as written."""
    return [name for name in placeholders_in(text) if name not in PLACEHOLDERS]


def _name_values(citizen: Addressee) -> dict[str, str]:
    given = (citizen.given_name or "").strip()
    family = (citizen.family_name or "").strip()
    # Without a given name the greeting still reads ("Dear resident,"), in the resident's
    # language rather than the officer's.
    language = getattr(citizen, "preferred_language", "") or "en"
    with override(language):
        # The name in "Dear {given_name}," when none is known: a greeting's form of the word.
        fallback = pgettext("greeting, when the name is unknown: Dear …", "resident")
    return {
        "given_name": given or fallback,
        "family_name": family,
        "full_name": " ".join(part for part in (given, family) if part) or fallback,
    }


def personalise(
    text: str, *, citizen: Addressee, html: bool, links: Mapping[str, str] | None = None
) -> str:
    """`text` with the known placeholders replaced by `citizen`'s values and `links`.

    `html=True` escapes every value (names and URLs alike, quotes included, so a value is
    safe inside an attribute such as href="{{ unsubscribe_url }}"); plain text and SMS get
    the values as they are.
    """
    if not text:
        return ""
    values = _name_values(citizen)
    links = links or {}
    for name in LINK_PLACEHOLDERS:
        values[name] = str(links.get(name, ""))

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            return match.group(0)
        value = values[name]
        return html_lib.escape(value, quote=True) if html else value

    return PLACEHOLDER_RE.sub(substitute, text)
