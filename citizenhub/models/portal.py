"""Data the residents' portal adds to the core: files residents attach to their reports,
and the one-time codes that prove a resident holds a phone number or an e-mail address."""

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
    """A code sent to a contact point to prove the resident holds it. Only a hash of the
    code is kept; a code expires and allows a few attempts."""

    contact_point = models.ForeignKey(
        ContactPoint, on_delete=models.CASCADE, related_name="verifications"
    )
    code_hash = models.CharField(max_length=128)
    sent_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    attempts = models.PositiveSmallIntegerField(default=0)
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["contact_point", "-sent_at"], name="verification_recent_idx")
        ]

    def __str__(self) -> str:
        return f"code for {self.contact_point_id} sent {self.sent_at:%Y-%m-%d %H:%M}"

    @property
    def is_usable(self) -> bool:
        return self.used_at is None and timezone.now() < self.expires_at
