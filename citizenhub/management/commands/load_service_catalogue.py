"""Load the starter service catalogue (teams and services); safe to run again."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from citizenhub.catalogue import SERVICES, TEAMS, load_service_catalogue


class Command(BaseCommand):
    help = (
        "Create the starter teams and services that do not exist yet and refresh the wording "
        "of those that do; choices a council made since (teams, targets) are kept."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        created = load_service_catalogue()
        self.stdout.write(
            self.style.SUCCESS(
                f"Teams: {created['teams']} created, {len(TEAMS) - created['teams']} already "
                f"there. Services: {created['services']} created, "
                f"{len(SERVICES) - created['services']} refreshed."
            )
        )
