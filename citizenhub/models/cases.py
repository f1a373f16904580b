"""Service cases: the council's service catalogue, its teams, and cases worked to deadlines."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from citizenhub.models.people import Address, ChannelKind, Citizen


class Team(models.Model):
    """A group of officers who work cases together (e.g. "Waste services", "Adult social care")."""

    slug = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=150)
    department = models.CharField(max_length=100)
    email = models.EmailField(blank=True, help_text=_("Shared mailbox, for people, not sending."))
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="teams")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ClockType(models.TextChoices):
    """How a service's deadline is counted; the statutory ones follow the regulator's rules."""

    WORKING_DAYS = "working_days", _("Working days")
    CALENDAR_DAYS = "calendar_days", _("Calendar days")
    # Freedom of Information Act s.10: 20 working days from the day after receipt.
    FOI = "foi", _("FOI: 20 working days")
    # UK GDPR Art 12(3), as the ICO counts it: the corresponding date next month.
    SUBJECT_ACCESS = "subject_access", _("Subject access: one calendar month")


class Service(models.Model):
    """One entry of the service catalogue: what residents can ask for, who does it, how fast."""

    code = models.SlugField(
        max_length=32, unique=True, help_text=_("Stable identifier; the Open311 service_code.")
    )
    name = models.CharField(max_length=150)
    description = models.TextField(blank=True)
    group = models.CharField(max_length=100, blank=True, help_text=_("Open311 group."))
    keywords = models.CharField(max_length=300, blank=True)
    lgsl_code = models.PositiveIntegerField(
        null=True, blank=True, help_text=_("Local Government Services List code, where one exists.")
    )
    department = models.CharField(max_length=100)
    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="services")
    clock_type = models.CharField(
        max_length=16, choices=ClockType.choices, default=ClockType.WORKING_DAYS
    )
    sla_days = models.PositiveSmallIntegerField(
        default=10, help_text=_("Target in days of the clock type (ignored by statutory clocks).")
    )
    is_public = models.BooleanField(
        default=True, help_text=_("Residents can see and report it; otherwise staff-only.")
    )
    is_sensitive = models.BooleanField(
        default=False,
        help_text=_("Only the service's team sees case content; others see that a case exists."),
    )
    allows_anonymous = models.BooleanField(default=False)
    retention_days = models.PositiveIntegerField(
        default=6 * 365, help_text=_("Closed cases are anonymised this long after closing.")
    )
    open311_attributes = models.JSONField(
        default=list, blank=True, help_text=_("Open311 service definition attributes.")
    )
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class CaseReferenceSequence(models.Model):
    """The last case number issued in a year, so references read CH-2026-000123."""

    year = models.PositiveSmallIntegerField(primary_key=True)
    last_number = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.year}: {self.last_number}"


class ServiceCase(models.Model):
    """One request from a resident, worked through a status workflow to a due date."""

    class Status(models.TextChoices):
        NEW = "new", _("New")
        OPEN = "open", _("Open")
        IN_PROGRESS = "in_progress", _("In progress")
        WAITING = "waiting", _("Waiting on resident")
        RESOLVED = "resolved", _("Resolved")
        CLOSED = "closed", _("Closed")

    class Priority(models.IntegerChoices):
        LOW = 1, _("Low")
        NORMAL = 2, _("Normal")
        HIGH = 3, _("High")
        URGENT = 4, _("Urgent")

    OPEN_STATUSES = (Status.NEW, Status.OPEN, Status.IN_PROGRESS, Status.WAITING)

    reference = models.CharField(max_length=20, unique=True)
    citizen = models.ForeignKey(
        Citizen, null=True, blank=True, on_delete=models.PROTECT, related_name="cases"
    )
    service = models.ForeignKey(Service, on_delete=models.PROTECT, related_name="cases")
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    # Where the problem is, which is not always where the resident lives.
    address = models.ForeignKey(
        Address, null=True, blank=True, on_delete=models.SET_NULL, related_name="cases"
    )
    location_text = models.CharField(max_length=300, blank=True)
    uprn = models.CharField(max_length=12, blank=True)
    postcode = models.CharField(max_length=8, blank=True)
    latitude = models.DecimalField(max_digits=9, decimal_places=6, null=True, blank=True)
    longitude = models.DecimalField(max_digits=9, decimal_places=6, null=True, blank=True)
    ward_code = models.CharField(max_length=9, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.NEW)
    priority = models.PositiveSmallIntegerField(choices=Priority.choices, default=Priority.NORMAL)
    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="cases")
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="assigned_cases",
    )
    source_channel = models.CharField(max_length=16, choices=ChannelKind.choices, blank=True)
    opened_at = models.DateTimeField(default=timezone.now)
    due_on = models.DateField()
    # Set while the case waits on the resident; the working days it waited move due_on.
    clock_stopped_at = models.DateTimeField(null=True, blank=True)
    breached = models.BooleanField(default=False)
    resolved_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    resolution = models.TextField(blank=True, help_text=_("Sent to the resident on resolving."))
    legal_hold = models.BooleanField(default=False)
    anonymised_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Optimistic locking: every save through a service bumps it, and a save based on an
    # older version is refused instead of overwriting someone else's change.
    version = models.PositiveIntegerField(default=1)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            models.Index(fields=["team", "status", "due_on"], name="case_team_queue_idx"),
            models.Index(fields=["assignee", "status", "due_on"], name="case_assignee_queue_idx"),
            models.Index(fields=["status", "due_on"], name="case_status_due_idx"),
            models.Index(fields=["citizen", "-opened_at"], name="case_citizen_recent_idx"),
            models.Index(fields=["service", "-opened_at"], name="case_service_recent_idx"),
            models.Index(
                fields=["closed_at"],
                condition=Q(status="closed", anonymised_at__isnull=True),
                name="case_retention_idx",
            ),
        ]
        permissions = [
            ("transition_servicecase", "Can move a case through its workflow"),
            ("set_legal_hold", "Can place or lift a legal hold on a case"),
        ]

    def __str__(self) -> str:
        return self.reference

    @property
    def is_open(self) -> bool:
        return self.status in self.OPEN_STATUSES

    def is_overdue(self, today=None) -> bool:
        today = today or timezone.localdate()
        return self.is_open and self.due_on < today


class CaseEvent(models.Model):
    """One line of a case's history: created, moved, assigned, noted, replied, linked."""

    class Kind(models.TextChoices):
        CREATED = "created", _("Opened")
        STATUS = "status", _("Status changed")
        ASSIGNED = "assigned", _("Assigned")
        PRIORITY = "priority", _("Priority changed")
        DETAILS = "details", _("Details changed")
        NOTE = "note", _("Internal note")
        REPLY = "reply", _("Reply to resident")
        RESIDENT_UPDATE = "resident_update", _("Update from resident")
        LINKED = "linked", _("Message linked")
        LEGAL_HOLD = "legal_hold", _("Legal hold changed")
        ANONYMISED = "anonymised", _("Anonymised after retention")

    class Visibility(models.TextChoices):
        STAFF = "staff", _("Staff only")
        RESIDENT = "resident", _("Visible to the resident")

    case = models.ForeignKey(ServiceCase, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    from_status = models.CharField(max_length=16, blank=True)
    to_status = models.CharField(max_length=16, blank=True)
    text = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True)
    visibility = models.CharField(
        max_length=8, choices=Visibility.choices, default=Visibility.STAFF
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_label = models.CharField(max_length=150, default="system")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["case", "created_at"], name="case_event_history_idx")]

    def __str__(self) -> str:
        return f"{self.case_id} {self.kind} {self.created_at:%Y-%m-%d %H:%M}"
