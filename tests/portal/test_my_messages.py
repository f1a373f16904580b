"""My messages: the resident's conversations across channels, each conversation's messages
in and out (text only), the /my/ section and the messages in the data export."""

from __future__ import annotations

import datetime
import json
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from channels.models import Channel, InboundMessage, OutboundMessage, Thread
from channels.portal.export import export_messages
from citizenhub.portal.registry import export_sections, my_sections
from citizenhub.services.cases import open_case
from tests.factories import ServiceFactory

pytestmark = pytest.mark.django_db

NOW = timezone.now()


@pytest.fixture
def mailbox():
    return Channel.objects.create(kind="email-smtp", slug="contact", name="Contact centre")


@pytest.fixture
def textline():
    return Channel.objects.create(kind="sms-notify", slug="notify", name="Council text line")


def conversation(channel, citizen, subject, *, minutes_ago=0, case=None) -> Thread:
    return Thread.objects.create(
        channel=channel,
        citizen=citizen,
        subject=subject,
        case=case,
        last_message_at=NOW - datetime.timedelta(minutes=minutes_ago),
    )


def received(thread, text, *, minutes_ago=10, classification="message", **fields):
    return InboundMessage.objects.create(
        channel=thread.channel,
        thread=thread,
        citizen=thread.citizen,
        external_id=f"ext-{InboundMessage.objects.count()}",
        raw=b"X-Secret-Header: raw payload\r\n\r\nraw body",
        status="processed",
        classification=classification,
        subject=thread.subject,
        body_text=text,
        received_at=NOW - datetime.timedelta(minutes=minutes_ago),
        **fields,
    )


def sent(thread, text, *, minutes_ago=5, status="sent"):
    return OutboundMessage.objects.create(
        channel=thread.channel,
        thread=thread,
        citizen=thread.citizen,
        to_value="someone@example.org",
        subject=f"Re: {thread.subject}",
        body_text=text,
        status=status,
        created_at=NOW - datetime.timedelta(minutes=minutes_ago),
    )


def text_of(response) -> str:
    return re.sub(r"\s+", " ", response.content.decode())


def test_my_messages_lists_the_residents_conversations_across_channels(
    resident_client, resident, other_resident, mailbox, textline
):
    bins = ServiceFactory(code="bins", name="Bins")
    case = open_case(service=bins, title="Missed bin", citizen=resident.citizen)
    email = conversation(mailbox, resident.citizen, "Missed bin", minutes_ago=30, case=case)
    text = conversation(textline, resident.citizen, "Parking permit", minutes_ago=5)
    theirs = conversation(mailbox, other_resident.citizen, "Gareth's noise complaint")

    response = resident_client.get(reverse("my-messages:list"))

    assert response.status_code == 200
    page = text_of(response)
    assert page.index("Parking permit") < page.index("Missed bin")  # newest first
    assert "Text message" in page and "E-mail" in page
    assert f'href="/my/cases/{case.reference}/"' in page
    assert f'href="/my/messages/{email.pk}/"' in page and f'href="/my/messages/{text.pk}/"' in page
    assert "Gareth" not in page and f"/my/messages/{theirs.pk}/" not in page


def test_my_messages_can_show_the_conversations_of_one_case(resident_client, resident, mailbox):
    bins = ServiceFactory(code="bins", name="Bins")
    case = open_case(service=bins, title="Missed bin", citizen=resident.citizen)
    conversation(mailbox, resident.citizen, "About the bin", case=case)
    conversation(mailbox, resident.citizen, "About parking")
    page = text_of(resident_client.get(reverse("my-messages:list") + f"?case={case.reference}"))
    assert "About the bin" in page and "About parking" not in page


def test_my_messages_keeps_a_constant_query_count(
    resident_client, resident, mailbox, django_assert_max_num_queries
):
    for n in range(3):
        conversation(mailbox, resident.citizen, f"Subject {n}", minutes_ago=n)
    with django_assert_max_num_queries(20) as few:
        resident_client.get(reverse("my-messages:list"))
    for n in range(40):
        conversation(mailbox, resident.citizen, f"More {n}", minutes_ago=100 + n)
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = resident_client.get(reverse("my-messages:list"))
    assert response.content.decode().count('href="/my/messages/') == 20


def test_a_conversation_shows_both_directions_as_text_only(resident_client, resident, mailbox):
    thread = conversation(mailbox, resident.citizen, "Missed bin")
    received(thread, "My bin was not emptied.", minutes_ago=20, summary_text="")
    sent(thread, "We will collect it tomorrow.", minutes_ago=10)
    received(thread, "Out of office", minutes_ago=8, classification="auto_reply")
    sent(thread, "Could not deliver", minutes_ago=5, status="failed")

    response = resident_client.get(reverse("my-messages:thread", args=[thread.pk]))

    assert response.status_code == 200
    page = text_of(response)
    assert page.index("My bin was not emptied.") < page.index("We will collect it tomorrow.")
    assert "You wrote" in page and "could not be delivered" in page
    assert "X-Secret-Header" not in page and "raw body" not in page
    assert "Out of office" not in page


def test_the_residents_own_sensitive_conversation_is_shown(resident_client, resident, mailbox):
    care = ServiceFactory(code="care", name="Adult social care", is_sensitive=True)
    case = open_case(service=care, title="Help at home", citizen=resident.citizen)
    thread = conversation(mailbox, resident.citizen, "Care visits", case=case)
    received(thread, "The carer did not come.")
    page = text_of(resident_client.get(reverse("my-messages:thread", args=[thread.pk])))
    assert "The carer did not come." in page


def test_another_residents_conversation_is_not_found(resident_client, other_resident, mailbox):
    theirs = conversation(mailbox, other_resident.citizen, "Gareth's")
    assert resident_client.get(reverse("my-messages:thread", args=[theirs.pk])).status_code == 404
    assert resident_client.post(reverse("my-messages:thread", args=[theirs.pk])).status_code == 404
    assert resident_client.get("/my/messages/99999999/").status_code == 404


def test_my_messages_needs_a_signed_in_resident(client):
    assert client.get(reverse("my-messages:list")).status_code == 302


def test_my_messages_is_a_section_of_my_account_and_of_the_export():
    assert "messages" in {section.key for section in my_sections()}
    section = next(s for s in my_sections() if s.key == "messages")
    assert section.url_name == "my-messages:list" and reverse(section.url_name)
    providers = {key: provider for key, _title, provider in export_sections()}
    assert providers["messages"] is export_messages


def test_the_export_has_every_conversation_and_message_as_json(
    resident, other_resident, mailbox, textline
):
    bins = ServiceFactory(code="bins", name="Bins")
    case = open_case(service=bins, title="Missed bin", citizen=resident.citizen)
    email = conversation(mailbox, resident.citizen, "Missed bin", case=case)
    received(email, "Full text with the quoted part", summary_text="Full text")
    sent(email, "We will collect it.")
    sms = conversation(textline, resident.citizen, "Parking")
    received(sms, "Is my permit ready?")
    # A message that never joined a conversation is still the resident's.
    InboundMessage.objects.create(
        channel=mailbox,
        citizen=resident.citizen,
        external_id="loose",
        raw=b"raw",
        classification="message",
        body_text="A loose message",
    )
    theirs = conversation(mailbox, other_resident.citizen, "Gareth's")
    received(theirs, "Gareth's words")

    data = export_messages(resident.citizen)

    dumped = json.dumps(data)  # JSON-serialisable as it is
    assert "Gareth" not in dumped
    assert "X-Secret-Header" not in dumped and "raw payload" not in dumped
    by_subject = {c["subject"]: c for c in data["conversations"]}
    assert set(by_subject) == {"Missed bin", "Parking"}
    missed = by_subject["Missed bin"]
    assert missed["channel"] == "E-mail" and missed["case_reference"] == case.reference
    assert [(m["direction"], m["text"]) for m in missed["messages"]] == [
        ("in", "Full text with the quoted part"),
        ("out", "We will collect it."),
    ]
    assert by_subject["Parking"]["messages"][0]["channel"] == "Text message"
    datetime.datetime.fromisoformat(missed["messages"][0]["date"])
    assert [m["text"] for m in data["other_messages"]] == ["A loose message"]
