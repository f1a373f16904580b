"""The built-in SMTP receiver, through a real socket: raw storage, idempotency, limits, command.

The receiver stores messages on its own threads, which use their own database connections:
they cannot see data inside a test's transaction, so these tests are transactional. Its
`on_commit` callbacks (the eager in-process ingest) therefore run for real, on the
receiver's thread, before it answers 250: a message is processed when `sendmail` returns.
"""

from __future__ import annotations

import os
import signal
import smtplib
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import OperationalError

from channels.models import Channel, InboundMessage
from channels.smtp_receiver import SmtpReceiver
from citizenhub.models import TimelineEntry
from citizenhub.services import citizen_create
from tests.channels.conftest import eml
from tests.integration.conftest import test_database_url as shared_test_database_url

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
COUNCIL = "contact@northmoor.example"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def on_the_wire(data: bytes) -> bytes:
    """The bytes an SMTP client sends: every line ends in CRLF (RFC 5321 section 2.3.8)."""
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


class Receivers:
    """Starts receivers for the test on free loopback ports, and stops them all afterwards."""

    def __init__(self) -> None:
        self.running: list[SmtpReceiver] = []

    def start(self, channel: Channel) -> SmtpReceiver:
        receiver = SmtpReceiver(channel, host="127.0.0.1", port=free_port(), db_threads=2)
        receiver.start()
        self.running.append(receiver)
        return receiver

    def stop_all(self) -> None:
        for receiver in self.running:
            receiver.stop(grace_seconds=10)


@pytest.fixture
def receivers():
    started = Receivers()
    yield started
    started.stop_all()


@pytest.fixture
def receiver(receivers, email_channel) -> SmtpReceiver:
    return receivers.start(email_channel)


def send(receiver: SmtpReceiver, data: bytes, *recipients: str) -> dict:
    with smtplib.SMTP("127.0.0.1", receiver.port, timeout=30) as client:
        return client.sendmail(
            "sender@example.org", list(recipients or (COUNCIL,)), on_the_wire(data)
        )


def test_a_message_is_stored_byte_for_byte_and_lands_on_the_timeline(receiver, email_channel):
    jane = citizen_create(
        given_name="Jane",
        family_name="Resident",
        contact_points=[("email", "jane.resident@example.org")],
    )
    assert send(receiver, eml("simple.eml")) == {}

    message = InboundMessage.objects.get()
    # Exactly what was sent: no Received, X-Peer or other header of ours added.
    assert bytes(message.raw) == on_the_wire(eml("simple.eml"))
    assert message.external_id == "mid:CAF1234abcd@mail.example.org"
    assert message.recipients == [COUNCIL] and message.channel == email_channel
    assert message.status == "processed" and message.citizen == jane
    entry = TimelineEntry.objects.get(citizen=jane)
    assert entry.kind == "message_in" and entry.channel == "email"
    assert entry.summary.startswith("Missed bin collection on Ash Grove")


@pytest.mark.parametrize("name", ["simple.eml", "no_message_id.eml"])
def test_the_same_email_three_times_and_a_restart_is_one_message_and_one_entry(
    receivers, email_channel, name
):
    first = receivers.start(email_channel)
    send(first, eml(name))
    send(first, eml(name))
    first.stop()
    second = receivers.start(email_channel)
    send(second, eml(name))

    assert InboundMessage.objects.count() == 1
    assert TimelineEntry.objects.count() == 1
    message = InboundMessage.objects.get()
    assert message.status == "processed"
    if name == "no_message_id.eml":
        # No Message-ID: the key is the hash of the bytes as received, the same every time.
        assert message.external_id.startswith("sha256:")
    email_channel.refresh_from_db()
    assert (email_channel.received_count, email_channel.duplicate_count) == (1, 2)


def test_one_message_to_two_council_addresses_records_both(receiver):
    data = (
        b"From: Sam Resident <sam@example.org>\n"
        b"Subject: Pothole on Mill Lane\n"
        b"Message-ID: <two-rcpt@example.org>\n"
        b"\n"
        b"There is a pothole on Mill Lane.\n"
        b".A line starting with a dot survives SMTP's dot-stuffing.\n"
    )
    send(receiver, data, COUNCIL, "highways@northmoor.example")

    message = InboundMessage.objects.get()
    assert message.recipients == sorted([COUNCIL, "highways@northmoor.example"])
    assert bytes(message.raw) == on_the_wire(data)
    assert TimelineEntry.objects.count() == 1


def test_an_oversize_message_is_refused_with_552_and_nothing_is_stored(receiver, settings):
    limit = settings.CHANNELS_SMTP_MAX_MESSAGE_BYTES
    big = b"From: sam@example.org\r\nSubject: big\r\n\r\n" + b"x" * 998 + b"\r\n"
    big *= limit // len(big) + 1
    # A client that declares SIZE (as smtplib does) is refused at MAIL FROM...
    with pytest.raises(smtplib.SMTPSenderRefused) as declared:
        send(receiver, big)
    assert declared.value.smtp_code == 552
    # ...and one that does not is refused after DATA.
    with smtplib.SMTP("127.0.0.1", receiver.port, timeout=30) as client:
        client.ehlo()
        assert client.mail("sam@example.org")[0] == 250
        assert client.rcpt(COUNCIL)[0] == 250
        code, _ = client.data(big)
    assert code == 552
    assert not InboundMessage.objects.exists()


def test_a_database_failure_answers_451_so_the_sender_retries(receiver, monkeypatch):
    def database_down(**kwargs):
        raise OperationalError("could not connect to server")

    monkeypatch.setattr("channels.smtp_receiver.store_raw_messages", database_down)
    with pytest.raises(smtplib.SMTPDataError) as refused:
        send(receiver, eml("simple.eml"))
    assert refused.value.smtp_code == 451
    assert not InboundMessage.objects.exists()

    monkeypatch.undo()
    send(receiver, eml("simple.eml"))  # the sender's retry
    assert InboundMessage.objects.get().status == "processed"


def test_a_stored_message_is_accepted_even_if_starting_its_processing_fails(receiver, monkeypatch):
    def broker_down(ids):
        raise ConnectionError("broker unavailable")

    monkeypatch.setattr("channels.services.ingest._enqueue_ingest", broker_down)
    assert send(receiver, eml("simple.eml")) == {}  # 250: the row is committed
    assert InboundMessage.objects.get().status == "received"


def test_the_command_refuses_unknown_disabled_and_non_smtp_channels(email_channel):
    with pytest.raises(CommandError, match=r"No channel with slug 'nope'.*contact"):
        call_command("smtp_inbound", channel="nope", port=free_port())
    Channel.objects.create(kind="sms-twilio", slug="texts", name="Texts")
    with pytest.raises(CommandError, match="email-smtp channels only"):
        call_command("smtp_inbound", channel="texts", port=free_port())
    Channel.objects.filter(pk=email_channel.pk).update(enabled=False)
    with pytest.raises(CommandError, match="disabled"):
        call_command("smtp_inbound", channel="contact", port=free_port())


def wait_for_port(process: subprocess.Popen, port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"smtp_inbound exited early:\n{process.communicate()[0]}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError("smtp_inbound did not start listening")


@pytest.mark.skipif(
    not settings.IS_POSTGRES,
    reason="the command runs in another process; pytest-django's SQLite test database is "
    "in memory, so only a PostgreSQL test database can be shared with it",
)
def test_the_manage_py_command_receives_into_the_test_database(email_channel):
    port = free_port()
    env = {**os.environ, "DATABASE_URL": shared_test_database_url(), "DEBUG": "0"}
    env.pop("REDIS_URL", None)  # tasks run in the command's process: no worker is needed
    process = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "smtp_inbound",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--channel",
            "contact",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for_port(process, port)
        data = on_the_wire(eml("no_message_id.eml"))
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            client.sendmail("dafydd@example.cymru", [COUNCIL], data)
            client.sendmail("dafydd@example.cymru", [COUNCIL], data)
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, output
    assert "SMTP receiver stopped." in output
    assert "stored new message sha256:" in output
    assert "stored duplicate message sha256:" in output
    message = InboundMessage.objects.get()
    assert message.status == "processed" and message.subject == "Golau stryd wedi torri"
    assert TimelineEntry.objects.filter(source_id=str(message.pk)).count() == 1
