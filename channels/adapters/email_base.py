"""What every e-mail channel shares: MIME parsing and sending replies over SMTP."""

from __future__ import annotations

import smtplib

from django.conf import settings
from django.core.mail import get_connection

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
        message = build_email(self.channel, outbound)
        try:
            with self._smtp_connection() as connection:
                connection.send_messages([message])
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            if all(400 <= code < 500 for code in codes):
                raise TransientChannelError(f"recipient deferred: {exc.recipients}") from exc
            raise PermanentSendError(f"recipient refused: {exc.recipients}") from exc
        except smtplib.SMTPResponseException as exc:
            if 400 <= exc.smtp_code < 500:
                raise TransientChannelError(f"SMTP {exc.smtp_code}: {exc.smtp_error!r}") from exc
            raise PermanentSendError(f"SMTP {exc.smtp_code}: {exc.smtp_error!r}") from exc
        except (TimeoutError, smtplib.SMTPException, OSError) as exc:
            raise TransientChannelError(f"SMTP server unavailable: {exc}") from exc
        return SendResult(provider_message_id=outbound.message_id)
