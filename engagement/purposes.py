"""What residents can consent to, for now: a short fixed list with versioned wording.

The engagement issue replaces this list with Topics (service, ward, theme) and keeps these
slugs, so ledger records written now stay meaningful. Changing a purpose's wording means a
new `wording_version`: the ledger stores the exact text each person was shown, and which
version it was.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from citizenhub.models import ChannelKind


@dataclass(frozen=True)
class Purpose:
    slug: str
    channel: str
    title: str | Promise
    wording: str | Promise
    wording_version: str
    lawful_basis: str = "consent"

    @property
    def key(self) -> tuple[str, str]:
        return (self.slug, self.channel)


PURPOSES: tuple[Purpose, ...] = (
    Purpose(
        slug="residents-newsletter",
        channel=ChannelKind.EMAIL,
        title=_("Residents’ newsletter"),  # noqa: RUF001 - typographic apostrophe
        wording=_("Send me the monthly residents’ newsletter by e-mail"),  # noqa: RUF001
        wording_version="2026-1",
    ),
    Purpose(
        slug="research-panel",
        channel=ChannelKind.EMAIL,
        title=_("Research and user testing"),
        wording=_("Invite me to take part in council research and user testing"),
        wording_version="2026-1",
    ),
)


def purpose_for(slug: str, channel: str) -> Purpose | None:
    for purpose in PURPOSES:
        if purpose.key == (slug, channel):
            return purpose
    return None
