"""Building outbound e-mail with the headers that thread it (Message-ID, In-Reply-To,
References, the [CH-n] subject reference and a reply+<token>@ reply address)."""

from __future__ import annotations

from django.conf import settings
from django.core.mail import EmailMessage

from channels.models import Channel, OutboundMessage


def reply_address(channel: Channel, reply_token: str) -> str:
    """reply+<token>@<reply domain> when the channel has a reply domain, else its address."""
    domain = channel.setting("reply_domain")
    if domain and reply_token:
        return f"reply+{reply_token}@{domain}"
    return channel.address


def build_email(channel: Channel, outbound: OutboundMessage) -> EmailMessage:
    from_address = str(channel.setting("from_address") or channel.address)
    if not from_address:
        from_address = settings.DEFAULT_FROM_EMAIL
    headers = {"Message-ID": f"<{outbound.message_id}>"}
    if outbound.in_reply_to:
        headers["In-Reply-To"] = f"<{outbound.in_reply_to}>"
    if outbound.references:
        headers["References"] = " ".join(f"<{ref}>" for ref in outbound.references)
    token = outbound.thread.reply_token if outbound.thread else ""
    reply_to = reply_address(channel, token)
    return EmailMessage(
        subject=outbound.subject,
        body=outbound.body_text,
        from_email=f"{settings.COUNCIL_NAME} <{from_address}>",
        to=[outbound.to_value],
        reply_to=[reply_to] if reply_to else None,
        headers=headers,
    )
