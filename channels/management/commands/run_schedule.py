"""`manage.py run_schedule`: the demo's stand-in for `celery beat`, running tasks in-process."""

from __future__ import annotations

import logging
import signal
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from celery.schedules import BaseSchedule, maybe_schedule, schedule
from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.db import close_old_connections
from django.utils.module_loading import autodiscover_modules

from citizenhub.celery import app

logger = logging.getLogger(__name__)
TICK_SECONDS = 1.0


@dataclass
class ScheduledEntry:
    name: str
    task: str
    schedule: BaseSchedule
    args: tuple
    kwargs: dict
    last_run_at: datetime | None = None

    def is_due(self) -> bool:
        if self.last_run_at is None:
            # Intervals start at once (the demo polls and beats straight away); crontab-like
            # schedules keep to their clock, as under celery beat.
            if type(self.schedule) is schedule:
                return True
            self.last_run_at = self.schedule.now()
        return self.schedule.is_due(self.last_run_at).is_due


def entries_from_settings() -> list[ScheduledEntry]:
    return [
        ScheduledEntry(
            name=name,
            task=entry["task"],
            schedule=maybe_schedule(entry["schedule"], app=app),
            args=tuple(entry.get("args", ())),
            kwargs=dict(entry.get("kwargs", {})),
        )
        for name, entry in settings.CELERY_BEAT_SCHEDULE.items()
    ]


def run_due(entries: list[ScheduledEntry]) -> list[str]:
    """Run the entries that are due, in this process; return the names of those that ran.

    A failing or unknown task is logged and retried at its next time: it never stops the
    schedule.
    """
    ran = []
    for entry in entries:
        if not entry.is_due():
            continue
        entry.last_run_at = entry.schedule.now()
        ran.append(entry.name)
        task = app.tasks.get(entry.task)
        if task is None:
            logger.error("schedule entry %s: no task named %s", entry.name, entry.task)
            continue
        try:
            result = task.apply(args=entry.args, kwargs=entry.kwargs, throw=True)
        except Exception:
            logger.exception("schedule entry %s: task %s failed", entry.name, entry.task)
            continue
        logger.debug("schedule entry %s: %s returned %r", entry.name, entry.task, result.result)
    return ran


class Command(BaseCommand):
    help = (
        "DEMO ONLY: run the tasks of CELERY_BEAT_SCHEDULE in this process when they are due "
        "(checked every second), so `make demo` needs no Redis, worker or beat. Production "
        "runs exactly one `celery -A citizenhub beat` with Celery workers instead. "
        "--once runs the entries due now and exits."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--once", action="store_true", help="Run the entries due now, then exit (tests)."
        )

    def handle(self, *args: Any, once: bool, **options: Any) -> None:
        if settings.REDIS_URL:
            logger.warning(
                "REDIS_URL is set: run `celery -A citizenhub beat` and workers instead of "
                "run_schedule; tasks started here still run in this process."
            )
        # Outside a worker nothing imports the apps' tasks modules (Celery's autodiscovery
        # waits for worker start-up), so their tasks would be unknown here.
        autodiscover_modules("tasks")
        entries = entries_from_settings()
        if once:
            ran = run_due(entries)
            self.stdout.write(f"Ran {len(ran)} due schedule entries: {', '.join(ran) or 'none'}.")
            return
        stop = threading.Event()
        previous = {
            signum: signal.signal(signum, lambda *_: stop.set())
            for signum in (signal.SIGTERM, signal.SIGINT)
        }
        self.stdout.write(
            "Running the schedule in-process (demo only; production uses celery beat): "
            + ", ".join(f"{entry.name} ({entry.schedule!r})" for entry in entries)
        )
        self.stdout.flush()
        try:
            while not stop.is_set():
                run_due(entries)
                # Like a Celery worker between tasks: drop connections that are broken or
                # past CONN_MAX_AGE, so a database restart does not break every later run.
                close_old_connections()
                stop.wait(TICK_SECONDS)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        self.stdout.write("Schedule stopped.")
