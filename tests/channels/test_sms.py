"""SMS through GOV.UK Notify and Twilio: webhooks in, replies out, delivery receipts back.

Notify is exercised against a local fake of its HTTP API (tests/fakes/notify.py) with the
real notifications-python-client, JWT and all. Twilio's client cannot be pointed at a local
server, so its HTTP requests are intercepted at the transport with `responses`. Webhook
signatures are computed here the way the providers document them, independently of the
code under test.
"""

import base64
import datetime
import hashlib
import hmac
import json
import uuid
from datetime import timedelta
from urllib.parse import parse_qsl, urlencode, urlsplit

import jwt
import pytest
import requests
import responses
from django.utils import timezone
from notifications_python_client.errors import HTTPError
from notifications_python_client.notifications import NotificationsAPIClient

from channels.adapters import registered_kinds
from channels.models import Channel, InboundMessage, OutboundMessage, Thread
from channels.services.outbound import release_queued_outbound, thread_reply
from citizenhub.errors import ApplicationError
from citizenhub.models import Citizen, ContactPoint, TimelineEntry
from citizenhub.services import citizen_create
from tests.channels.conftest import PAYLOADS
from tests.fakes.notify import DEFAULT_TEMPLATE_ID, FakeNotify, SlidingWindowLimiter

pytestmark = pytest.mark.django_db

SMS = PAYLOADS / "sms"
NOTIFY_TOKEN = "notify-callback-3b9f2c1d8e7a6b5c"
NOTIFY_TOKEN_VARIABLE = "TEST_NOTIFY_CALLBACK_TOKEN"
NOTIFY_KEY_VARIABLE = "TEST_NOTIFY_API_KEY"
TWILIO_TOKEN = "f0e1d2c3b4a5968778695a4b3c2d1e0f"
TWILIO_TOKEN_VARIABLE = "TEST_TWILIO_AUTH_TOKEN"
ACCOUNT_SID = "AC0123456789abcdef0123456789abcdef"
PUBLIC_BASE = "https://contact.northmoor.gov.uk"
TWILIO_MESSAGES_URL = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
FORM = "application/x-www-form-urlencoded"


# --- payloads and how providers post them ---------------------------------------------


def notify_payload(name: str, **changes) -> dict:
    return {**json.loads((SMS / name).read_text(encoding="utf-8")), **changes}


def post_notify(client, payload, *, path="/hooks/notify-sms/", token=NOTIFY_TOKEN, headers=None):
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    if headers is None:
        headers = {"Authorization": f"Bearer {token}"}
    return client.post(path, data=body, content_type="application/json", headers=headers)


def twilio_form(name: str, **changes) -> bytes:
    fields = parse_qsl((SMS / name).read_text(encoding="ascii"), keep_blank_values=True)
    fields = [(k, changes.pop(k)) if k in changes else (k, v) for k, v in fields]
    fields += list(changes.items())
    return urlencode(fields).encode("ascii")


def twilio_signature(url: str, body: bytes, token: str = TWILIO_TOKEN) -> str:
    """Twilio's documented scheme: the URL, then each POST parameter's name and value in
    name order, HMAC-SHA1 under the auth token, base64."""
    params = sorted(parse_qsl(body.decode("ascii"), keep_blank_values=True))
    data = url + "".join(name + value for name, value in params)
    digest = hmac.new(token.encode(), data.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def post_twilio(client, body: bytes, *, url=None, path="/hooks/twilio-sms/", signature=None):
    signed_url = url or f"http://testserver{path}"
    if signature is None:
        signature = twilio_signature(signed_url, body)
    headers = {"X-Twilio-Signature": signature} if signature else {}
    return client.post(path, data=body, content_type=FORM, headers=headers)


def assert_error(response, status: int) -> str:
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["code"] and error["message"]
    return error["message"]


def assert_nothing_stored() -> None:
    assert InboundMessage.objects.count() == 0
    assert TimelineEntry.objects.count() == 0


# --- fixtures ---------------------------------------------------------------------------


@pytest.fixture
def fake_notify():
    with FakeNotify() as notify:
        yield notify


@pytest.fixture
def notify_channel(db, monkeypatch, fake_notify):
    monkeypatch.setenv(NOTIFY_TOKEN_VARIABLE, NOTIFY_TOKEN)
    monkeypatch.setenv(NOTIFY_KEY_VARIABLE, fake_notify.api_key)
    return Channel.objects.create(
        kind="sms-notify",
        slug="notify-sms",
        name="Council text line (Notify)",
        address="07700 900555",
        settings={
            "callback_token_env": NOTIFY_TOKEN_VARIABLE,
            "api_key_env": NOTIFY_KEY_VARIABLE,
            "api_base_url": fake_notify.base_url,
            "template_id": DEFAULT_TEMPLATE_ID,
        },
    )


@pytest.fixture
def twilio_channel(db, monkeypatch):
    monkeypatch.setenv(TWILIO_TOKEN_VARIABLE, TWILIO_TOKEN)
    return Channel.objects.create(
        kind="sms-twilio",
        slug="twilio-sms",
        name="Council text line (Twilio)",
        address="+44 7700 900555",
        settings={"account_sid": ACCOUNT_SID, "auth_token_env": TWILIO_TOKEN_VARIABLE},
    )


@pytest.fixture
def public_twilio_channel(twilio_channel):
    twilio_channel.settings = {**twilio_channel.settings, "webhook_base_url": PUBLIC_BASE + "/"}
    twilio_channel.save()
    return twilio_channel


@pytest.fixture
def resident(db):
    return citizen_create(
        given_name="Priya", family_name="Shah", contact_points=[("phone", "07700 900123")]
    )


def receive_notify(client, capture, **changes) -> InboundMessage:
    payload = notify_payload("notify_received.json", **changes)
    with capture(execute=True):
        assert post_notify(client, payload).status_code == 200
    return InboundMessage.objects.get(external_id=f"notify:{payload['id']}")


def test_both_sms_adapters_are_registered():
    assert {"sms-notify", "sms-twilio"} <= set(registered_kinds())


# --- Notify: received texts -------------------------------------------------------------


def test_a_notify_text_is_stored_and_filed_against_the_resident(
    client, notify_channel, resident, django_capture_on_commit_callbacks
):
    payload = notify_payload("notify_received.json")
    with django_capture_on_commit_callbacks(execute=True):
        response = post_notify(client, payload)
    assert response.status_code == 200
    assert response.json() == {"stored": 1, "duplicates": 0}
    message = InboundMessage.objects.get()
    assert message.external_id == f"notify:{payload['id']}"
    assert json.loads(bytes(message.raw)) == payload
    assert message.status == "processed", message.last_error
    # The resident wrote "07700 900123"; Notify says "447700900123": the same person.
    assert message.citizen == resident
    assert Citizen.objects.count() == 1
    assert message.sender_kind == "phone" and message.body_text == payload["message"]
    assert message.sent_at == datetime.datetime(2026, 11, 24, 9, 15, 30, tzinfo=datetime.UTC)
    assert message.thread.conversation_key == "+447700900123->+447700900555"
    assert message.thread.subject == payload["message"]
    entry = TimelineEntry.objects.get()
    assert entry.channel == "sms" and entry.kind == "message_in"
    assert entry.citizen == resident and entry.source == message


@pytest.mark.parametrize(
    "number",
    [
        "447700900123",
        "+447700900123",
        "07700900123",
        "07700 900123",
        "0044 7700 900123",
        "+44 (0)7700 900123",
        "+44 7700-900-123",
    ],
)
def test_every_uk_way_of_writing_the_number_finds_the_same_resident(
    client, notify_channel, resident, django_capture_on_commit_callbacks, number
):
    message = receive_notify(client, django_capture_on_commit_callbacks, source_number=number)
    assert message.status == "processed", message.last_error
    assert message.citizen == resident
    assert message.thread.conversation_key == "+447700900123->+447700900555"


def test_an_unknown_number_gets_a_provisional_profile(
    client, notify_channel, django_capture_on_commit_callbacks
):
    message = receive_notify(client, django_capture_on_commit_callbacks)
    assert message.status == "processed"
    point = message.citizen.contact_points.get()
    assert (point.kind, point.normalised) == ("phone", "+447700900123")


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="missing"),
        pytest.param({"Authorization": "Bearer wrong-token-entirely"}, id="wrong"),
        pytest.param({"Authorization": f"Bearer {NOTIFY_TOKEN}x"}, id="longer"),
        pytest.param({"Authorization": f"Bearer {NOTIFY_TOKEN[:-1]}"}, id="shorter"),
        pytest.param({"Authorization": NOTIFY_TOKEN}, id="no-scheme"),
        pytest.param({"Authorization": f"Basic {NOTIFY_TOKEN}"}, id="basic"),
        pytest.param({"Authorization": "Bearer "}, id="empty"),
        pytest.param({"Authorization": "Bearer caf\u00e9"}, id="not-ascii"),
    ],
)
def test_a_notify_callback_without_the_token_is_refused_and_nothing_stored(
    client, notify_channel, django_capture_on_commit_callbacks, headers
):
    with django_capture_on_commit_callbacks(execute=True):
        response = post_notify(client, notify_payload("notify_received.json"), headers=headers)
    assert_error(response, 403)
    assert_nothing_stored()


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        pytest.param(b'{"id": "x", "source_number": ', "not valid JSON", id="truncated"),
        pytest.param(b"", "not valid JSON", id="empty"),
        pytest.param(b"[1, 2]", "expected a JSON object", id="array"),
        pytest.param(b"\xff\xfe{}", "not UTF-8", id="not-utf8"),
        pytest.param(
            json.dumps({**notify_payload("notify_received.json"), "id": 7}).encode(),
            "'id'",
            id="id-not-text",
        ),
        pytest.param(
            json.dumps(
                {k: v for k, v in notify_payload("notify_received.json").items() if k != "message"}
            ).encode(),
            "'message'",
            id="no-message",
        ),
        pytest.param(
            json.dumps({**notify_payload("notify_received.json"), "source_number": ""}).encode(),
            "'source_number'",
            id="empty-number",
        ),
    ],
)
def test_a_malformed_notify_callback_is_a_bad_request_with_the_reason(
    client, notify_channel, body, reason
):
    message = assert_error(post_notify(client, body), 400)
    assert reason in message
    assert_nothing_stored()


def test_the_same_notify_callback_three_times_is_one_message_and_one_entry(
    client, notify_channel, resident, django_capture_on_commit_callbacks
):
    payload = notify_payload("notify_received.json")
    with django_capture_on_commit_callbacks(execute=True):
        answers = [post_notify(client, payload).json() for _ in range(3)]
    assert answers == [
        {"stored": 1, "duplicates": 0},
        {"stored": 0, "duplicates": 1},
        {"stored": 0, "duplicates": 1},
    ]
    assert InboundMessage.objects.count() == 1
    assert TimelineEntry.objects.count() == 1
    notify_channel.refresh_from_db()
    assert (notify_channel.received_count, notify_channel.duplicate_count) == (1, 2)


# Arabic and Hebrew with right-to-left marks, emoji with skin tone and ZWJ sequences.
WORLD_TEXT = (
    "\u0645\u0631\u062d\u0628\u0627\u060c \u0627\u0644\u062d\u0627\u0648\u064a\u0629 "
    "\u0644\u0645 \u062a\u064f\u0641\u0631\u063a \U0001f5d1\ufe0f \u200f"
    "\u05e9\u05dc\u05d5\u05dd, \u05d4\u05e4\u05d7 \u05dc\u05d0 \u05e8\u05d5\u05e7\u05df"
    " (\u05e8\u05d7\u05d5\u05d1 12)\u200f \U0001f44d\U0001f3fd \U0001f468\u200d\U0001f469"
    "\u200d\U0001f467 \u202bRLE\u202c"
)


@pytest.mark.parametrize("ensure_ascii", [False, True], ids=["utf8", "escaped"])
def test_emoji_and_right_to_left_text_arrive_intact(
    client, notify_channel, django_capture_on_commit_callbacks, ensure_ascii
):
    payload = notify_payload("notify_received.json", message=WORLD_TEXT)
    body = json.dumps(payload, ensure_ascii=ensure_ascii).encode("utf-8")
    with django_capture_on_commit_callbacks(execute=True):
        assert post_notify(client, body).status_code == 200
    message = InboundMessage.objects.get()
    message.refresh_from_db()
    assert message.body_text == WORLD_TEXT
    assert message.thread.subject == WORLD_TEXT[:80]
    assert TimelineEntry.objects.get().summary == WORLD_TEXT


def test_a_nul_character_cannot_break_storage(
    client, notify_channel, django_capture_on_commit_callbacks
):
    # PostgreSQL text cannot hold NUL; the rest of the message must still be filed.
    payload = notify_payload("notify_received.json", message="Bin\u0000 missing")
    with django_capture_on_commit_callbacks(execute=True):
        assert post_notify(client, payload).status_code == 200
    message = InboundMessage.objects.get()
    assert message.status == "processed", message.last_error
    assert message.body_text == "Bin missing"


def test_an_oversized_sms_callback_is_refused(client, notify_channel):
    payload = notify_payload("notify_received.json", message="x" * 70_000)
    assert_error(post_notify(client, payload), 413)
    assert_nothing_stored()


def test_an_unknown_channel_slug_is_not_found(client, notify_channel):
    payload = notify_payload("notify_received.json")
    assert_error(post_notify(client, payload, path="/hooks/no-such-line/"), 404)
    assert_error(post_notify(client, payload, path="/hooks/no-such-line/status/"), 404)
    assert_nothing_stored()


def test_a_callback_kept_while_misconfigured_is_never_filed_unauthenticated(
    client, notify_channel, django_capture_on_commit_callbacks, monkeypatch
):
    # The token's variable is empty: the request cannot be checked, so the view keeps it;
    # it must not then reach a resident's record without ever having been authenticated.
    monkeypatch.delenv(NOTIFY_TOKEN_VARIABLE)
    with django_capture_on_commit_callbacks(execute=True):
        response = post_notify(client, notify_payload("notify_received.json"), token="anything")
    assert response.status_code == 202
    kept = InboundMessage.objects.get()
    assert kept.status == "failed" and "cannot be authenticated" in kept.last_error
    assert Citizen.objects.count() == 0 and TimelineEntry.objects.count() == 0


# --- threading ----------------------------------------------------------------------------


def test_texts_within_the_window_share_a_thread_and_a_later_one_starts_a_new_one(
    client, notify_channel, resident, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    first = receive_notify(client, capture, id=str(uuid.uuid4()), message="Bin not collected")
    second = receive_notify(
        client,
        capture,
        id=str(uuid.uuid4()),
        message="It's the green one",
        source_number="07700900123",
    )
    assert second.thread_id == first.thread_id

    # Three days and an hour later (the default window is 72 hours).
    long_ago = timezone.now() - timedelta(hours=73)
    Thread.objects.update(last_message_at=long_ago)
    InboundMessage.objects.update(received_at=long_ago)
    third = receive_notify(
        client, capture, id=str(uuid.uuid4()), message="New problem: fly-tipping"
    )
    assert third.thread_id != first.thread_id
    assert third.thread.conversation_key == first.thread.conversation_key
    fourth = receive_notify(client, capture, id=str(uuid.uuid4()), message="Photos to follow")
    assert fourth.thread_id == third.thread_id
    assert Thread.objects.count() == 2


def test_the_window_is_a_channel_setting(
    client, notify_channel, resident, django_capture_on_commit_callbacks
):
    notify_channel.settings = {**notify_channel.settings, "conversation_window_hours": 1}
    notify_channel.save()
    first = receive_notify(client, django_capture_on_commit_callbacks, id=str(uuid.uuid4()))
    Thread.objects.update(last_message_at=timezone.now() - timedelta(hours=2))
    second = receive_notify(client, django_capture_on_commit_callbacks, id=str(uuid.uuid4()))
    assert second.thread_id != first.thread_id


def test_another_number_never_joins_the_conversation(
    client, notify_channel, resident, django_capture_on_commit_callbacks
):
    first = receive_notify(client, django_capture_on_commit_callbacks, id=str(uuid.uuid4()))
    other = receive_notify(
        client,
        django_capture_on_commit_callbacks,
        id=str(uuid.uuid4()),
        source_number="447700900999",
    )
    assert other.thread_id != first.thread_id
    assert other.citizen_id != resident.pk


# --- Notify: replies and delivery receipts ------------------------------------------------


def reply(
    thread, staff_user, capture, body="Thanks, we will collect it tomorrow."
) -> OutboundMessage:
    with capture(execute=True):
        outbound = thread_reply(thread=thread, body=body, by=staff_user)
    outbound.refresh_from_db()
    return outbound


def test_a_staff_reply_reaches_notify_and_its_receipt_marks_it_delivered(
    client, notify_channel, fake_notify, resident, staff_user, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    receive_notify(client, capture)
    body = "Thanks \u2014 we'll collect it tomorrow \U0001f69b"
    outbound = reply(Thread.objects.get(), staff_user, capture, body)

    [text] = fake_notify.sent
    assert text.phone_number == "+447700900123"
    assert text.template_id == DEFAULT_TEMPLATE_ID
    assert text.personalisation == {"body": body} and text.body == body
    assert text.reference == str(outbound.pk)
    [request] = fake_notify.requests
    assert request.status == 201
    assert request.claims["iss"] == fake_notify.service_id  # the JWT the fake verified
    assert request.headers["user-agent"].startswith("NOTIFY-API-PYTHON-CLIENT/")
    assert outbound.status == "sent" and outbound.provider_message_id == text.id
    entry = TimelineEntry.objects.get(kind="message_out")
    assert entry.channel == "sms" and entry.source == outbound

    receipt = fake_notify.delivery_receipt(text.id, "delivered")
    response = post_notify(client, receipt, path="/hooks/notify-sms/status/")
    assert response.status_code == 200 and response.json() == {"updated": 1, "unknown": 0}
    outbound.refresh_from_db()
    assert outbound.status == "delivered" and outbound.delivered_at


def sent_reply(client, capture, staff_user) -> OutboundMessage:
    receive_notify(client, capture)
    return reply(Thread.objects.get(), staff_user, capture)


def test_a_permanent_failure_fails_the_reply_and_retires_the_number(
    client, notify_channel, resident, staff_user, django_capture_on_commit_callbacks
):
    outbound = sent_reply(client, django_capture_on_commit_callbacks, staff_user)
    receipt = notify_payload(
        "notify_receipt_permanent_failure.json", id=outbound.provider_message_id
    )
    response = post_notify(client, receipt, path="/hooks/notify-sms/status/")
    assert response.json() == {"updated": 1, "unknown": 0}
    outbound.refresh_from_db()
    assert outbound.status == "failed" and "permanent-failure" in outbound.last_error
    point = resident.contact_points.get(kind=ContactPoint.Kind.PHONE)
    assert point.undeliverable_at is not None
    # Nobody keeps texting a dead number.
    with pytest.raises(ApplicationError):
        thread_reply(thread=Thread.objects.get(), body="Hello?", by=staff_user)


@pytest.mark.parametrize(
    ("fixture", "status", "number_retired"),
    [
        ("notify_receipt_temporary_failure.json", "sent", False),
        ("notify_receipt_technical_failure.json", "failed", False),
        ("notify_receipt_delivered.json", "delivered", False),
    ],
)
def test_other_receipts(
    client,
    notify_channel,
    resident,
    staff_user,
    django_capture_on_commit_callbacks,
    fixture,
    status,
    number_retired,
):
    outbound = sent_reply(client, django_capture_on_commit_callbacks, staff_user)
    receipt = notify_payload(fixture, id=outbound.provider_message_id)
    assert post_notify(client, receipt, path="/hooks/notify-sms/status/").status_code == 200
    outbound.refresh_from_db()
    assert outbound.status == status
    if status != "delivered":
        assert receipt["status"] in outbound.last_error
    point = resident.contact_points.get(kind=ContactPoint.Kind.PHONE)
    assert (point.undeliverable_at is not None) == number_retired


def test_receipts_for_unknown_or_unfinished_messages_are_answered_and_ignored(
    client, notify_channel
):
    unknown = notify_payload("notify_receipt_delivered.json", id=str(uuid.uuid4()))
    response = post_notify(client, unknown, path="/hooks/notify-sms/status/")
    assert response.status_code == 200 and response.json() == {"updated": 0, "unknown": 1}
    international = notify_payload("notify_receipt_delivered.json", status="sent")
    response = post_notify(client, international, path="/hooks/notify-sms/status/")
    assert response.status_code == 200 and response.json() == {"updated": 0, "unknown": 0}


def test_receipts_need_the_token_and_a_readable_body(
    client, notify_channel, resident, staff_user, django_capture_on_commit_callbacks
):
    outbound = sent_reply(client, django_capture_on_commit_callbacks, staff_user)
    receipt = notify_payload(
        "notify_receipt_permanent_failure.json", id=outbound.provider_message_id
    )
    path = "/hooks/notify-sms/status/"
    assert_error(post_notify(client, receipt, path=path, token="forged"), 403)
    assert_error(post_notify(client, receipt, path=path, headers={}), 403)
    assert "not valid JSON" in assert_error(post_notify(client, b"{oops", path=path), 400)
    no_status = {k: v for k, v in receipt.items() if k != "status"}
    assert "'status'" in assert_error(post_notify(client, no_status, path=path), 400)
    outbound.refresh_from_db()
    assert outbound.status == "sent"
    assert resident.contact_points.get().undeliverable_at is None


def test_receipts_can_have_their_own_token(
    client, notify_channel, resident, staff_user, django_capture_on_commit_callbacks, monkeypatch
):
    outbound = sent_reply(client, django_capture_on_commit_callbacks, staff_user)
    monkeypatch.setenv("TEST_NOTIFY_STATUS_TOKEN", "receipts-only-token-123")
    notify_channel.settings = {
        **notify_channel.settings,
        "status_callback_token_env": "TEST_NOTIFY_STATUS_TOKEN",
    }
    notify_channel.save()
    receipt = notify_payload("notify_receipt_delivered.json", id=outbound.provider_message_id)
    path = "/hooks/notify-sms/status/"
    assert_error(post_notify(client, receipt, path=path), 403)
    response = post_notify(client, receipt, path=path, token="receipts-only-token-123")
    assert response.json() == {"updated": 1, "unknown": 0}


@pytest.mark.parametrize(
    ("break_notify", "error"),
    [
        pytest.param(lambda fake: fake.fail_with(429), "Notify 429", id="rate-limited"),
        pytest.param(lambda fake: fake.fail_with(500), "Notify 500", id="server-error"),
        pytest.param(lambda fake: fake.fail_with(503), "Notify 503", id="unavailable"),
        pytest.param(lambda fake: fake.stop(), "Notify 503", id="down"),
    ],
)
def test_notify_down_or_rate_limited_leaves_the_reply_queued_until_it_recovers(
    client,
    notify_channel,
    fake_notify,
    resident,
    staff_user,
    django_capture_on_commit_callbacks,
    break_notify,
    error,
):
    capture = django_capture_on_commit_callbacks
    receive_notify(client, capture)
    break_notify(fake_notify)
    outbound = reply(Thread.objects.get(), staff_user, capture)
    assert outbound.status == "queued" and error in outbound.last_error
    assert outbound.attempts == 1 and not outbound.provider_message_id
    notify_channel.refresh_from_db()
    assert error in notify_channel.last_error
    assert TimelineEntry.objects.filter(kind="message_out").count() == 0

    if not fake_notify.running:  # "down": bring it back, on a new port
        fake_notify.start()
        notify_channel.settings = {**notify_channel.settings, "api_base_url": fake_notify.base_url}
        notify_channel.save()
    fake_notify.fail_with(None)
    with capture(execute=True):
        assert release_queued_outbound(channel=notify_channel) == 1
    outbound.refresh_from_db()
    assert outbound.status == "sent" and len(fake_notify.sent) == 1


def test_the_per_minute_limit_queues_the_reply_over_it(
    client, notify_channel, fake_notify, resident, staff_user, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    receive_notify(client, capture)
    fake_notify.limit_per_minute = 1
    first = reply(Thread.objects.get(), staff_user, capture, "First")
    second = reply(Thread.objects.get(), staff_user, capture, "Second")
    assert first.status == "sent"
    assert second.status == "queued" and "RateLimitError" in second.last_error
    assert [t.body for t in fake_notify.sent] == ["First"]


@pytest.mark.parametrize(
    ("misconfigure", "status", "error"),
    [
        pytest.param(
            lambda channel, fake, env: channel.settings.update(template_id=str(uuid.uuid4())),
            "failed",
            "Template not found",
            id="unknown-template",
        ),
        pytest.param(
            lambda channel, fake, env: env.setenv(
                NOTIFY_KEY_VARIABLE, f"{fake.key_name}-{fake.service_id}-{uuid.uuid4()}"
            ),
            "failed",
            "Invalid token",
            id="wrong-key",
        ),
        pytest.param(
            lambda channel, fake, env: channel.settings.pop("template_id"),
            "queued",
            "template_id",
            id="no-template-setting",
        ),
        pytest.param(
            lambda channel, fake, env: env.setenv(NOTIFY_KEY_VARIABLE, "not-a-notify-key"),
            "queued",
            "API key",
            id="malformed-key",
        ),
    ],
)
def test_notify_refusals_fail_the_reply_and_missing_settings_keep_it_queued(
    client,
    notify_channel,
    fake_notify,
    resident,
    staff_user,
    django_capture_on_commit_callbacks,
    monkeypatch,
    misconfigure,
    status,
    error,
):
    capture = django_capture_on_commit_callbacks
    receive_notify(client, capture)
    misconfigure(notify_channel, fake_notify, monkeypatch)
    notify_channel.save()
    outbound = reply(Thread.objects.get(), staff_user, capture)
    assert outbound.status == status and error in outbound.last_error
    assert fake_notify.sent == []


# --- the fake itself ----------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_limiter_is_a_sliding_window():
    clock = FakeClock()
    limiter = SlidingWindowLimiter(3, clock=clock)
    assert [limiter.try_acquire() for _ in range(4)] == [True, True, True, False]
    clock.now += 30
    assert not limiter.try_acquire()
    clock.now += 29.9
    assert not limiter.try_acquire()
    clock.now += 0.1  # the first three are now exactly 60 seconds old
    assert limiter.try_acquire() and limiter.in_window() == 1


def test_the_fake_rate_limits_the_real_client_on_a_rolling_minute():
    clock = FakeClock()
    with FakeNotify(limit_per_minute=2, clock=clock) as notify:
        api = NotificationsAPIClient(notify.api_key, base_url=notify.base_url)

        def send():
            return api.send_sms_notification("07700900123", DEFAULT_TEMPLATE_ID, {"body": "hi"})

        send()
        clock.now += 40
        send()
        with pytest.raises(HTTPError) as refused:
            send()
        assert refused.value.status_code == 429
        assert refused.value.message[0]["error"] == "RateLimitError"
        clock.now += 20  # the first send leaves the window
        assert send()["content"]["body"] == "hi"
        assert len(notify.sent) == 3


def token(notify: FakeNotify, *, iat_offset=0, secret=None, iss=None) -> str:
    claims = {"iss": iss or notify.service_id, "iat": int(notify.wall_clock()) + iat_offset}
    return jwt.encode(claims, secret or notify.secret, algorithm="HS256")


@pytest.mark.parametrize(
    ("header", "status", "message"),
    [
        pytest.param(lambda n: None, 401, "must be provided", id="missing"),
        pytest.param(lambda n: f"Bearer {token(n, iat_offset=-35)}", 403, "clock", id="stale"),
        pytest.param(lambda n: f"Bearer {token(n, iat_offset=35)}", 403, "clock", id="future"),
        pytest.param(
            lambda n: f"Bearer {token(n, secret=str(uuid.uuid4()))}", 403, "API key", id="secret"
        ),
        pytest.param(
            lambda n: f"Bearer {token(n, iss=str(uuid.uuid4()))}", 403, "service", id="iss"
        ),
        pytest.param(lambda n: "Bearer not.a.jwt", 403, "Invalid token", id="garbage"),
    ],
)
def test_the_fake_checks_the_jwt_like_notify(header, status, message):
    with FakeNotify() as notify:
        headers = {"Content-Type": "application/json"}
        value = header(notify)
        if value:
            headers["Authorization"] = value
        body = {"phone_number": "07700900123", "template_id": DEFAULT_TEMPLATE_ID}
        response = requests.post(
            f"{notify.base_url}/v2/notifications/sms", json=body, headers=headers, timeout=5
        )
        assert response.status_code == status
        assert message in response.json()["errors"][0]["message"]
        assert notify.sent == []
        assert (
            requests.post(
                f"{notify.base_url}/v2/notifications/sms",
                json={**body, "personalisation": {"body": "ok"}},
                headers={"Authorization": f"Bearer {token(notify, iat_offset=-25)}"},
                timeout=5,
            ).status_code
            == 201
        )


def test_the_fake_validates_like_notify():
    with FakeNotify() as notify:
        api = NotificationsAPIClient(notify.api_key, base_url=notify.base_url)
        cases = [
            (("07700900123", DEFAULT_TEMPLATE_ID, None), "Missing personalisation: body"),
            (("01632 960123", DEFAULT_TEMPLATE_ID, {"body": "x"}), "Not a UK mobile number"),
            (("07700900123", str(uuid.uuid4()), {"body": "x"}), "Template not found"),
            (("07700900123", DEFAULT_TEMPLATE_ID, {"body": "x" * 919}), "918 characters"),
        ]
        for arguments, message in cases:
            with pytest.raises(HTTPError) as refused:
                api.send_sms_notification(*arguments)
            assert refused.value.status_code == 400
            assert message in refused.value.message[0]["message"]
        assert notify.sent == []


# --- Twilio: incoming messages --------------------------------------------------------------


def test_a_signed_twilio_message_is_stored_and_filed_against_the_resident(
    client, twilio_channel, resident, django_capture_on_commit_callbacks
):
    body = twilio_form("twilio_incoming.form")
    with django_capture_on_commit_callbacks(execute=True):
        response = post_twilio(client, body)
    # Twilio expects TwiML; an empty <Response/> sends no automatic reply.
    assert response.status_code == 200 and response["Content-Type"] == "text/xml"
    assert response.content.endswith(b"<Response></Response>")
    message = InboundMessage.objects.get()
    assert message.external_id == "twilio:SM2f6a1c9e4b7d8a0c3e5f1b2d4a6c8e0f"
    assert bytes(message.raw) == body
    assert message.status == "processed", message.last_error
    assert message.citizen == resident
    assert message.body_text == "Hello, is the tip at Moor Lane open on Sunday?"
    assert message.thread.conversation_key == "+447700900123->+447700900555"
    entry = TimelineEntry.objects.get()
    assert entry.channel == "sms" and entry.source == message


def test_twilio_text_in_any_script_arrives_intact(
    client, twilio_channel, django_capture_on_commit_callbacks
):
    body = twilio_form("twilio_incoming.form", Body=WORLD_TEXT)
    with django_capture_on_commit_callbacks(execute=True):
        assert post_twilio(client, body).status_code == 200
    message = InboundMessage.objects.get()
    assert message.status == "processed" and message.body_text == WORLD_TEXT


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(lambda body: {"signature": ""}, id="missing"),
        pytest.param(
            lambda body: {
                "signature": twilio_signature("http://testserver/hooks/twilio-sms/", body, "0" * 32)
            },
            id="other-token",
        ),
        pytest.param(
            lambda body: {"url": "https://attacker.example/hooks/twilio-sms/"}, id="other-url"
        ),
        pytest.param(lambda body: {"signature": "AAAAAAAAAAAAAAAAAAAAAAAAAAA="}, id="zeros"),
        pytest.param(lambda body: {"signature": "not base64 at all \u00e9"}, id="garbage"),
    ],
)
def test_an_invalid_twilio_signature_is_refused_and_nothing_stored(
    client, twilio_channel, django_capture_on_commit_callbacks, forge
):
    body = twilio_form("twilio_incoming.form")
    with django_capture_on_commit_callbacks(execute=True):
        response = post_twilio(client, body, **forge(body))
    assert_error(response, 403)
    assert_nothing_stored()


def test_a_message_changed_after_signing_is_refused(client, twilio_channel):
    genuine = twilio_form("twilio_incoming.form")
    forged = twilio_form("twilio_incoming.form", Body="Please delete my account")
    signature = twilio_signature("http://testserver/hooks/twilio-sms/", genuine)
    assert_error(post_twilio(client, forged, signature=signature), 403)
    assert_nothing_stored()


def test_behind_a_proxy_the_public_url_is_what_twilio_signed(
    client, public_twilio_channel, django_capture_on_commit_callbacks
):
    body = twilio_form("twilio_incoming.form")
    # Django sees http://testserver/...; Twilio called (and signed) the public address.
    assert_error(post_twilio(client, body), 403)
    with django_capture_on_commit_callbacks(execute=True):
        response = post_twilio(client, body, url=f"{PUBLIC_BASE}/hooks/twilio-sms/")
    assert response.status_code == 200
    assert InboundMessage.objects.get().status == "processed"


def test_a_replayed_twilio_message_is_stored_once(
    client, twilio_channel, django_capture_on_commit_callbacks
):
    body = twilio_form("twilio_incoming.form")
    with django_capture_on_commit_callbacks(execute=True):
        answers = [post_twilio(client, body) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert InboundMessage.objects.count() == 1 and TimelineEntry.objects.count() == 1


@pytest.mark.parametrize(
    ("body", "content_type", "reason"),
    [
        pytest.param(b'{"MessageSid": "SM1"}', "application/json", "not a form", id="json"),
        pytest.param(b"Body=caf\xc3\xa9", FORM, "not a form", id="raw-utf8"),
        pytest.param(b"Body=%FF&MessageSid=SM1&From=1&To=2", FORM, "not UTF-8", id="bad-utf8"),
        pytest.param(
            b"Body=hi&From=%2B447700900123&To=%2B447700900555", FORM, "MessageSid", id="no-sid"
        ),
    ],
)
def test_a_signed_body_that_is_not_a_twilio_form_is_a_bad_request(
    client, twilio_channel, body, content_type, reason
):
    url = "http://testserver/hooks/twilio-sms/"
    try:
        signature = twilio_signature(url, body)
    except UnicodeDecodeError:
        signature = "unsignable"
    response = client.post(
        "/hooks/twilio-sms/",
        data=body,
        content_type=content_type,
        headers={"X-Twilio-Signature": signature},
    )
    assert reason in assert_error(response, 400)
    assert_nothing_stored()


def test_a_webhooks_rule_shared_key_signature_is_checked_with_that_key(
    client, twilio_channel, monkeypatch, django_capture_on_commit_callbacks
):
    body = twilio_form("twilio_incoming.form")
    url = "http://testserver/hooks/twilio-sms/"
    params = sorted(parse_qsl(body.decode(), keep_blank_values=True))
    data = (url + "".join(n + v for n, v in params)).encode()
    shared = "shared-key-secret-9f8e7d"
    signature = base64.b64encode(hmac.new(shared.encode(), data, hashlib.sha256).digest()).decode()
    headers = {
        "X-Twilio-Signature": signature,
        "X-Twilio-Webhooks-Signature-Settings": "key=webhooks_sharedkey_1,algorithm=HMAC_SHA256",
    }
    # Without the shared key configured, the request cannot be checked: refused.
    response = client.post("/hooks/twilio-sms/", data=body, content_type=FORM, headers=headers)
    assert_error(response, 403)
    monkeypatch.setenv("TEST_TWILIO_SHARED_KEY", shared)
    twilio_channel.settings = {
        **twilio_channel.settings,
        "webhook_shared_key_env": "TEST_TWILIO_SHARED_KEY",
    }
    twilio_channel.save()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/hooks/twilio-sms/", data=body, content_type=FORM, headers=headers)
    assert response.status_code == 200


# --- Twilio: replies and status callbacks ---------------------------------------------------

REPLY_SID = "SM7c3e9a1f5b2d4c6e8a0b1c2d3e4f5a6b"


def twilio_reply(client, channel, staff_user, capture, mock, body="We have booked the collection."):
    with capture(execute=True):
        assert (
            post_twilio(
                client, twilio_form("twilio_incoming.form"), url=_signed_url(channel)
            ).status_code
            == 200
        )
    mock.add(
        responses.POST,
        TWILIO_MESSAGES_URL,
        status=201,
        json={
            "sid": REPLY_SID,
            "account_sid": ACCOUNT_SID,
            "status": "queued",
            "to": "+447700900123",
            "from": "+447700900555",
            "body": body,
        },
    )
    return reply(Thread.objects.get(), staff_user, capture, body)


def _signed_url(channel, path="/hooks/twilio-sms/") -> str:
    base = channel.settings.get("webhook_base_url", "http://testserver").rstrip("/")
    return base + path


def test_a_staff_reply_goes_out_through_twilio_and_status_callbacks_update_it(
    client, public_twilio_channel, resident, staff_user, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    body = "We have booked the collection \u2705 \u0634\u0643\u0631\u0627"
    with responses.RequestsMock() as mock:
        outbound = twilio_reply(client, public_twilio_channel, staff_user, capture, mock, body)
        [call] = mock.calls
    request = call.request
    sent = request.body if isinstance(request.body, str) else request.body.decode("ascii")
    assert dict(parse_qsl(sent)) == {
        "To": "+447700900123",
        "From": "+447700900555",
        "Body": body,
        "StatusCallback": f"{PUBLIC_BASE}/hooks/twilio-sms/status/",
    }
    credentials = base64.b64encode(f"{ACCOUNT_SID}:{TWILIO_TOKEN}".encode()).decode()
    assert request.headers["Authorization"] == f"Basic {credentials}"
    assert request.headers["Content-Type"] == FORM
    assert outbound.status == "sent" and outbound.provider_message_id == REPLY_SID
    assert TimelineEntry.objects.get(kind="message_out").channel == "sms"

    status_url = f"{PUBLIC_BASE}/hooks/twilio-sms/status/"
    path = urlsplit(status_url).path
    sent_only = twilio_form("twilio_status_sent.form")
    response = post_twilio(client, sent_only, url=status_url, path=path)
    assert response.json() == {"updated": 0, "unknown": 0}  # "sent" is not final
    delivered = twilio_form("twilio_status_delivered.form")
    assert_error(post_twilio(client, delivered, path=path), 403)  # signed over the wrong URL
    response = post_twilio(client, delivered, url=status_url, path=path)
    assert response.json() == {"updated": 1, "unknown": 0}
    outbound.refresh_from_db()
    assert outbound.status == "delivered"


@pytest.mark.parametrize(
    ("code", "number_retired"),
    [("30003", False), ("30006", True), ("30005", True), ("30007", False), ("", False)],
)
def test_an_undelivered_twilio_reply_fails_and_only_a_dead_number_is_retired(
    client,
    public_twilio_channel,
    resident,
    staff_user,
    django_capture_on_commit_callbacks,
    code,
    number_retired,
):
    with responses.RequestsMock() as mock:
        outbound = twilio_reply(
            client, public_twilio_channel, staff_user, django_capture_on_commit_callbacks, mock
        )
    status_url = f"{PUBLIC_BASE}/hooks/twilio-sms/status/"
    body = twilio_form("twilio_status_undelivered.form", ErrorCode=code)
    response = post_twilio(client, body, url=status_url, path="/hooks/twilio-sms/status/")
    assert response.json() == {"updated": 1, "unknown": 0}
    outbound.refresh_from_db()
    assert outbound.status == "failed" and "undelivered" in outbound.last_error
    assert (code or "not given") in outbound.last_error
    point = resident.contact_points.get(kind=ContactPoint.Kind.PHONE)
    assert (point.undeliverable_at is not None) == number_retired


def test_twilio_status_callbacks_need_a_valid_signature(client, twilio_channel):
    body = twilio_form("twilio_status_delivered.form")
    assert_error(post_twilio(client, body, path="/hooks/twilio-sms/status/", signature=""), 403)
    forged = post_twilio(
        client, body, path="/hooks/twilio-sms/status/", signature=twilio_signature("x", body)
    )
    assert_error(forged, 403)
    unknown = post_twilio(client, body, path="/hooks/twilio-sms/status/")
    assert unknown.status_code == 200 and unknown.json() == {"updated": 0, "unknown": 1}


@pytest.mark.parametrize(
    ("answer", "status", "error"),
    [
        pytest.param(
            {"status": 429, "json": {"code": 20429, "message": "Too Many Requests", "status": 429}},
            "queued",
            "Twilio 429",
            id="rate-limited",
        ),
        pytest.param(
            {
                "status": 503,
                "json": {"code": 20503, "message": "Service unavailable", "status": 503},
            },
            "queued",
            "Twilio 503",
            id="unavailable",
        ),
        pytest.param(
            {"body": requests.ConnectionError("connection refused")},
            "queued",
            "unreachable",
            id="down",
        ),
        pytest.param(
            {
                "status": 400,
                "json": {
                    "code": 21211,
                    "message": "The 'To' number +447700900123 is not a valid phone number.",
                    "status": 400,
                },
            },
            "failed",
            "21211",
            id="invalid-number",
        ),
    ],
)
def test_twilio_refusals_and_outages(
    client,
    twilio_channel,
    resident,
    staff_user,
    django_capture_on_commit_callbacks,
    answer,
    status,
    error,
):
    capture = django_capture_on_commit_callbacks
    with capture(execute=True):
        assert post_twilio(client, twilio_form("twilio_incoming.form")).status_code == 200
    with responses.RequestsMock() as mock:
        mock.add(responses.POST, TWILIO_MESSAGES_URL, **answer)
        outbound = reply(Thread.objects.get(), staff_user, capture)
        [call] = mock.calls
    assert outbound.status == status and error in outbound.last_error
    # No status callback is asked for without a public address to send it to.
    assert "StatusCallback" not in dict(parse_qsl(call.request.body))


def test_twilio_without_an_account_sid_keeps_the_reply_queued(
    client, twilio_channel, resident, staff_user, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    with capture(execute=True):
        assert post_twilio(client, twilio_form("twilio_incoming.form")).status_code == 200
    twilio_channel.settings = {"auth_token_env": TWILIO_TOKEN_VARIABLE}
    twilio_channel.save()
    with responses.RequestsMock():  # nothing may leave
        outbound = reply(Thread.objects.get(), staff_user, capture)
    assert outbound.status == "queued" and "account_sid" in outbound.last_error


def test_sms_replies_have_no_subject_and_respect_the_provider_limit(
    client, notify_channel, django_capture_on_commit_callbacks, staff_user
):
    from channels.models import OutboundMessage, Thread
    from channels.services.outbound import thread_reply
    from citizenhub.errors import ApplicationError

    with django_capture_on_commit_callbacks(execute=True):
        post_notify(client, notify_payload("notify_received.json"))
    thread = Thread.objects.get()
    with pytest.raises(ApplicationError, match="918"):
        thread_reply(thread=thread, body="x" * 919, by=staff_user)
    outbound = thread_reply(thread=thread, body="Yes, open 9 till 4.", by=staff_user)
    assert outbound.subject == "" and OutboundMessage.objects.count() == 1
