"""Data the residents' portal adds to the core: files residents attach to their reports,
and the one-time codes that prove a resident holds a phone number."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from citizenhub.models.cases import ServiceCase
from citizenhub.models.people import Citizen, ContactPoint


def attachment_path(instance: CaseAttachment, filename: str) -> str:
    # The stored name is a random id, never the resident's file name: nothing a resident
    # types ends up in a path on disk.
    return f"case-attachments/{timezone.now():%Y/%m}/{instance.public_id}"


class CaseAttachment(models.Model):
    """A photo (or other evidence) attached to a case. Stored under MEDIA_ROOT, which is
    outside the web root: files are served only by a view that checks who is asking."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    case = models.ForeignKey(ServiceCase, on_delete=models.CASCADE, related_name="attachments")
    # Who may see it from the portal: the resident who uploaded it (None when anonymous).
    citizen = models.ForeignKey(
        Citizen, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    file = models.FileField(upload_to=attachment_path, max_length=200)
    original_name = models.CharField(max_length=255, blank=True)
    content_type = models.CharField(max_length=100)
    size = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        indexes = [models.Index(fields=["case", "created_at"], name="attachment_case_idx")]

    def __str__(self) -> str:
        return f"{self.case_id}: {self.original_name or self.public_id}"


class ContactVerification(models.Model):
    """A pending claim: a resident typed a phone number and we texted a code to it.

    The number lives here, not as a ContactPoint, until the code comes back: a live contact
    point identifies its holder to the channels (an inbound text is matched to whoever holds
    the number), so a typed but unproven number must not be one. Each code sent is one row;
    a new code retires the resident's earlier ones for the same number. Rows also count the
    codes sent (per number, per resident) and the wrong codes typed, and are deleted a couple
    of days after they were sent. Only a keyed hash of the code is kept.
    """

    citizen = models.ForeignKey(
        Citizen, on_delete=models.CASCADE, related_name="contact_verifications"
    )
    kind = models.CharField(max_length=16, choices=ContactPoint.Kind.choices)
    value = models.CharField(max_length=320)  # as the resident typed it
    normalised = models.CharField(max_length=320)
    match_key = models.CharField(max_length=320)
    code_hash = models.CharField(max_length=128)
    sent_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    failed_attempts = models.PositiveSmallIntegerField(default=0)
    # Set when the code stops working: confirmed, replaced by a newer code, or not sent.
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["kind", "match_key", "-sent_at"], name="verification_number_idx"),
            models.Index(fields=["citizen", "-sent_at"], name="verification_citizen_idx"),
        ]

    def __str__(self) -> str:
        return (
            f"code for {self.kind} of citizen {self.citizen_id} sent {self.sent_at:%Y-%m-%d %H:%M}"
        )

    @property
    def is_usable(self) -> bool:
        return self.used_at is None and timezone.now() < self.expires_at
