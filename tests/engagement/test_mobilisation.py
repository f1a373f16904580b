"""Mobilisation (engagement.mobilisation): replies to a campaign that asks for one are matched
back from inbound messages of any channel (the channels' ingest signal) and counted once."""

from __future__ import annotations

import datetime
import itertools

import pytest
from django.utils import timezone

from channels.models import Channel, InboundMessage, OutboundMessage, Thread
from channels.services.ingest import inbound_messages_processed
from engagement import mobilisation
from engagement.models import Campaign, CampaignResponse, Delivery
from tests.factories import CitizenFactory

pytestmark = pytest.mark.django_db
_numbers = itertools.count(1)


@pytest.fixture
def email_channel():
    return Channel.objects.create(
        kind="email-smtp", slug="contact", name="Contact", address="contact@council.example"
    )


@pytest.fixture
def sms_channel():
    return Channel.objects.create(kind="sms-notify", slug="texts", name="Texts")


def _campaign(**fields) -> Campaign:
    values = {
        "title": "Litter pick volunteers",
        "channels": ["email", "sms"],
        "asks_response": True,
        "response_keyword": "VOLUNTEER",
        "status": Campaign.Status.SENDING,
        "started_at": timezone.now() - datetime.timedelta(days=1),
    }
    values.update(fields)
    return Campaign.objects.create(**values)


def _sent(campaign, citizen, channel, *, to_value, thread=None) -> OutboundMessage:
    """The campaign's message to the citizen, as sending leaves it."""
    outbound = OutboundMessage.objects.create(
        channel=channel,
        citizen=citizen,
        thread=thread,
        to_value=to_value,
        subject="Litter pick" if channel.kind.startswith("email") else "",
        body_text="Can you help? Reply VOLUNTEER.",
        message_id=f"campaign-{next(_numbers)}@council.example",
        status=OutboundMessage.Status.SENT,
    )
    Delivery.objects.create(
        campaign=campaign,
        citizen=citizen,
        channel="email" if channel.kind.startswith("email") else "sms",
        to_value=to_value,
        status=Delivery.Status.SENT,
        outbound=outbound,
    )
    return outbound


def _inbound(channel, citizen, *, text="", sender="", thread=None, **fields) -> InboundMessage:
    return InboundMessage.objects.create(
        channel=channel,
        external_id=f"in-{next(_numbers)}",
        raw=b"",
        status="processed",
        classification="message",
        sender_kind="email" if channel.kind.startswith("email") else "phone",
        sender_value=sender,
        body_text=text,
        citizen=citizen,
        thread=thread,
        **fields,
    )


def _process(*messages):
    """What channels' ingest does after storing a batch: the signal, in the transaction."""
    inbound_messages_processed.send(
        sender=InboundMessage,
        message_ids=[m.pk for m in messages],
        routing={},
        new_thread_ids=frozenset(),
    )


def test_an_email_reply_to_the_campaign_message_counts(email_channel):
    campaign = _campaign(response_keyword="")
    citizen = CitizenFactory()
    outbound = _sent(campaign, citizen, email_channel, to_value="a@example.org")
    reply = _inbound(
        email_channel,
        citizen,
        text="Count me in for Saturday",
        sender="a@example.org",
        in_reply_to=f"<{outbound.message_id}>",
    )
    _process(reply)
    (response,) = CampaignResponse.objects.all()
    assert (response.campaign, response.citizen, response.channel) == (campaign, citizen, "email")
    assert response.inbound_message_id == reply.pk and response.text == "Count me in for Saturday"


def test_a_reply_in_the_campaign_thread_counts(email_channel):
    campaign = _campaign(response_keyword="")
    citizen = CitizenFactory()
    thread = Thread.objects.create(channel=email_channel, citizen=citizen, subject="Litter pick")
    _sent(campaign, citizen, email_channel, to_value="a@example.org", thread=thread)
    _process(_inbound(email_channel, citizen, text="Yes please", thread=thread))
    assert CampaignResponse.objects.get().campaign == campaign


def test_the_keyword_counts_on_any_channel_from_a_recipient(email_channel, sms_channel):
    campaign = _campaign()
    citizen = CitizenFactory()
    _sent(campaign, citizen, email_channel, to_value="a@example.org")
    # A new text (no threading), with the keyword in another case, as a word.
    text = _inbound(sms_channel, citizen, text="volunteer!", sender="+447700900555")
    _process(text)
    response = CampaignResponse.objects.get()
    assert response.channel == "sms" and response.campaign == campaign


def test_the_keyword_must_be_a_word_and_the_sender_a_recipient(email_channel):
    campaign = _campaign()
    recipient, stranger = CitizenFactory(), CitizenFactory()
    _sent(campaign, recipient, email_channel, to_value="a@example.org")
    _process(
        _inbound(email_channel, recipient, text="I am a volunteering type, but busy"),
        _inbound(email_channel, stranger, text="VOLUNTEER"),
        _inbound(email_channel, None, text="VOLUNTEER"),
    )
    assert not CampaignResponse.objects.exists()


def test_a_text_reply_to_the_last_text_we_sent_counts(sms_channel):
    campaign = _campaign(response_keyword="")
    citizen = CitizenFactory()
    _sent(campaign, citizen, sms_channel, to_value="+447700900555")
    _process(_inbound(sms_channel, citizen, text="Yes I can", sender="+447700900555"))
    assert CampaignResponse.objects.get().campaign == campaign


def test_a_text_after_a_later_council_message_is_not_a_response(sms_channel):
    campaign = _campaign(response_keyword="")
    citizen = CitizenFactory()
    outbound = _sent(campaign, citizen, sms_channel, to_value="+447700900555")
    OutboundMessage.objects.filter(pk=outbound.pk).update(
        created_at=timezone.now() - datetime.timedelta(hours=3)
    )
    # The caseworker texted about their missed bin since: the reply answers that.
    OutboundMessage.objects.create(
        channel=sms_channel,
        citizen=citizen,
        to_value="+447700900555",
        body_text="Your bin will be collected tomorrow.",
        created_at=timezone.now() - datetime.timedelta(hours=1),
    )
    _process(_inbound(sms_channel, citizen, text="Thanks", sender="+447700900555"))
    assert not CampaignResponse.objects.exists()


def test_each_message_counts_once(email_channel):
    campaign = _campaign()
    citizen = CitizenFactory()
    _sent(campaign, citizen, email_channel, to_value="a@example.org")
    message = _inbound(email_channel, citizen, text="VOLUNTEER")
    _process(message)
    _process(message)  # a redelivered batch
    assert CampaignResponse.objects.count() == 1
    assert mobilisation.response_count(campaign) == 1


def test_campaigns_not_asking_or_too_old_collect_nothing(email_channel, settings):
    settings.ENGAGEMENT_RESPONSE_WINDOW_DAYS = 30
    citizen = CitizenFactory()
    quiet = _campaign(asks_response=False, response_keyword="")
    old = _campaign(title="Last year", started_at=timezone.now() - datetime.timedelta(days=31))
    draft = _campaign(title="Not sent", status=Campaign.Status.DRAFT, started_at=None)
    for campaign in (quiet, old, draft):
        _sent(campaign, citizen, email_channel, to_value="a@example.org")
    _process(_inbound(email_channel, citizen, text="VOLUNTEER"))
    assert not CampaignResponse.objects.exists()


def test_two_campaigns_with_one_keyword_the_latest_wins(email_channel):
    older = _campaign(title="Spring", started_at=timezone.now() - datetime.timedelta(days=5))
    newer = _campaign(title="Summer")
    citizen = CitizenFactory()
    _sent(older, citizen, email_channel, to_value="a@example.org")
    Delivery.objects.filter(campaign=older).update(
        created_at=timezone.now() - datetime.timedelta(days=5)
    )
    _sent(newer, citizen, email_channel, to_value="a@example.org")
    _process(_inbound(email_channel, citizen, text="VOLUNTEER"))
    assert CampaignResponse.objects.get().campaign == newer


def test_a_failure_never_breaks_ingest(email_channel, monkeypatch, caplog):
    campaign = _campaign()
    citizen = CitizenFactory()
    _sent(campaign, citizen, email_channel, to_value="a@example.org")

    def broken(message_ids):
        raise RuntimeError("boom")

    monkeypatch.setattr(mobilisation, "match_responses", broken)
    _process(_inbound(email_channel, citizen, text="VOLUNTEER"))  # does not raise
    assert "matching campaign responses failed" in caplog.text


def test_no_collecting_campaign_costs_one_query(email_channel, django_assert_num_queries):
    message = _inbound(email_channel, CitizenFactory(), text="VOLUNTEER")
    with django_assert_num_queries(1, exact=False) as captured:
        mobilisation.match_responses([message.pk])
    assert len([q for q in captured.captured_queries if "SAVEPOINT" not in q["sql"]]) == 1
