"""A worker SIGKILLed mid-run loses nothing and doubles nothing: the ingest ledger balances.

1,000 e-mails are stored and enqueued through Redis; a real worker starts on them and is
killed with SIGKILL (main process and pool children) while batches are in flight; a new
worker takes over. Two things bring back what the dead worker had:

- the batches it held (delivered, not acknowledged) come back after the broker's
  visibility timeout, shortened here so that the test sees it;
- a batch Redis had already popped for it but that it had not yet recorded as delivered is
  gone from the broker (kombu's Redis transport pops, then records: a SIGKILL in between
  loses the task). The database is the outbox: the stale sweep, which beat runs every
  minute, re-enqueues messages still `received`. The test runs it once, as beat would.

Afterwards every e-mail is stored once, processed once and on the timeline once.
"""

from __future__ import annotations

import ast
import datetime
import json
import re
import time
from collections import Counter
from email.utils import format_datetime

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db.models import Count, F
from django.utils import timezone

from channels.adapters import RawInbound
from channels.email.parsing import external_id_for
from channels.models import Channel, InboundMessage, Thread
from channels.services.ingest import store_raw_messages
from channels.tasks import sweep_stale_messages
from citizenhub.celery import app as celery_app
from citizenhub.models import Citizen, ContactPoint, TimelineEntry
from citizenhub.services import citizen_create
from tests.integration.conftest import WorkerProcess, needs_broker_and_postgres

pytestmark = [pytest.mark.integration, needs_broker_and_postgres]

MESSAGES = 1_000
SENDERS = 80
KNOWN_SENDERS = 10
# Small batches make the run long enough (a few seconds) for the kill to land mid-run.
BATCH_SIZE = 5
# Seconds before Redis hands an unacknowledged task to another worker; the time limits
# stay below it so that a live worker's task is never handed out twice.
VISIBILITY_TIMEOUT = 10
WORKER_ENV = {
    "CELERY_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT),
    "CELERY_TASK_TIME_LIMIT": "8",
    "CELERY_TASK_SOFT_TIME_LIMIT": "6",
    "CHANNELS_INGEST_BATCH_SIZE": str(BATCH_SIZE),
}
# Kombu looks for overdue unacknowledged tasks only every 10th sweep of 10 s by default:
# after a kill the task would come back 10 s + up to 100 s later. Sweep every second.
WORKER_CONFIG = {
    "broker_transport_options": {
        "visibility_timeout": VISIBILITY_TIMEOUT,
        "unacked_restore_interval": 1,
        "unacked_restore_throttle": 1,
    }
}
WAIT_SECONDS = 180
TASK_NAME = "channels.ingest_batch"
SENT = datetime.datetime(2026, 11, 2, 8, 0, tzinfo=datetime.UTC)
# Received a while ago (a backlog), so that the stale sweep takes any message still waiting.
RECEIVED_AT = timezone.now() - datetime.timedelta(minutes=10)


@pytest.fixture
def short_visibility_timeout(settings):
    """The test process publishes with the same broker settings as the workers it starts."""
    previous = celery_app.conf.broker_transport_options
    celery_app.conf.broker_transport_options = {
        **previous,
        "visibility_timeout": VISIBILITY_TIMEOUT,
    }
    settings.CHANNELS_INGEST_BATCH_SIZE = BATCH_SIZE  # how store_raw_messages splits tasks
    yield
    celery_app.conf.broker_transport_options = previous


@pytest.fixture
def start_worker(transactional_db, tmp_path, short_visibility_timeout):
    """Start ingest workers on demand; every one of them is stopped at the end."""
    celery_app.control.purge()
    started: list[WorkerProcess] = []

    def start(label: str, concurrency: int) -> WorkerProcess:
        worker = WorkerProcess(
            "ingest,default",
            tmp_path / f"worker-{label}.log",
            concurrency=concurrency,
            env=WORKER_ENV,
            config=WORKER_CONFIG,
        )
        started.append(worker)
        worker.start()
        return worker

    yield start
    for worker in started:
        worker.stop()
    celery_app.control.purge()


def _email(index: int, sender: str, parent_id: str | None) -> tuple[bytes, str]:
    """One e-mail (and its Message-ID); every 50th has none and is keyed by its hash."""
    message_id = "" if index % 50 == 49 else f"kill-test-{index}@residents.example"
    sent = format_datetime(SENT + datetime.timedelta(minutes=index))
    headers = [
        f"From: Resident {index % SENDERS} <{sender}>",
        "To: contact@northmoor.example",
        f"Subject: {'Re: ' if parent_id else ''}Report {index}: bins not collected",
        f"Date: {sent}",
    ]
    if message_id:
        headers.append(f"Message-ID: <{message_id}>")
    if parent_id:
        headers += [f"In-Reply-To: <{parent_id}>", f"References: <{parent_id}>"]
    body = f"Message {index} from {sender}.\nThe bins on our street were missed again.\n"
    data = "\r\n".join([*headers, "Content-Type: text/plain; charset=utf-8", "", body])
    return data.encode(), message_id


def _mailbag() -> tuple[list[RawInbound], dict[str, str], dict[str, str]]:
    """The e-mails, each one's sender, and each reply's parent (by external id)."""
    raws: list[RawInbound] = []
    sender_of: dict[str, str] = {}
    parent_of: dict[str, str] = {}
    latest: dict[str, tuple[str, str]] = {}  # sender -> (external id, Message-ID) to answer
    for index in range(MESSAGES):
        sender = f"resident{index % SENDERS}@residents.example"
        answered = latest.get(sender) if index % 7 == 3 else None
        data, message_id = _email(index, sender, answered[1] if answered else None)
        external_id = external_id_for(data)
        raws.append(
            RawInbound(
                external_id=external_id,
                raw=data,
                recipients=("contact@northmoor.example",),
                received_at=RECEIVED_AT,
            )
        )
        sender_of[external_id] = sender
        if answered:
            parent_of[external_id] = answered[0]
        if message_id:
            latest[sender] = (external_id, message_id)
    assert len(sender_of) == MESSAGES  # all distinct
    return raws, sender_of, parent_of


def _processed(channel: Channel) -> int:
    return InboundMessage.objects.filter(channel=channel, status="processed").count()


def _in_flight_ingest_tasks() -> dict[str, list[int]]:
    """Ingest tasks delivered to a worker and not acknowledged: task id -> message ids.

    Read after the kill, these are exactly what the dead worker held.
    """
    with celery_app.connection_for_write() as connection:
        client = connection.default_channel.client
        entries = client.hvals("unacked")
    held = {}
    for entry in entries:
        payload = json.loads(entry)[0]
        headers = payload.get("headers") or {}
        if headers.get("task") == TASK_NAME:
            held[headers["id"]] = list(ast.literal_eval(headers["argsrepr"])[0])
    return held


def _wait_for(condition, what: str, workers: list[WorkerProcess], report: dict) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    waiting = list(InboundMessage.objects.exclude(status="processed").values_list("pk", "status"))
    logs = "\n\n".join(f"--- {w.log_path.name} ---\n{w.log()[-20000:]}" for w in workers)
    pytest.fail(
        f"gave up after {WAIT_SECONDS} s waiting for {what}; not processed: {waiting}; "
        f"{report}; unacknowledged now: {_in_flight_ingest_tasks()}\n{logs}"
    )


def test_sigkilled_worker_loses_and_doubles_nothing(start_worker):
    channel = Channel.objects.create(
        kind="email-smtp",
        slug="contact",
        name="Contact centre",
        address="contact@northmoor.example",
    )
    raws, sender_of, parent_of = _mailbag()
    senders = sorted(set(sender_of.values()))
    for sender in senders[:KNOWN_SENDERS]:
        citizen_create(given_name="Known", contact_points=[("email", sender)])

    # The worker is up before anything is enqueued, so it works through the batches while
    # they are stored: store_raw_messages publishes each chunk's tasks after its commit.
    first = start_worker("first", concurrency=2)
    for start in range(0, MESSAGES, 100):
        stored = store_raw_messages(channel=channel, raws=raws[start : start + 100])
        assert stored.duplicates == 0
    deadline = time.monotonic() + WAIT_SECONDS
    while _processed(channel) < MESSAGES // 10 and time.monotonic() < deadline:
        time.sleep(0.02)
    first.kill()
    processed_at_kill = _processed(channel)
    held_by_the_dead = _in_flight_ingest_tasks()
    assert 0 < processed_at_kill < MESSAGES, (
        f"the kill did not land mid-run ({processed_at_kill} processed)\n{first.log()}"
    )
    assert held_by_the_dead, f"no ingest task was in flight when the worker died\n{first.log()}"
    stored_ids = set(InboundMessage.objects.filter(channel=channel).values_list("pk", flat=True))
    assert {pk for ids in held_by_the_dead.values() for pk in ids} <= stored_ids

    report = {"processed at the kill": processed_at_kill, "held by the dead": held_by_the_dead}
    second = start_worker("second", concurrency=1)
    workers = [first, second]
    # The batches the dead worker held come back after the visibility timeout and run
    # again: a no-op for those it had committed, the real work for the others.
    _wait_for(
        lambda: all(
            f"Task {TASK_NAME}[{task_id}] succeeded" in second.log() for task_id in held_by_the_dead
        ),
        "the redelivery of what the dead worker held",
        workers,
        report,
    )
    sweep = sweep_stale_messages.delay()
    _wait_for(
        lambda: f"Task channels.sweep_stale[{sweep.id}] succeeded" in second.log(),
        "the stale sweep",
        workers,
        report,
    )
    _wait_for(lambda: _processed(channel) == MESSAGES, "every message processed", workers, report)
    swept = re.search(rf"channels\.sweep_stale\[{sweep.id}\] succeeded in \S+ (.*)", second.log())
    # Shown with -s, and with a failure below. The sweep re-enqueues what was lost and what
    # was merely still queued: either way each message must end up processed once.
    print(
        f"ingest kill test: {report}, stale sweep re-enqueued: {swept.group(1) if swept else '?'}"
    )

    # The ledger: ids in = ids stored, each processed once.
    stored_messages = InboundMessage.objects.filter(channel=channel)
    assert set(stored_messages.values_list("external_id", flat=True)) == set(sender_of)
    assert stored_messages.count() == MESSAGES
    assert Counter(stored_messages.values_list("status", flat=True)) == {"processed": MESSAGES}
    # Work rolled back with the dead worker left no trace: one committed attempt each.
    assert Counter(stored_messages.values_list("attempts", flat=True)) == {1: MESSAGES}
    channel.refresh_from_db()
    assert (channel.received_count, channel.processed_count) == (MESSAGES, MESSAGES)
    assert (channel.failed_count, channel.duplicate_count) == (0, 0)

    # One timeline entry per message.
    source_type = ContentType.objects.get_for_model(InboundMessage)
    entries = TimelineEntry.objects.filter(source_type=source_type, kind="message_in")
    per_source = dict(entries.values_list("source_id").annotate(n=Count("id")))
    assert per_source == {str(pk): 1 for pk in stored_messages.values_list("pk", flat=True)}

    # One profile per sender: the known ones kept theirs, the others got exactly one.
    owners: dict[str, set[int]] = {}
    for external_id, citizen_id in stored_messages.values_list("external_id", "citizen_id"):
        owners.setdefault(sender_of[external_id], set()).add(citizen_id)
    assert all(len(ids) == 1 for ids in owners.values()), owners
    assert Citizen.objects.count() == len(senders)
    assert ContactPoint.objects.filter(kind="email").count() == len(senders)
    assert Citizen.objects.filter(status="provisional").count() == len(senders) - KNOWN_SENDERS

    # No thread made twice: every thread holds messages, all from its own citizen.
    assert not Thread.objects.annotate(n=Count("inbound_messages")).filter(n=0).exists()
    assert not stored_messages.exclude(thread__citizen_id=F("citizen_id")).exists()
    # A reply processed after the message it answers joined that message's thread.
    rows = {
        external_id: (thread_id, processed_at)
        for external_id, thread_id, processed_at in stored_messages.values_list(
            "external_id", "thread_id", "processed_at"
        )
    }
    joined = [
        (reply, parent) for reply, parent in parent_of.items() if rows[parent][1] < rows[reply][1]
    ]
    assert joined, "no reply was processed after its parent"
    assert all(rows[reply][0] == rows[parent][0] for reply, parent in joined)
