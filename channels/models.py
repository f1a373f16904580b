"""Omnichannel data: channel accounts, raw inbound messages, threads, replies, routing rules,
web forms and contact logged by staff."""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
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
    # The team whose inbox the conversation is in (set by routing, or by the case it is
    # linked to), and the case it is about. A conversation belongs to at most one case;
    # a case can gather several conversations (an e-mail, then a text).
    team = models.ForeignKey(
        "citizenhub.Team",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="threads",
    )
    case = models.ForeignKey(
        "citizenhub.ServiceCase",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="threads",
    )
    last_message_at = models.DateTimeField(default=timezone.now)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        indexes = [
            models.Index(fields=["status", "-last_message_at"], name="thread_inbox_idx"),
            models.Index(fields=["channel", "conversation_key"], name="thread_conversation_idx"),
            # The inbox filtered by team or by assignee, newest activity first.
            models.Index(
                fields=["team", "status", "-last_message_at"], name="thread_team_inbox_idx"
            ),
            models.Index(
                fields=["assigned_to", "status", "-last_message_at"],
                name="thread_assignee_inbox_idx",
            ),
            # A citizen's conversations, newest first (the 360 page's panel).
            models.Index(fields=["citizen", "-last_message_at"], name="thread_citizen_recent_idx"),
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
    # Bulk e-mail (engagement campaigns): an HTML alternative, and extra headers such as
    # List-Unsubscribe / List-Unsubscribe-Post (RFC 8058).
    body_html = models.TextField(blank=True)
    headers = models.JSONField(default=dict, blank=True)
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
    service code and `opens_case` opens a case for each new conversation it routes
    (channels.services.casework).
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
    team = models.ForeignKey(
        "citizenhub.Team",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="routing_rules",
        help_text=_("The team whose inbox new conversations go to; empty for the service's team."),
    )
    opens_case = models.BooleanField(
        default=False,
        help_text=_(
            "Open a case of the rule's service for every new conversation it routes "
            "(needs a service code)."
        ),
    )

    class Meta:
        ordering = ["priority", "id"]

    def __str__(self) -> str:
        return self.name

    def keyword_list(self) -> list[str]:
        return [k.strip().lower() for k in self.keywords.split(",") if k.strip()]

    def clean(self) -> None:
        if self.opens_case and not self.service_code:
            raise ValidationError(
                {"opens_case": _("A rule can only open cases when it names a service code.")}
            )


# --- Web forms -----------------------------------------------------------------------------

WEBFORM_FIELD_TYPES = ("text", "textarea", "email", "phone", "postcode", "select", "checkbox")
# Longest answer accepted per field type unless the definition says otherwise.
WEBFORM_DEFAULT_MAX_LENGTHS = {
    "text": 200,
    "textarea": 5000,
    "email": 254,
    "phone": 30,
    "postcode": 10,
}
WEBFORM_MAX_FIELD_LENGTH = 20_000
WEBFORM_MAX_FIELDS = 50
# Names the form page itself uses: the signed token and the honeypot a bot fills in.
WEBFORM_TOKEN_FIELD = "form_token"  # noqa: S105 - a form field name, not a secret
WEBFORM_HONEYPOT_FIELD = "homepage"
WEBFORM_RESERVED_NAMES = frozenset({WEBFORM_TOKEN_FIELD, WEBFORM_HONEYPOT_FIELD})
_WEBFORM_FIELD_NAME = re.compile(r"[a-z][a-z0-9_]{0,49}")
_WEBFORM_FIELD_KEYS = frozenset(
    {"name", "label", "type", "required", "help_text", "choices", "max_length"}
)
# An origin as browsers send it: scheme, lower-case host (punycode), optional port, no path.
_ORIGIN = re.compile(
    r"https?://(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
    r"(?::\d{1,5})?"
)


@dataclass(frozen=True)
class WebFormField:
    """One question of a web form, with the defaults filled in."""

    name: str
    label: str
    type: str
    required: bool = False
    help_text: str = ""
    choices: tuple[str, ...] = ()
    max_length: int | None = None


def webform_field_problems(fields: object) -> list[str]:
    """Why a web form's field definition cannot be used; empty when it can."""
    if not isinstance(fields, list) or not fields:
        return ["Fields must be a non-empty JSON list of field objects."]
    if len(fields) > WEBFORM_MAX_FIELDS:
        return [f"A form can have at most {WEBFORM_MAX_FIELDS} fields."]
    problems: list[str] = []
    seen: set[str] = set()
    for position, item in enumerate(fields, start=1):
        if not isinstance(item, dict):
            problems.append(f"Field {position} must be an object with a name, label and type.")
            continue
        name = item.get("name")
        where = f"Field {position} ({name!r})" if isinstance(name, str) else f"Field {position}"
        unknown = sorted(set(item) - _WEBFORM_FIELD_KEYS)
        if unknown:
            problems.append(f"{where}: unknown keys {', '.join(unknown)}.")
        if not isinstance(name, str) or not _WEBFORM_FIELD_NAME.fullmatch(name):
            problems.append(
                f"{where}: the name must be 1-50 lower-case letters, digits and _, "
                "starting with a letter."
            )
        elif name in WEBFORM_RESERVED_NAMES:
            problems.append(f"{where}: the name {name!r} is used by the form page itself.")
        elif name in seen:
            problems.append(f"{where}: the name {name!r} is used twice.")
        else:
            seen.add(name)
        label = item.get("label")
        if not isinstance(label, str) or not label.strip() or len(label) > 200:
            problems.append(f"{where}: a label of 1-200 characters is required.")
        kind = item.get("type")
        if kind not in WEBFORM_FIELD_TYPES:
            problems.append(f"{where}: type must be one of {', '.join(WEBFORM_FIELD_TYPES)}.")
        if not isinstance(item.get("required", False), bool):
            problems.append(f"{where}: required must be true or false.")
        help_text = item.get("help_text", "")
        if not isinstance(help_text, str) or len(help_text) > 500:
            problems.append(f"{where}: help_text must be text of at most 500 characters.")
        choices = item.get("choices")
        if kind == "select":
            if (
                not isinstance(choices, list)
                or not choices
                or not all(isinstance(c, str) and c.strip() and len(c) <= 200 for c in choices)
                or len(set(choices)) != len(choices)
            ):
                problems.append(f"{where}: a select needs a list of distinct, non-empty choices.")
        elif choices is not None:
            problems.append(f"{where}: only select fields have choices.")
        max_length = item.get("max_length")
        if max_length is not None:
            if kind not in WEBFORM_DEFAULT_MAX_LENGTHS:
                problems.append(f"{where}: {kind} fields take no max_length.")
            elif (
                isinstance(max_length, bool)
                or not isinstance(max_length, int)
                or not 1 <= max_length <= WEBFORM_MAX_FIELD_LENGTH
            ):
                problems.append(
                    f"{where}: max_length must be a whole number from 1 to "
                    f"{WEBFORM_MAX_FIELD_LENGTH}."
                )
    kinds = {item.get("type") for item in fields if isinstance(item, dict)}
    if not kinds & {"email", "phone"}:
        problems.append(
            "A form needs an email or a phone field: it is how the council finds the resident "
            "and replies."
        )
    return problems


def normalise_origin(value: object) -> str | None:
    """An origin as browsers send it ("https://www.example.gov.uk"), or None if it is not one."""
    if not isinstance(value, str):
        return None
    origin = value.strip().lower().rstrip("/")
    return origin if _ORIGIN.fullmatch(origin) else None


class WebForm(models.Model):
    """A council-defined form at /forms/<slug>/; each submission is an inbound message."""

    channel = models.ForeignKey(
        Channel,
        on_delete=models.PROTECT,
        related_name="webforms",
        limit_choices_to={"kind": Channel.Kind.WEBFORM},
        help_text=_("A channel of kind 'Web form'; several forms can share one."),
    )
    slug = models.SlugField(max_length=64, unique=True)
    title = models.CharField(max_length=200)
    introduction = models.TextField(blank=True)
    fields = models.JSONField(
        default=list,
        help_text=_(
            'A list of {"name", "label", "type", "required", "help_text", "choices", '
            '"max_length"}; type is text, textarea, email, phone, postcode, select or checkbox.'
        ),
    )
    enabled = models.BooleanField(default=True)
    allowed_origins = models.JSONField(
        default=list,
        blank=True,
        help_text=_(
            'Websites that may embed the form or post to it, e.g. ["https://www.example.gov.uk"].'
        ),
    )
    success_message = models.TextField(
        blank=True, default="Thank you. We have received your message."
    )
    rate_limit_per_hour = models.PositiveIntegerField(
        default=10, help_text=_("Submissions accepted per hour from one IP address.")
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["title"]

    def __str__(self) -> str:
        return f"{self.title} ({self.slug})"

    def clean(self) -> None:
        errors: dict[str, list[str]] = {}
        if self.channel_id and self.channel.kind != Channel.Kind.WEBFORM:
            errors["channel"] = ["Choose a channel of kind 'Web form'."]
        problems = webform_field_problems(self.fields)
        if problems:
            errors["fields"] = problems
        origins = self.allowed_origins
        if not isinstance(origins, list):
            errors["allowed_origins"] = ["Allowed origins must be a JSON list of origins."]
        else:
            cleaned = [normalise_origin(origin) for origin in origins]
            bad = [str(o) for o, c in zip(origins, cleaned, strict=True) if c is None]
            if bad:
                errors["allowed_origins"] = [
                    f"Not an origin: {', '.join(bad)}. Write scheme and host only, e.g. "
                    "https://www.example.gov.uk (no path, no wildcard)."
                ]
            else:
                self.allowed_origins = list(dict.fromkeys(cleaned))
        if errors:
            raise ValidationError(errors)

    def field_definitions(self) -> list[WebFormField]:
        return [
            WebFormField(
                name=item["name"],
                label=item["label"].strip(),
                type=item["type"],
                required=bool(item.get("required", False)),
                help_text=item.get("help_text", ""),
                choices=tuple(item.get("choices") or ()),
                max_length=item.get("max_length") or WEBFORM_DEFAULT_MAX_LENGTHS.get(item["type"]),
            )
            for item in self.fields
        ]


# --- Contact logged by staff ---------------------------------------------------------------

LOGGED_CONTACT_MAX_SECONDS = 24 * 60 * 60
LOGGED_CONTACT_NOTES_LIMIT = 10_000


class LoggedContact(models.Model):
    """A phone call or a visit recorded by staff: contact that came through no channel."""

    class Kind(models.TextChoices):
        CALL = "call", _("Phone call")
        VISIT = "visit", _("Visit")

    class Direction(models.TextChoices):
        INBOUND = "inbound", _("From the resident (they called or came in)")
        OUTBOUND = "outbound", _("By the council (we called or visited)")

    class Outcome(models.TextChoices):
        RESOLVED = "resolved", _("Resolved")
        INFORMATION_GIVEN = "information_given", _("Information given")
        CALLBACK_NEEDED = "callback_needed", _("Callback needed")
        REFERRED = "referred", _("Referred to another service")
        NO_ANSWER = "no_answer", _("No answer")
        LEFT_MESSAGE = "left_message", _("Left a message")
        NO_ACCESS = "no_access", _("No access (nobody in)")
        OTHER = "other", _("Other")

    citizen = models.ForeignKey(Citizen, on_delete=models.CASCADE, related_name="logged_contacts")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    direction = models.CharField(max_length=8, choices=Direction.choices)
    occurred_at = models.DateTimeField()
    duration_seconds = models.PositiveIntegerField(null=True, blank=True)
    outcome = models.CharField(max_length=24, choices=Outcome.choices)
    notes = models.TextField(blank=True)
    department = models.CharField(max_length=100, blank=True)
    thread = models.ForeignKey(
        Thread, null=True, blank=True, on_delete=models.SET_NULL, related_name="logged_contacts"
    )
    logged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        indexes = [
            models.Index(
                fields=["citizen", "-occurred_at", "-id"], name="logged_contact_citizen_idx"
            ),
            models.Index(fields=["-occurred_at", "-id"], name="logged_contact_recent_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(duration_seconds__isnull=True)
                | Q(duration_seconds__lte=LOGGED_CONTACT_MAX_SECONDS),
                name="logged_contact_duration_within_a_day",
            ),
            models.CheckConstraint(
                condition=Q(kind__in=["call", "visit"]), name="logged_contact_kind_known"
            ),
            models.CheckConstraint(
                condition=Q(direction__in=["inbound", "outbound"]),
                name="logged_contact_direction_known",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.occurred_at:%Y-%m-%d %H:%M} ({self.outcome})"
