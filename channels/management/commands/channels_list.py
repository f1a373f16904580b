"""`manage.py channels_list`: every channel with its health and counters, as a table or JSON."""

from __future__ import annotations

import datetime
import json

from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from channels.models import Channel

FIELDS = (
    "slug",
    "kind",
    "name",
    "enabled",
    "address",
    "last_poll_at",
    "last_success_at",
    "consecutive_failures",
    "backoff_until",
    "last_error",
    "received_count",
    "processed_count",
    "failed_count",
    "duplicate_count",
)
# (heading, field) of the table; the JSON output has every field above.
COLUMNS = (
    ("SLUG", "slug"),
    ("KIND", "kind"),
    ("ENABLED", "enabled"),
    ("ADDRESS", "address"),
    ("LAST SUCCESS", "last_success_at"),
    ("FAILURES", "consecutive_failures"),
    ("BACKOFF UNTIL", "backoff_until"),
    ("RECEIVED", "received_count"),
    ("PROCESSED", "processed_count"),
    ("FAILED", "failed_count"),
    ("DUPLICATES", "duplicate_count"),
)
NUMERIC = {
    "consecutive_failures",
    "received_count",
    "processed_count",
    "failed_count",
    "duplicate_count",
}


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime.datetime):
        return f"{timezone.localtime(value):%Y-%m-%d %H:%M:%S}"
    return str(value)


def _json_value(value: object) -> object:
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    return value


class Command(BaseCommand):
    help = "List channels with their health (last success, failures, back-off) and counters."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="Print JSON for scripts.")

    def handle(self, *args, **options) -> None:
        rows = list(Channel.objects.order_by("slug").values(*FIELDS))
        if options["json"]:
            data = [{key: _json_value(value) for key, value in row.items()} for row in rows]
            self.stdout.write(json.dumps(data, indent=2))
            return
        if not rows:
            self.stdout.write("No channels yet. Add one with `manage.py channels_add`.")
            return
        table = [[heading for heading, _ in COLUMNS]]
        table += [[_cell(row[field]) for _, field in COLUMNS] for row in rows]
        widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]
        for number, line in enumerate(table):
            cells = [
                text.rjust(width) if number and field in NUMERIC else text.ljust(width)
                for text, width, (_, field) in zip(line, widths, COLUMNS, strict=True)
            ]
            self.stdout.write("  ".join(cells).rstrip())
