"""Suggest profiles that may be one person, for officers to review at /staff/duplicates/."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from citizenhub.duplicates import METHOD, find_duplicate_candidates


class Command(BaseCommand):
    help = (
        f"Score pairs of profiles that share a block key ({METHOD}) and record suggestions "
        "for review. Safe to run again: officers' decisions are never changed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--limit-blocks",
            type=int,
            default=None,
            help="Stop after this many blocks (a quick partial run).",
        )

    def handle(self, *args: Any, limit_blocks: int | None, **options: Any) -> None:
        if limit_blocks is not None and limit_blocks < 1:
            raise CommandError("--limit-blocks must be at least 1.")
        counts = find_duplicate_candidates(limit_blocks=limit_blocks)
        if options["verbosity"] == 0:
            return
        summary = ", ".join(f"{label.replace('_', ' ')}: {n}" for label, n in counts.items())
        self.stdout.write(f"Duplicate search done. {summary}.")
