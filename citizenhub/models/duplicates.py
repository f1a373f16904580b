"""Suggested duplicate profiles, found by a scoring method and reviewed by an officer."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from citizenhub.models.people import Citizen


class DuplicateCandidate(models.Model):
    """Two live profiles that may be one person: a suggestion until an officer decides."""

    class Status(models.TextChoices):
        OPEN = "open", _("Awaiting review")
        MERGED = "merged", _("Merged")
        DISMISSED = "dismissed", _("Not the same person")

    # Always stored with citizen_a.pk < citizen_b.pk, so a pair has one row.
    citizen_a = models.ForeignKey(Citizen, on_delete=models.CASCADE, related_name="+")
    citizen_b = models.ForeignKey(Citizen, on_delete=models.CASCADE, related_name="+")
    score = models.FloatField(help_text=_("0 to 1: how strongly the evidence says one person."))
    method = models.CharField(max_length=50, help_text=_("Name and version of the scoring method."))
    reasons = models.JSONField(default=list, help_text=_("The evidence, for the reviewer."))
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    found_at = models.DateTimeField(default=timezone.now)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["citizen_a", "citizen_b"], name="duplicate_pair_once"),
            models.CheckConstraint(
                condition=Q(citizen_a__lt=F("citizen_b")), name="duplicate_pair_ordered"
            ),
        ]
        indexes = [models.Index(fields=["status", "-score"], name="duplicate_review_queue_idx")]

    def __str__(self) -> str:
        return f"{self.citizen_a_id} ~ {self.citizen_b_id} ({self.score:.2f})"
