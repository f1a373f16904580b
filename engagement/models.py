"""The engagement app's data: for now the consent ledger (topics, subscriptions and campaigns
arrive with the engagement issue and build on it)."""

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
    # A purpose slug for now; the engagement issue adds topics and keeps these slugs.
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
