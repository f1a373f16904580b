"""How often a signed-in resident may write to the council through the portal and the
resident API: enough for anyone with something to say, not enough to flood a team's queue."""

from __future__ import annotations

from django.conf import settings

from citizenhub.models import Citizen
from citizenhub.ratelimit import HourlyLimit


def case_updates_limit() -> HourlyLimit:
    """Information added to cases (portal and /api/v1/me/), per resident, per hour."""
    return HourlyLimit("resident:case-updates", settings.PORTAL_CASE_UPDATES_PER_HOUR)


def resident_key(citizen: Citizen) -> str:
    return str(citizen.pk)
