"""The two consents residents could give before topics existed, now the first two topics.

Their slugs are kept (ledger lines written before topics stay meaningful): the topic loader
(`ensure_standard_topics`, run by the demo and by a council's set-up) creates a Topic with
each slug, and from then on they are subscribed to like any other topic. The Purpose list
stays for the old API (engagement.services.set_portal_consents) and gives the two topics
translated titles. Changing a purpose's wording means a new `wording_version`: the ledger
stores the exact text each person was shown, and which version it was.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.utils import translation
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


def purpose_title(slug: str) -> str | Promise | None:
    """The translated title of a fixed purpose's slug, whatever the channel."""
    for purpose in PURPOSES:
        if purpose.slug == slug:
            return purpose.title
    return None


def ensure_standard_topics() -> int:
    """Create the topics that carry the fixed purposes' slugs (English words in the topic:
    a topic's wording is what the ledger records). Existing topics are left as the council
    edited them. Returns how many were created."""
    from engagement.models import Topic

    created = 0
    with translation.override("en-gb"):
        for purpose in PURPOSES:
            _topic, was_created = Topic.objects.get_or_create(
                slug=purpose.slug,
                defaults={
                    "name": str(purpose.title),
                    "kind": Topic.Kind.THEME,
                    "consent_wording": str(purpose.wording),
                    "consent_wording_version": purpose.wording_version,
                },
            )
            created += was_created
    return created
