"""The officer's day, end to end in a real browser: an e-mail arrives through the SMTP
receiver, the officer (signed in with a second factor) answers it from the inbox, opens a
case from it, resolves the case, and the resident's timeline shows all of it. Every staff
page on the way is checked with axe-core and photographed."""

from __future__ import annotations

import re
import smtplib
import time
from email.message import EmailMessage

import pytest

from channels.models import Channel, OutboundMessage, Thread
from channels.smtp_receiver import SmtpReceiver
from citizenhub.catalogue import load_service_catalogue
from citizenhub.models import ServiceCase, Team, TimelineEntry
from citizenhub.staff.access import CASEWORKER, ensure_staff_groups
from tests.channels.sink import free_port, smtp_sink
from tests.e2e.conftest import axe_violations, describe, screenshot
from tests.e2e.staff import officer_with_totp, sign_in

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.mfa_required]

SUBJECT = "Bin not emptied on Mill Lane"


@pytest.fixture(autouse=True)
def private_cache(settings):
    # allauth remembers used TOTP codes in the cache; CI's Redis is shared between runs.
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "e2e"}
    }


def wait_for(condition, *, timeout: float = 15.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def accessible(page, name: str) -> None:
    violations = axe_violations(page)
    assert not violations, f"{name}:\n{describe(violations)}"
    screenshot(page, name)


@pytest.fixture
def officer():
    load_service_catalogue()
    groups = ensure_staff_groups()
    user, secret = officer_with_totp(first_name="Priya", last_name="Shah")
    user.groups.add(groups[CASEWORKER])
    Team.objects.get(slug="waste").members.add(user)
    return user, secret


@pytest.fixture
def mailboxes():
    """The council's inbound SMTP receiver and, for replies, a resident's mail server."""
    with smtp_sink() as (sink, sink_port):
        channel = Channel.objects.create(
            kind="email-smtp",
            slug="contact",
            name="Contact centre mailbox",
            address="contact@northmoor.example",
            settings={
                "smtp_host": "127.0.0.1",
                "smtp_port": sink_port,
                "reply_domain": "in.northmoor.example",
            },
        )
        receiver = SmtpReceiver(channel, host="127.0.0.1", port=free_port(), db_threads=1)
        receiver.start()
        try:
            yield channel, receiver, sink
        finally:
            receiver.stop(grace_seconds=5)


def send_resident_email(port: int) -> None:
    message = EmailMessage()
    message["From"] = "Jane Resident <jane.resident@example.org>"
    message["To"] = "contact@northmoor.example"
    message["Subject"] = SUBJECT
    message["Message-ID"] = "<e2e-bin-1@example.org>"
    message.set_content("Our green bin at 4 Mill Lane was not emptied on Tuesday. Jane")
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.send_message(message)


def test_officer_answers_an_email_opens_and_resolves_a_case(page, live_server, officer, mailboxes):
    user, secret = officer
    _channel, receiver, sink = mailboxes
    sign_in(page, live_server.url, user, secret, next_path="/staff/inbox/")

    # A resident's e-mail arrives through the real SMTP receiver and the ingest pipeline.
    send_resident_email(receiver.port)
    thread = wait_for(
        lambda: Thread.objects.filter(subject=SUBJECT).first(), what="the e-mail to be ingested"
    )
    # The inbox polls: the new conversation appears without a reload.
    page.get_by_role("link", name=SUBJECT).wait_for(timeout=25_000)
    accessible(page, "inbox")

    # Reply in the thread's own channel: the e-mail reaches the resident's mail server.
    page.get_by_role("link", name=SUBJECT).click()
    page.get_by_label(re.compile("Reply to")).fill(
        "Sorry about that: the crew will come back tomorrow."
    )
    page.get_by_role("button", name="Send reply").click()
    wait_for(lambda: len(sink.received) >= 1, what="the reply to reach the SMTP sink")
    reply = sink.received[0]
    assert reply.rcpt_tos == ["jane.resident@example.org"]
    assert "crew will come back tomorrow" in reply.message.get_payload(decode=False)
    accessible(page, "thread")

    # Open a case from the message; its page is one click away.
    page.get_by_label("Service").select_option(label="Missed bin collection")
    page.get_by_role("button", name="Open case").click()
    case = wait_for(lambda: ServiceCase.objects.filter(threads=thread).first(), what="the case")
    assert re.fullmatch(r"CH-\d{4}-\d{6}", case.reference)
    page.get_by_role("link", name=case.reference).first.click()
    page.wait_for_url(re.compile(f"/staff/cases/{case.reference}/"))

    # Work it through to resolved; the resolution goes to the resident too.
    page.get_by_role("button", name="Start work").click()
    page.get_by_text("Resolve", exact=True).first.click()
    page.get_by_label("Resolution").fill(
        "Collected on Wednesday morning. Thank you for telling us."
    )
    page.get_by_role("button", name="Resolve").click()
    page.get_by_text("Resolved").first.wait_for()
    case.refresh_from_db()
    assert case.status == ServiceCase.Status.RESOLVED
    wait_for(lambda: len(sink.received) >= 2, what="the resolution e-mail")
    assert "Collected on Wednesday morning" in sink.received[1].message.get_payload(decode=False)
    accessible(page, "case")

    # The resident's single timeline holds the whole story.
    citizen = thread.citizen
    kinds = set(TimelineEntry.objects.filter(citizen=citizen).values_list("kind", flat=True))
    assert {"message_in", "message_out", "case"} <= kinds
    page.goto(f"{live_server.url}/staff/citizens/{citizen.public_id}/")
    main = page.locator("main")
    assert SUBJECT in main.inner_text()
    assert "crew will come back tomorrow" in main.inner_text()
    assert f"Case {case.reference} opened" in main.inner_text()
    assert f"Case {case.reference} resolved" in main.inner_text()
    accessible(page, "citizen-360")
    assert OutboundMessage.objects.filter(thread=thread, status="sent").count() == 2

    # The other staff pages pass the same accessibility check.
    for name, path in (
        ("search", "/staff/search/?q=Jane"),
        ("case-queue", "/staff/cases/?scope=team"),
        ("insight", "/staff/insight/"),
    ):
        page.goto(f"{live_server.url}{path}")
        assert page.locator("h1").first.is_visible()
        accessible(page, name)
