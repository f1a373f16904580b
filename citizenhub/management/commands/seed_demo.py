"""Fill the database with the fictional Northmoor District Council. Safe to run again."""

from __future__ import annotations

import sys
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from citizenhub.demo import DemoOptions, discover_demo_seeders, run_demo_seeders
from citizenhub.demo_data import DEFAULT_RESIDENTS
from citizenhub.errors import ApplicationError


class Command(BaseCommand):
    help = (
        "Seed the demo council: wards, residents (with duplicates to merge) and their "
        "timelines. The same data every time; running it again adds nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--residents",
            type=int,
            default=DEFAULT_RESIDENTS,
            help=f"How many demo residents there should be (default {DEFAULT_RESIDENTS}); "
            "a smaller number never removes any.",
        )
        parser.add_argument(
            "--quiet", action="store_true", help="Show no progress bar and no summary."
        )
        parser.add_argument(
            "--allow-without-debug",
            action="store_true",
            help="Seed even though DEBUG is off (a staging copy, never a live council).",
        )

    def handle(self, *args: Any, residents: int, quiet: bool, **options: Any) -> None:
        if not settings.DEBUG and not options.get("allow_without_debug"):
            raise CommandError(
                "seed_demo adds 500 fictional residents; it runs only with DEBUG=1 (or "
                "--allow-without-debug on a staging copy), never on a live council's data."
            )
        if residents < 0:
            raise CommandError("--residents cannot be negative.")
        # tqdm needs the raw stream: Django's wrapper would end every redraw with a newline.
        progress = None if quiet else options.get("stderr") or sys.stderr
        try:
            results = run_demo_seeders(
                discover_demo_seeders(), DemoOptions(residents=residents, progress=progress)
            )
        except ApplicationError as exc:
            raise CommandError(f"Nothing from the failed step was saved. {exc.message}") from exc
        if quiet or options["verbosity"] == 0:
            return
        counts = [
            f"{count} {label}" for _seeder, seeded in results for label, count in seeded.items()
        ]
        self.stdout.write(f"Demo council seeded: {', '.join(counts)}.")
