"""Reading raw e-mail (RFC 5322 / MIME) into a ParsedMessage, fast and without crashing.

Uses the compat32 policy: about six times faster than email.policy.default here (see
FLOORS.md), and it never raises on malformed headers; we decode only what we need.
"""

from __future__ import annotations

import datetime
import email
import email.errors
import email.header
import email.utils
import hashlib
import re
from email.message import Message
from email.policy import compat32

from channels.adapters import ParsedAttachment, ParsedMessage
from channels.email.text import decode_bytes, html_to_text, sanitise_html, trim_reply

MESSAGE_ID = re.compile(r"<([^<>\s]{1,250})>")
THREAD_NUMBER = re.compile(r"\[CH-(\d{1,12})\]")
REPLY_TOKEN = re.compile(r"^reply\+([0-9a-f]{8,32})@", re.IGNORECASE)
MAX_REFERENCES = 50
_HEADER_LIMIT = 2000  # no header we read needs more; longer ones are abuse or garbage


def external_id_for(raw: bytes) -> str:
    """The idempotency key of a raw e-mail: its Message-ID, else a hash of the bytes.

    Only the header block is scanned for the Message-ID, so this is cheap enough to run in
    the SMTP receiver before anything else. The hash covers the bytes exactly as received,
    before any header of ours is added, so every redelivery hashes the same.
    """
    header_end = raw.find(b"\r\n\r\n")
    if header_end < 0:
        header_end = raw.find(b"\n\n")
    head = raw if header_end < 0 else raw[:header_end]
    match = re.search(rb"(?im)^message-id:[ \t]*(.*(?:\r?\n[ \t].*)*)", head)
    if match:
        found = MESSAGE_ID.search(match.group(1).decode("ascii", "replace"))
        if found:
            return f"mid:{found.group(1)}"[:255]
    return f"sha256:{hashlib.sha256(raw).hexdigest()}"


def decode_header_value(value: str | email.header.Header | None) -> str:
    """Decode RFC 2047 encoded-words, tolerating unknown charsets and garbage."""
    if value is None:
        return ""
    text = str(value)[:_HEADER_LIMIT]
    try:
        parts = email.header.decode_header(text)
    except (email.errors.HeaderParseError, ValueError):
        return " ".join(text.split())
    decoded = []
    for chunk, charset in parts:
        if isinstance(chunk, bytes):
            decoded.append(decode_bytes(chunk, charset))
        else:
            decoded.append(chunk)
    return " ".join("".join(decoded).split())


def _message_ids(value: str | None) -> list[str]:
    return MESSAGE_ID.findall(str(value or "")[: _HEADER_LIMIT * 4])


def _sender(headers: dict[str, str]) -> tuple[str, str]:
    """(address, display name) from From, falling back to Sender and Reply-To."""
    for header in ("from", "sender", "reply-to"):
        raw_value = headers.get(header)
        if not raw_value:
            continue
        name, address = email.utils.parseaddr(decode_header_value(raw_value))
        if address and "@" in address:
            return address, name
    return "", ""


def _sent_at(value: str | None) -> datetime.datetime | None:
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(str(value))
    except (TypeError, ValueError, IndexError):
        return None
    if parsed is None or parsed.tzinfo is None:
        return None
    return parsed


_AUTO_SUBJECT = re.compile(
    r"^\s*(out of (the )?office|automatic reply|auto(matic)?[- ]?reply|autoreply|"
    r"ymateb awtomatig|allan o'r swyddfa)\b",
    re.IGNORECASE,
)


def _classify(message: Message, headers: dict[str, str], sender: str, subject: str) -> str:
    local_part = sender.split("@")[0].lower()
    if local_part in ("mailer-daemon", "postmaster"):
        return "bounce"
    if message.get_content_type() == "multipart/report":
        report_type = (message.get_param("report-type") or "").lower()
        if report_type in ("delivery-status", ""):
            return "bounce"
    auto_submitted = str(headers.get("auto-submitted", "no")).strip().lower()
    if auto_submitted and not auto_submitted.startswith("no"):
        return "auto_reply"
    if headers.get("x-autoreply") or headers.get("x-autorespond"):
        return "auto_reply"
    if str(headers.get("precedence", "")).strip().lower() in ("auto_reply", "bulk", "junk"):
        return "auto_reply"
    suppress = str(headers.get("x-auto-response-suppress", "")).lower()
    if any(word in suppress for word in ("all", "oof", "autoreply")):
        return "auto_reply"
    if _AUTO_SUBJECT.match(subject):
        return "auto_reply"
    return "message"


def _bounced_recipients(message: Message) -> list[str]:
    recipients = []
    for part in message.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        payload = part.get_payload()
        blocks = payload if isinstance(payload, list) else []
        for block in blocks:
            for header in ("Final-Recipient", "Original-Recipient"):
                value = str(block.get(header, ""))
                if ";" in value:
                    address = value.split(";", 1)[1].strip()
                    if "@" in address and address not in recipients:
                        recipients.append(address)
    return recipients


def _is_attachment(part: Message) -> bool:
    disposition = str(part.get("Content-Disposition", "")).split(";")[0].strip().lower()
    if disposition == "attachment":
        return True
    # Parsing the Content-Type parameters is the costly part; a "name" parameter (or its
    # RFC 2231 pieces, name*0...) cannot be there unless the header says "name".
    content_type = part.get("Content-Type")
    if content_type is not None and "name" in str(content_type).lower() and part.get_param("name"):
        return True
    return disposition == "inline" and bool(part.get_filename())


def _bodies_and_attachments(message: Message) -> tuple[str, str, list[ParsedAttachment]]:
    plain, html, attachments = "", "", []
    for part in message.walk():
        if part.is_multipart():
            continue
        content_type = part.get_content_type()
        if content_type == "message/delivery-status":
            continue
        if _is_attachment(part):
            payload = part.get_payload(decode=True) or b""
            filename = decode_header_value(part.get_filename() or "") or "attachment"
            attachments.append(ParsedAttachment(filename[:255], content_type, payload))
            continue
        if content_type not in ("text/plain", "text/html"):
            continue
        payload = part.get_payload(decode=True)
        if payload is None:
            continue
        text = decode_bytes(payload, part.get_content_charset())
        if content_type == "text/plain" and not plain:
            plain = text
        elif content_type == "text/html" and not html:
            html = text
    return plain, html, attachments


# A Content-Type the single-part shortcut cannot take: skip straight to the full parse.
_COMPOUND_TYPE = re.compile(
    rb"^content-type:[ \t]*(?:multipart|message)/", re.IGNORECASE | re.MULTILINE
)


def _header_end(raw: bytes) -> int:
    """Where the body starts: just after the first blank line, or -1 without one."""
    ends = [
        found + len(separator)
        for separator in (b"\r\n\r\n", b"\n\n")
        if (found := raw.find(separator)) >= 0
    ]
    return min(ends) if ends else -1


def _message_from_bytes(raw: bytes) -> Message:
    """`email.message_from_bytes(raw, policy=compat32)`, without its line-by-line walk
    through the body of a single-part message.

    A message that is neither multipart nor message/* is a header block and one payload:
    the header block is parsed alone and the body attached as the payload, exactly as the
    full parse stores it. Whenever the header block does not parse cleanly on its own
    (defects, a body line before the blank line), the full parse decides.
    """
    end = _header_end(raw)
    if end > 0 and not _COMPOUND_TYPE.search(raw, 0, end):
        message = email.message_from_bytes(raw[:end], policy=compat32)
        if (
            not message.defects
            and message.get_payload() == ""
            and message.get_content_maintype() not in ("multipart", "message")
        ):
            message.set_payload(raw[end:].decode("ascii", "surrogateescape"))
            return message
    return email.message_from_bytes(raw, policy=compat32)


def _first_headers(message: Message) -> dict[str, str]:
    """Each header's first value by lower-cased name: what `message.get(name)` returns,
    without a scan of every header per lookup."""
    headers: dict[str, str] = {}
    for name, value in message.items():
        headers.setdefault(name.lower(), value)
    return headers


def parse_email(raw: bytes, recipients: list[str] | tuple[str, ...] = ()) -> ParsedMessage:
    """Parse raw e-mail bytes. Never raises on malformed input: missing parts stay empty."""
    message = _message_from_bytes(raw)
    headers = _first_headers(message)
    sender, sender_name = _sender(headers)
    subject = decode_header_value(headers.get("subject"))[:300]
    plain, html, attachments = _bodies_and_attachments(message)
    safe_html = sanitise_html(html) if html else ""
    body_text = (plain or html_to_text(html)).replace("\r\n", "\n").strip()
    message_ids = _message_ids(headers.get("message-id"))
    references = _message_ids(headers.get("references"))[-MAX_REFERENCES:]
    in_reply_to = _message_ids(headers.get("in-reply-to"))
    reply_token = ""
    for address in recipients:
        match = REPLY_TOKEN.match(address)
        if match:
            reply_token = match.group(1).lower()
            break
    number = THREAD_NUMBER.search(subject)
    classification = _classify(message, headers, sender, subject)
    return ParsedMessage(
        classification=classification,
        sender_kind="email" if sender else "",
        sender_value=sender,
        sender_name=sender_name[:200],
        subject=subject,
        body_text=body_text,
        summary_text=trim_reply(body_text),
        body_html=safe_html,
        message_id=message_ids[0] if message_ids else "",
        in_reply_to=in_reply_to[0] if in_reply_to else "",
        references=references,
        sent_at=_sent_at(headers.get("date")),
        attachments=attachments,
        reply_token=reply_token,
        thread_number=int(number.group(1)) if number else None,
        bounced_recipients=_bounced_recipients(message) if classification == "bounce" else [],
    )
