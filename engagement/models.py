"""The engagement app's data: the consent ledger, topics and subscriptions, campaigns and
their deliveries, and the contact rules that coordinate messages across departments."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from citizenhub.models import Citizen


class LedgerIsAppendOnly(Exception):
    """Raised by every code path that would edit or delete a consent record."""


def is_sanctioned_change(changes: dict[str, Any]) -> bool:
    """The two updates a ledger row may see, neither of which changes what was consented to:
    re-pointing it at another profile of the same person (a merge, or undoing one), and
    forgetting which account recorded it when that account is deleted (actor_label keeps
    who it was). The PostgreSQL trigger of migration 0001 allows exactly these."""
    keys = set(changes)
    if keys and keys <= {"citizen", "citizen_id"}:
        return True
    return (
        bool(keys)
        and keys <= {"actor", "actor_id"}
        and all(value is None for value in changes.values())
    )


class ConsentRecordQuerySet(models.QuerySet):
    def update(self, **kwargs: Any) -> int:
        if not is_sanctioned_change(kwargs):
            raise LedgerIsAppendOnly(
                "Consent records cannot be changed; record a new one (given or withdrawn)."
            )
        return super().update(**kwargs)

    def delete(self) -> tuple[int, dict[str, int]]:
        raise LedgerIsAppendOnly("Consent records cannot be deleted.")

    def bulk_update(self, objs: Any, fields: Any, batch_size: int | None = None) -> int:
        raise LedgerIsAppendOnly("Consent records cannot be changed; record a new one.")

    def update_or_create(self, *args: Any, **kwargs: Any) -> Any:
        raise LedgerIsAppendOnly("Consent records cannot be changed; record a new one.")


class ConsentRecord(models.Model):
    """One line of the consent ledger: someone gave or withdrew consent to one purpose on one
    channel, with the exact words they were shown. Never edited or deleted: the current state
    of a purpose is its latest record (engagement.services.current_consents)."""

    class Action(models.TextChoices):
        GIVEN = "given", _("Given")
        WITHDRAWN = "withdrawn", _("Withdrawn")

    class LawfulBasis(models.TextChoices):
        CONSENT = "consent", _("Consent")
        PUBLIC_TASK = "public_task", _("Public task")
        LEGAL_OBLIGATION = "legal_obligation", _("Legal obligation")
        LEGITIMATE_INTEREST = "legitimate_interest", _("Legitimate interests")

    class Source(models.TextChoices):
        PORTAL = "portal", _("Residents' portal")
        WEB_FORM = "web_form", _("Web form")
        STAFF = "staff", _("Council staff")
        API = "api", _("Council system (API)")
        IMPORT = "import", _("Import")

    # PROTECT: a profile with a consent history is never deleted (it is erased or merged).
    citizen = models.ForeignKey(Citizen, on_delete=models.PROTECT, related_name="consent_records")
    # What the consent is for: a topic's slug (engagement.Topic.slug) or one of the fixed
    # purposes of engagement.purposes; a slug, so the ledger outlives renamed topics.
    purpose = models.SlugField(max_length=64)
    channel = models.CharField(max_length=16)
    action = models.CharField(max_length=16, choices=Action.choices)
    lawful_basis = models.CharField(
        max_length=24, choices=LawfulBasis.choices, default=LawfulBasis.CONSENT
    )
    wording = models.TextField(help_text=_("The exact text the person was shown."))
    wording_version = models.CharField(max_length=32)
    source = models.CharField(max_length=16, choices=Source.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Kept when the user account goes, and names non-human sources ("import:2026-03").
    actor_label = models.CharField(max_length=150)
    occurred_at = models.DateTimeField(default=timezone.now)
    ip_address = models.GenericIPAddressField(null=True, blank=True)

    objects = ConsentRecordQuerySet.as_manager()

    class Meta:
        # Django's own related updates (SET_NULL on the actor) go through the base manager.
        base_manager_name = "objects"
        indexes = [
            models.Index(
                fields=["citizen", "purpose", "channel", "-occurred_at", "-id"],
                name="consent_citizen_latest_idx",
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(action__in=["given", "withdrawn"]),
                name="consent_record_action_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.citizen_id} {self.purpose}/{self.channel} {self.action} {self.occurred_at}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise LedgerIsAppendOnly(
                "Consent records cannot be changed; record a new one (given or withdrawn)."
            )
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise LedgerIsAppendOnly("Consent records cannot be deleted.")


class MessageClass(models.TextChoices):
    """Why a message is sent, which decides who may receive it (PECR, UK GDPR)."""

    # Service information the resident needs (bin day changed, road closed at their home):
    # sent to everyone affected, whatever their preferences; contact rules do not hold it.
    ESSENTIAL = "essential", _("Essential service message")
    # News about a topic the resident subscribed to.
    INFORMATIONAL = "informational", _("Informational")
    # Promoting something (events, services, campaigns): needs consent to the topic.
    PROMOTIONAL = "promotional", _("Promotional")


class Topic(models.Model):
    """Something residents can hear about: a service, a ward, or a theme."""

    class Kind(models.TextChoices):
        SERVICE = "service", _("Service")
        WARD = "ward", _("Ward")
        THEME = "theme", _("Theme")

    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=150)
    description = models.TextField(blank=True)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.THEME)
    service = models.ForeignKey(
        "citizenhub.Service", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    ward_code = models.CharField(max_length=9, blank=True)
    # Public topics are offered to residents; internal ones are for staff-built audiences.
    is_public = models.BooleanField(default=True)
    is_active = models.BooleanField(default=True)
    # The words a resident agrees to when subscribing; a change means a new version, and the
    # ledger keeps which words each person saw.
    consent_wording = models.TextField()
    consent_wording_version = models.CharField(max_length=32, default="1")
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Subscription(models.Model):
    """A resident hears about a topic on a channel. Pending until they confirm (double
    opt-in); nothing is ever sent to a pending subscription. Every change of state is also a
    line in the consent ledger."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Waiting for confirmation")
        ACTIVE = "active", _("Subscribed")
        UNSUBSCRIBED = "unsubscribed", _("Unsubscribed")

    citizen = models.ForeignKey(Citizen, on_delete=models.CASCADE, related_name="subscriptions")
    topic = models.ForeignKey(Topic, on_delete=models.CASCADE, related_name="subscriptions")
    channel = models.CharField(max_length=16)  # a citizenhub ChannelKind: "email", "sms", ...
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    requested_at = models.DateTimeField(default=timezone.now)
    # The confirmation link is good until then (7 days by default).
    confirm_by = models.DateTimeField(null=True, blank=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    unsubscribed_at = models.DateTimeField(null=True, blank=True)
    source = models.CharField(max_length=16, choices=ConsentRecord.Source.choices)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["citizen", "topic", "channel"], name="subscription_one_per_channel"
            ),
        ]
        indexes = [
            # Campaign audiences: the active subscribers of a topic on a channel.
            models.Index(fields=["topic", "channel", "status"], name="subscription_audience_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.citizen_id} {self.topic_id}/{self.channel} {self.status}"


class ContactRule(models.Model):
    """A rule every non-essential delivery must pass, whichever department sends it."""

    class Kind(models.TextChoices):
        # Hold while the citizen has an open case in one of `service_codes` (bereavement,
        # adult social care): no newsletter during someone's worst weeks.
        SENSITIVE_CASE_HOLD = "sensitive_case_hold", _("Hold during an open sensitive case")
        # At most `max_messages` non-essential messages in `period_days`, all departments.
        FREQUENCY_CAP = "frequency_cap", _("Frequency cap")
        # No text messages between `quiet_start` and `quiet_end` (local time): held, not
        # dropped; sent when the quiet hours end.
        QUIET_HOURS = "quiet_hours", _("Quiet hours")

    name = models.CharField(max_length=150)
    kind = models.CharField(max_length=24, choices=Kind.choices)
    enabled = models.BooleanField(default=True)
    service_codes = models.JSONField(default=list, blank=True)
    max_messages = models.PositiveIntegerField(null=True, blank=True)
    period_days = models.PositiveIntegerField(null=True, blank=True)
    quiet_start = models.TimeField(null=True, blank=True)
    quiet_end = models.TimeField(null=True, blank=True)
    # Channels the rule applies to; empty: all of them.
    channels = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    def __str__(self) -> str:
        return self.name


class Campaign(models.Model):
    """A bulletin or campaign: content per channel, an audience, approval by a second
    officer, a schedule, and its deliveries."""

    class Status(models.TextChoices):
        DRAFT = "draft", _("Draft")
        AWAITING_APPROVAL = "awaiting_approval", _("Waiting for approval")
        APPROVED = "approved", _("Approved")  # and scheduled, when scheduled_for is set
        SENDING = "sending", _("Sending")
        SENT = "sent", _("Sent")
        CANCELLED = "cancelled", _("Cancelled")

    title = models.CharField(max_length=200)
    message_class = models.CharField(
        max_length=16, choices=MessageClass.choices, default=MessageClass.INFORMATIONAL
    )
    topics = models.ManyToManyField(Topic, related_name="campaigns", blank=True)
    # Narrowing the topics' subscribers (all optional): {"ward_codes": [...],
    # "languages": ["cy"], "open_case_services": ["missed-bin"]}. An essential message
    # without topics goes to everyone matching the segment.
    segment = models.JSONField(default=dict, blank=True)
    channels = models.JSONField(default=list)  # e.g. ["email", "sms"], in order of preference
    email_subject = models.CharField(max_length=200, blank=True)
    email_html = models.TextField(blank=True)
    email_text = models.TextField(blank=True)
    sms_text = models.TextField(blank=True)
    # Mobilisation: the campaign asks for an answer (volunteer call-out, RSVP); replies on
    # any channel that carry `response_keyword` (or answer the campaign's message) count.
    asks_response = models.BooleanField(default=False)
    response_keyword = models.CharField(max_length=32, blank=True)
    status = models.CharField(max_length=24, choices=Status.choices, default=Status.DRAFT)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    submitted_at = models.DateTimeField(null=True, blank=True)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    approved_at = models.DateTimeField(null=True, blank=True)
    scheduled_for = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    version = models.PositiveIntegerField(default=1)

    class Meta:
        indexes = [models.Index(fields=["status", "scheduled_for"], name="campaign_due_idx")]
        constraints = [
            # Four eyes: whoever approves a campaign did not write it.
            models.CheckConstraint(
                condition=models.Q(approved_by__isnull=True)
                | ~models.Q(approved_by=models.F("created_by")),
                name="campaign_approved_by_second_officer",
            ),
        ]

    def __str__(self) -> str:
        return self.title


class Delivery(models.Model):
    """One message of a campaign to one citizen on one channel: materialised for the whole
    audience at once (set-based), then queued, sent and reported on, or suppressed with the
    rule and the reason."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Waiting to be sent")
        HELD = "held", _("Held until the quiet hours end")
        SUPPRESSED = "suppressed", _("Not sent (a contact rule)")
        QUEUED = "queued", _("Queued")
        SENT = "sent", _("Sent")
        DELIVERED = "delivered", _("Delivered")
        FAILED = "failed", _("Failed")
        BOUNCED = "bounced", _("Bounced")
        COMPLAINED = "complained", _("Marked as spam")

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="deliveries")
    citizen = models.ForeignKey(Citizen, on_delete=models.CASCADE, related_name="deliveries")
    channel = models.CharField(max_length=16)
    contact_point = models.ForeignKey(
        "citizenhub.ContactPoint", null=True, on_delete=models.SET_NULL, related_name="+"
    )
    to_value = models.CharField(max_length=320, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    rule = models.ForeignKey(
        ContactRule, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reason = models.CharField(max_length=300, blank=True)
    outbound = models.OneToOneField(
        "channels.OutboundMessage",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="delivery",
    )
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "deliveries"
        constraints = [
            # Materialising twice (a retried task) never sends twice.
            models.UniqueConstraint(
                fields=["campaign", "citizen", "channel"], name="delivery_once_per_channel"
            ),
        ]
        indexes = [
            models.Index(fields=["campaign", "status"], name="delivery_campaign_status_idx"),
            # Frequency caps: a citizen's recent non-essential deliveries.
            models.Index(fields=["citizen", "-created_at"], name="delivery_citizen_recent_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.campaign_id} -> {self.citizen_id}/{self.channel}: {self.status}"


class CampaignResponse(models.Model):
    """An answer to a campaign that asked for one, on any channel."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="responses")
    citizen = models.ForeignKey(
        Citizen, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    channel = models.CharField(max_length=16)
    # The inbound message it came in (channels.InboundMessage id), kept as a plain id so the
    # engagement app does not own the channels' data.
    inbound_message_id = models.BigIntegerField(null=True, blank=True, unique=True)
    text = models.TextField(blank=True)
    received_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"response to {self.campaign_id} from {self.citizen_id}"
