"""Omnichannel data: channel accounts, raw inbound messages, threads, replies, routing rules."""

from __future__ import annotations

import os
import secrets

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from citizenhub.models import ChannelKind, Citizen, ContactPoint


class ChannelConfigError(Exception):
    """A channel's settings or secrets are missing or wrong; the operator must fix them."""


class Channel(models.Model):
    """One account the council talks through: a mailbox, an SMS number, a social account."""

    class Kind(models.TextChoices):
        EMAIL_SMTP = "email-smtp", _("E-mail (built-in SMTP receiver)")
        EMAIL_IMAP = "email-imap", _("E-mail (IMAP mailbox)")
        EMAIL_WEBHOOK = "email-webhook", _("E-mail (Mailgun inbound webhook)")
        SMS_NOTIFY = "sms-notify", _("SMS (GOV.UK Notify)")
        SMS_TWILIO = "sms-twilio", _("SMS (Twilio)")
        MASTODON = "mastodon", _("Mastodon")
        X = "x", _("X (Twitter)")
        FACEBOOK = "facebook", _("Facebook Page")
        WEBFORM = "webform", _("Web form")
        STAFF = "staff", _("Logged by staff")

    kind = models.CharField(max_length=16, choices=Kind.choices)
    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=150)
    enabled = models.BooleanField(default=True)
    # The channel's own address as residents see it (mailbox, number, handle).
    address = models.CharField(max_length=320, blank=True)
    poll_interval_seconds = models.PositiveIntegerField(default=60)
    # Non-secret provider settings. A secret is never stored here: a key ending in "_env"
    # names the environment variable holding it (e.g. {"password_env": "IMAP_PASSWORD"}).
    settings = models.JSONField(default=dict, blank=True)

    # Health and back-off, written by the pollers and senders.
    last_poll_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    backoff_until = models.DateTimeField(null=True, blank=True)

    # Counters for /metrics, incremented with F() in the same transaction as the work.
    received_count = models.BigIntegerField(default=0)
    processed_count = models.BigIntegerField(default=0)
    failed_count = models.BigIntegerField(default=0)
    duplicate_count = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.slug})"

    @property
    def timeline_channel(self) -> str:
        """The channel kind this account appears as on the citizen's timeline."""
        return KIND_TO_TIMELINE_CHANNEL[self.kind]

    def setting(self, key: str, default: object = None) -> object:
        return self.settings.get(key, default)

    def secret(self, key: str) -> str:
        """Read a secret through the environment variable the settings name for it."""
        variable = self.settings.get(f"{key}_env")
        if not variable:
            raise ChannelConfigError(f"channel {self.slug}: setting '{key}_env' is not set")
        value = os.environ.get(str(variable))
        if not value:
            raise ChannelConfigError(
                f"channel {self.slug}: environment variable {variable} (for {key}) is empty"
            )
        return value


KIND_TO_TIMELINE_CHANNEL = {
    Channel.Kind.EMAIL_SMTP: ChannelKind.EMAIL,
    Channel.Kind.EMAIL_IMAP: ChannelKind.EMAIL,
    Channel.Kind.EMAIL_WEBHOOK: ChannelKind.EMAIL,
    Channel.Kind.SMS_NOTIFY: ChannelKind.SMS,
    Channel.Kind.SMS_TWILIO: ChannelKind.SMS,
    Channel.Kind.MASTODON: ChannelKind.MASTODON,
    Channel.Kind.X: ChannelKind.X,
    Channel.Kind.FACEBOOK: ChannelKind.FACEBOOK,
    Channel.Kind.WEBFORM: ChannelKind.WEB,
    Channel.Kind.STAFF: ChannelKind.PHONE,
}


class ChannelCursor(models.Model):
    """Where a poller got to, per channel and folder/stream (IMAP UIDVALIDITY + UID, since_id).

    Cursors are positions, never date windows: after an outage of any length the poller
    resumes exactly where it stopped.
    """

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="cursors")
    key = models.CharField(max_length=200)
    state = models.JSONField(default=dict)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["channel", "key"], name="channel_cursor_unique_key")
        ]

    def __str__(self) -> str:
        return f"{self.channel.slug}:{self.key}"


def new_reply_token() -> str:
    return secrets.token_hex(10)


class Thread(models.Model):
    """One conversation with one citizen on one channel: the unified inbox's item."""

    class Status(models.TextChoices):
        OPEN = "open", _("Open")
        WAITING = "waiting", _("Waiting on resident")
        DONE = "done", _("Done")

    channel = models.ForeignKey(Channel, on_delete=models.PROTECT, related_name="threads")
    citizen = models.ForeignKey(Citizen, on_delete=models.CASCADE, related_name="threads")
    subject = models.CharField(max_length=300, blank=True)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.OPEN)
    # Secret part of the reply address (reply+<token>@...): unguessable, unlike the number.
    reply_token = models.CharField(max_length=32, unique=True, default=new_reply_token)
    # Conversation id for channels that have one (SMS number pair, social thread id).
    conversation_key = models.CharField(max_length=255, blank=True)
    department = models.CharField(max_length=100, blank=True)
    service_code = models.CharField(max_length=32, blank=True)
    # Started by a public post (a mention, a page comment): replies must not disclose case
    # details in public, so adapters answer such threads privately.
    is_public = models.BooleanField(default=False)
    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="assigned_threads",
    )
    participants = models.ManyToManyField(
        ContactPoint, through="ThreadParticipant", related_name="threads"
    )
    last_message_at = models.DateTimeField(default=timezone.now)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        indexes = [
            models.Index(fields=["status", "-last_message_at"], name="thread_inbox_idx"),
            models.Index(fields=["channel", "conversation_key"], name="thread_conversation_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.reference} {self.subject}"

    @property
    def reference(self) -> str:
        """The human reference put in outbound subjects, e.g. [CH-1234]."""
        return f"CH-{self.pk}"


class ThreadParticipant(models.Model):
    """A contact point that takes part in a thread; only participants can join it by reply."""

    thread = models.ForeignKey(Thread, on_delete=models.CASCADE)
    contact_point = models.ForeignKey(ContactPoint, on_delete=models.CASCADE)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["thread", "contact_point"], name="thread_participant_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.contact_point_id} in thread {self.thread_id}"


class InboundMessage(models.Model):
    """A message as a provider handed it over, stored raw before anything parses it."""

    class Status(models.TextChoices):
        RECEIVED = "received", _("Received, waiting to be processed")
        PROCESSED = "processed", _("Processed")
        IGNORED = "ignored", _("Kept, not a resident's message (auto-reply, bounce)")
        FAILED = "failed", _("Failed")

    class Classification(models.TextChoices):
        MESSAGE = "message", _("Message from a person")
        AUTO_REPLY = "auto_reply", _("Automatic reply")
        BOUNCE = "bounce", _("Bounce or delivery report")
        DUPLICATE = "duplicate", _("Same message received at another address")

    channel = models.ForeignKey(Channel, on_delete=models.PROTECT, related_name="inbound")
    external_id = models.CharField(max_length=255)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RECEIVED)
    raw = models.BinaryField()
    raw_content_type = models.CharField(max_length=100, default="message/rfc822")
    raw_size = models.PositiveIntegerField(default=0)
    # Council addresses this message was delivered to (two mailboxes, one message).
    recipients = models.JSONField(default=list, blank=True)
    received_at = models.DateTimeField(default=timezone.now)
    processed_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)

    # Filled by parsing.
    classification = models.CharField(max_length=12, choices=Classification.choices, blank=True)
    message_id = models.CharField(max_length=255, blank=True)
    in_reply_to = models.CharField(max_length=255, blank=True)
    references = models.JSONField(default=list, blank=True)
    sender_kind = models.CharField(max_length=16, blank=True)
    sender_value = models.CharField(max_length=320, blank=True)
    sender_name = models.CharField(max_length=200, blank=True)
    subject = models.CharField(max_length=300, blank=True)
    body_text = models.TextField(blank=True)
    # The new part of the message, without quoted replies and signature.
    summary_text = models.TextField(blank=True)
    # Allow-list sanitised HTML; the raw HTML only ever exists inside `raw`.
    body_html = models.TextField(blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    citizen = models.ForeignKey(
        Citizen, null=True, blank=True, on_delete=models.SET_NULL, related_name="inbound_messages"
    )
    contact_point = models.ForeignKey(
        ContactPoint, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    thread = models.ForeignKey(
        Thread, null=True, blank=True, on_delete=models.SET_NULL, related_name="inbound_messages"
    )
    duplicate_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="copies"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["channel", "external_id"], name="inbound_unique_per_channel"
            )
        ]
        indexes = [
            models.Index(fields=["status", "received_at"], name="inbound_status_idx"),
            models.Index(
                fields=["message_id"],
                name="inbound_message_id_idx",
                condition=~Q(message_id=""),
            ),
            models.Index(fields=["thread", "received_at"], name="inbound_thread_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.channel.slug}:{self.external_id}"


class Attachment(models.Model):
    """A file that came with an inbound message, kept outside the web root or refused."""

    message = models.ForeignKey(
        InboundMessage, on_delete=models.CASCADE, related_name="attachments"
    )
    filename = models.CharField(max_length=255)
    declared_type = models.CharField(max_length=150, blank=True)
    sniffed_type = models.CharField(max_length=150, blank=True)
    size = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64)
    file = models.FileField(upload_to="attachments/%Y/%m/", blank=True)
    # Why the content was not stored (too large, forbidden type); the message is kept.
    rejected_reason = models.CharField(max_length=300, blank=True)

    def __str__(self) -> str:
        return self.filename


class OutboundMessage(models.Model):
    """A reply or message to a citizen, sent by a task through a channel."""

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        SENDING = "sending", _("Being handed to the provider")
        SENT = "sent", _("Sent")
        DELIVERED = "delivered", _("Delivered")
        FAILED = "failed", _("Failed")

    channel = models.ForeignKey(Channel, on_delete=models.PROTECT, related_name="outbound")
    thread = models.ForeignKey(
        Thread, null=True, blank=True, on_delete=models.SET_NULL, related_name="outbound_messages"
    )
    citizen = models.ForeignKey(Citizen, on_delete=models.CASCADE, related_name="outbound_messages")
    to_value = models.CharField(max_length=320)
    subject = models.CharField(max_length=300, blank=True)
    body_text = models.TextField()
    message_id = models.CharField(max_length=255, blank=True)
    in_reply_to = models.CharField(max_length=255, blank=True)
    references = models.JSONField(default=list, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    provider_message_id = models.CharField(max_length=255, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["message_id"],
                name="outbound_message_id_idx",
                condition=~Q(message_id=""),
            ),
            models.Index(fields=["status", "created_at"], name="outbound_status_idx"),
            models.Index(
                fields=["channel", "provider_message_id"],
                name="outbound_provider_id_idx",
                condition=~Q(provider_message_id=""),
            ),
        ]

    def __str__(self) -> str:
        return f"to {self.to_value}: {self.subject}"


class RoutingRule(models.Model):
    """Routes inbound messages to a department and service by address or keyword.

    The first enabled rule (lowest priority number) that matches wins. A rule with a
    service code is what the casework app uses to open a case automatically.
    """

    name = models.CharField(max_length=150)
    priority = models.PositiveIntegerField(default=100)
    enabled = models.BooleanField(default=True)
    channel = models.ForeignKey(
        Channel,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="routing_rules",
        help_text=_("Only messages from this channel; empty for every channel."),
    )
    recipient_contains = models.CharField(
        max_length=320, blank=True, help_text=_("Matches when a council address contains this.")
    )
    keywords = models.CharField(
        max_length=500,
        blank=True,
        help_text=_("Comma-separated; matches when the subject or text contains any of them."),
    )
    department = models.CharField(max_length=100, blank=True)
    service_code = models.CharField(max_length=32, blank=True)

    class Meta:
        ordering = ["priority", "id"]

    def __str__(self) -> str:
        return self.name

    def keyword_list(self) -> list[str]:
        return [k.strip().lower() for k in self.keywords.split(",") if k.strip()]
