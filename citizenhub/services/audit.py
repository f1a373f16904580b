"""Writing audit events: who did what to which record, and why."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.contrib.contenttypes.models import ContentType
from django.db import models

from citizenhub.models import AuditEvent, Citizen


def actor_label_for(actor: AbstractBaseUser | AnonymousUser | None, fallback: str) -> str:
    if actor is not None and getattr(actor, "is_authenticated", False):
        return f"user:{actor.get_username()}"
    return fallback


def audit_record(
    *,
    action: str,
    target: models.Model,
    actor: AbstractBaseUser | AnonymousUser | None = None,
    actor_label: str = "system",
    citizen: Citizen | None = None,
    reason: str = "",
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one audit event. `citizen` is whose record it concerns (for "who viewed me")."""
    user = actor if actor is not None and getattr(actor, "is_authenticated", False) else None
    if citizen is None and isinstance(target, Citizen):
        citizen = target
    details = dict(details or {})
    if user is not None and user.is_staff:
        # The officer's teams as they are now: "who viewed my record" names teams, and
        # people move between teams after the fact.
        from citizenhub.case_selectors import user_team_ids

        details.setdefault("team_ids", sorted(user_team_ids(user)))
    return AuditEvent.objects.create(
        actor=user,
        actor_label=actor_label_for(actor, actor_label),
        action=action,
        target_type=ContentType.objects.get_for_model(target),
        target_id=str(target.pk),
        citizen=citizen,
        reason=reason[:500],
        details=details,
    )
