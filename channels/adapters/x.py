"""X (Twitter): mentions of the council's account through the API v2, polled; private replies.

Settings: `user_id` (the council account's numeric id), `bearer_token_env` (app-only token,
for reading), `consumer_key_env`, `consumer_secret_env`, `access_token_env`,
`access_token_secret_env` (OAuth 1.0a user context of the council account, for posting),
`public_reply_text` (the one public answer, see below), `page_size` (100; X allows 5-100),
`max_pages` per poll (5), `timeout` (30 seconds).

Fetch. tweepy's `Client.get_users_mentions(user_id, since_id=, until_id=,
expansions=["author_id"], tweet_fields=[...], user_fields=[...])`, i.e.
GET https://api.twitter.com/2/users/:id/mentions, walked with the cursor "x:mentions"
({"since_id": <tweet id>}, see social_base; `until_id` is X's exclusive upper bound). The
client is made with return_type=dict so the API's JSON is what gets stored: each tweet as
{"data": <tweet>, "includes": {"users": [<author>]}}, external id `x:<tweet id>`. tweepy's
base URL cannot be changed, and its requests have no timeout, so its session gets one.
A 429 (tweepy raises TooManyRequests; `wait_on_rate_limit` stays off, it would sleep in the
poller) or a 5xx raises TransientChannelError: the poller backs off, the cursor stays.

Threading. X gives every tweet its conversation's root (`conversation_id`); the key is
"x:<conversation id>:<author id>", one thread per resident even when several residents
reply in one public conversation. Message ids are `x:<tweet id>`, In-Reply-To the tweet it
`replied_to`.

Replies. A mention is public, so the staff text is never tweeted. It goes to the resident
as a direct message (POST /2/dm_conversations/with/:author_id/messages). Then, for the first
reply in a thread only, a fixed neutral tweet answers the resident's mention in public
(`public_reply_text`, default "Thanks — we've received your message. We'll reply
privately; please check your messages."), so they know to look. If X refuses the direct
message (the resident does not accept messages from the account: 403), nothing is posted
in public and the reply fails with the reason, for staff to reach the resident another way.
The public acknowledgement is best-effort: once the direct message has gone, a failure to
post it is logged, not retried (a retry would send the direct message twice). What was done
is recorded as the provider id: "dm:<dm event id>" plus " reply:<tweet id>" when the
acknowledgement was posted.
"""

from __future__ import annotations

import html
import logging
from typing import TYPE_CHECKING

import requests
import tweepy

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
    is_transient_status,
    json_bytes,
    parse_time,
    session_with_timeout,
    stored_payload,
    strip_leading_mentions,
)
from channels.models import ChannelConfigError
from channels.selectors import replied_message, thread_has_earlier_reply

if TYPE_CHECKING:
    from channels.models import InboundMessage, OutboundMessage

logger = logging.getLogger(__name__)

CURSOR_KEY = "x:mentions"
DEFAULT_PUBLIC_REPLY = (
    "Thanks — we've received your message. We'll reply privately; please check your messages."
)
TWEET_FIELDS = [
    "author_id",
    "conversation_id",
    "created_at",
    "in_reply_to_user_id",
    "referenced_tweets",
]
USER_FIELDS = ["name", "username"]


@register_adapter
class XAdapter(SocialAdapter):
    kind = "x"
    polls = True
    cursor_key = CURSOR_KEY
    message_prefix = "x:"
    default_page_size = 100

    @property
    def user_id(self) -> str:
        user_id = str(self.channel.setting("user_id") or "")
        if not user_id:
            raise ChannelConfigError(f"channel {self.channel.slug}: setting 'user_id' is not set")
        return user_id

    def _client(self, **credentials: str) -> tweepy.Client:
        client = tweepy.Client(**credentials, return_type=dict)
        client.session = session_with_timeout(self.timeout)
        return client

    def reading_client(self) -> tweepy.Client:
        return self._client(bearer_token=self.channel.secret("bearer_token"))

    def posting_client(self) -> tweepy.Client:
        return self._client(
            consumer_key=self.channel.secret("consumer_key"),
            consumer_secret=self.channel.secret("consumer_secret"),
            access_token=self.channel.secret("access_token"),
            access_token_secret=self.channel.secret("access_token_secret"),
        )

    # --- fetch --------------------------------------------------------------------------

    def prepare_fetch(self) -> None:
        self._reader = self.reading_client()
        self._account = self.user_id

    def fetch_page(self, since_id: str | None, before_id: str | None) -> Page:
        response = self._reader.get_users_mentions(
            self._account,
            since_id=since_id,
            until_id=before_id,
            max_results=max(5, min(self.page_size, 100)),
            expansions=["author_id"],
            tweet_fields=TWEET_FIELDS,
            user_fields=USER_FIELDS,
        )
        users = {
            str(user.get("id")): user
            for user in (response.get("includes") or {}).get("users") or []
            if isinstance(user, dict)
        }
        items = []
        for tweet in response.get("data") or []:
            if isinstance(tweet, dict):
                author = users.get(str(tweet.get("author_id")))
                items.append({"data": tweet, "includes": {"users": [author] if author else []}})
        return Page(items=items, more=bool((response.get("meta") or {}).get("next_token")))

    def item_id(self, item: dict) -> str:
        return str(item["data"].get("id") or "")

    def raw_inbound(self, item: dict) -> RawInbound | None:
        return RawInbound(
            external_id=self.message_id(item["data"]["id"]), raw=json_bytes(item), content_type=JSON
        )

    # --- parse --------------------------------------------------------------------------

    def parse(self, message: InboundMessage) -> ParsedMessage:
        payload = stored_payload(message)
        tweet = payload["data"]
        author_id = str(tweet.get("author_id") or "")
        author = next(
            (
                user
                for user in (payload.get("includes") or {}).get("users") or []
                if str(user.get("id")) == author_id
            ),
            {},
        )
        # X escapes &, < and > in tweet text.
        text = html.unescape(clean_text(tweet.get("text")))
        parent = next(
            (
                ref.get("id")
                for ref in tweet.get("referenced_tweets") or []
                if isinstance(ref, dict) and ref.get("type") == "replied_to"
            ),
            None,
        )
        conversation = tweet.get("conversation_id") or tweet["id"]
        username = str(author.get("username") or "")
        return ParsedMessage(
            sender_kind="x",
            sender_value=f"@{username}" if username else "",
            sender_name=clean_text(author.get("name")),
            body_text=text,
            summary_text=strip_leading_mentions(text),
            message_id=self.message_id(tweet["id"]),
            in_reply_to=self.message_id(parent),
            sent_at=parse_time(tweet.get("created_at")),
            conversation_key=f"x:{conversation}:{author_id}",
            is_public=True,
        )

    # --- send ---------------------------------------------------------------------------

    def send(self, outbound: OutboundMessage) -> SendResult:
        replied = replied_message(outbound)
        author_id = ""
        if replied is not None:
            author_id = str(stored_payload(replied)["data"].get("author_id") or "")
        if not author_id:
            raise PermanentSendError(
                "No X message from the resident to answer in this thread, so there is nobody "
                "to send a private message to; nothing was posted."
            )
        client = self.posting_client()
        try:
            sent = self.call_provider(
                client.create_direct_message, participant_id=author_id, text=outbound.body_text
            )
        except PermanentSendError as exc:
            raise PermanentSendError(
                f"X refused the private message, so nothing was posted in public either; "
                f"reach the resident another way. {exc}"
            ) from exc
        done = [f"dm:{(sent.get('data') or {}).get('dm_event_id', '')}"]
        tweet_id = self.reply_target(outbound)
        if tweet_id and not thread_has_earlier_reply(outbound):
            text = str(self.channel.setting("public_reply_text") or DEFAULT_PUBLIC_REPLY)
            try:
                posted = client.create_tweet(text=text, in_reply_to_tweet_id=tweet_id)
            except (tweepy.TweepyException, requests.RequestException):
                logger.warning(
                    "channel %s: private reply %s sent, public acknowledgement failed",
                    self.channel.slug,
                    outbound.pk,
                    exc_info=True,
                )
            else:
                done.append(f"reply:{(posted.get('data') or {}).get('id', '')}")
        return SendResult(provider_message_id=" ".join(done))

    # --- errors -------------------------------------------------------------------------

    def provider_error(self, exc: Exception) -> Exception | None:
        if isinstance(exc, requests.RequestException):
            return TransientChannelError(f"X API unreachable: {exc}")
        if isinstance(exc, tweepy.HTTPException):
            status = exc.response.status_code if exc.response is not None else None
            detail = "; ".join(exc.api_messages) or str(exc)
            if isinstance(exc, tweepy.TooManyRequests) or is_transient_status(status):
                return TransientChannelError(f"X API {status}: {detail}")
            if isinstance(exc, tweepy.Unauthorized):
                # The operator must renew the credentials; queued replies go out after that.
                return TransientChannelError(f"X refused the credentials ({status}): {detail}")
            return PermanentSendError(f"X API {status}: {detail}")
        if isinstance(exc, tweepy.TweepyException):
            return PermanentSendError(f"tweepy: {exc}")
        return None
