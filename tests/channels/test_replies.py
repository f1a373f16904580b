"""Staff replies go out through the thread's channel, and residents' answers come back to it."""

import pytest

from channels.models import InboundMessage, OutboundMessage, Thread
from channels.services.ingest import store_raw_messages
from channels.services.outbound import release_queued_outbound, thread_reply
from citizenhub.errors import ApplicationError
from citizenhub.models import TimelineEntry
from tests.channels.conftest import eml, raw_email
from tests.channels.sink import smtp_sink

pytestmark = pytest.mark.django_db


@pytest.fixture
def sink(email_channel):
    with smtp_sink() as (handler, port):
        email_channel.settings = {**email_channel.settings, "smtp_port": port}
        email_channel.save()
        yield handler


def ingest(channel, data, capture, *recipients):
    with capture(execute=True):
        store_raw_messages(channel=channel, raws=[raw_email(data, *recipients)])


def reply_from(sender: str, outbound: OutboundMessage, text: str, message_id: str) -> bytes:
    return (
        f"From: {sender}\r\nTo: {outbound.channel.address}\r\n"
        f"Subject: Re: {outbound.subject}\r\nMessage-ID: <{message_id}>\r\n"
        f"In-Reply-To: <{outbound.message_id}>\r\nReferences: <{outbound.message_id}>\r\n"
        f"\r\n{text}\r\n\r\nOn Tue, 24 Nov 2026, Council wrote:\r\n> earlier text\r\n"
    ).encode()


def test_reply_is_sent_through_the_channel_with_threading_headers(
    email_channel, sink, staff_user, django_capture_on_commit_callbacks
):
    ingest(email_channel, eml("simple.eml"), django_capture_on_commit_callbacks)
    thread = Thread.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        outbound = thread_reply(thread=thread, body="We will collect it tomorrow.", by=staff_user)
    outbound.refresh_from_db()
    assert outbound.status == "sent" and outbound.sent_at
    [mail] = sink.received
    sent = mail.message
    assert mail.rcpt_tos == ["Jane.Resident@example.org"]
    assert sent["In-Reply-To"] == "<CAF1234abcd@mail.example.org>"
    assert "<CAF1234abcd@mail.example.org>" in sent["References"]
    assert sent["Message-ID"] == f"<{outbound.message_id}>"
    assert f"[CH-{thread.pk}]" in sent["Subject"]
    assert sent["Reply-To"] == f"reply+{thread.reply_token}@in.northmoor.example"
    entry = TimelineEntry.objects.get(kind="message_out")
    assert entry.source == outbound and entry.citizen_id == thread.citizen_id
    thread.refresh_from_db()
    assert thread.status == "waiting"


def test_sending_twice_sends_once(
    email_channel, sink, staff_user, django_capture_on_commit_callbacks
):
    from channels.services.outbound import send_outbound

    ingest(email_channel, eml("simple.eml"), django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        outbound = thread_reply(thread=Thread.objects.get(), body="Done.", by=staff_user)
    assert send_outbound(outbound_id=outbound.pk) == "skipped"
    assert len(sink.received) == 1
    assert TimelineEntry.objects.filter(kind="message_out").count() == 1


def test_resident_reply_joins_the_thread_but_another_sender_does_not(
    email_channel, sink, staff_user, django_capture_on_commit_callbacks
):
    ingest(email_channel, eml("simple.eml"), django_capture_on_commit_callbacks)
    thread = Thread.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        outbound = thread_reply(thread=thread, body="Which bin?", by=staff_user)
    outbound.refresh_from_db()
    answer = reply_from(
        "Jane Resident <jane.resident@example.org>",
        outbound,
        "The green one.",
        "answer-1@example.org",
    )
    ingest(email_channel, answer, django_capture_on_commit_callbacks)
    joined = InboundMessage.objects.get(message_id="answer-1@example.org")
    assert joined.thread_id == thread.pk
    assert joined.summary_text == "The green one."  # quoted text trimmed
    thread.refresh_from_db()
    assert thread.status == "open"  # the resident's answer reopens it

    intruder = reply_from(
        "Mallory <mallory@example.net>", outbound, "The green one.", "intruder-1@example.net"
    )
    ingest(email_channel, intruder, django_capture_on_commit_callbacks)
    other = InboundMessage.objects.get(message_id="intruder-1@example.net")
    assert other.thread_id != thread.pk
    assert other.thread.citizen_id != thread.citizen_id


def test_reply_token_address_alone_threads_the_participant(
    email_channel, sink, staff_user, django_capture_on_commit_callbacks
):
    ingest(email_channel, eml("simple.eml"), django_capture_on_commit_callbacks)
    thread = Thread.objects.get()
    bare = (
        b"From: jane.resident@example.org\r\nSubject: more\r\n"
        b"Message-ID: <bare-1@example.org>\r\n\r\nAlso the recycling box.\r\n"
    )
    ingest(
        email_channel,
        bare,
        django_capture_on_commit_callbacks,
        f"reply+{thread.reply_token}@in.northmoor.example",
    )
    assert InboundMessage.objects.get(message_id="bare-1@example.org").thread_id == thread.pk


def test_subject_reference_from_a_stranger_starts_a_new_thread(
    email_channel, django_capture_on_commit_callbacks
):
    ingest(email_channel, eml("simple.eml"), django_capture_on_commit_callbacks)
    thread = Thread.objects.get()
    guess = (
        f"From: stranger@example.net\r\nSubject: Re: [CH-{thread.pk}]\r\n"
        f"Message-ID: <guess-1@example.net>\r\n\r\nshow me\r\n"
    ).encode()
    ingest(email_channel, guess, django_capture_on_commit_callbacks)
    assert InboundMessage.objects.get(message_id="guess-1@example.net").thread_id != thread.pk


def test_disabled_channel_keeps_the_reply_queued_with_a_visible_error(
    email_channel, sink, staff_user, django_capture_on_commit_callbacks
):
    ingest(email_channel, eml("simple.eml"), django_capture_on_commit_callbacks)
    email_channel.enabled = False
    email_channel.save()
    with django_capture_on_commit_callbacks(execute=True):
        outbound = thread_reply(thread=Thread.objects.get(), body="Queued", by=staff_user)
    outbound.refresh_from_db()
    assert outbound.status == "queued" and "disabled" in outbound.last_error
    assert sink.received == []
    email_channel.enabled = True
    email_channel.save()
    with django_capture_on_commit_callbacks(execute=True):
        assert release_queued_outbound(channel=email_channel) == 1
    outbound.refresh_from_db()
    assert outbound.status == "sent" and len(sink.received) == 1


@pytest.mark.parametrize(
    ("code", "final_status"),
    [("451 4.3.0 try later", "queued"), ("550 5.1.1 no such user", "failed")],
)
def test_smtp_refusals_retry_or_fail_without_losing_the_reply(
    email_channel, sink, staff_user, django_capture_on_commit_callbacks, code, final_status
):
    ingest(email_channel, eml("simple.eml"), django_capture_on_commit_callbacks)
    sink.refuse_with = code
    with django_capture_on_commit_callbacks(execute=True):
        outbound = thread_reply(thread=Thread.objects.get(), body="Hello", by=staff_user)
    outbound.refresh_from_db()
    assert outbound.status == final_status
    assert code.split()[0] in outbound.last_error
    assert TimelineEntry.objects.filter(kind="message_out").count() == 0


def test_unreachable_smtp_server_leaves_the_reply_queued(
    email_channel, staff_user, django_capture_on_commit_callbacks
):
    ingest(email_channel, eml("simple.eml"), django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):  # smtp_port 1: nothing listens
        outbound = thread_reply(thread=Thread.objects.get(), body="Hello", by=staff_user)
    outbound.refresh_from_db()
    assert outbound.status == "queued" and "unavailable" in outbound.last_error


def test_empty_reply_is_refused(email_channel, staff_user, django_capture_on_commit_callbacks):
    ingest(email_channel, eml("simple.eml"), django_capture_on_commit_callbacks)
    with pytest.raises(ApplicationError):
        thread_reply(thread=Thread.objects.get(), body="   ", by=staff_user)
    assert OutboundMessage.objects.count() == 0
