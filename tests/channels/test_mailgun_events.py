"""Mailgun event webhooks at /hooks/<slug>/status/: delivered, bounced and complained
campaign e-mail marks the message, the delivery, the contact point and the subscription;
signed like the inbound posts, a token used once, anything unknown answered 2xx."""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import secrets
import time

import pytest
from django.core.cache import cache

from channels.models import Channel, OutboundMessage
from engagement.models import Campaign, Delivery, Subscription
from tests.engagement.campaign_support import subscriber
from tests.engagement.campaign_support import topic as make_topic
from tests.factories import StaffUserFactory

pytestmark = pytest.mark.django_db

SIGNING_KEY = "key-test-7a1b2c3d4e5f60718293a4b5c6d7e8f9"
KEY_VARIABLE = "TEST_MAILGUN_EVENTS_SIGNING_KEY"
MESSAGE_ID = "20261120101500.4242.1234567890@northmoor.example"
EVENT_TIME = 1_795_000_000.25  # 2026-11-18 08:26:40.25 UTC


@pytest.fixture(autouse=True)
def empty_cache():
    # Used Mailgun tokens live in the cache; no test may see another's.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def mailgun_channel(db, monkeypatch):
    monkeypatch.setenv(KEY_VARIABLE, SIGNING_KEY)
    return Channel.objects.create(
        kind="email-webhook",
        slug="mailgun",
        name="Contact centre (Mailgun)",
        address="news@northmoor.example",
        settings={"signing_key_env": KEY_VARIABLE, "reply_domain": "in.northmoor.example"},
    )


@pytest.fixture
def sent(mailgun_channel):
    """A campaign e-mail sent through the Mailgun channel to a subscribed resident."""
    topic = make_topic("recycling")
    citizen = subscriber(topic, given_name="Ann")
    contact_point = citizen.contact_points.get()
    campaign = Campaign.objects.create(
        title="Bin day changes",
        channels=["email"],
        email_subject="Your bin day",
        email_text="Bins now go out on Tuesdays.",
        created_by=StaffUserFactory(),
        status=Campaign.Status.SENDING,
    )
    campaign.topics.set([topic])
    outbound = OutboundMessage.objects.create(
        channel=mailgun_channel,
        citizen=citizen,
        to_value=contact_point.normalised,
        subject="Your bin day",
        body_text="Bins now go out on Tuesdays.",
        status=OutboundMessage.Status.SENT,
        message_id=MESSAGE_ID,
        provider_message_id=MESSAGE_ID,  # what the e-mail adapter's send() returns
    )
    delivery = Delivery.objects.create(
        campaign=campaign,
        citizen=citizen,
        channel="email",
        contact_point=contact_point,
        to_value=contact_point.normalised,
        status=Delivery.Status.SENT,
        outbound=outbound,
    )
    return outbound, delivery, topic


def signature(*, key: str = SIGNING_KEY, timestamp=None, token=None) -> dict:
    timestamp = str(int(time.time()) if timestamp is None else timestamp)
    token = token or secrets.token_hex(25)
    digest = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    return {"timestamp": timestamp, "token": token, "signature": digest}


def event(name: str, *, message_id: str = MESSAGE_ID, **fields) -> dict:
    data = {
        "event": name,
        "id": secrets.token_hex(11),
        "timestamp": EVENT_TIME,
        "recipient": "resident.0@example.org",
        "message": {"headers": {"message-id": message_id, "subject": "Your bin day"}},
    }
    data.update(fields)
    return data


def post(client, event_data=None, *, sig=None, body=None):
    if body is None:
        sig = signature() if sig is None else sig
        body = json.dumps({"signature": sig, "event-data": event_data})
    return client.post("/hooks/mailgun/status/", data=body, content_type="application/json")


def assert_untouched(outbound, delivery, topic) -> None:
    outbound.refresh_from_db()
    delivery.refresh_from_db()
    assert outbound.status == "sent" and not outbound.delivered_at and not outbound.last_error
    assert delivery.status == "sent"
    assert outbound.citizen.contact_points.get().undeliverable_at is None
    assert Subscription.objects.get(citizen=outbound.citizen, topic=topic).status == "active"


@pytest.mark.parametrize("header", [MESSAGE_ID, f"<{MESSAGE_ID}>", f" <{MESSAGE_ID}> "])
def test_delivered(client, sent, header):
    outbound, delivery, _ = sent
    response = post(client, event("delivered", message_id=header))
    assert response.status_code == 200 and response.json() == {"updated": 1, "unknown": 0}
    outbound.refresh_from_db()
    assert outbound.status == "delivered"
    assert outbound.delivered_at == datetime.datetime.fromtimestamp(EVENT_TIME, tz=datetime.UTC)
    delivery.refresh_from_db()
    assert delivery.status == "delivered" and delivery.finished_at


def test_a_permanent_failure_marks_the_address_undeliverable(client, sent):
    outbound, delivery, _ = sent
    failed = event(
        "failed",
        severity="permanent",
        reason="bounce",
        **{
            "delivery-status": {
                "code": 550,
                "message": "5.1.1 The email account that you tried to reach does not exist",
                "description": "",
            }
        },
    )
    response = post(client, failed)
    assert response.status_code == 200 and response.json() == {"updated": 1, "unknown": 0}
    outbound.refresh_from_db()
    assert outbound.status == "failed"
    assert outbound.last_error.startswith("permanent_failure: 550 5.1.1 The email account")
    contact_point = outbound.citizen.contact_points.get()
    assert contact_point.undeliverable_at == datetime.datetime.fromtimestamp(
        EVENT_TIME, tz=datetime.UTC
    )
    delivery.refresh_from_db()
    assert delivery.status == "bounced"


def test_a_temporary_failure_is_noted_only(client, sent):
    outbound, delivery, _ = sent
    failed = event(
        "failed",
        severity="temporary",
        **{"delivery-status": {"code": 452, "message": "4.2.2 Mailbox full"}},
    )
    response = post(client, failed)
    assert response.status_code == 200
    outbound.refresh_from_db()
    assert outbound.status == "sent" and "4.2.2 Mailbox full" in outbound.last_error
    assert outbound.citizen.contact_points.get().undeliverable_at is None
    delivery.refresh_from_db()
    assert delivery.status == "sent"


def test_a_complaint_unsubscribes_the_resident(client, sent):
    outbound, delivery, topic = sent
    assert post(client, event("delivered")).status_code == 200
    response = post(client, event("complained"))
    assert response.status_code == 200 and response.json() == {"updated": 1, "unknown": 0}
    delivery.refresh_from_db()
    assert delivery.status == "complained" and delivery.finished_at
    assert Subscription.objects.get(citizen=outbound.citizen, topic=topic).status == (
        "unsubscribed"
    )
    outbound.refresh_from_db()
    assert outbound.status == "delivered"  # the message itself did reach them


@pytest.mark.parametrize(
    "sig",
    [
        pytest.param(lambda: signature(key="key-somebody-else"), id="wrong-key"),
        pytest.param(lambda: {**signature(), "signature": "0" * 64}, id="tampered"),
        pytest.param(lambda: {**signature(), "token": "another-token"}, id="token-swapped"),
        pytest.param(lambda: signature(timestamp=int(time.time()) - 3600), id="stale"),
        pytest.param(lambda: {}, id="missing-fields"),
        pytest.param(lambda: "not-a-block", id="not-an-object"),
    ],
)
def test_a_bad_signature_is_refused_and_changes_nothing(client, sent, sig):
    response = post(client, event("complained"), sig=sig())
    assert response.status_code == 403
    assert response.json()["error"]["message"]
    assert_untouched(*sent)


def test_a_replayed_token_is_refused(client, sent):
    outbound, delivery, topic = sent
    used = signature()
    unknown = event("delivered", message_id="someone-else@northmoor.example")
    assert post(client, unknown, sig=used).json() == {"updated": 0, "unknown": 1}
    # The signature covers timestamp + token only: the same token with another event is a
    # replay, never a new report.
    response = post(client, event("complained"), sig=used)
    assert response.status_code == 200 and response.json() == {"updated": 0, "unknown": 0}
    assert_untouched(outbound, delivery, topic)


def test_an_unknown_message_is_answered_2xx_and_ignored(client, sent, caplog):
    with caplog.at_level("INFO"):
        response = post(client, event("failed", severity="permanent", message_id="nope@x"))
    assert response.status_code == 200 and response.json() == {"updated": 0, "unknown": 1}
    assert "delivery report for unknown message nope@x" in caplog.text
    assert_untouched(*sent)


@pytest.mark.parametrize("name", ["opened", "clicked", "unsubscribed", "accepted"])
def test_other_events_are_ignored(client, sent, name):
    response = post(client, event(name))
    assert response.status_code == 200 and response.json() == {"updated": 0, "unknown": 0}
    assert_untouched(*sent)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"{not json", id="malformed"),
        pytest.param(b"\xff\xfe", id="not-utf8"),
        pytest.param(b"[]", id="not-an-object"),
        pytest.param(json.dumps({"signature": signature()}).encode(), id="no-event-data"),
        pytest.param(
            json.dumps({"signature": signature(), "event-data": {"id": "x"}}).encode(),
            id="no-event",
        ),
    ],
)
def test_a_malformed_body_is_a_400(client, sent, body):
    response = post(client, body=body)
    assert response.status_code == 400
    assert_untouched(*sent)


@pytest.mark.parametrize(
    "event_data",
    [
        pytest.param({"event": "delivered", "timestamp": EVENT_TIME}, id="no-message-id"),
        pytest.param(event("delivered", message_id="<>"), id="empty-message-id"),
        pytest.param(event("failed"), id="failed-without-severity"),
        pytest.param(event("delivered", timestamp="yesterday"), id="bad-timestamp"),
    ],
)
def test_an_event_missing_what_we_need_is_a_400(client, sent, event_data):
    response = post(client, event_data)
    assert response.status_code == 400
    assert_untouched(*sent)


@pytest.mark.django_db(transaction=True)  # commit callbacks run, as in production
def test_a_retry_after_an_outage_is_not_refused_as_a_replay(client, sent, monkeypatch):
    """Mailgun retries a report the database could not take; the token was only claimed, not
    used up, so the retry is recorded."""
    from django.core.cache import cache
    from django.db import OperationalError

    from channels import webhooks

    outbound, _delivery, _topic = sent
    real = webhooks.record_delivery_reports
    calls = []

    def down_once(**kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("database is down")
        return real(**kwargs)

    monkeypatch.setattr(webhooks, "record_delivery_reports", down_once)
    sig = signature()
    assert post(client, event("delivered"), sig=sig).status_code == 503
    # The token is only claimed for a short while, not used up: nothing was recorded.
    digest = hashlib.sha256(sig["token"].encode()).hexdigest()
    key = f"channels:webhook-token:{outbound.channel_id}:{digest}"
    assert cache.get(key) == "claimed"
    cache.delete(key)  # the claim lapses (TOKEN_CLAIM_SECONDS); Mailgun retries later

    response = post(client, event("delivered"), sig=sig)

    assert response.status_code == 200 and response.json()["updated"] == 1
    outbound.refresh_from_db()
    assert outbound.status == "delivered"
