"""Web form submissions (/forms/<slug>/): reading a stored submission as a message.

The form view (channels.forms_views) validates a submission and stores it as JSON:

    {"form": "<slug>", "title": "...", "fields": {"<name>": value, ...},
     "definition": [{"name", "label", "type"}, ...], "submitted_at": "<ISO 8601>",
     "ip_hash": "<salted hash>", "origin": "<Origin header or ''>"}

`definition` is a snapshot of the questions as the resident saw them, so editing the form
later does not change how earlier submissions read.

A web form cannot carry a reply itself: a staff reply on a form thread goes to the
e-mail address or phone number the resident gave, through the channels the form
channel's settings name (`reply_email_channel`, `reply_sms_channel`: channel slugs). The
reply stays on the form's thread, so the conversation reads as one.
"""

from __future__ import annotations

import datetime
import json
import re
from typing import Any

from channels.adapters import (
    ChannelAdapter,
    ParsedMessage,
    PermanentSendError,
    SendResult,
    TransientChannelError,
    adapter_for,
    register_adapter,
)
from channels.models import Channel, InboundMessage, OutboundMessage

# The reference we put in replies, e.g. [CH-1234]; 18 digits fit any thread id.
CASE_REFERENCE = re.compile(r"\bCH-(\d{1,18})\b", re.IGNORECASE)
CASE_REFERENCE_FIELD = "case_reference"
NAME_FIELDS = ("name", "full_name")


def _definition(payload: dict[str, Any], values: dict[str, Any]) -> list[dict[str, str]]:
    snapshot = payload.get("definition")
    if isinstance(snapshot, list):
        items = [d for d in snapshot if isinstance(d, dict) and isinstance(d.get("name"), str)]
        if items:
            return items
    # A submission stored without its snapshot: the names say what the fields are.
    return [
        {"name": name, "label": name.replace("_", " ").capitalize(), "type": name}
        for name in values
    ]


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "Yes" if value else "No"
    return "" if value is None else str(value).strip()


def _sender(definition: list[dict[str, str]], values: dict[str, Any]) -> tuple[str, str]:
    for kind in ("email", "phone"):
        for item in definition:
            value = _as_text(values.get(item["name"]))
            if item.get("type") == kind and value:
                return kind, value
    return "", ""


def _thread_number(values: dict[str, Any]) -> int | None:
    ordered = [values.get(CASE_REFERENCE_FIELD)] + [
        value for name, value in values.items() if name != CASE_REFERENCE_FIELD
    ]
    for value in ordered:
        if isinstance(value, str):
            match = CASE_REFERENCE.search(value)
            if match:
                return int(match.group(1))
    return None


def _submitted_at(value: Any) -> datetime.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def parse_submission(raw: bytes) -> ParsedMessage:
    payload = json.loads(raw.decode("utf-8"))
    if not isinstance(payload, dict) or not isinstance(payload.get("fields"), dict):
        raise ValueError("not a web form submission: no 'fields' object")
    values: dict[str, Any] = payload["fields"]
    definition = _definition(payload, values)
    sender_kind, sender_value = _sender(definition, values)
    sender_name = next((_as_text(values.get(n)) for n in NAME_FIELDS if values.get(n)), "")
    lines = []
    for item in definition:
        text = _as_text(values.get(item["name"]))
        if text:
            lines.append(f"{item.get('label') or item['name']}: {text}")
    return ParsedMessage(
        sender_kind=sender_kind,
        sender_value=sender_value,
        sender_name=sender_name,
        subject=str(payload.get("title") or payload.get("form") or "Web form"),
        body_text="\n".join(lines),
        # The whole submission is new text (nothing quoted), and routing rules read it.
        summary_text="\n".join(lines),
        sent_at=_submitted_at(payload.get("submitted_at")),
        thread_number=_thread_number(values),
        is_public=False,
    )


@register_adapter
class WebFormAdapter(ChannelAdapter):
    kind = "webform"

    def parse(self, message: InboundMessage) -> ParsedMessage:
        return parse_submission(bytes(message.raw))

    # Replies carry a subject when they go by e-mail; an SMS channel ignores it.
    uses_subject = True

    def send(self, outbound: OutboundMessage) -> SendResult:
        setting = "reply_email_channel" if "@" in outbound.to_value else "reply_sms_channel"
        slug = self.channel.setting(setting)
        if not slug:
            raise PermanentSendError(
                f"Form channel {self.channel.slug} has no {setting} to send replies through."
            )
        relay = Channel.objects.filter(slug=slug).first()
        if relay is None:
            raise PermanentSendError(f"{setting} names channel {slug!r}, which does not exist.")
        if not relay.enabled:
            raise TransientChannelError(f"Reply channel {slug} is disabled.")
        return adapter_for(relay).send(outbound)
