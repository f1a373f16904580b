"""The SIGKILL ledger test with every channel mixed: e-mail, Notify and Twilio texts,
Mastodon mentions, Facebook messages and web-form submissions, stored raw as each
provider delivers them, processed by a worker that is killed mid-run and replaced."""

import json
import time
from collections import Counter
from urllib.parse import urlencode

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db.models import Count

from channels.adapters import RawInbound
from channels.email.parsing import external_id_for
from channels.models import Channel, InboundMessage
from channels.services.ingest import store_raw_messages
from channels.tasks import sweep_stale_messages
from citizenhub.models import TimelineEntry
from tests.channels.test_sms import notify_payload
from tests.channels.test_social import INSTANCE, mention
from tests.integration.conftest import needs_broker_and_postgres
from tests.integration.test_ingest_kill import (
    MESSAGES,
    RECEIVED_AT,
    TASK_NAME,
    _email,
    _in_flight_ingest_tasks,
    _wait_for,
    short_visibility_timeout,  # noqa: F401 - fixture used by start_worker
    start_worker,  # noqa: F401 - fixture
)

pytestmark = [pytest.mark.integration, needs_broker_and_postgres]
KINDS = ("email-smtp", "sms-notify", "sms-twilio", "mastodon", "facebook", "webform")
PAGE_ID = "104500000000001"


def _raw(kind: str, index: int) -> RawInbound:
    person = index % 40
    if kind == "email-smtp":
        data, _ = _email(index, f"mixed{person}@residents.example", None)
        return RawInbound(external_id_for(data), data, received_at=RECEIVED_AT)
    if kind == "sms-notify":
        body = notify_payload(
            "notify_received.json",
            id=f"mixed-notify-{index}",
            source_number=f"4477009006{person:02d}",
            message=f"Text {index}: bin missed 🗑️",
        )
        return RawInbound(
            f"notify:mixed-notify-{index}",
            json.dumps(body).encode(),
            "application/json",
            received_at=RECEIVED_AT,
        )
    if kind == "sms-twilio":
        body = urlencode(
            {
                "MessageSid": f"SMmixed{index}",
                "From": f"+4477009007{person:02d}",
                "To": "+447700900555",
                "Body": f"Twilio {index}: مرحبا pothole",
                "NumMedia": "0",
            }
        ).encode()
        return RawInbound(
            f"twilio:SMmixed{index}",
            body,
            "application/x-www-form-urlencoded",
            received_at=RECEIVED_AT,
        )
    if kind == "mastodon":
        notification = mention(
            index, acct=f"mixed{person}@mastodon.example", text=f"Mention {index}: street light out"
        )
        return RawInbound(
            f"mastodon:{notification['status']['id']}",
            json.dumps(notification).encode(),
            "application/json",
            received_at=RECEIVED_AT,
        )
    if kind == "facebook":
        event = {
            "sender": {"id": f"73000000000{person:05d}"},
            "recipient": {"id": PAGE_ID},
            "timestamp": 1764068399000 + index,
            "message": {"mid": f"m_mixed_{index}", "text": f"Facebook {index}: noise"},
        }
        return RawInbound(
            f"fb:m_mixed_{index}",
            json.dumps(event).encode(),
            "application/json",
            received_at=RECEIVED_AT,
        )
    submission = {
        "form": "report",
        "title": "Report a problem",
        "submitted_at": "2026-11-20T10:00:00+00:00",
        "ip_hash": "x",
        "origin": "",
        "fields": {
            "email": f"form{person}@residents.example",
            "details": f"Form {index}: fly-tipping",
        },
        "definition": [
            {"name": "email", "label": "Email", "type": "email"},
            {"name": "details", "label": "Details", "type": "textarea"},
        ],
    }
    return RawInbound(
        f"webform:mixed-{index}",
        json.dumps(submission).encode(),
        "application/json",
        received_at=RECEIVED_AT,
    )


def test_sigkilled_worker_with_every_channel_mixed(start_worker):  # noqa: F811
    channels = {
        kind: Channel.objects.create(
            kind=kind,
            slug=kind,
            name=kind,
            address="+447700900555",
            settings={
                "instance_domain": INSTANCE,
                "page_id": PAGE_ID,
                "api_base_url": f"https://{INSTANCE}",
            },
        )
        for kind in KINDS
    }
    raws = [(KINDS[i % len(KINDS)], _raw(KINDS[i % len(KINDS)], i)) for i in range(MESSAGES)]
    first = start_worker("first-mixed", concurrency=2)
    for start in range(0, MESSAGES, 60):
        for kind in KINDS:
            chunk = [raw for k, raw in raws[start : start + 60] if k == kind]
            assert store_raw_messages(channel=channels[kind], raws=chunk).duplicates == 0
    deadline = time.monotonic() + 120
    processed = InboundMessage.objects.filter(status="processed")
    while processed.count() < MESSAGES // 10 and time.monotonic() < deadline:
        time.sleep(0.02)
    first.kill()
    at_kill = processed.count()
    assert 0 < at_kill < MESSAGES, f"the kill did not land mid-run ({at_kill})\n{first.log()}"
    report = {"processed at the kill": at_kill, "held by the dead": _in_flight_ingest_tasks()}

    second = start_worker("second-mixed", concurrency=1)
    workers = [first, second]
    sweep = sweep_stale_messages.delay()
    _wait_for(
        lambda: f"channels.sweep_stale[{sweep.id}] succeeded" in second.log(),
        "the stale sweep",
        workers,
        report,
    )
    _wait_for(lambda: processed.count() == MESSAGES, "every message processed", workers, report)

    stored = InboundMessage.objects.all()
    assert set(stored.values_list("external_id", flat=True)) == {r.external_id for _, r in raws}
    assert Counter(stored.values_list("status", flat=True)) == {"processed": MESSAGES}
    assert Counter(stored.values_list("channel__kind", flat=True)) == {
        kind: MESSAGES // len(KINDS) + (1 if i < MESSAGES % len(KINDS) else 0)
        for i, kind in enumerate(KINDS)
    }
    assert Counter(stored.values_list("attempts", flat=True)) == {1: MESSAGES}
    source_type = ContentType.objects.get_for_model(InboundMessage)
    per_source = dict(
        TimelineEntry.objects.filter(source_type=source_type, kind="message_in")
        .values_list("source_id")
        .annotate(n=Count("id"))
    )
    assert per_source == {str(pk): 1 for pk in stored.values_list("pk", flat=True)}
    assert set(TimelineEntry.objects.values_list("channel", flat=True)) == {
        "email",
        "sms",
        "mastodon",
        "facebook",
        "web",
    }
    assert TASK_NAME  # the same task the e-mail-only test watches
    # One profile per sender identity, whatever the channel.
    senders = Counter(
        (kind, sender) for kind, sender in stored.values_list("sender_kind", "sender_value")
    )
    owners = stored.values("sender_kind", "sender_value").annotate(
        n=Count("citizen", distinct=True)
    )
    assert all(row["n"] == 1 for row in owners), list(owners)
    assert len(senders) == stored.values("citizen").distinct().count()
