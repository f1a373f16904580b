"""Codes that prove a resident holds a phone number: throttled, hashed, a few attempts each,
and sent as a text through GOV.UK Notify (the local fake of its API) without a thread, an
inbox item or a timeline entry."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from channels.models import Channel, OutboundMessage, Thread
from citizenhub.errors import ApplicationError
from citizenhub.models import ContactPoint, ContactVerification, TimelineEntry
from citizenhub.services import verification
from citizenhub.services.citizens import contact_point_add
from citizenhub.services.verification import check_verification_code, send_verification_code
from tests.fakes.notify import DEFAULT_TEMPLATE_ID, FakeNotify

pytestmark = pytest.mark.django_db

NOTIFY_KEY_VARIABLE = "TEST_PORTAL_NOTIFY_API_KEY"


@pytest.fixture
def phone(resident) -> ContactPoint:
    return contact_point_add(
        citizen=resident.citizen,
        kind="phone",
        value="07700 900123",
        source="portal",
        verification_level="asserted",
    )


@pytest.fixture
def sent_codes(monkeypatch) -> list[tuple[int, str, str]]:
    """Replace the phone sender with one that records what it was asked to send."""
    codes: list[tuple[int, str, str]] = []
    monkeypatch.setitem(
        verification._senders,
        "phone",
        lambda point, code, language: codes.append((point.pk, code, language)),
    )
    return codes


@pytest.fixture
def fake_notify():
    with FakeNotify() as notify:
        yield notify


@pytest.fixture
def notify_channel(db, monkeypatch, fake_notify):
    monkeypatch.setenv(NOTIFY_KEY_VARIABLE, fake_notify.api_key)
    return Channel.objects.create(
        kind="sms-notify",
        slug="notify-sms",
        name="Council text line (Notify)",
        settings={
            "api_key_env": NOTIFY_KEY_VARIABLE,
            "api_base_url": fake_notify.base_url,
            "template_id": DEFAULT_TEMPLATE_ID,
        },
    )


def age(verification_row: ContactVerification, **delta) -> None:
    ContactVerification.objects.filter(pk=verification_row.pk).update(
        sent_at=verification_row.sent_at - timedelta(**delta),
        expires_at=verification_row.expires_at - timedelta(**delta),
    )


# --- The service ---------------------------------------------------------------------------


def test_a_code_is_six_digits_stored_only_as_a_hash(phone, sent_codes):
    row = send_verification_code(contact_point=phone, language="cy")
    [(point_id, code, language)] = sent_codes
    assert point_id == phone.pk and language == "cy" and re.fullmatch(r"\d{6}", code)
    assert code not in row.code_hash and len(row.code_hash) == 64
    assert row.expires_at - row.sent_at == timedelta(minutes=10)


def test_the_right_code_confirms_the_number_once(phone, sent_codes, resident):
    send_verification_code(contact_point=phone)
    code = sent_codes[-1][1]
    point = check_verification_code(
        contact_point=phone, code=f" {code[:3]} {code[3:]} ", by=resident
    )
    assert point.verification_level == "confirmed" and point.verified_at
    with pytest.raises(ApplicationError) as used:
        check_verification_code(contact_point=phone, code=code)
    assert used.value.code == "code_expired"


def test_wrong_codes_count_and_five_use_the_code_up(phone, sent_codes):
    send_verification_code(contact_point=phone)
    code = sent_codes[-1][1]
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    for _ in range(5):
        with pytest.raises(ApplicationError) as error:
            check_verification_code(contact_point=phone, code=wrong)
        assert error.value.code == "code_wrong"
    assert ContactVerification.objects.get().attempts == 5
    with pytest.raises(ApplicationError) as error:
        check_verification_code(contact_point=phone, code=code)  # even the right one, now
    assert error.value.code == "code_attempts"
    phone.refresh_from_db()
    assert phone.verification_level == "asserted"


def test_a_code_that_is_not_six_digits_is_not_an_attempt(phone, sent_codes):
    send_verification_code(contact_point=phone)
    for typed in ("", "12345", "1234567", "abcdef", "１２３４５６"):
        with pytest.raises(ApplicationError) as error:
            check_verification_code(contact_point=phone, code=typed)
        assert error.value.code == "code_format"
    assert ContactVerification.objects.get().attempts == 0


def test_an_expired_code_does_not_work(phone, sent_codes):
    row = send_verification_code(contact_point=phone)
    age(row, minutes=11)
    with pytest.raises(ApplicationError) as error:
        check_verification_code(contact_point=phone, code=sent_codes[-1][1])
    assert error.value.code == "code_expired"


def test_a_new_code_replaces_the_old_one(phone, sent_codes):
    first = send_verification_code(contact_point=phone)
    age(first, minutes=2)
    send_verification_code(contact_point=phone)
    old_code, new_code = sent_codes[0][1], sent_codes[1][1]
    if old_code != new_code:
        with pytest.raises(ApplicationError):
            check_verification_code(contact_point=phone, code=old_code)
    assert (
        check_verification_code(contact_point=phone, code=new_code).verification_level
        == "confirmed"
    )


def test_one_code_a_minute_and_five_an_hour(phone, sent_codes):
    row = send_verification_code(contact_point=phone)
    with pytest.raises(ApplicationError) as error:
        send_verification_code(contact_point=phone)
    assert error.value.code == "code_too_soon"
    for _ in range(4):
        age(row, minutes=2)
        row = send_verification_code(contact_point=phone)
    age(row, minutes=2)
    with pytest.raises(ApplicationError) as error:
        send_verification_code(contact_point=phone)
    assert error.value.code == "code_too_many"
    assert len(sent_codes) == 5
    # An hour after the first, codes can be sent again.
    ContactVerification.objects.update(sent_at=timezone.now() - timedelta(minutes=61))
    send_verification_code(contact_point=phone)
    assert len(sent_codes) == 6


def test_no_sender_for_a_kind_is_a_clear_refusal(resident):
    point = resident.citizen.contact_points.get(kind="email")
    with pytest.raises(ApplicationError) as error:
        send_verification_code(contact_point=point)
    assert error.value.code == "no_sender"
    assert not ContactVerification.objects.exists()


# --- The SMS sender (channels) --------------------------------------------------------------


def test_the_code_goes_out_through_notify_and_nowhere_else(phone, notify_channel, fake_notify):
    Channel.objects.create(kind="sms-twilio", slug="twilio", name="Twilio line")  # not chosen
    send_verification_code(contact_point=phone)

    [text] = fake_notify.sent
    assert text.phone_number == "+447700900123" and text.template_id == DEFAULT_TEMPLATE_ID
    match = re.fullmatch(r"Your Northmoor District Council code is (\d{6})", text.body)
    assert match
    [request] = fake_notify.requests
    assert request.status == 201 and request.claims["iss"] == fake_notify.service_id

    outbound = OutboundMessage.objects.get()
    assert outbound.channel == notify_channel and outbound.thread is None
    assert outbound.status == "sent" and outbound.provider_message_id == text.id
    assert text.reference == str(outbound.pk)  # delivery receipts find it
    assert match.group(1) not in outbound.body_text and "******" in outbound.body_text
    assert not Thread.objects.exists()
    assert not TimelineEntry.objects.filter(kind="message_out").exists()

    # And the code in the text is the one that works.
    assert check_verification_code(contact_point=phone, code=match.group(1)).verification_level == (
        "confirmed"
    )


def test_notify_failing_retires_the_code_and_tells_the_resident(phone, notify_channel, fake_notify):
    fake_notify.fail_with(500)
    with pytest.raises(ApplicationError) as error:
        send_verification_code(contact_point=phone)
    assert error.value.code == "code_not_sent"
    assert "could not send the text message" in error.value.message
    assert OutboundMessage.objects.get().status == "failed"
    assert not ContactVerification.objects.get().is_usable


def test_without_an_sms_channel_nothing_is_sent_and_the_resident_is_told(phone):
    Channel.objects.create(kind="sms-notify", slug="off", name="Disabled line", enabled=False)
    with pytest.raises(ApplicationError) as error:
        send_verification_code(contact_point=phone)
    assert error.value.code == "code_not_sent"
    assert "cannot send text messages at the moment" in error.value.message
    assert not OutboundMessage.objects.exists()
    phone.refresh_from_db()
    assert phone.removed_at is None  # the number is kept
