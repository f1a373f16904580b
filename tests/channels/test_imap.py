"""The IMAP channel against a real, private Dovecot: cursors, back-off, resync, folders."""

import socket
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from channels.adapters import adapter_for
from channels.email.parsing import external_id_for
from channels.models import Channel, ChannelCursor, InboundMessage
from channels.services.polling import poll_channel
from citizenhub.models import TimelineEntry
from citizenhub.services import citizen_create
from tests.channels.conftest import eml
from tests.channels.dovecot import PASSWORD, PASSWORD_ENV, running_dovecot

pytestmark = pytest.mark.django_db

SEEN = b"\\Seen"


@pytest.fixture
def dovecot():
    with running_dovecot() as server:
        yield server


@pytest.fixture(autouse=True)
def imap_password(monkeypatch):
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)


def make_channel(server, **settings) -> Channel:
    return Channel.objects.create(
        kind="email-imap",
        slug="contact-imap",
        name="Contact centre (IMAP)",
        address="contact@northmoor.example",
        settings=server.channel_settings(**settings),
    )


@pytest.fixture
def imap_channel(dovecot):
    return make_channel(dovecot)


def letter(number: int, *extra_headers: str) -> bytes:
    lines = [
        f"From: Resident {number} <resident{number}@example.org>",
        "To: contact@northmoor.example",
        f"Subject: Pothole report {number}",
        "Date: Wed, 25 Nov 2026 10:00:00 +0000",
        f"Message-ID: <imap-test-{number}@example.org>",
        *extra_headers,
        "",
        f"There is a pothole outside number {number}.",
        "",
    ]
    return "\r\n".join(lines).encode()


def poll(channel, capture):
    """Poll once; the ingest the store step enqueues on commit runs before this returns."""
    with capture(execute=True):
        return poll_channel(channel_id=channel.pk)


def cursor_state(channel, folder="INBOX") -> dict:
    return ChannelCursor.objects.get(channel=channel, key=f"imap:{folder}").state


def seen_uids(server, folder="INBOX") -> set[int]:
    return {uid for uid, flags in server.flags(folder).items() if SEEN in flags}


def test_adapter_is_registered_as_a_polling_email_channel(imap_channel):
    adapter = adapter_for(imap_channel)
    assert adapter.kind == "email-imap" and adapter.polls
    assert imap_channel.timeline_channel == "email"


def test_a_poll_stores_new_mail_and_puts_it_on_the_timeline(
    dovecot, imap_channel, django_capture_on_commit_callbacks
):
    jane = citizen_create(
        given_name="Jane",
        family_name="Resident",
        contact_points=[("email", "jane.resident@example.org")],
    )
    dovecot.append(eml("simple.eml"))
    dovecot.append(letter(1, "Delivered-To: potholes@northmoor.example"))

    outcome = poll(imap_channel, django_capture_on_commit_callbacks)

    assert (outcome.status, outcome.stored, outcome.duplicates) == ("polled", 2, 0)
    messages = {m.external_id: m for m in InboundMessage.objects.all()}
    assert set(messages) == {external_id_for(eml("simple.eml")), external_id_for(letter(1))}
    assert {m.status for m in messages.values()} == {"processed"}
    janes = messages[external_id_for(eml("simple.eml"))]
    assert janes.citizen == jane and janes.thread.citizen == jane
    assert bytes(janes.raw) == eml("simple.eml")
    assert janes.recipients == ["contact@northmoor.example"]
    assert messages[external_id_for(letter(1))].recipients == [
        "contact@northmoor.example",
        "potholes@northmoor.example",
    ]
    entry = TimelineEntry.objects.get(citizen=jane)
    assert entry.kind == "message_in" and entry.channel == "email" and entry.source == janes
    assert TimelineEntry.objects.count() == 2
    assert cursor_state(imap_channel) == {"uidvalidity": dovecot.uidvalidity(), "last_uid": 2}
    imap_channel.refresh_from_db()
    assert imap_channel.last_success_at is not None and imap_channel.consecutive_failures == 0
    assert (imap_channel.received_count, imap_channel.processed_count) == (2, 2)


def test_polling_again_fetches_only_new_mail_and_marks_nothing_read(
    dovecot, imap_channel, django_capture_on_commit_callbacks
):
    dovecot.append(letter(1))
    dovecot.append(letter(2))
    assert poll(imap_channel, django_capture_on_commit_callbacks).stored == 2

    # "UID 3:*" still matches UID 2 on the server; nothing may come back as a duplicate.
    again = poll(imap_channel, django_capture_on_commit_callbacks)
    assert (again.status, again.stored, again.duplicates) == ("polled", 0, 0)

    dovecot.append(letter(3))
    later = poll(imap_channel, django_capture_on_commit_callbacks)
    assert (later.stored, later.duplicates) == (1, 0)
    assert cursor_state(imap_channel)["last_uid"] == 3
    assert InboundMessage.objects.count() == 3 and TimelineEntry.objects.count() == 3
    assert seen_uids(dovecot) == set()


def test_mark_seen_marks_fetched_mail_read(dovecot, django_capture_on_commit_callbacks):
    channel = make_channel(dovecot, mark_seen=True)
    dovecot.append(letter(1))
    dovecot.append(letter(2))
    assert poll(channel, django_capture_on_commit_callbacks).stored == 2
    assert seen_uids(dovecot) == {1, 2}


def test_batch_size_caps_each_poll_and_the_next_poll_continues(
    dovecot, django_capture_on_commit_callbacks
):
    channel = make_channel(dovecot, batch_size=2)
    for number in range(1, 6):
        dovecot.append(letter(number))
    stored = [poll(channel, django_capture_on_commit_callbacks).stored for _ in range(4)]
    assert stored == [2, 2, 1, 0]
    assert InboundMessage.objects.count() == 5


def test_server_down_backs_off_keeps_the_cursor_and_resumes_after_restart(
    dovecot, imap_channel, django_capture_on_commit_callbacks
):
    dovecot.append(letter(1))
    dovecot.append(letter(2))
    assert poll(imap_channel, django_capture_on_commit_callbacks).stored == 2
    cursor_before = ChannelCursor.objects.get(channel=imap_channel)

    dovecot.stop()
    outcome = poll(imap_channel, django_capture_on_commit_callbacks)

    assert outcome.status == "failed" and outcome.error
    imap_channel.refresh_from_db()
    assert imap_channel.consecutive_failures == 1
    assert imap_channel.backoff_until > timezone.now()
    assert "ConnectionRefusedError" in imap_channel.last_error
    assert imap_channel.enabled
    cursor_after = ChannelCursor.objects.get(channel=imap_channel)
    assert (cursor_after.state, cursor_after.updated_at) == (
        cursor_before.state,
        cursor_before.updated_at,
    )
    assert poll(imap_channel, django_capture_on_commit_callbacks).status == "backing_off"

    # Mail delivered while we could not reach the server, then the back-off runs out.
    dovecot.start()
    dovecot.append(letter(3))
    dovecot.append(letter(4))
    Channel.objects.filter(pk=imap_channel.pk).update(
        backoff_until=timezone.now() - timedelta(seconds=1)
    )
    resumed = poll(imap_channel, django_capture_on_commit_callbacks)

    assert (resumed.status, resumed.stored, resumed.duplicates) == ("polled", 2, 0)
    assert sorted(InboundMessage.objects.values_list("external_id", flat=True)) == sorted(
        external_id_for(letter(n)) for n in range(1, 5)
    )
    assert TimelineEntry.objects.count() == 4
    assert cursor_state(imap_channel)["last_uid"] == 4
    imap_channel.refresh_from_db()
    assert (imap_channel.consecutive_failures, imap_channel.backoff_until) == (0, None)
    assert imap_channel.last_error == ""


@pytest.mark.parametrize(
    ("password", "error"),
    [("wrong-password", "LoginError"), (None, "ChannelConfigError")],
)
def test_bad_credentials_fail_the_poll_with_the_reason(
    dovecot, imap_channel, django_capture_on_commit_callbacks, monkeypatch, password, error
):
    if password is None:
        monkeypatch.delenv(PASSWORD_ENV)
    else:
        monkeypatch.setenv(PASSWORD_ENV, password)
    dovecot.append(letter(1))
    assert poll(imap_channel, django_capture_on_commit_callbacks).status == "failed"
    imap_channel.refresh_from_db()
    assert error in imap_channel.last_error and imap_channel.consecutive_failures == 1
    assert not ChannelCursor.objects.exists() and not InboundMessage.objects.exists()


def test_a_server_that_never_answers_times_out_and_backs_off(
    django_capture_on_commit_callbacks,
):
    # A socket that listens but never accepts: the connection opens, no greeting comes.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        channel = Channel.objects.create(
            kind="email-imap",
            slug="silent-imap",
            name="Silent server",
            settings={
                "host": "127.0.0.1",
                "port": silent.getsockname()[1],
                "ssl": False,
                "username": "contact",
                "password_env": PASSWORD_ENV,
                "timeout": 0.5,
            },
        )
        started = time.monotonic()
        outcome = poll(channel, django_capture_on_commit_callbacks)
    assert outcome.status == "failed" and time.monotonic() - started < 5
    channel.refresh_from_db()
    assert "TimeoutError" in channel.last_error and channel.backoff_until > timezone.now()


def test_changed_uidvalidity_resyncs_the_folder_without_duplicates(
    dovecot, django_capture_on_commit_callbacks
):
    dovecot.create_folder("Casework")
    channel = make_channel(dovecot, folders=["Casework"])
    old = [letter(1), letter(2), eml("no_message_id.eml")]  # the last is keyed by its hash
    for raw in old:
        dovecot.append(raw, "Casework")
    assert poll(channel, django_capture_on_commit_callbacks).stored == 3
    first_validity = cursor_state(channel, "Casework")["uidvalidity"]

    new_validity = dovecot.recreate_folder("Casework")
    # The one new message gets UID 1, below the old cursor: only a full resync finds it.
    for raw in [letter(9), *old]:
        dovecot.append(raw, "Casework")
    outcome = poll(channel, django_capture_on_commit_callbacks)

    assert (outcome.status, outcome.stored, outcome.duplicates) == ("polled", 1, 3)
    assert new_validity != first_validity
    assert cursor_state(channel, "Casework") == {"uidvalidity": new_validity, "last_uid": 4}
    assert InboundMessage.objects.count() == 4
    assert TimelineEntry.objects.count() == 4
    assert InboundMessage.objects.filter(external_id=external_id_for(letter(9))).exists()


def test_each_folder_keeps_its_own_cursor(dovecot, django_capture_on_commit_callbacks):
    dovecot.create_folder("Planning")
    channel = make_channel(dovecot, folders=["INBOX", "Planning"])
    dovecot.append(letter(1))
    dovecot.append(letter(2))
    dovecot.append(letter(3), "Planning")

    assert poll(channel, django_capture_on_commit_callbacks).stored == 3
    assert cursor_state(channel, "INBOX")["last_uid"] == 2
    assert cursor_state(channel, "Planning")["last_uid"] == 1
    assert cursor_state(channel, "INBOX")["uidvalidity"] == dovecot.uidvalidity("INBOX")
    assert cursor_state(channel, "Planning")["uidvalidity"] == dovecot.uidvalidity("Planning")

    dovecot.append(letter(4), "Planning")
    outcome = poll(channel, django_capture_on_commit_callbacks)
    assert (outcome.stored, outcome.duplicates) == (1, 0)
    assert cursor_state(channel, "INBOX")["last_uid"] == 2
    assert cursor_state(channel, "Planning")["last_uid"] == 2
    assert InboundMessage.objects.count() == 4 and TimelineEntry.objects.count() == 4


def test_every_poll_logs_out(dovecot, imap_channel, django_capture_on_commit_callbacks):
    dovecot.append(letter(1))
    poll(imap_channel, django_capture_on_commit_callbacks)
    poll(imap_channel, django_capture_on_commit_callbacks)
    # Dovecot writes its log a moment after the session ends.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        log = dovecot.log_path.read_text()
        if log.count("Login: user=<contact>") == log.count("Disconnected: Logged out"):
            break
        time.sleep(0.05)
    assert log.count("Login: user=<contact>") == log.count("Disconnected: Logged out") == 3
