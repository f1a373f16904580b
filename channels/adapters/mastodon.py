"""Mastodon: mentions of the council's account and direct messages to it, polled; replies.

Settings: `api_base_url` (the council account's instance, "https://social.northmoor.example"),
`access_token_env` (secret; scopes read:notifications and write:statuses),
`instance_domain` (the domain in local users' handles, when it is not the API host),
`page_size` (40; Mastodon allows 80), `max_pages` per poll (5), `timeout` (30 seconds).

Fetch. A direct message to the account is a status with visibility "direct" that mentions
it, so one listing serves both: GET /api/v1/notifications?types[]=mention through
Mastodon.py's `notifications(types=["mention"], since_id=, max_id=, limit=)`, walked with the
cursor "mastodon:notifications" ({"since_id": <notification id>}, see social_base). The
client is built with ratelimit_method="throw": its default ("wait") sleeps inside the poller
until the limit resets. A 429, a 5xx or a network error raises TransientChannelError, so the
poller backs off and the cursor stays. Each mention is stored as the notification's JSON
exactly as the server sent it (read from the HTTP response, not re-serialised from
Mastodon.py's typed objects), external id `mastodon:<status id>`.

Who. `account.acct` is "user@instance" for remote accounts and a bare "user" for accounts on
the council's own instance (`instance_domain`, or the API host); both become the contact
point "@user@instance", so a resident known as "@jane@social.northmoor.example" is found
whichever way the server names her.

Threading. Status ids are local to the instance we read through, so message ids are
`mastodon:<api host>:<status id>` and In-Reply-To is the same for `in_reply_to_id`: the
pipeline's In-Reply-To lookup then joins a reply to the resident's own earlier post. A
reply to one of *our* statuses cannot be found that way (our OutboundMessage.message_id is
the e-mail style id made when the reply was queued; the status id only comes back from the
provider, as provider_message_id), so the conversation key does it: a status's key is
"status:<root>:<@user@instance>", where root is the first status of the conversation as far
as we know it: the status itself if it replies to nothing; otherwise the root recorded for
the status it replies to, when that is one of our replies (found by provider_message_id) or
a post we received (found by message id), both on this channel; otherwise the status
replied to. The resident's handle is part of the key because one public conversation can
have many residents in it, and each resident has their own thread (the pipeline joins a
thread only from one of its participants, and it keeps one thread per key).

Replies. Every reply is a status with visibility "direct" that starts with the resident's
handle (a direct status reaches only the accounts it mentions), in reply to the resident's
latest status in the thread. For a thread begun by a direct message that is the natural
answer; for a thread begun by a public mention (Thread.is_public) it is the only safe one:
"private" would show the text to all of the council's followers, "unlisted" and "public" to
anyone, and a reply to a public post must never carry case details. Only the resident is
mentioned, even if their message mentioned others. Each reply carries an Idempotency-Key
(`citizenhub:<the reply's Message-ID>`; Mastodon remembers keys for an hour), so a retry
after a lost response does not post it twice.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import requests
from django.core.exceptions import ValidationError
from mastodon import (
    Mastodon,
    MastodonAPIError,
    MastodonError,
    MastodonNetworkError,
    MastodonRatelimitError,
    MastodonServerError,
    MastodonUnauthorizedError,
)

from channels.adapters import (
    ParsedMessage,
    PermanentSendError,
    RawInbound,
    SendResult,
    TransientChannelError,
    register_adapter,
)
from channels.adapters.social_base import (
    JSON,
    Page,
    SocialAdapter,
    clean_text,
    json_bytes,
    parse_time,
    stored_payload,
    strip_leading_mentions,
)
from channels.email.text import html_to_text, sanitise_html
from channels.models import ChannelConfigError
from channels.selectors import social_conversation_key
from citizenhub.normalise import normalise_mastodon_handle

if TYPE_CHECKING:
    from channels.models import InboundMessage, OutboundMessage

CURSOR_KEY = "mastodon:notifications"
MAX_PAGE_SIZE = 80


def _status_code(exc: MastodonAPIError) -> int | None:
    # Mastodon.py raises MastodonAPIError(message, status code, reason, error text).
    code = exc.args[1] if len(exc.args) > 1 else None
    return code if isinstance(code, int) else None


@register_adapter
class MastodonAdapter(SocialAdapter):
    kind = "mastodon"
    polls = True
    cursor_key = CURSOR_KEY

    @property
    def api_base_url(self) -> str:
        url = str(self.channel.setting("api_base_url") or "").rstrip("/")
        if not url:
            raise ChannelConfigError(
                f"channel {self.channel.slug}: setting 'api_base_url' is not set"
            )
        return url

    @property
    def api_host(self) -> str:
        return (urlsplit(self.api_base_url).netloc or self.api_base_url).lower()

    @property
    def instance_domain(self) -> str:
        return str(self.channel.setting("instance_domain") or "") or (
            urlsplit(self.api_base_url).hostname or ""
        )

    @property
    def message_prefix(self) -> str:  # type: ignore[override]
        return f"mastodon:{self.api_host}:"

    def client(self) -> Mastodon:
        session = requests.Session()
        # Mastodon.py turns responses into typed objects (dates parsed, fields renamed); the
        # raw body of the last response is what gets stored.
        session.hooks["response"].append(self._remember_response)
        return Mastodon(
            api_base_url=self.api_base_url,
            access_token=self.channel.secret("access_token"),
            ratelimit_method="throw",
            request_timeout=self.timeout,
            session=session,
        )

    def _remember_response(self, response: requests.Response, *args, **kwargs) -> None:
        self._last_response = response

    # --- fetch --------------------------------------------------------------------------

    def prepare_fetch(self) -> None:
        self._client = self.client()

    def fetch_page(self, since_id: str | None, before_id: str | None) -> Page:
        limit = max(1, min(self.page_size, MAX_PAGE_SIZE))
        self._last_response = None
        self._client.notifications(
            types=["mention"], since_id=since_id, max_id=before_id, limit=limit
        )
        listed = json.loads(self._last_response.content.decode("utf-8"))
        if not isinstance(listed, list):
            raise TransientChannelError(
                "Mastodon answered the notifications request without a list"
            )
        items = [item for item in listed if isinstance(item, dict)]
        return Page(items=items, more=len(items) >= limit)

    def item_id(self, item: dict) -> str:
        return str(item.get("id") or "")

    def raw_inbound(self, item: dict) -> RawInbound | None:
        status = item.get("status")
        # Servers older than 3.5 ignore types[]; a deleted status leaves no status.
        if item.get("type") != "mention" or not isinstance(status, dict) or not status.get("id"):
            return None
        return RawInbound(
            external_id=f"mastodon:{status['id']}", raw=json_bytes(item), content_type=JSON
        )

    # --- parse --------------------------------------------------------------------------

    def handle(self, acct: str) -> str:
        """The contact point for an account's acct: "@user@instance", normalised if valid."""
        acct = acct.strip().removeprefix("@")
        try:
            return normalise_mastodon_handle(acct, default_instance=self.instance_domain).normalised
        except ValidationError:
            # The pipeline reports the invalid sender on the message.
            return f"@{acct}" if "@" in acct else f"@{acct}@{self.instance_domain}"

    def parse(self, message: InboundMessage) -> ParsedMessage:
        notification = stored_payload(message)
        status = notification["status"]
        account = status.get("account") or notification.get("account") or {}
        sender = self.handle(str(account.get("acct") or ""))
        content = clean_text(status.get("content"))
        body_text = html_to_text(content)
        # Media are not downloaded: staff follow the link.
        attachments = [
            f"Attachment ({media.get('type', 'file')}): {url}"
            for media in status.get("media_attachments") or []
            if isinstance(media, dict) and (url := media.get("url") or media.get("remote_url"))
        ]
        if attachments:
            body_text = "\n\n".join([body_text, *attachments]).strip()
        status_id = str(status["id"])
        parent = str(status.get("in_reply_to_id") or "")
        return ParsedMessage(
            sender_kind="mastodon",
            sender_value=sender,
            sender_name=clean_text(account.get("display_name")) or str(account.get("username", "")),
            # A content warning is the nearest thing a post has to a subject.
            subject=clean_text(status.get("spoiler_text")),
            body_text=body_text,
            summary_text=strip_leading_mentions(body_text),
            body_html=sanitise_html(content),
            message_id=self.message_id(status_id),
            in_reply_to=self.message_id(parent),
            sent_at=parse_time(status.get("created_at")),
            conversation_key=f"status:{self._root(status_id, parent)}:{sender}",
            is_public=status.get("visibility") != "direct",
        )

    def _root(self, status_id: str, parent: str) -> str:
        if not parent:
            return status_id
        known = social_conversation_key(
            channel=self.channel, provider_message_id=parent, message_id=self.message_id(parent)
        )
        if known.startswith("status:"):
            return known.split(":", 2)[1]
        return parent

    # --- send ---------------------------------------------------------------------------

    def send(self, outbound: OutboundMessage) -> SendResult:
        handle = outbound.to_value.strip()
        if not handle.startswith("@"):
            raise PermanentSendError(f"{handle!r} is not a Mastodon handle")
        status = self.call_provider(
            self.client().status_post,
            f"{handle} {outbound.body_text}",
            in_reply_to_id=self.reply_target(outbound) or None,
            # Never wider: see the module docstring.
            visibility="direct",
            # The reply's own Message-ID is unique across installations; its pk alone is
            # not (a test system posting as the same account would collide).
            idempotency_key=f"citizenhub:{outbound.message_id or outbound.pk}",
        )
        return SendResult(provider_message_id=str(status["id"]))

    # --- errors -------------------------------------------------------------------------

    def provider_error(self, exc: Exception) -> Exception | None:
        if isinstance(exc, MastodonRatelimitError):
            return TransientChannelError(f"Mastodon rate limit reached: {exc}")
        if isinstance(exc, MastodonNetworkError):
            return TransientChannelError(f"Mastodon instance unreachable: {exc}")
        if isinstance(exc, MastodonServerError):
            return TransientChannelError(f"Mastodon instance error {_status_code(exc)}: {exc}")
        if isinstance(exc, MastodonUnauthorizedError):
            # The operator must renew the token; queued replies go out after that.
            return TransientChannelError(f"Mastodon refused the access token: {exc}")
        if isinstance(exc, MastodonAPIError):
            return PermanentSendError(f"Mastodon refused the request ({_status_code(exc)}): {exc}")
        if isinstance(exc, MastodonError):
            return PermanentSendError(f"Mastodon.py: {exc}")
        return None
