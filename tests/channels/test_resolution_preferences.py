"""The resolution reaches the resident the way they want it: in the conversation they wrote
in, else on their preferred channel (a text through GOV.UK Notify, here the local fake),
else by e-mail (the SMTP sink), else a staff note says why; written in their language."""

from __future__ import annotations

import pytest
from django.utils import translation

from channels.models import InboundMessage, OutboundMessage, Thread
from channels.services import casework
from citizenhub.services import citizen_create
from citizenhub.services.cases import case_transition, open_case
from tests.channels import test_sms
from tests.factories import ServiceFactory

pytestmark = pytest.mark.django_db

# The fake Notify server and an SMS channel pointed at it, as the SMS tests set them up.
fake_notify = test_sms.fake_notify
notify_channel = test_sms.notify_channel

PHONE = "07700 900123"
EMAIL = "rhian@example.org"


@pytest.fixture
def potholes():
    return ServiceFactory(code="pothole", name="Potholes")


@pytest.fixture
def sink(email_channel):
    from tests.channels.sink import smtp_sink

    with smtp_sink() as (handler, port):
        email_channel.settings = {**email_channel.settings, "smtp_port": port}
        email_channel.save()
        yield handler


def resident(*, channel: str = "", language: str = "en", points=(("email", EMAIL),)):
    return citizen_create(
        given_name="Rhian",
        family_name="Evans",
        preferred_channel=channel,
        preferred_language=language,
        contact_points=list(points),
    )


def resolve(case, capture, resolution="We filled the pothole."):
    with capture(execute=True):
        return case_transition(
            case=case, to_status="resolved", expected_version=None, resolution=resolution
        )


def portal_case(citizen, service):
    """Reported on the portal: no conversation to answer."""
    return open_case(service=service, title="Pothole", citizen=citizen, source_channel="web")


def test_a_resident_who_prefers_texts_gets_the_resolution_by_sms(
    notify_channel, fake_notify, sink, potholes, django_capture_on_commit_callbacks
):
    citizen = resident(channel="sms", points=[("email", EMAIL), ("phone", PHONE)])
    case = portal_case(citizen, potholes)

    resolve(case, django_capture_on_commit_callbacks)

    outbound = OutboundMessage.objects.select_related("thread").get()
    assert outbound.channel == notify_channel and outbound.status == "sent"
    assert outbound.to_value == "+447700900123"
    assert outbound.thread.case == case and outbound.thread.channel == notify_channel
    [text] = fake_notify.sent
    assert text.phone_number == "+447700900123"
    assert "We filled the pothole." in text.body and case.reference in text.body
    assert sink.received == []  # not e-mailed as well
    reply = case.events.get(kind="reply")
    assert reply.data["channel"] == notify_channel.slug and reply.visibility == "resident"


def test_a_resident_with_no_preference_gets_an_email(
    notify_channel, fake_notify, sink, potholes, django_capture_on_commit_callbacks
):
    citizen = resident(channel="", points=[("email", EMAIL), ("phone", PHONE)])
    case = portal_case(citizen, potholes)

    resolve(case, django_capture_on_commit_callbacks)

    outbound = OutboundMessage.objects.get()
    assert outbound.channel.kind == "email-smtp" and outbound.to_value == EMAIL
    assert outbound.subject.startswith(f"Your request {case.reference} has been resolved")
    [mail] = sink.received
    assert mail.rcpt_tos == [EMAIL]
    assert fake_notify.sent == []


def test_sms_preferred_without_a_phone_number_falls_back_to_email(
    notify_channel, fake_notify, sink, potholes, django_capture_on_commit_callbacks
):
    citizen = resident(channel="sms")
    case = portal_case(citizen, potholes)

    resolve(case, django_capture_on_commit_callbacks)

    assert OutboundMessage.objects.get().channel.kind == "email-smtp"
    assert len(sink.received) == 1 and fake_notify.sent == []
    # The failed SMS attempt left nothing behind.
    assert Thread.objects.count() == 1


def test_sms_preferred_without_an_sms_channel_falls_back_to_email(
    sink, potholes, django_capture_on_commit_callbacks
):
    citizen = resident(channel="sms", points=[("email", EMAIL), ("phone", PHONE)])
    case = portal_case(citizen, potholes)
    resolve(case, django_capture_on_commit_callbacks)
    assert [m.rcpt_tos for m in sink.received] == [[EMAIL]]


def test_a_resolution_too_long_for_a_text_goes_by_email(
    notify_channel, fake_notify, sink, potholes, django_capture_on_commit_callbacks
):
    citizen = resident(channel="sms", points=[("email", EMAIL), ("phone", PHONE)])
    case = portal_case(citizen, potholes)
    resolve(case, django_capture_on_commit_callbacks, resolution="Long story. " * 100)
    assert OutboundMessage.objects.get().channel.kind == "email-smtp"
    assert fake_notify.sent == [] and len(sink.received) == 1


def test_a_case_with_a_conversation_is_answered_in_it_whatever_the_preference(
    notify_channel, fake_notify, sink, potholes, django_capture_on_commit_callbacks
):
    """The resident texted us about it: the answer goes back by text, even though they
    prefer e-mail in general."""
    citizen = resident(channel="email", points=[("email", EMAIL), ("phone", PHONE)])
    case = portal_case(citizen, potholes)
    phone = citizen.contact_points.get(kind="phone")
    thread = Thread.objects.create(
        channel=notify_channel, citizen=citizen, subject="Pothole", case=case
    )
    InboundMessage.objects.create(
        channel=notify_channel,
        thread=thread,
        citizen=citizen,
        contact_point=phone,
        external_id="notify:1",
        raw=b"{}",
        status="processed",
        classification="message",
        sender_kind="phone",
        sender_value=phone.normalised,
        body_text="There is a pothole on Mill Lane",
    )

    resolve(case, django_capture_on_commit_callbacks)

    outbound = OutboundMessage.objects.get()
    assert outbound.thread == thread and outbound.channel == notify_channel
    assert outbound.status == "sent" and outbound.to_value == "+447700900123"
    assert len(fake_notify.sent) == 1 and sink.received == []


def test_when_nothing_can_be_sent_a_staff_note_says_why(
    notify_channel, potholes, django_capture_on_commit_callbacks
):
    citizen = resident(channel="sms", points=[])
    case = portal_case(citizen, potholes)

    case = resolve(case, django_capture_on_commit_callbacks)

    assert case.status == "resolved"
    note = case.events.get(kind="note")
    assert note.visibility == "staff" and "could not be sent" in note.text
    assert notify_channel.name in note.text and "phone number" in note.text
    assert "no e-mail channel" in note.text
    assert OutboundMessage.objects.count() == 0 and Thread.objects.count() == 0


@pytest.mark.parametrize("language", ["cy", "en"])
def test_the_resolution_is_written_in_the_residents_language(
    sink, potholes, django_capture_on_commit_callbacks, monkeypatch, language
):
    """Each message string is translated while the resident's language is active (the
    Welsh catalogue is written later; what matters here is which language is asked for)."""
    asked_in: list[str] = []

    def recording_gettext(message: str) -> str:
        asked_in.append(translation.get_language())
        return translation.gettext(message)

    monkeypatch.setattr(casework, "gettext", recording_gettext)
    citizen = resident(language=language)
    case = portal_case(citizen, potholes)

    with translation.override("en"):
        resolve(case, django_capture_on_commit_callbacks)
        assert translation.get_language() == "en"  # the resident's language did not leak

    assert asked_in and set(asked_in) == {language}
    assert len(sink.received) == 1
