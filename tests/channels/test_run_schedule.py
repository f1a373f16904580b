"""`manage.py run_schedule`, the demo's in-process stand-in for celery beat."""

import io
import logging

import pytest
from celery.schedules import crontab
from django.core.cache import cache
from django.core.management import call_command

from channels.management.commands.run_schedule import entries_from_settings, run_due
from citizenhub.tasks import HEARTBEAT_CACHE_KEY

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_heartbeat_yet():
    cache.delete(HEARTBEAT_CACHE_KEY)


def test_once_runs_every_interval_entry_of_the_real_schedule(settings):
    out = io.StringIO()
    call_command("run_schedule", once=True, stdout=out)

    # Intervals start at once; clock-time (crontab) entries wait for their time, as in beat.
    interval = [
        name
        for name, entry in settings.CELERY_BEAT_SCHEDULE.items()
        if isinstance(entry["schedule"], int | float)
    ]
    assert len(interval) < len(settings.CELERY_BEAT_SCHEDULE)
    assert out.getvalue().strip() == (
        f"Ran {len(interval)} due schedule entries: {', '.join(interval)}."
    )
    assert cache.get(HEARTBEAT_CACHE_KEY)  # the heartbeat task really ran


def test_a_failing_or_unknown_task_is_logged_and_the_others_still_run(
    settings, monkeypatch, caplog
):
    def database_trouble():
        raise RuntimeError("poll failed")

    monkeypatch.setattr("channels.services.polling.due_polling_channels", database_trouble)
    settings.CELERY_BEAT_SCHEDULE = {
        "poll": {"task": "channels.poll_due", "schedule": 15.0},
        "typo": {"task": "channels.no_such_task", "schedule": 15.0},
        "heartbeat": {"task": "citizenhub.record_worker_heartbeat", "schedule": 60.0},
    }
    with caplog.at_level(logging.ERROR, logger="channels.management.commands.run_schedule"):
        call_command("run_schedule", once=True, stdout=io.StringIO())

    assert cache.get(HEARTBEAT_CACHE_KEY)
    errors = [r.getMessage() for r in caplog.records if r.name.endswith("run_schedule")]
    assert "schedule entry poll: task channels.poll_due failed" in errors
    assert "schedule entry typo: no task named channels.no_such_task" in errors


def test_an_entry_runs_again_only_after_its_interval_and_crontabs_keep_their_clock(settings):
    settings.CELERY_BEAT_SCHEDULE = {
        "heartbeat": {"task": "citizenhub.record_worker_heartbeat", "schedule": 60.0},
        "nightly": {"task": "citizenhub.record_worker_heartbeat", "schedule": crontab(0, 3)},
    }
    entries = entries_from_settings()
    assert run_due(entries) == ["heartbeat"]
    assert run_due(entries) == []
    heartbeat = entries[0]
    heartbeat.last_run_at = heartbeat.last_run_at.replace(year=2000)
    assert run_due(entries) == ["heartbeat"]
