"""What every e-mail channel shares: MIME parsing and sending over SMTP, replies and bulk
e-mail (an HTML alternative and list headers such as RFC 8058 one-click unsubscribe)."""

from __future__ import annotations

import logging
import re
import smtplib

from django.conf import settings
from django.core.mail import EmailMessage, EmailMultiAlternatives, get_connection

from channels.adapters import (
    ChannelAdapter,
    ParsedMessage,
    PermanentSendError,
    SendResult,
    TransientChannelError,
)
from channels.email.compose import build_email
from channels.email.parsing import parse_email
from channels.models import InboundMessage, OutboundMessage

logger = logging.getLogger(__name__)

# The only headers an outbound message may add (OutboundMessage.headers), lower-cased:
# list and bulk-mail headers. Addressing, threading and content headers are ours alone.
EXTRA_HEADER_NAMES = {
    "list-unsubscribe": "List-Unsubscribe",
    "list-unsubscribe-post": "List-Unsubscribe-Post",
    "list-id": "List-Id",
    "list-help": "List-Help",
    "precedence": "Precedence",
    "auto-submitted": "Auto-Submitted",
    "feedback-id": "Feedback-ID",
}
MAX_EXTRA_HEADER_CHARS = 2000
# RFC 3463 X.1.x: the address itself is bad (no such mailbox, no such domain, bad syntax,
# moved). Anything else (5.7.1 relay denied, policy, quota) may be our server's or our
# configuration's fault, and must not mark thousands of residents' addresses dead.
_BAD_ADDRESS_STATUS = re.compile(rb"^\s*5\.1\.\d{1,3}\b")


class RecipientRefused(PermanentSendError):
    """The receiving server refused the address for good (5.1.x): it does not exist."""


def extra_headers(outbound: OutboundMessage) -> dict[str, str]:
    """The message's extra headers that are allowed and safe: known list headers only,
    text without CR, LF or NUL (no header injection). Others are dropped and logged."""
    headers: dict[str, str] = {}
    requested = outbound.headers if isinstance(outbound.headers, dict) else {}
    for name, value in requested.items():
        canonical = EXTRA_HEADER_NAMES.get(str(name).strip().lower())
        if (
            canonical is None
            or not isinstance(value, str)
            or not value.strip()
            or len(value) > MAX_EXTRA_HEADER_CHARS
            or any(char in value for char in "\r\n\x00")
        ):
            logger.warning(
                "outbound %s: header %r dropped (not allowed or unsafe)", outbound.pk, name
            )
            continue
        headers[canonical] = value.strip()
    return headers


def with_bulk_parts(message: EmailMessage, outbound: OutboundMessage) -> EmailMessage:
    """The built message plus the outbound's HTML alternative and allowed extra headers."""
    headers = {**message.extra_headers, **extra_headers(outbound)}
    if not outbound.body_html:
        message.extra_headers = headers
        return message
    alternative = EmailMultiAlternatives(
        subject=message.subject,
        body=message.body,
        from_email=message.from_email,
        to=message.to,
        reply_to=message.reply_to,
        headers=headers,
    )
    alternative.attach_alternative(outbound.body_html, "text/html")
    return alternative


def _refused_for_good(refusals: dict) -> bool:
    return all(
        isinstance(reply, bytes) and _BAD_ADDRESS_STATUS.match(reply)
        for _, reply in refusals.values()
    )


class EmailAdapter(ChannelAdapter):
    uses_subject = True

    def parse(self, message: InboundMessage) -> ParsedMessage:
        return parse_email(bytes(message.raw), message.recipients)

    def _smtp_connection(self):
        channel = self.channel
        password = channel.secret("smtp_password") if channel.setting("smtp_password_env") else ""
        return get_connection(
            "django.core.mail.backends.smtp.EmailBackend",
            host=channel.setting("smtp_host", settings.EMAIL_HOST),
            port=int(channel.setting("smtp_port", settings.EMAIL_PORT)),
            username=channel.setting("smtp_username", ""),
            password=password,
            use_tls=bool(channel.setting("smtp_starttls", False)),
            use_ssl=bool(channel.setting("smtp_ssl", False)),
            timeout=int(channel.setting("smtp_timeout", 30)),
            fail_silently=False,
        )

    def send(self, outbound: OutboundMessage) -> SendResult:
        message = with_bulk_parts(build_email(self.channel, outbound), outbound)
        try:
            with self._smtp_connection() as connection:
                connection.send_messages([message])
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            if all(400 <= code < 500 for code in codes):
                raise TransientChannelError(f"recipient deferred: {exc.recipients}") from exc
            if _refused_for_good(exc.recipients):
                raise RecipientRefused(f"recipient refused: {exc.recipients}") from exc
            raise PermanentSendError(f"recipient refused: {exc.recipients}") from exc
        except smtplib.SMTPResponseException as exc:
            if 400 <= exc.smtp_code < 500:
                raise TransientChannelError(f"SMTP {exc.smtp_code}: {exc.smtp_error!r}") from exc
            raise PermanentSendError(f"SMTP {exc.smtp_code}: {exc.smtp_error!r}") from exc
        except (TimeoutError, smtplib.SMTPException, OSError) as exc:
            raise TransientChannelError(f"SMTP server unavailable: {exc}") from exc
        return SendResult(provider_message_id=outbound.message_id)
