"""What the social adapters share: since_id cursors, raw JSON payloads, provider errors, replies.

Cursors. Mastodon and X list mentions newest first and take `since_id` (only posts newer
than it) and an exclusive upper bound (`max_id` / `until_id`). A page that asks with
`since_id` alone gets the *newest* posts above it, not the ones just after it (Mastodon
#5819; X's `since_id` likewise), so after a busy spell or an outage the newest page alone
would skip everything between it and the cursor. `walk_newer` therefore pages downwards
with the upper bound until it reaches the cursor, and only then moves `since_id` to the
newest post seen. If a poll stops early (its `max_pages` are used up) the cursor records
where the walk got to, {"since_id", "before_id", "newest_id"}, and the next poll carries on
from there: nothing is skipped however long the backlog, and the cursor never passes a post
that was not stored. The very first poll of a channel (no cursor) reads only the newest
page: connecting an account does not import years of history.

Adapters only read cursors; `poll_channel` writes the returned state in the transaction that
stores the messages, and a provider error raises out of `fetch` so the poller backs off and
the cursor stays where it was.

Public and private. A mention or a page comment is public; case details are not. Staff
text only ever goes out through a private path (a Mastodon direct status, an X direct
message, a Messenger message or private reply); each provider module says how.

Ids. Message ids are prefixed with the provider (`x:<tweet id>`, `fb:<mid>`, ...) because the
ingest pipeline matches In-Reply-To against message ids of every channel.
"""

from __future__ import annotations

import datetime
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, TypeVar

import requests
from requests.adapters import HTTPAdapter

from channels.adapters import (
    ChannelAdapter,
    FetchResult,
    PermanentSendError,
    RawInbound,
    TransientChannelError,
    parse_iso_time,
)
from channels.models import ChannelCursor

if TYPE_CHECKING:
    from channels.models import InboundMessage, OutboundMessage

logger = logging.getLogger(__name__)

JSON = "application/json"
KEPT_REQUEST_PREFIX = "request-sha256:"
DEFAULT_TIMEOUT_SECONDS = 30
# Statuses worth retrying: the provider is slow, overloaded, rate limiting or down.
TRANSIENT_HTTP_STATUSES = frozenset({408, 425, 429})
T = TypeVar("T")


class KeptRequestError(Exception):
    """A webhook request kept after an unexpected error cannot be authenticated later."""


def json_bytes(payload: object) -> bytes:
    """A provider's JSON as stored: UTF-8, non-ASCII (emoji, Arabic, Welsh) kept as is."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def stored_payload(message: InboundMessage) -> dict:
    """The JSON object a social adapter stored for one post or message."""
    if message.external_id.startswith(KEPT_REQUEST_PREFIX):
        raise KeptRequestError(
            "This request was kept because it could not be unpacked when it arrived; its "
            "signature header is not stored, so it cannot be authenticated now. Ask the "
            "provider to redeliver it once the error is fixed."
        )
    payload = json.loads(bytes(message.raw).decode("utf-8"))
    if not isinstance(payload, dict):
        raise ValueError(f"expected a JSON object, got {type(payload).__name__}")
    return payload


def clean_text(value: object) -> str:
    # PostgreSQL text cannot hold NUL; everything else (emoji, RTL marks) is kept as sent.
    return value.replace("\x00", "") if isinstance(value, str) else ""


def parse_time(value: object) -> datetime.datetime | None:
    """An ISO 8601 time ("2026-11-25T10:00:00.000Z"), or seconds / milliseconds since 1970."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        seconds = value / 1000 if value > 10**11 else value  # Messenger sends milliseconds
        return datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC)
    return parse_iso_time(value)


_LEADING_MENTIONS = re.compile(r"^(?:\s*@[\w.\-]+(?:@[\w.\-]+)?)+\s*")


def strip_leading_mentions(text: str) -> str:
    """Drop the handles a post starts with ("@northmoor @jane@social.example The bins..."
    gives "The bins..."): they say who it is to, not what it says."""
    stripped = _LEADING_MENTIONS.sub("", text, count=1)
    return stripped or text.strip()


def id_order(value: str) -> tuple[int, str]:
    """Sort key for the numeric string ids Mastodon and X use (longer is larger)."""
    return (len(value), value)


@dataclass(frozen=True)
class Page:
    """One page of a newest-first listing: its items and whether older ones may follow."""

    items: list[dict]
    more: bool


def walk_newer(
    fetch_page: Callable[[str | None, str | None], Page],
    state: dict,
    *,
    item_id: Callable[[dict], str],
    max_pages: int,
) -> tuple[list[dict], dict]:
    """Items newer than the cursor, newest first, and the cursor state after them.

    `fetch_page(since_id, before_id)` returns the newest items with since_id < id < before_id
    (either bound may be None). See the module docstring for the states.
    """
    since_id = state.get("since_id")
    before_id = state.get("before_id")
    newest_id = state.get("newest_id")
    collected: list[dict] = []
    more = True
    for _ in range(max(max_pages, 1)):
        page = fetch_page(since_id, before_id)
        items = [item for item in page.items if item_id(item)]
        if not items:
            more = False
            break
        ids = sorted((item_id(item) for item in items), key=id_order)
        if newest_id is None:  # the first page of a walk holds the newest item
            newest_id = ids[-1]
        collected.extend(items)
        before_id = ids[0]
        more = page.more and since_id is not None  # a first poll reads one page only
        if not more:
            break
    if more:
        return collected, {"since_id": since_id, "before_id": before_id, "newest_id": newest_id}
    if newest_id is None:  # nothing new
        return collected, {"since_id": since_id} if since_id else {}
    return collected, {"since_id": newest_id}


class _TimeoutAdapter(HTTPAdapter):
    """Gives every request a timeout: some client libraries (tweepy) set none, and a
    provider that accepts the connection but never answers would hold a worker forever."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self._timeout = timeout

    def send(self, request, **kwargs):
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self._timeout
        return super().send(request, **kwargs)


def session_with_timeout(timeout: float) -> requests.Session:
    session = requests.Session()
    adapter = _TimeoutAdapter(timeout)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def is_transient_status(status: int | None) -> bool:
    return status is not None and (status in TRANSIENT_HTTP_STATUSES or status >= 500)


class SocialAdapter(ChannelAdapter):
    """Base of the social adapters: cursor walking for the pollers, errors, reply targets.

    A provider module sets `message_prefix` (what its message ids start with) and maps its
    client library's exceptions in `provider_error`. Polling providers also set
    `cursor_key` and implement `fetch_page`, `item_id` and `raw_inbound`.
    """

    message_prefix: ClassVar[str]
    cursor_key: ClassVar[str] = ""
    default_page_size: ClassVar[int] = 40

    @property
    def timeout(self) -> float:
        return float(self.channel.setting("timeout", DEFAULT_TIMEOUT_SECONDS))

    @property
    def page_size(self) -> int:
        return int(self.channel.setting("page_size", self.default_page_size))

    # --- polling ------------------------------------------------------------------------

    def fetch_page(self, since_id: str | None, before_id: str | None) -> Page:
        raise NotImplementedError

    def item_id(self, item: dict) -> str:
        """The id the cursor follows (a notification id, a tweet id)."""
        raise NotImplementedError

    def raw_inbound(self, item: dict) -> RawInbound | None:
        """What to store for one listed item; None for items that are not messages."""
        raise NotImplementedError

    def prepare_fetch(self) -> None:
        """Read secrets and build the client before any request (config errors first)."""

    def fetch(self) -> FetchResult:
        self.prepare_fetch()
        cursor = ChannelCursor.objects.filter(channel=self.channel, key=self.cursor_key).first()
        items, state = walk_newer(
            lambda since, before: self.call_provider(self.fetch_page, since, before),
            dict(cursor.state) if cursor else {},
            item_id=self.item_id,
            max_pages=int(self.channel.setting("max_pages", 5)),
        )
        # Oldest first, so a reply is stored (and threaded) after what it answers.
        items.sort(key=lambda item: id_order(self.item_id(item)))
        messages = [raw for raw in map(self.raw_inbound, items) if raw is not None]
        return FetchResult(messages=messages, cursors=[(self.cursor_key, state)] if state else [])

    # --- provider errors ----------------------------------------------------------------

    def provider_error(self, exc: Exception) -> Exception | None:
        """TransientChannelError or PermanentSendError for a client library's exception;
        None for anything that is not the provider's doing (a bug), to propagate as is."""
        raise NotImplementedError

    def call_provider(self, func: Callable[..., T], /, *args: object, **kwargs: object) -> T:
        try:
            return func(*args, **kwargs)
        except (TransientChannelError, PermanentSendError):
            raise
        except Exception as exc:
            mapped = self.provider_error(exc)
            if mapped is None:
                raise
            raise mapped from exc

    # --- ids and replies ----------------------------------------------------------------

    def message_id(self, provider_id: object) -> str:
        return f"{self.message_prefix}{provider_id}" if provider_id not in (None, "") else ""

    def provider_id(self, message_id: str) -> str:
        """Our message id back to the provider's, "" for ids of other providers."""
        if message_id.startswith(self.message_prefix):
            return message_id[len(self.message_prefix) :]
        return ""

    def reply_target(self, outbound: OutboundMessage) -> str:
        """The provider's id of the resident's post a reply answers ("" when none)."""
        return self.provider_id(outbound.in_reply_to)

    def conversation_window_hours(self) -> int | None:
        hours = self.channel.setting("conversation_window_hours")
        return int(hours) if hours not in (None, "") else None
