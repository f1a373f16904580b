"""Facebook Page: Messenger messages and comments on the Page's posts, by webhook; private replies.

Settings: `page_id`, `app_secret_env` (the Meta app's secret: webhook signatures),
`verify_token_env` (our token for Meta's subscription check), `page_access_token_env`
(for the Send API), `graph_base_url` ("https://graph.facebook.com/v19.0"), `timeout` (30),
`conversation_window_hours` (unset: a person's Messenger chat is one thread).

Subscription check. Meta GETs the callback URL with hub.mode=subscribe, hub.verify_token
and hub.challenge; we answer the challenge as plain text when the token matches, else 403.

Deliveries. Meta POSTs JSON `{"object": "page", "entry": [...]}` signed with
X-Hub-Signature-256: "sha256=" + hex HMAC-SHA256 of the raw body under the app secret. The
signature is checked over the exact bytes received, before the body is parsed: missing or
wrong is 403 and nothing is stored; a signed body that is not JSON is 400 with the reason.
The signature covers no timestamp and Meta redelivers until it gets a 200, so a replay is
recognised by content instead: each message (external id `fb:<message.mid>`) and comment
(`fb-comment:<comment_id>`) is stored once whatever number of times it arrives. Per entry
(only entries for our page_id), one RawInbound per `messaging[]` event that carries a
message (echoes of the Page's own messages, delivery and read receipts are skipped) and per
`changes[]` item with field "feed", item "comment", verb "add" (the Page's own comments
skipped); raw is that event's JSON. If the app secret or page id is not configured the
answer is 503 (Meta retries) rather than keeping a request nobody can authenticate later.

Threading. A Messenger message is private: key "fb:<sender PSID>". A comment is public:
key "fb-post:<post_id>:<commenter id>", and its thread is marked public.

Replies. Always through the Send API (POST {graph}/{page_id}/messages, messaging_type
RESPONSE), never as a comment: to the PSID in a Messenger thread, and as a private reply
(recipient {"comment_id": ...}) to the resident's latest comment in a comment thread, so
case details never appear under a public post. Meta allows one private reply per comment,
within 7 days; later replies need a new comment or a Messenger message from the resident,
and Meta's refusal is shown on the reply. 429, 5xx, Graph's throttling and temporary error
codes, and network errors are transient (retried with back-off); other refusals (4xx) are
permanent. The page token is sent in the form body, as the Send API reference shows, so it
never appears in a URL or an error message.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
from typing import TYPE_CHECKING

import requests
from django.http import HttpResponse

from channels.adapters import (
    ParsedMessage,
    PermanentSendError,
    RawInbound,
    SendResult,
    TransientChannelError,
    WebhookRejected,
    register_adapter,
)
from channels.adapters.social_base import (
    JSON,
    SocialAdapter,
    clean_text,
    is_transient_status,
    json_bytes,
    parse_time,
    session_with_timeout,
    stored_payload,
)
from channels.models import ChannelConfigError

if TYPE_CHECKING:
    from django.http import HttpRequest

    from channels.models import InboundMessage, OutboundMessage

logger = logging.getLogger(__name__)

DEFAULT_GRAPH_BASE_URL = "https://graph.facebook.com/v19.0"
SIGNATURE_HEADER = "X-Hub-Signature-256"
MESSAGE_PREFIX = "fb:"
COMMENT_PREFIX = "fb-comment:"
# Graph API error codes that mean "try again later": unknown/temporary errors and throttling
# (https://developers.facebook.com/docs/graph-api/guides/error-handling).
TRANSIENT_GRAPH_CODES = frozenset({1, 2, 4, 17, 32, 341, 613})
# Access token expired or revoked: the operator renews it, queued replies then go out.
TOKEN_GRAPH_CODES = frozenset({102, 190})
# Meta's challenge is a number; anything else is not worth echoing back.
_CHALLENGE = re.compile(r"[A-Za-z0-9_\-]{1,256}")


@register_adapter
class FacebookAdapter(SocialAdapter):
    kind = "facebook"
    message_prefix = MESSAGE_PREFIX

    @property
    def page_id(self) -> str:
        page_id = str(self.channel.setting("page_id") or "")
        if not page_id:
            raise ChannelConfigError(f"channel {self.channel.slug}: setting 'page_id' is not set")
        return page_id

    # --- webhooks -----------------------------------------------------------------------

    def webhook_handshake(self, request: HttpRequest) -> HttpResponse:
        mode = request.GET.get("hub.mode", "")
        token = request.GET.get("hub.verify_token", "")
        challenge = request.GET.get("hub.challenge", "")
        try:
            expected = self.channel.secret("verify_token")
        except ChannelConfigError:
            logger.exception(
                "channel %s: cannot answer Meta's subscription check", self.channel.slug
            )
            raise WebhookRejected(403, "The verify token is not configured.") from None
        if mode != "subscribe" or not hmac.compare_digest(token.encode(), expected.encode()):
            raise WebhookRejected(403, "hub.mode or hub.verify_token does not match.")
        if not _CHALLENGE.fullmatch(challenge):
            raise WebhookRejected(400, "hub.challenge is missing or not a token.")
        return HttpResponse(challenge, content_type="text/plain; charset=utf-8")

    def parse_webhook(self, request: HttpRequest) -> list[RawInbound]:
        try:
            secret, page_id = self.channel.secret("app_secret"), self.page_id
        except ChannelConfigError:
            logger.exception("channel %s: cannot check webhook signatures", self.channel.slug)
            raise WebhookRejected(
                503, "Webhook signatures cannot be checked now; retry later."
            ) from None
        body = request.body
        self._verify_signature(body, request.headers.get(SIGNATURE_HEADER, ""), secret)
        try:
            payload = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise WebhookRejected(400, f"The body is not JSON: {exc}") from None
        if not isinstance(payload, dict) or not isinstance(payload.get("entry"), list):
            raise WebhookRejected(400, "Expected a JSON object with an 'entry' list.")
        if payload.get("object") != "page":
            logger.info(
                "channel %s: ignoring webhook for object %r",
                self.channel.slug,
                payload.get("object"),
            )
            return []
        raws: list[RawInbound] = []
        for entry in payload["entry"]:
            if not isinstance(entry, dict) or str(entry.get("id")) != page_id:
                continue  # another page the app is subscribed to
            for event in entry.get("messaging") or []:
                raw = self._message_event(event, page_id)
                if raw is not None:
                    raws.append(raw)
            for change in entry.get("changes") or []:
                raw = self._comment_change(change, page_id)
                if raw is not None:
                    raws.append(raw)
        return raws

    @staticmethod
    def _verify_signature(body: bytes, header: str, secret: str) -> None:
        scheme, _, signature = header.strip().partition("=")
        if scheme.lower() != "sha256" or not signature:
            raise WebhookRejected(403, f"{SIGNATURE_HEADER} is missing or not sha256=<hex>.")
        expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected.encode(), signature.strip().lower().encode()):
            raise WebhookRejected(403, f"{SIGNATURE_HEADER} does not match the body.")

    def _message_event(self, event: object, page_id: str) -> RawInbound | None:
        if not isinstance(event, dict):
            return None
        message = event.get("message")
        sender = str((event.get("sender") or {}).get("id") or "")
        if not isinstance(message, dict) or not message.get("mid") or not sender:
            return None  # delivery or read receipt, postback, reaction
        if message.get("is_echo") or sender == page_id:
            return None  # the Page's own message, sent by us or by a person in Meta's inbox
        return RawInbound(
            external_id=f"{MESSAGE_PREFIX}{message['mid']}",
            raw=json_bytes(event),
            content_type=JSON,
        )

    def _comment_change(self, change: object, page_id: str) -> RawInbound | None:
        if not isinstance(change, dict) or change.get("field") != "feed":
            return None
        value = change.get("value")
        if not isinstance(value, dict) or value.get("item") != "comment":
            return None
        if value.get("verb") != "add" or not value.get("comment_id"):
            return None  # edits, hides and removals are not new messages
        if str((value.get("from") or {}).get("id") or "") in ("", page_id):
            return None
        return RawInbound(
            external_id=f"{COMMENT_PREFIX}{value['comment_id']}",
            raw=json_bytes(change),
            content_type=JSON,
        )

    # --- parse --------------------------------------------------------------------------

    def parse(self, message: InboundMessage) -> ParsedMessage:
        event = stored_payload(message)
        if "value" in event:
            return self._parse_comment(event["value"])
        return self._parse_message(event)

    def _parse_message(self, event: dict) -> ParsedMessage:
        message = event["message"]
        psid = str(event["sender"]["id"])
        text = clean_text(message.get("text"))
        attachments = [
            f"Attachment ({item.get('type', 'file')}): {(item.get('payload') or {}).get('url')}"
            for item in message.get("attachments") or []
            if isinstance(item, dict) and (item.get("payload") or {}).get("url")
        ]
        body = "\n\n".join([text, *attachments]).strip()
        replied_to = (message.get("reply_to") or {}).get("mid")
        return ParsedMessage(
            sender_kind="facebook",
            sender_value=psid,
            body_text=body,
            summary_text=body,
            message_id=f"{MESSAGE_PREFIX}{message['mid']}",
            in_reply_to=f"{MESSAGE_PREFIX}{replied_to}" if replied_to else "",
            sent_at=parse_time(event.get("timestamp")),
            conversation_key=f"fb:{psid}",
            conversation_window_hours=self.conversation_window_hours(),
            is_public=False,
        )

    def _parse_comment(self, value: dict) -> ParsedMessage:
        author = value.get("from") or {}
        post_id = str(value.get("post_id") or "")
        parent = str(value.get("parent_id") or "")
        text = clean_text(value.get("message"))
        return ParsedMessage(
            sender_kind="facebook",
            sender_value=str(author.get("id") or ""),
            sender_name=clean_text(author.get("name")),
            body_text=text,
            summary_text=text,
            message_id=f"{COMMENT_PREFIX}{value['comment_id']}",
            # A reply to another comment (not to the post itself).
            in_reply_to=f"{COMMENT_PREFIX}{parent}" if parent and parent != post_id else "",
            sent_at=parse_time(value.get("created_time")),
            conversation_key=f"fb-post:{post_id}:{author.get('id', '')}",
            is_public=True,
        )

    # --- send ---------------------------------------------------------------------------

    def send(self, outbound: OutboundMessage) -> SendResult:
        if outbound.in_reply_to.startswith(COMMENT_PREFIX):
            recipient = {"comment_id": outbound.in_reply_to.removeprefix(COMMENT_PREFIX)}
        elif outbound.thread is not None and outbound.thread.is_public:
            raise PermanentSendError(
                "This thread began with a public comment and there is no comment to answer "
                "privately; nothing was sent."
            )
        else:
            recipient = {"id": outbound.to_value}
        base_url = str(self.channel.setting("graph_base_url") or DEFAULT_GRAPH_BASE_URL)
        form = {
            "recipient": json.dumps(recipient),
            "messaging_type": "RESPONSE",
            "message": json.dumps({"text": outbound.body_text}, ensure_ascii=False),
            "access_token": self.channel.secret("page_access_token"),
        }
        with session_with_timeout(self.timeout) as session:
            response = self.call_provider(
                session.post, f"{base_url.rstrip('/')}/{self.page_id}/messages", data=form
            )
        if not response.ok:
            raise self._refusal(response)
        try:
            sent = response.json()
        except ValueError:
            sent = {}
        return SendResult(provider_message_id=str(sent.get("message_id") or ""))

    def _refusal(self, response: requests.Response) -> Exception:
        try:
            error = response.json().get("error") or {}
        except (ValueError, AttributeError):
            error = {}
        code = error.get("code")
        detail = f"Graph API {response.status_code}"
        if error:
            detail += (
                f" (code {code}, subcode {error.get('error_subcode')}): {error.get('message')}"
            )
        if is_transient_status(response.status_code) or code in TRANSIENT_GRAPH_CODES:
            return TransientChannelError(detail)
        if code in TOKEN_GRAPH_CODES:
            return TransientChannelError(f"The page access token was refused. {detail}")
        return PermanentSendError(detail)

    def provider_error(self, exc: Exception) -> Exception | None:
        if isinstance(exc, requests.RequestException):
            return TransientChannelError(f"Graph API unreachable: {exc}")
        return None
