"""The built-in SMTP receiver's channel (`manage.py smtp_inbound`): parse and reply."""

from channels.adapters import register_adapter
from channels.adapters.email_base import EmailAdapter


@register_adapter
class SmtpReceiverAdapter(EmailAdapter):
    kind = "email-smtp"
