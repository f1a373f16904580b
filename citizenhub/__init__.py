"""CitizenHub project wiring and the hub core (citizen profiles, contact points, timeline)."""

from citizenhub.celery import app as celery_app

__all__ = ["celery_app"]
