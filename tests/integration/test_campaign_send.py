"""A campaign to 5,000 subscribers goes out through a real worker, once each.

5,000 residents subscribe to a topic: 3,500 by text, 3,500 by e-mail (2,000 of them on
both). A second officer approves the campaign and it starts (the real fan-out writes 7,000
deliveries); a real Celery worker, fed through Redis, queues them in batches and sends the
e-mails to a local SMTP sink and the texts to a local fake of GOV.UK Notify that enforces
Notify's 3,000 per rolling minute with 429s.

Another council service shares the Notify key and has used part of this minute's 3,000 just
before, so our own limiter (2,900 a minute, a little under Notify's limit) is not enough:
Notify refuses some texts with 429, and the worker waits and tries them again. Texts
beyond the first minute's budget wait for the next. The run takes a little over a minute.

Afterwards every delivery is final exactly once: each address got one e-mail, each
number one text, nothing was lost and nothing sent twice; Notify's receipts (delivered, a
few permanent failures) move each text's delivery once, and repeats and receipts for
messages nobody sent change nothing and are answered 2xx.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.utils import timezone
from notifications_python_client.notifications import NotificationsAPIClient

from channels.adapters import DeliveryReport
from channels.models import Channel, OutboundMessage
from channels.services.outbound import record_delivery_reports
from citizenhub.celery import app as celery_app
from citizenhub.models import Citizen, ContactPoint, TimelineEntry
from engagement import campaigns
from engagement.models import Campaign, Delivery, Subscription
from tests.channels.sink import smtp_sink
from tests.engagement.campaign_support import approved, comms_officer, supervisor_officer
from tests.engagement.campaign_support import topic as make_topic
from tests.fakes.notify import DEFAULT_TEMPLATE_ID, FakeNotify
from tests.integration.conftest import WorkerProcess, needs_broker_and_postgres

pytestmark = [pytest.mark.integration, needs_broker_and_postgres]

RESIDENTS = 5_000
TEXTED = range(0, 3_500)  # residents who subscribed by text
EMAILED = range(1_500, 5_000)  # ... and by e-mail (1,500 to 3,499: both)
NOTIFY_LIMIT_PER_MINUTE = 3_000
# Texts another service sent through the same Notify key just before the campaign.
OTHER_SERVICE_TEXTS = 1_000
PERMANENT_FAILURES = 25
NOTIFY_KEY_VARIABLE = "TEST_CAMPAIGN_NOTIFY_KEY"
NOTIFY_TOKEN_VARIABLE = "TEST_CAMPAIGN_NOTIFY_TOKEN"
NOTIFY_TOKEN = "campaign-receipts-token-0001"
SITE_URL = "https://council.example"
WAIT_SECONDS = 240
FINAL = {"sent", "delivered", "failed", "bounced", "complained"}


def phone(index: int) -> str:
    return f"+4477009{index:05d}"


def email(index: int) -> str:
    return f"resident{index}@residents.example"


@pytest.fixture
def notify():
    with FakeNotify(limit_per_minute=NOTIFY_LIMIT_PER_MINUTE) as fake:
        yield fake


@pytest.fixture
def sink():
    with smtp_sink() as (handler, port):
        handler.port = port
        yield handler


@pytest.fixture
def channels_to_fakes(transactional_db, monkeypatch, notify, sink):
    monkeypatch.setenv(NOTIFY_KEY_VARIABLE, notify.api_key)
    monkeypatch.setenv(NOTIFY_TOKEN_VARIABLE, NOTIFY_TOKEN)
    email_channel = Channel.objects.create(
        kind="email-smtp",
        slug="news",
        name="Council news",
        address="news@northmoor.example",
        settings={"smtp_host": "127.0.0.1", "smtp_port": sink.port},
    )
    sms_channel = Channel.objects.create(
        kind="sms-notify",
        # A fresh rate-limit key: no count left in Redis by an earlier run.
        slug=f"texts-{uuid.uuid4().hex[:8]}",
        name="Council texts",
        address="NORTHMOOR",
        settings={
            "api_key_env": NOTIFY_KEY_VARIABLE,
            "callback_token_env": NOTIFY_TOKEN_VARIABLE,
            "api_base_url": notify.base_url,
            "template_id": DEFAULT_TEMPLATE_ID,
        },
    )
    return email_channel, sms_channel


@pytest.fixture
def worker(transactional_db, tmp_path, notify, settings):
    settings.SITE_URL = SITE_URL
    celery_app.control.purge()
    process = WorkerProcess(
        "bulk,outbound,default",
        tmp_path / "worker.log",
        concurrency=6,
        env={NOTIFY_KEY_VARIABLE: notify.api_key, "SITE_URL": SITE_URL},
    )
    process.start()
    yield process
    process.stop()
    celery_app.control.purge()


def subscribe_everyone() -> None:
    """5,000 residents, their addresses and confirmed subscriptions, in bulk."""
    topic = make_topic("recycling")
    citizens = Citizen.objects.bulk_create(
        Citizen(given_name=f"Resident{i}", family_name="Test", status=Citizen.Status.ACTIVE)
        for i in range(RESIDENTS)
    )
    points, subscriptions = [], []
    now = timezone.now()
    for index, citizen in enumerate(citizens):
        for channel, kind, value, wanted in (
            ("sms", ContactPoint.Kind.PHONE, phone(index), index in TEXTED),
            ("email", ContactPoint.Kind.EMAIL, email(index), index in EMAILED),
        ):
            if not wanted:
                continue
            points.append(
                ContactPoint(
                    citizen=citizen,
                    kind=kind,
                    value=value,
                    normalised=value,
                    match_key=value,
                    is_primary=True,
                    verification_level=ContactPoint.VerificationLevel.CONFIRMED,
                    source=ContactPoint.Source.PORTAL,
                )
            )
            subscriptions.append(
                Subscription(
                    citizen=citizen,
                    topic=topic,
                    channel=channel,
                    status=Subscription.Status.ACTIVE,
                    confirmed_at=now,
                    source="portal",
                )
            )
    ContactPoint.objects.bulk_create(points, batch_size=2_000)
    Subscription.objects.bulk_create(subscriptions, batch_size=2_000)


def another_service_uses_the_key(notify: FakeNotify) -> None:
    """Texts sent through the same Notify key by another council system, just before."""
    client = NotificationsAPIClient(notify.api_key, base_url=notify.base_url)

    def send(index: int) -> None:
        client.send_sms_notification(
            phone_number=f"+4477008{index:05d}",
            template_id=DEFAULT_TEMPLATE_ID,
            personalisation={"body": "Your council tax bill is ready."},
        )

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(send, range(OTHER_SERVICE_TEXTS)))


def wait_until_final(campaign: Campaign, worker: WorkerProcess) -> float:
    started = time.monotonic()
    deadline = started + WAIT_SECONDS
    while time.monotonic() < deadline:
        waiting = Delivery.objects.filter(campaign=campaign).exclude(status__in=FINAL).count()
        if waiting == 0:
            return time.monotonic() - started
        time.sleep(1)
    counts = Counter(Delivery.objects.filter(campaign=campaign).values_list("status", flat=True))
    pytest.fail(f"deliveries not final after {WAIT_SECONDS} s: {counts}\n{worker.log()[-20000:]}")


def test_a_campaign_to_5000_subscribers_reaches_each_once_within_notify_limits(
    channels_to_fakes, worker, notify, sink, client
):
    _email_channel, sms_channel = channels_to_fakes
    subscribe_everyone()
    campaign = approved(
        comms_officer(),
        supervisor_officer(),
        channels=["email", "sms"],
        email_subject="Bin day changes, {{ given_name }}",
        email_text="Hello {{ given_name }}, from 1 December bins go out on Tuesdays.",
        email_html="<p>Hello {{ given_name }}, from 1 December bins go out on Tuesdays.</p>",
        sms_text="Hi {{ given_name }}, from 1 Dec bins go out on Tuesdays. "
        "Stop: {{ unsubscribe_url }}",
    )
    another_service_uses_the_key(notify)

    campaigns.campaign_start(campaign=campaign)  # materialises, then enqueues send_campaign
    elapsed = wait_until_final(campaign, worker)

    deliveries = Delivery.objects.filter(campaign=campaign)
    assert deliveries.count() == len(TEXTED) + len(EMAILED) == 7_000
    assert Counter(deliveries.values_list("status", flat=True)) == {"sent": 7_000}

    # Each address got its e-mail once, with its own one-click unsubscribe link.
    received = Counter(mail.rcpt_tos[0] for mail in sink.received)
    assert set(received) == {email(i) for i in EMAILED}
    assert set(received.values()) == {1}
    # (A long header is folded onto a second line; unfolded, it is the link.)
    links = {"".join(mail.message["List-Unsubscribe"].split()) for mail in sink.received}
    assert len(links) == len(EMAILED)
    assert all(link.startswith(f"<{SITE_URL}/unsubscribe/") for link in links)

    # Each number got its text once, personalised, though Notify refused some at first.
    ours = [text for text in notify.sent if not text.phone_number.startswith("+4477008")]
    texts = Counter(text.phone_number for text in ours)
    assert set(texts) == {phone(i) for i in TEXTED} and set(texts.values()) == {1}
    assert {text.body.split(" Stop: ")[0] for text in ours} == {
        f"Hi Resident{i}, from 1 Dec bins go out on Tuesdays." for i in TEXTED
    }
    assert all(f" Stop: {SITE_URL}/unsubscribe/" in text.body for text in ours)
    refused = [r for r in notify.requests if r.status == 429]
    assert refused, "Notify's limit was never reached: the test proves nothing about 429s"
    retried = OutboundMessage.objects.filter(channel=sms_channel, attempts__gt=1)
    assert retried.exists() and all(m.status == "sent" for m in retried)
    assert len(notify.sent) == OTHER_SERVICE_TEXTS + len(TEXTED)  # no text twice
    assert not OutboundMessage.objects.exclude(status="sent").exists()
    assert TimelineEntry.objects.filter(kind="message_out").count() == 7_000
    campaign.refresh_from_db()
    assert campaign.status == "sent" and campaign.finished_at

    # Notify's receipts: most texts delivered, a few numbers dead.
    by_number = {text.phone_number: text for text in ours}
    dead = {phone(i) for i in TEXTED[:PERMANENT_FAILURES]}
    reports = [
        DeliveryReport(
            text.id, "permanent_failure" if number in dead else "delivered", "Notify receipt"
        )
        for number, text in by_number.items()
    ]
    applied = [
        record_delivery_reports(channel=sms_channel, reports=reports[start : start + 500])
        for start in range(0, len(reports), 500)
    ]
    assert sum(a.updated for a in applied) == len(TEXTED)
    # Notify retries callbacks; and a receipt for a text nobody here sent is answered 2xx.
    repeat = notify.delivery_receipt(by_number[phone(3_000)].id, "delivered")
    unknown = {**repeat, "id": str(uuid.uuid4())}
    for payload, answer in (
        (repeat, {"updated": 0, "unknown": 1}),
        (unknown, {"updated": 0, "unknown": 1}),
    ):
        response = client.post(
            f"/hooks/{sms_channel.slug}/status/",
            payload,
            content_type="application/json",
            headers={"authorization": f"Bearer {NOTIFY_TOKEN}"},
        )
        assert response.status_code == 200 and response.json() == answer

    statuses = Counter(deliveries.filter(channel="sms").values_list("status", flat=True))
    assert statuses == {
        "delivered": len(TEXTED) - PERMANENT_FAILURES,
        "bounced": PERMANENT_FAILURES,
    }
    assert Counter(deliveries.filter(channel="email").values_list("status", flat=True)) == {
        "sent": len(EMAILED)
    }
    assert (
        set(
            ContactPoint.objects.filter(undeliverable_at__isnull=False).values_list(
                "normalised", flat=True
            )
        )
        == dead
    )
    print(f"campaign of 7,000 messages final in {elapsed:.0f} s; {len(refused)} 429s")
