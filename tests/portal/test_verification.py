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
from citizenhub.services.verification import check_verification_code, send_verification_code
from tests.fakes.notify import DEFAULT_TEMPLATE_ID, FakeNotify

pytestmark = pytest.mark.django_db

NOTIFY_KEY_VARIABLE = "TEST_PORTAL_NOTIFY_API_KEY"


def send(citizen, value: str = "07700 900123", **kwargs) -> ContactVerification:
    return send_verification_code(citizen=citizen, kind="phone", value=value, **kwargs)


@pytest.fixture
def sent_codes(monkeypatch) -> list[tuple[int, str, str]]:
    """Replace the phone sender with one that records what it was asked to send."""
    codes: list[tuple[int, str, str]] = []
    monkeypatch.setitem(
        verification._senders,
        "phone",
        lambda pending, code, language: codes.append((pending.pk, code, language)),
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


def test_a_code_is_six_digits_stored_only_as_a_hash(resident, sent_codes):
    row = send(resident.citizen, language="cy")
    [(row_id, code, language)] = sent_codes
    assert row_id == row.pk and language == "cy" and re.fullmatch(r"\d{6}", code)
    assert code not in row.code_hash and len(row.code_hash) == 64
    assert row.expires_at - row.sent_at == timedelta(minutes=10)
    assert (row.normalised, row.match_key, row.value) == (
        "+447700900123",
        "+447700900123",
        "07700 900123",
    )
    assert not ContactPoint.objects.filter(kind="phone").exists()


def test_the_right_code_confirms_the_number_once(resident, sent_codes):
    row = send(resident.citizen)
    code = sent_codes[-1][1]
    point = check_verification_code(verification=row, code=f" {code[:3]} {code[3:]} ", by=resident)
    assert point.citizen == resident.citizen and point.source == "portal"
    assert point.verification_level == "confirmed" and point.verified_at
    with pytest.raises(ApplicationError) as used:
        check_verification_code(verification=row, code=code)
    assert used.value.code == "code_expired"


def test_wrong_codes_count_and_five_use_the_code_up(resident, sent_codes):
    row = send(resident.citizen)
    code = sent_codes[-1][1]
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    for _ in range(5):
        with pytest.raises(ApplicationError) as error:
            check_verification_code(verification=row, code=wrong)
        assert error.value.code == "code_wrong"
    assert ContactVerification.objects.get().failed_attempts == 5
    with pytest.raises(ApplicationError) as error:
        check_verification_code(verification=row, code=code)  # even the right one, now
    assert error.value.code == "code_attempts"
    assert not ContactPoint.objects.filter(kind="phone").exists()


def test_a_code_that_is_not_six_digits_is_not_an_attempt(resident, sent_codes):
    row = send(resident.citizen)
    for typed in ("", "12345", "1234567", "abcdef", "１２３４５６"):
        with pytest.raises(ApplicationError) as error:
            check_verification_code(verification=row, code=typed)
        assert error.value.code == "code_format"
    assert ContactVerification.objects.get().failed_attempts == 0


def test_an_expired_code_does_not_work(resident, sent_codes):
    row = send(resident.citizen)
    age(row, minutes=11)
    with pytest.raises(ApplicationError) as error:
        check_verification_code(verification=row, code=sent_codes[-1][1])
    assert error.value.code == "code_expired"


def test_a_code_is_bound_to_the_resident_who_asked(resident, other_resident, sent_codes):
    theirs = send(other_resident.citizen)
    age(theirs, minutes=2)
    mine = send(resident.citizen)
    their_code, my_code = sent_codes[0][1], sent_codes[1][1]
    if their_code != my_code:  # one time in a million they are the same
        # The other resident's code, typed against my pending number, is just wrong.
        with pytest.raises(ApplicationError) as error:
            check_verification_code(verification=mine, code=their_code)
        assert error.value.code == "code_wrong"
    assert check_verification_code(verification=mine, code=my_code).citizen == resident.citizen
    assert not other_resident.citizen.contact_points.filter(kind="phone").exists()


def test_one_code_a_minute_and_five_an_hour_to_a_number_whoever_asks(
    resident, other_resident, sent_codes
):
    row = send(resident.citizen)
    with pytest.raises(ApplicationError) as error:
        send(other_resident.citizen, "+44 7700 900 123")  # the same number, written otherwise
    assert error.value.code == "code_too_soon"
    for asker in (other_resident, resident, other_resident, resident):
        age(row, minutes=2)
        ContactVerification.objects.exclude(pk=row.pk).update(
            sent_at=row.sent_at - timedelta(minutes=2)
        )
        row = send(asker.citizen)
    age(row, minutes=2)
    with pytest.raises(ApplicationError) as error:
        send(resident.citizen)
    assert error.value.code == "code_too_many_number"
    assert len(sent_codes) == 5
    # An hour after, codes can be sent again.
    ContactVerification.objects.update(sent_at=timezone.now() - timedelta(minutes=61))
    send(resident.citizen)
    assert len(sent_codes) == 6


def test_limits_can_be_set(resident, sent_codes, settings):
    settings.PORTAL_CODES_PER_RESIDENT_PER_HOUR = 2
    send(resident.citizen, "07700 900101")
    send(resident.citizen, "07700 900102")
    with pytest.raises(ApplicationError) as error:
        send(resident.citizen, "07700 900103")
    assert error.value.code == "code_too_many"


def test_pending_codes_are_erased_with_the_profile(resident, sent_codes):
    from citizenhub.services.erasure import erasure_plan

    send(resident.citizen)
    plan = erasure_plan(resident.citizen)
    [item] = [item for item in plan.erase if item.key == "contact_verifications"]
    assert item.count == 1
    assert not [item for item in plan.keep if "verification" in item.key]
    verification.verification_erase(resident.citizen, case=None, actor=None)
    assert not ContactVerification.objects.exists()


def test_no_sender_for_a_kind_is_a_clear_refusal(resident):
    with pytest.raises(ApplicationError) as error:
        send_verification_code(citizen=resident.citizen, kind="email", value="a@example.com")
    assert error.value.code == "no_sender"
    assert not ContactVerification.objects.exists()


# --- The SMS sender (channels) --------------------------------------------------------------


def test_the_code_goes_out_through_notify_and_nowhere_else(resident, notify_channel, fake_notify):
    Channel.objects.create(kind="sms-twilio", slug="twilio", name="Twilio line")  # not chosen
    row = send(resident.citizen)

    [text] = fake_notify.sent
    assert text.phone_number == "+447700900123" and text.template_id == DEFAULT_TEMPLATE_ID
    match = re.fullmatch(r"Your Northmoor District Council code is (\d{6})", text.body)
    assert match
    [request] = fake_notify.requests
    assert request.status == 201 and request.claims["iss"] == fake_notify.service_id

    outbound = OutboundMessage.objects.get()
    assert outbound.channel == notify_channel and outbound.thread is None
    assert outbound.citizen == resident.citizen and outbound.to_value == "+447700900123"
    assert outbound.status == "sent" and outbound.provider_message_id == text.id
    assert text.reference == str(outbound.pk)  # delivery receipts find it
    assert match.group(1) not in outbound.body_text and "******" in outbound.body_text
    assert not Thread.objects.exists()
    assert not TimelineEntry.objects.filter(kind="message_out").exists()

    # And the code in the text is the one that works.
    point = check_verification_code(verification=row, code=match.group(1))
    assert point.verification_level == "confirmed"


def test_notify_failing_retires_the_code_and_tells_the_resident(
    resident, notify_channel, fake_notify
):
    fake_notify.fail_with(500)
    with pytest.raises(ApplicationError) as error:
        send(resident.citizen)
    assert error.value.code == "code_not_sent"
    assert "could not send the text message" in error.value.message
    assert OutboundMessage.objects.get().status == "failed"
    assert not ContactVerification.objects.get().is_usable


def test_without_an_sms_channel_nothing_is_sent_and_the_resident_is_told(resident):
    Channel.objects.create(kind="sms-notify", slug="off", name="Disabled line", enabled=False)
    with pytest.raises(ApplicationError) as error:
        send(resident.citizen)
    assert error.value.code == "code_not_sent"
    assert "cannot send text messages at the moment" in error.value.message
    assert not OutboundMessage.objects.exists()
    assert not ContactPoint.objects.filter(kind="phone").exists()
    assert not ContactVerification.objects.get().is_usable
