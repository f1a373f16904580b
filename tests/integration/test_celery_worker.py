"""A real Celery worker process, fed through Redis, writes to the timeline and commits."""

import time

import pytest

from citizenhub.models import TimelineEntry
from citizenhub.services import citizen_create
from citizenhub.tasks import record_timeline_entry_task
from tests.integration.conftest import needs_broker_and_postgres

pytestmark = [pytest.mark.integration, needs_broker_and_postgres]


def test_worker_records_a_timeline_entry_and_commits_it(celery_worker_process):
    citizen = citizen_create(given_name="Ifan", family_name="Roberts")
    result = record_timeline_entry_task.apply_async(
        kwargs={
            "citizen_public_id": str(citizen.public_id),
            "kind": "call",
            "summary": "Rang about a missed recycling collection",
            "channel": "phone",
            "occurred_at": "2026-11-20T10:15:00+00:00",
        },
    )
    deadline = time.monotonic() + 30
    entry = None
    while time.monotonic() < deadline and entry is None:
        entry = TimelineEntry.objects.filter(citizen=citizen).first()
        time.sleep(0.2)
    assert entry is not None, celery_worker_process.log()
    assert entry.summary == "Rang about a missed recycling collection"
    assert entry.channel == "phone" and entry.occurred_at.isoformat() == "2026-11-20T10:15:00+00:00"
    # It ran in the worker process, not eagerly in this one.
    deadline = time.monotonic() + 10
    while result.id not in celery_worker_process.log() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert f"Task citizenhub.record_timeline_entry[{result.id}] succeeded" in (
        celery_worker_process.log()
    )
