"""Routing rules put inbound messages in a department and service, and tell the casework hook."""

import pytest

from channels.models import InboundMessage, RoutingRule, Thread
from channels.services.ingest import inbound_messages_processed, store_raw_messages
from citizenhub.models import TimelineEntry
from tests.channels.conftest import eml, raw_email

pytestmark = pytest.mark.django_db


@pytest.fixture
def rules(email_channel):
    RoutingRule.objects.create(
        name="Bins by keyword",
        priority=20,
        keywords="bin, recycling",
        department="Waste & Recycling",
        service_code="missed-bin",
    )
    RoutingRule.objects.create(
        name="Planning mailbox", priority=10, recipient_contains="planning@", department="Planning"
    )
    RoutingRule.objects.create(
        name="Catch-all without conditions", priority=1, department="Nowhere"
    )  # ignored: it has no condition


def ingest(channel, capture, data, *recipients):
    with capture(execute=True):
        store_raw_messages(channel=channel, raws=[raw_email(data, *recipients)])


def test_keyword_rule_sets_department_and_service_on_thread_and_timeline(
    email_channel, rules, django_capture_on_commit_callbacks
):
    ingest(email_channel, django_capture_on_commit_callbacks, eml("simple.eml"))
    thread = Thread.objects.get()
    assert (thread.department, thread.service_code) == ("Waste & Recycling", "missed-bin")
    entry = TimelineEntry.objects.get()
    assert (entry.department, entry.service_code) == ("Waste & Recycling", "missed-bin")


def test_address_rule_wins_by_priority(email_channel, rules, django_capture_on_commit_callbacks):
    ingest(
        email_channel,
        django_capture_on_commit_callbacks,
        eml("simple.eml"),
        "planning@northmoor.example",
    )
    assert Thread.objects.get().department == "Planning"


def test_unmatched_message_has_no_department(
    email_channel, rules, django_capture_on_commit_callbacks
):
    ingest(email_channel, django_capture_on_commit_callbacks, eml("misdeclared_charset.eml"))
    assert Thread.objects.get().department == ""


def test_casework_hook_receives_processed_message_ids(
    email_channel, rules, django_capture_on_commit_callbacks
):
    seen = []

    def receiver(sender, message_ids, **kwargs):
        seen.extend(message_ids)

    inbound_messages_processed.connect(receiver)
    try:
        ingest(email_channel, django_capture_on_commit_callbacks, eml("simple.eml"))
        ingest(email_channel, django_capture_on_commit_callbacks, eml("auto_reply.eml"))
    finally:
        inbound_messages_processed.disconnect(receiver)
    assert seen == [InboundMessage.objects.get(classification="message").pk]


def test_web_form_submissions_give_routing_their_text(email_channel, rules):
    from channels.adapters.webform import parse_submission

    parsed = parse_submission(
        b'{"form": "report", "title": "Report a problem", "fields": {"email": "a@b.org", '
        b'"details": "My recycling box was not emptied"}}'
    )
    assert "recycling" in parsed.summary_text
