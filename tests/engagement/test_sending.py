"""Sending campaigns: deliveries become personalised outbound messages in batches, go out
once through the outbound queue within the channel's rate, and follow what the providers
report (sent, delivered, failed, bounced, spam complaints)."""

from __future__ import annotations

import datetime
import time
import uuid
from email.message import Message

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

from channels.adapters import DeliveryReport
from channels.models import Channel, OutboundMessage
from channels.ratelimit import PerMinuteLimiter, ProviderRateLimited, take_send_token
from channels.services.outbound import record_delivery_reports
from channels.tasks import MAX_BATCH_FAILURES, send_outbound_batch
from citizenhub.models import ContactPoint, TimelineEntry
from engagement import campaigns, sending, tasks
from engagement.fanout import materialise_deliveries
from engagement.models import Campaign, ConsentRecord, Delivery, Subscription
from engagement.services import record_consent
from engagement.tokens import UnsubscribeTarget, unsubscribe_target
from tests.channels.sink import smtp_sink
from tests.engagement.campaign_support import (
    approved,
    comms_officer,
    subscriber,
    supervisor_officer,
)
from tests.engagement.campaign_support import topic as make_topic
from tests.factories import StaffUserFactory
from tests.fakes.notify import DEFAULT_TEMPLATE_ID, FakeNotify

pytestmark = pytest.mark.django_db

NOTIFY_KEY_VARIABLE = "TEST_SENDING_NOTIFY_KEY"
NOTIFY_TOKEN_VARIABLE = "TEST_SENDING_NOTIFY_TOKEN"
NOTIFY_TOKEN = "sending-callback-token-1234"


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def site_url(settings):
    settings.SITE_URL = "https://council.example"


@pytest.fixture
def sink():
    with smtp_sink() as (handler, port):
        handler.port = port
        yield handler


@pytest.fixture
def email_channel(sink):
    return Channel.objects.create(
        kind="email-smtp",
        slug="news",
        name="Council news",
        address="news@northmoor.example",
        settings={"smtp_host": "127.0.0.1", "smtp_port": sink.port},
    )


@pytest.fixture
def fake_notify():
    with FakeNotify() as notify:
        yield notify


@pytest.fixture
def notify_channel(monkeypatch, fake_notify):
    monkeypatch.setenv(NOTIFY_KEY_VARIABLE, fake_notify.api_key)
    monkeypatch.setenv(NOTIFY_TOKEN_VARIABLE, NOTIFY_TOKEN)
    return Channel.objects.create(
        kind="sms-notify",
        slug=f"texts-{uuid.uuid4().hex[:8]}",  # a fresh rate-limit key per test
        name="Council texts",
        address="NORTHMOOR",
        settings={
            "api_key_env": NOTIFY_KEY_VARIABLE,
            "callback_token_env": NOTIFY_TOKEN_VARIABLE,
            "api_base_url": fake_notify.base_url,
            "template_id": DEFAULT_TEMPLATE_ID,
        },
    )


def phone(n: int) -> str:
    return f"+4477009{n:05d}"


def sending_campaign(*, channels=("email",), email_subscribers=2, sms_subscribers=0, **fields):
    """A SENDING campaign with its deliveries written by the real fan-out."""
    topic = make_topic("recycling")
    residents = [
        subscriber(topic, channel="email", given_name=f"Resident{i}")
        for i in range(email_subscribers)
    ] + [
        subscriber(topic, channel="sms", phone=phone(i), given_name=f"Texter{i}")
        for i in range(sms_subscribers)
    ]
    values = {
        "title": "Bin day changes",
        "channels": list(channels),
        "email_subject": "Your bin day, {{ given_name }}",
        "email_text": "Hello {{ given_name }}, bins now go out on Tuesdays.",
        "email_html": "<p>Hello {{ given_name }}, bins now go out on <b>Tuesdays</b>.</p>",
        "sms_text": "Hi {{ given_name }}: bins go out on Tuesdays now.",
        "status": Campaign.Status.SENDING,
        "created_by": StaffUserFactory(),
    }
    values.update(fields)
    campaign = Campaign.objects.create(**values)
    campaign.topics.add(topic)
    materialise_deliveries(campaign=campaign)
    return campaign, topic, residents


def mail_to(sink, address: str) -> Message:
    [mail] = [m.message for m in sink.received if m.rcpt_tos == [address]]
    return mail


def text_part(mail: Message, kind: str) -> str:
    for part in mail.walk():
        if part.get_content_type() == kind:
            return part.get_payload(decode=True).decode()
    raise AssertionError(f"no {kind} part")


# --- queueing ------------------------------------------------------------------------------


def test_deliveries_become_personalised_messages_with_one_click_unsubscribe(
    email_channel, django_capture_on_commit_callbacks
):
    campaign, topic, [first, _second] = sending_campaign()
    first.given_name = "<Eira & co>"
    first.save()

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert sending.queue_deliveries(campaign=campaign) == 2
    assert callbacks, "sending is enqueued after commit"

    delivery = Delivery.objects.select_related("outbound").get(citizen=first)
    message = delivery.outbound
    assert delivery.status == "queued" and message.status == "queued"
    assert message.channel == email_channel and message.thread is None
    assert message.to_value == first.contact_points.get().normalised == delivery.to_value
    assert message.subject == "Your bin day, <Eira & co>"
    assert message.body_text.startswith("Hello <Eira & co>, bins now go out on Tuesdays.")
    # Names are escaped in HTML; the officer's markup is kept.
    assert "Hello &lt;Eira &amp; co&gt;, bins now go out on <b>Tuesdays</b>." in message.body_html
    assert message.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = message.headers["List-Unsubscribe"].strip("<>")
    assert url.startswith("https://council.example/unsubscribe/")
    token = url.rstrip("/").rsplit("/", 1)[1]
    assert unsubscribe_target(token) == UnsubscribeTarget(first.pk, topic.pk, "email", campaign.pk)
    # The officer's text had no unsubscribe link: a footer carries it and the preferences.
    assert url in message.body_text and "/preferences/" in message.body_text
    assert url.replace("&", "&amp;") in message.body_html
    assert message.message_id and message.created_by == campaign.created_by


def test_tokens_are_the_residents_own(email_channel, django_capture_on_commit_callbacks):
    campaign, _, residents = sending_campaign(email_subscribers=3)
    with django_capture_on_commit_callbacks(execute=False):
        sending.queue_deliveries(campaign=campaign)
    targets = {
        unsubscribe_target(m.headers["List-Unsubscribe"].strip("<>").rstrip("/").rsplit("/", 1)[1])
        for m in OutboundMessage.objects.all()
    }
    assert {target.citizen_id for target in targets} == {r.pk for r in residents}


def test_an_unsubscribe_link_placed_by_the_officer_replaces_the_footer(
    email_channel, django_capture_on_commit_callbacks
):
    campaign, _, _ = sending_campaign(
        email_subscribers=1,
        email_text="News. Stop these: {{ unsubscribe_url }}",
        email_html='<p>News. <a href="{{ unsubscribe_url }}">Stop these</a></p>',
    )
    with django_capture_on_commit_callbacks(execute=False):
        sending.queue_deliveries(campaign=campaign)
    message = OutboundMessage.objects.get()
    url = message.headers["List-Unsubscribe"].strip("<>")
    assert message.body_text == f"News. Stop these: {url}"
    assert message.body_html == f'<p>News. <a href="{url}">Stop these</a></p>'


def test_queueing_goes_in_batches_and_never_queues_twice(
    email_channel, django_capture_on_commit_callbacks, monkeypatch
):
    campaign, _, _ = sending_campaign(email_subscribers=5)
    enqueued: list[list[int]] = []
    monkeypatch.setattr(send_outbound_batch, "delay", lambda ids: enqueued.append(ids))

    with django_capture_on_commit_callbacks(execute=True):
        assert sending.queue_deliveries(campaign=campaign, batch_size=2) == 5
    assert [len(ids) for ids in enqueued] == [2, 2, 1]  # one task per batch, not per message
    assert sorted(i for ids in enqueued for i in ids) == sorted(
        OutboundMessage.objects.values_list("pk", flat=True)
    )
    # A second run (a redelivered task, a second start) finds nothing pending.
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.send_campaign(campaign.pk) == {"queued": 0, "more": False}
    assert OutboundMessage.objects.count() == 5 and len(enqueued) == 3


def test_a_big_campaign_continues_in_the_next_run(
    email_channel, django_capture_on_commit_callbacks, monkeypatch
):
    campaign, _, _ = sending_campaign(email_subscribers=5)
    monkeypatch.setattr(send_outbound_batch, "delay", lambda ids: None)
    again: list[int] = []
    monkeypatch.setattr(tasks.send_campaign, "delay", again.append)
    monkeypatch.setattr(tasks, "BATCHES_PER_RUN", 1)
    monkeypatch.setattr(sending, "DEFAULT_BATCH_SIZE", 2)

    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.send_campaign(campaign.pk) == {"queued": 2, "more": True}
    assert again == [campaign.pk]
    assert Delivery.objects.filter(status="pending").count() == 3


def test_only_a_sending_campaign_is_queued(email_channel, django_capture_on_commit_callbacks):
    campaign, _, _ = sending_campaign()
    Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.CANCELLED)
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.send_campaign(campaign.pk) == {"queued": 0, "more": False}
    assert OutboundMessage.objects.count() == 0
    assert set(Delivery.objects.values_list("status", flat=True)) == {"pending"}
    assert tasks.send_campaign(999_999) == {"queued": 0}


def test_a_run_whose_batches_all_failed_still_hands_the_rest_to_the_next_run(
    django_capture_on_commit_callbacks, monkeypatch
):
    # No text channel: every batch fails. What is left pending must still be taken up.
    campaign, _, _ = sending_campaign(channels=("sms",), email_subscribers=0, sms_subscribers=4)
    later: list[tuple] = []
    monkeypatch.setattr(
        tasks.send_campaign, "apply_async", lambda args, countdown: later.append((args, countdown))
    )
    monkeypatch.setattr(tasks.send_campaign, "delay", lambda *args: pytest.fail("no spinning"))
    monkeypatch.setattr(tasks, "BATCHES_PER_RUN", 1)
    monkeypatch.setattr(sending, "DEFAULT_BATCH_SIZE", 2)

    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.send_campaign(campaign.pk) == {"queued": 0, "more": True}
    # Nothing queued this run: the next waits a little rather than spinning.
    assert later == [((campaign.pk,), tasks.RETRY_WHEN_IDLE_SECONDS)]
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.send_campaign(campaign.pk) == {"queued": 0, "more": False}
    assert set(Delivery.objects.values_list("status", flat=True)) == {"failed"}
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.SENT


def test_stalled_campaigns_are_sent_again(
    email_channel, django_capture_on_commit_callbacks, monkeypatch, django_assert_num_queries
):
    stalled, _, _ = sending_campaign()
    old = timezone.now() - tasks.STALLED_AFTER - datetime.timedelta(minutes=1)
    Delivery.objects.filter(campaign=stalled).update(created_at=old)
    just_started, _, _ = sending_campaign()  # its task is surely still on its way
    cancelled, _, _ = sending_campaign()
    Campaign.objects.filter(pk=cancelled.pk).update(status=Campaign.Status.CANCELLED)
    all_queued, _, _ = sending_campaign()
    Delivery.objects.filter(campaign__in=[cancelled, all_queued]).update(created_at=old)
    Delivery.objects.filter(campaign=all_queued).update(status=Delivery.Status.QUEUED)
    enqueued: list[int] = []
    monkeypatch.setattr(tasks.send_campaign, "delay", enqueued.append)

    with django_assert_num_queries(1):
        assert tasks.resume_stalled_campaigns() == [stalled.pk]
    assert enqueued == [stalled.pk]
    assert just_started.pk not in enqueued

    # Resuming is the ordinary send task: a second one finds nothing left to queue.
    monkeypatch.setattr(send_outbound_batch, "delay", lambda ids: None)
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.send_campaign(stalled.pk) == {"queued": 2, "more": False}
        assert tasks.send_campaign(stalled.pk) == {"queued": 0, "more": False}
    assert tasks.resume_stalled_campaigns() == []
    assert OutboundMessage.objects.count() == 2


def test_a_campaign_is_sent_only_once_nothing_is_pending_held_or_queued(email_channel):
    campaign, _, [first, second] = sending_campaign()
    for status in (Delivery.Status.PENDING, Delivery.Status.HELD, Delivery.Status.QUEUED):
        Delivery.objects.filter(campaign=campaign, citizen=first).update(status=status)
        Delivery.objects.filter(campaign=campaign, citizen=second).update(status="delivered")
        assert sending.finish_campaigns_if_done([campaign.pk]) == []
    Delivery.objects.filter(campaign=campaign, citizen=first).update(status="suppressed")
    assert sending.finish_campaigns_if_done([campaign.pk]) == [campaign.pk]
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.SENT and campaign.finished_at
    assert sending.finish_campaigns_if_done([campaign.pk]) == []  # once


def test_without_a_channel_that_can_send_the_deliveries_fail_with_the_reason(
    email_channel, django_capture_on_commit_callbacks
):
    campaign, _, _ = sending_campaign(channels=("email", "sms"), sms_subscribers=2)
    with django_capture_on_commit_callbacks(execute=False):
        assert sending.queue_deliveries(campaign=campaign) == 2  # the e-mails
    failed = Delivery.objects.filter(channel="sms")
    assert {d.status for d in failed} == {"failed"}
    assert {d.reason for d in failed} == {
        "No enabled text message channel can send campaign messages."
    }
    assert all(d.finished_at and d.outbound_id is None for d in failed)


def test_an_address_marked_undeliverable_since_the_fanout_is_not_sent_to(
    email_channel, django_capture_on_commit_callbacks
):
    campaign, _, [first, second] = sending_campaign()
    ContactPoint.objects.filter(citizen=first).update(undeliverable_at="2026-01-01T00:00:00Z")
    with django_capture_on_commit_callbacks(execute=False):
        assert sending.queue_deliveries(campaign=campaign) == 1
    assert Delivery.objects.get(citizen=first).status == "failed"
    assert "undeliverable" in Delivery.objects.get(citizen=first).reason
    assert OutboundMessage.objects.get().citizen == second


def test_without_a_public_site_address_nothing_is_queued(email_channel, settings):
    campaign, _, _ = sending_campaign()
    settings.SITE_URL = ""
    with pytest.raises(ImproperlyConfigured):
        sending.queue_deliveries(campaign=campaign)
    assert set(Delivery.objects.values_list("status", flat=True)) == {"pending"}
    assert OutboundMessage.objects.count() == 0


def test_the_configured_account_is_used(email_channel, settings):
    other = Channel.objects.create(kind="email-smtp", slug="bulletins", name="Bulletins")
    assert sending.sending_channel("email") == email_channel
    settings.ENGAGEMENT_SENDING_CHANNELS = {"email": "bulletins"}
    assert sending.sending_channel("email") == other
    other.enabled = False
    other.save()
    assert sending.sending_channel("email") is None
    assert sending.sending_channel("post") is None


# --- sending end to end (tasks run in-process) -----------------------------------------------


def test_a_started_campaign_reaches_everyone_once_and_is_sent(
    email_channel, notify_channel, sink, fake_notify, django_capture_on_commit_callbacks
):
    topic = make_topic("recycling")
    emailed = [subscriber(topic, channel="email") for _ in range(3)]
    texted = [subscriber(topic, channel="sms", phone=phone(i)) for i in range(2)]
    campaign = approved(
        comms_officer(),
        supervisor_officer(),
        channels=["email", "sms"],
        email_html="<p>Bins now go out on <b>Tuesdays</b>.</p>",
        sms_text="Bins on Tuesdays now, {{ given_name }}. Stop: {{ unsubscribe_url }}",
    )
    with django_capture_on_commit_callbacks(execute=True):
        campaigns.campaign_start(campaign=campaign)

    assert sorted(m.rcpt_tos[0] for m in sink.received) == sorted(
        r.contact_points.get().normalised for r in emailed
    )
    assert sorted(t.phone_number for t in fake_notify.sent) == sorted(phone(i) for i in range(2))
    assert {
        t.body.split(" Stop: https://council.example/unsubscribe/")[0] for t in fake_notify.sent
    } == {f"Bins on Tuesdays now, {r.given_name}." for r in texted}
    deliveries = Delivery.objects.filter(campaign=campaign)
    assert deliveries.count() == 5
    assert {d.status for d in deliveries} == {"sent"} and all(d.sent_at for d in deliveries)
    campaign.refresh_from_db()
    assert campaign.status == "sent" and campaign.finished_at
    assert TimelineEntry.objects.filter(kind="message_out").count() == 5

    mail = mail_to(sink, emailed[0].contact_points.get().normalised)
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "Tuesdays" in text_part(mail, "text/html")

    # Running the task again sends nothing more.
    with django_capture_on_commit_callbacks(execute=True):
        tasks.send_campaign(campaign.pk)
    assert len(sink.received) == 3 and len(fake_notify.sent) == 2


def test_the_one_click_post_from_the_header_unsubscribes(
    client, email_channel, sink, django_capture_on_commit_callbacks
):
    campaign, topic, [first, _] = sending_campaign()
    with django_capture_on_commit_callbacks(execute=True):
        tasks.send_campaign(campaign.pk)
    mail = mail_to(sink, first.contact_points.get().normalised)
    url = mail["List-Unsubscribe"].strip("<>")
    path = url[url.index("/unsubscribe/") :]
    # What a mail client sends for RFC 8058: a POST, no cookie, no CSRF token.
    response = client.post(
        path,
        "List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 200
    assert Subscription.objects.get(citizen=first, topic=topic).status == "unsubscribed"


# --- receipts, bounces, complaints -----------------------------------------------------------


def post_receipt(client, channel, payload, token=NOTIFY_TOKEN):
    return client.post(
        f"/hooks/{channel.slug}/status/",
        payload,
        content_type="application/json",
        headers={"authorization": f"Bearer {token}"},
    )


def test_notify_receipts_move_deliveries_once(
    client, notify_channel, fake_notify, django_capture_on_commit_callbacks
):
    campaign, _, _ = sending_campaign(channels=("sms",), email_subscribers=0, sms_subscribers=3)
    with django_capture_on_commit_callbacks(execute=True):
        tasks.send_campaign(campaign.pk)
    by_number = {t.phone_number: t for t in fake_notify.sent}
    delivered, bounced, failed = (by_number[phone(i)] for i in range(3))

    for text, status in (
        (delivered, "delivered"),
        (bounced, "permanent-failure"),
        (failed, "technical-failure"),
    ):
        response = post_receipt(
            client, notify_channel, fake_notify.delivery_receipt(text.id, status)
        )
        assert response.status_code == 200 and response.json() == {"updated": 1, "unknown": 0}
    # Notify retries callbacks: a repeat changes nothing.
    again = post_receipt(
        client, notify_channel, fake_notify.delivery_receipt(delivered.id, "delivered")
    )
    assert again.status_code == 200 and again.json()["updated"] == 0

    status = {d.to_value: d for d in Delivery.objects.filter(campaign=campaign)}
    assert status[phone(0)].status == "delivered" and status[phone(0)].finished_at
    assert status[phone(1)].status == "bounced"
    assert status[phone(2)].status == "failed" and "technical-failure" in status[phone(2)].reason
    undeliverable = ContactPoint.objects.filter(undeliverable_at__isnull=False)
    assert list(undeliverable.values_list("normalised", flat=True)) == [phone(1)]


def test_a_receipt_for_an_unknown_message_is_ignored_logged_and_answered_2xx(
    client, notify_channel, caplog
):
    payload = {
        "id": str(uuid.uuid4()),
        "reference": "12345",
        "to": phone(9),
        "status": "permanent-failure",
        "created_at": "2026-11-20T10:15:00.000000Z",
        "completed_at": "2026-11-20T10:15:05.000000Z",
        "sent_at": "2026-11-20T10:15:01.000000Z",
        "notification_type": "sms",
    }
    with caplog.at_level("INFO"):
        response = post_receipt(client, notify_channel, payload)
    assert response.status_code == 200 and response.json() == {"updated": 0, "unknown": 1}
    assert f"delivery report for unknown message {payload['id']}" in caplog.text
    assert not ContactPoint.objects.filter(undeliverable_at__isnull=False).exists()


def test_a_bounce_at_sending_marks_the_delivery_and_the_address(
    email_channel, sink, django_capture_on_commit_callbacks
):
    campaign, _, _ = sending_campaign()
    sink.refuse_with = "550 5.1.1 Recipient address rejected: User unknown"
    with django_capture_on_commit_callbacks(execute=True):
        tasks.send_campaign(campaign.pk)
    assert set(Delivery.objects.values_list("status", flat=True)) == {"bounced"}
    assert ContactPoint.objects.filter(undeliverable_at__isnull=True).count() == 0
    campaign.refresh_from_db()
    assert campaign.status == "sent"  # every delivery reached a final status


def test_a_spam_complaint_unsubscribes_the_resident_once(
    email_channel, sink, django_capture_on_commit_callbacks
):
    campaign, topic, [first, second] = sending_campaign()
    record_consent(
        citizen=first,
        purpose=topic.slug,
        channel="email",
        action="given",
        wording=topic.consent_wording,
        wording_version="1",
        source="portal",
    )
    with django_capture_on_commit_callbacks(execute=True):
        tasks.send_campaign(campaign.pk)
    message = Delivery.objects.get(citizen=first).outbound
    complaint = DeliveryReport(message.provider_message_id, "complaint", "abuse report")

    applied = record_delivery_reports(channel=email_channel, reports=[complaint])
    assert applied.updated == 1
    delivery = Delivery.objects.get(citizen=first)
    assert delivery.status == "complained" and delivery.finished_at
    assert Subscription.objects.get(citizen=first, topic=topic).status == "unsubscribed"
    withdrawn = ConsentRecord.objects.filter(citizen=first, action="withdrawn")
    assert withdrawn.count() == 1 and "spam" in withdrawn.get().wording
    assert Subscription.objects.get(citizen=second, topic=topic).status == "active"

    record_delivery_reports(channel=email_channel, reports=[complaint])
    assert ConsentRecord.objects.filter(citizen=first, action="withdrawn").count() == 1
    message.refresh_from_db()
    assert message.status == "sent"  # the message itself did reach them


def test_a_failing_unsubscribe_does_not_lose_the_complaint(
    email_channel, sink, django_capture_on_commit_callbacks, monkeypatch
):
    from engagement import subscriptions

    campaign, _, [first, _] = sending_campaign()
    with django_capture_on_commit_callbacks(execute=True):
        tasks.send_campaign(campaign.pk)

    def broken(**kwargs):
        raise RuntimeError("ledger unavailable")

    monkeypatch.setattr(subscriptions, "unsubscribe", broken)
    message = Delivery.objects.get(citizen=first).outbound
    record_delivery_reports(
        channel=email_channel, reports=[DeliveryReport(message.provider_message_id, "complaint")]
    )
    delivery = Delivery.objects.get(citizen=first)
    assert delivery.status == "complained" and "by hand" in delivery.reason


def test_replies_outside_campaigns_are_not_affected(email_channel, sink):
    sending_campaign(email_subscribers=1)
    assert sending.follow_outbound_status(changes=[]) == 0
    from channels.signals import OutboundStatusChange

    assert sending.follow_outbound_status(changes=[OutboundStatusChange(10**9, "sent")]) == 0
    assert Delivery.objects.get().status == "pending"


# --- rate limits, 429 and 5xx ----------------------------------------------------------------


class Clock:
    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(time, "time", clock)
    return clock


def test_the_limiter_holds_in_every_rolling_minute(clock):
    limiter = PerMinuteLimiter(f"test-{uuid.uuid4().hex}", 3)
    assert [limiter.acquire("k") for _ in range(3)] == [None, None, None]
    wait = limiter.acquire("k")
    assert wait is not None and 60 <= wait <= 65
    clock.now += 30
    assert limiter.acquire("k") is not None  # still inside the minute
    clock.now += 36  # the first three left the window
    assert limiter.acquire("k") is None
    assert limiter.acquire("other-key") is None  # keys count apart


def test_the_limiter_never_allows_more_than_the_limit_across_a_bucket_edge(clock):
    limiter = PerMinuteLimiter(f"test-{uuid.uuid4().hex}", 10)
    allowed: list[float] = []
    # One attempt every 0.7 s for 3 minutes: count what got through in every rolling minute.
    for _ in range(260):
        if limiter.acquire("k") is None:
            allowed.append(clock.now)
        clock.now += 0.7
    assert len(allowed) >= 20
    for start in allowed:
        assert sum(1 for t in allowed if start <= t < start + 60) <= 10


def test_without_room_the_token_is_refused_with_the_wait(notify_channel, clock):
    notify_channel.settings = {**notify_channel.settings, "send_per_minute": 1}
    take_send_token(notify_channel)
    with pytest.raises(ProviderRateLimited) as refused:
        take_send_token(notify_channel)
    assert refused.value.retry_after > 0


@pytest.fixture
def later(monkeypatch):
    """What the batch task hands to a later run instead of running it now."""
    calls: list[tuple[list[int], dict, float]] = []

    def apply_async(args, kwargs=None, countdown=None):
        calls.append((args[0], kwargs or {}, countdown))

    monkeypatch.setattr(send_outbound_batch, "apply_async", apply_async)
    return calls


def test_our_limiter_keeps_a_batch_under_the_channel_rate(
    notify_channel, fake_notify, later, django_capture_on_commit_callbacks
):
    notify_channel.settings = {**notify_channel.settings, "send_per_minute": 2}
    notify_channel.save()
    with django_capture_on_commit_callbacks(execute=False):
        campaign, _, _ = sending_campaign(channels=("sms",), email_subscribers=0, sms_subscribers=3)
        sending.queue_deliveries(campaign=campaign)
    ids = list(OutboundMessage.objects.order_by("pk").values_list("pk", flat=True))

    assert send_outbound_batch(ids) == {"sent": 2, "later": 1}
    assert len(fake_notify.sent) == 2 and len(fake_notify.requests) == 2
    [(rest, kwargs, countdown)] = later
    assert rest == ids[2:] and 0 < countdown <= 65 and kwargs["failures"] == 0
    waiting = OutboundMessage.objects.get(pk=ids[2])
    assert waiting.status == "queued" and waiting.attempts == 0  # never tried, not failed


def test_notify_429_puts_the_rest_off_without_failing_anything(
    notify_channel, fake_notify, later, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        campaign, _, _ = sending_campaign(channels=("sms",), email_subscribers=0, sms_subscribers=3)
        sending.queue_deliveries(campaign=campaign)
    ids = list(OutboundMessage.objects.order_by("pk").values_list("pk", flat=True))
    fake_notify.limit_per_minute = 1

    assert send_outbound_batch(ids) == {"sent": 1, "later": 2}
    [(rest, kwargs, countdown)] = later
    assert rest == ids[1:] and kwargs == {"failures": 0, "rate_limited": 1} and countdown >= 1
    refused = OutboundMessage.objects.get(pk=ids[1])
    assert refused.status == "queued" and "RateLimitError" in refused.last_error
    notify_channel.refresh_from_db()
    assert notify_channel.backoff_until is None  # the channel is not unhealthy
    assert Delivery.objects.filter(status="queued").count() == 2

    # Many 429s in a row never give up: rate limits are not failures.
    send_outbound_batch(rest, rate_limited=20)
    assert later[-1][1] == {"failures": 0, "rate_limited": 21} and later[-1][2] <= 30

    fake_notify.limit_per_minute = None  # the minute has passed
    assert send_outbound_batch(rest, rate_limited=1) == {"sent": 2}
    assert sorted(t.phone_number for t in fake_notify.sent) == [phone(i) for i in range(3)]
    assert set(Delivery.objects.values_list("status", flat=True)) == {"sent"}


def test_notify_5xx_backs_off_then_leaves_the_rest_queued_for_the_sweep(
    notify_channel, fake_notify, later, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        campaign, _, _ = sending_campaign(channels=("sms",), email_subscribers=0, sms_subscribers=2)
        sending.queue_deliveries(campaign=campaign)
    ids = list(OutboundMessage.objects.order_by("pk").values_list("pk", flat=True))
    fake_notify.fail_with(503)

    assert send_outbound_batch(ids) == {"later": 2}
    assert later[-1][0] == ids and later[-1][1]["failures"] == 1
    assert send_outbound_batch(ids, failures=MAX_BATCH_FAILURES - 1) == {"queued": 2}
    assert len(later) == 1
    assert set(OutboundMessage.objects.values_list("status", flat=True)) == {"queued"}
    assert fake_notify.sent == []

    fake_notify.fail_with(None)
    assert send_outbound_batch(ids) == {"sent": 2}
    assert send_outbound_batch(ids) == {"skipped": 2}  # a redelivered batch sends nothing twice
    assert len(fake_notify.sent) == 2


def test_the_single_message_task_waits_for_the_rate_limit_as_a_new_task(
    notify_channel, fake_notify, monkeypatch, django_capture_on_commit_callbacks
):
    from channels.tasks import send_outbound_message

    with django_capture_on_commit_callbacks(execute=False):
        campaign, _, _ = sending_campaign(channels=("sms",), email_subscribers=0, sms_subscribers=1)
        sending.queue_deliveries(campaign=campaign)
    outbound_id = OutboundMessage.objects.get().pk
    calls = []
    monkeypatch.setattr(
        send_outbound_message,
        "apply_async",
        lambda args, kwargs=None, countdown=None: calls.append((args, kwargs, countdown)),
    )
    fake_notify.fail_with(429, times=1)
    assert send_outbound_message(outbound_id) == "rate_limited"
    assert calls == [((outbound_id,), {"rate_limited": 1}, calls[0][2])]
    assert send_outbound_message(outbound_id, rate_limited=1) == "sent"
