"""Opting out always works, and at once: texts offer a way out (campaign readiness), a text
saying STOP stops every non-essential text (engagement.stop_words), one-click unsubscribe
from a bulletin leaves all its topics, messages already materialised are suppressed on
unsubscribe and erasure, old confirmation links stay dead after a merge, and the
preference page shows the ledger's truth (and internal topics the resident can leave)."""

from __future__ import annotations

import datetime
import logging
from types import SimpleNamespace

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.utils import timezone

from channels.models import Channel, InboundMessage, OutboundMessage
from channels.services.ingest import inbound_messages_processed
from citizenhub.errors import ApplicationError
from citizenhub.models import ContactPoint
from citizenhub.services import citizen_create, citizen_merge
from engagement import campaigns, stop_words, subscriptions, tokens
from engagement.models import (
    Campaign,
    CampaignResponse,
    ConsentRecord,
    Delivery,
    Subscription,
    Topic,
)
from engagement.services import erase_subscriptions, has_consent, record_consent
from engagement.subscriptions import (
    confirm_subscription,
    confirmation_problem,
    subscribe,
    unsubscribe,
)
from tests.engagement.campaign_support import comms_officer, draft, subscriber
from tests.engagement.campaign_support import topic as campaign_topic

pytestmark = pytest.mark.django_db
NUMBER = "+447700900123"


@pytest.fixture(autouse=True)
def site(settings):
    settings.SITE_URL = "http://testserver"


def make_topic(slug: str, name: str, **fields) -> Topic:
    return Topic.objects.create(
        slug=slug, name=name, consent_wording=f"Send me {name.lower()}.", **fields
    )


def add_phone(citizen, number: str = NUMBER) -> ContactPoint:
    return ContactPoint.objects.create(
        citizen=citizen,
        kind="phone",
        value=number,
        normalised=number,
        match_key=number,
        is_primary=True,
        verification_level="confirmed",
    )


def confirmed(citizen, topic, channel="email") -> Subscription:
    pending = subscribe(citizen=citizen, topic=topic, channel=channel, source="portal")
    return confirm_subscription(subscription_id=pending.pk)[0]


def campaign_with(*topics, message_class="informational", channels=("email",), **fields):
    campaign = Campaign.objects.create(
        title="Bulletin",
        message_class=message_class,
        channels=list(channels),
        email_subject="News",
        email_text="Hello",
        sms_text="Hello {{ unsubscribe_url }}",
        **{"status": Campaign.Status.SENDING, **fields},
    )
    campaign.topics.set(topics)
    return campaign


def delivery(campaign, citizen, channel="email", status=Delivery.Status.PENDING) -> Delivery:
    return Delivery.objects.create(
        campaign=campaign, citizen=citizen, channel=channel, to_value="x", status=status
    )


# --- 1. Every marketing text offers a way out ---------------------------------------------


def test_a_non_essential_text_without_an_unsubscribe_link_cannot_go_for_approval():
    author = comms_officer()
    campaign = draft(author, channels=["email", "sms"], sms_text="Bins on Tuesdays now.")
    subscriber(campaign_topic())
    problems = campaigns.campaign_problems(campaign)
    assert any("{{ unsubscribe_url }}" in problem for problem in problems), problems
    with pytest.raises(ApplicationError) as caught:
        campaigns.campaign_submit(campaign=campaign, officer=author)
    assert caught.value.code == "not_ready"

    campaign.sms_text = "Bins on Tuesdays now. Stop: {{unsubscribe_url}}"
    assert campaigns.campaign_problems(campaign) == []
    # Essential service messages are not marketing: no opt-out needed.
    campaign.sms_text = "Bins on Tuesdays now."
    campaign.message_class = "essential"
    assert campaigns.campaign_problems(campaign) == []


# --- 1. STOP by text ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "STOP",
        " stop ",
        "Stop.",
        "stop all",
        "STOPALL",
        "Unsubscribe!",
        "end",
        "Cancel",
        "QUIT",
        "Stopio",
        "dad-danysgrifio",
        "Dad  danysgrifio",
        "opt out",
    ],
)
def test_stop_words_are_the_whole_message_in_any_case(text):
    assert stop_words.is_stop_message(text)


@pytest.mark.parametrize(
    "text", ["", "Stop the roadworks outside my house", "please stop", "stopping", "STOP?!x"]
)
def test_other_messages_are_not_stop_words(text):
    assert not stop_words.is_stop_message(text)


@pytest.fixture
def sms_channel():
    return Channel.objects.create(kind="sms-notify", slug="texts", name="Texts")


@pytest.fixture
def texter():
    citizen = citizen_create(given_name="Rhian", family_name="Evans")
    ContactPoint.objects.create(
        citizen=citizen,
        kind="email",
        value="r@example.org",
        normalised="r@example.org",
        match_key="r@example.org",
        verification_level="confirmed",
    )
    add_phone(citizen)
    return citizen


def inbound(channel, citizen, text, sender=NUMBER) -> InboundMessage:
    return InboundMessage.objects.create(
        channel=channel,
        external_id=f"in-{InboundMessage.objects.count() + 1}",
        raw=b"",
        status="processed",
        classification="message",
        sender_kind="phone",
        sender_value=sender,
        body_text=text,
        citizen=citizen,
    )


def processed(*messages) -> None:
    """What channels' ingest does after a batch: the real signal, every receiver."""
    inbound_messages_processed.send(
        sender=InboundMessage,
        message_ids=[m.pk for m in messages],
        routing={},
        new_thread_ids=frozenset(),
    )


def test_texting_stop_unsubscribes_from_every_non_essential_text_and_confirms(
    sms_channel, texter, django_capture_on_commit_callbacks
):
    bins, events = make_topic("bins", "Bin news"), make_topic("events", "Events")
    confirmed(texter, bins, "sms")
    confirmed(texter, events, "sms")
    by_email = confirmed(texter, bins, "email")
    news = campaign_with(bins, channels=("sms",))
    essential = campaign_with(bins, message_class="essential", channels=("sms",))
    waiting = delivery(news, texter, "sms")
    must_go = delivery(essential, texter, "sms")

    with django_capture_on_commit_callbacks() as callbacks:
        processed(inbound(sms_channel, texter, "Stop"))

    assert set(
        Subscription.objects.filter(citizen=texter, channel="sms").values_list("status", flat=True)
    ) == {"unsubscribed"}
    assert Subscription.objects.get(pk=by_email.pk).status == "active"  # e-mail is not texts
    assert not has_consent(texter, "bins", "sms") and has_consent(texter, "bins", "email")
    withdrawal = ConsentRecord.objects.filter(action="withdrawn", purpose="events").get()
    assert "STOP" in withdrawal.wording and withdrawal.actor_label == stop_words.STOP_ACTOR
    # Already materialised: the bulletin is suppressed, the essential message is not.
    assert Delivery.objects.get(pk=waiting.pk).status == "suppressed"
    assert Delivery.objects.get(pk=must_go.pk).status == "pending"
    # One confirmation, queued on the channel the STOP came in on, sent after commit.
    (reply,) = OutboundMessage.objects.filter(citizen=texter)
    assert (reply.channel, reply.to_value, reply.status) == (sms_channel, NUMBER, "queued")
    assert "you will not get council updates by text message" in reply.body_text
    assert len(callbacks) == 1


def test_a_second_stop_changes_nothing_and_sends_nothing(sms_channel, texter):
    confirmed(texter, make_topic("bins", "Bin news"), "sms")
    processed(inbound(sms_channel, texter, "STOP"))
    ledger = ConsentRecord.objects.count()
    processed(inbound(sms_channel, texter, "stop"), inbound(sms_channel, texter, "STOPIO"))
    assert ConsentRecord.objects.count() == ledger
    assert OutboundMessage.objects.count() == 1


def test_welsh_stop_word_and_several_in_one_batch_count_once(sms_channel, texter):
    confirmed(texter, make_topic("bins", "Bin news"), "sms")
    processed(inbound(sms_channel, texter, "Dad-danysgrifio"), inbound(sms_channel, texter, "STOP"))
    assert Subscription.objects.get(channel="sms").status == "unsubscribed"
    assert OutboundMessage.objects.count() == 1


def test_one_query_when_nothing_in_the_batch_is_a_stop_word(
    sms_channel, texter, django_assert_num_queries
):
    email_channel = Channel.objects.create(
        kind="email-smtp", slug="contact", name="Contact", address="c@council.example"
    )
    confirmed(texter, make_topic("bins", "Bin news"), "sms")
    messages = [
        inbound(sms_channel, texter, "Stop the roadworks please"),
        inbound(email_channel, texter, "STOP"),  # by e-mail: not an SMS opt-out
    ]
    with django_assert_num_queries(1):
        stop_words.on_inbound_messages_processed(None, message_ids=[m.pk for m in messages])
    assert Subscription.objects.get(channel="sms").status == "active"


def test_a_failing_opt_out_never_breaks_ingest(sms_channel, texter, monkeypatch, caplog):
    confirmed(texter, make_topic("bins", "Bin news"), "sms")

    def broken(**kwargs):
        ConsentRecord.objects.create  # noqa: B018 (a write would be rolled back)
        raise RuntimeError("database trouble")

    monkeypatch.setattr(subscriptions, "unsubscribe", broken)
    message = inbound(sms_channel, texter, "STOP")
    with caplog.at_level(logging.ERROR, logger="engagement.stop_words"):
        processed(message)  # does not raise
    assert "opting out after stop word" in caplog.text
    assert InboundMessage.objects.filter(pk=message.pk).exists()
    assert OutboundMessage.objects.count() == 0


def test_stop_is_not_counted_as_an_answer_to_a_campaign(sms_channel, texter):
    campaign = campaign_with(
        channels=("sms",),
        asks_response=True,
        started_at=timezone.now() - datetime.timedelta(hours=1),
    )
    sent = OutboundMessage.objects.create(
        channel=sms_channel, citizen=texter, to_value=NUMBER, body_text="Help?", status="sent"
    )
    Delivery.objects.create(
        campaign=campaign,
        citizen=texter,
        channel="sms",
        to_value=NUMBER,
        status="sent",
        outbound=sent,
    )
    processed(inbound(sms_channel, texter, "STOP"))
    assert not CampaignResponse.objects.exists()
    processed(inbound(sms_channel, texter, "Count me in"))
    assert CampaignResponse.objects.get().text == "Count me in"


# --- 2. One-click unsubscribe from a bulletin to several topics ----------------------------


def one_click(citizen, topic, campaign_id):
    url = tokens.unsubscribe_url(
        tokens.UnsubscribeTarget(citizen.pk, topic.pk, "email", campaign_id)
    )
    return Client(enforce_csrf_checks=True).post(
        url.removeprefix("http://testserver"),
        "List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )


def test_one_click_from_a_bulletin_leaves_every_topic_it_was_sent_to(client, texter):
    bins, roads, events = (
        make_topic("bins", "Bin news"),
        make_topic("roads", "Roadworks"),
        make_topic("events", "Events"),
    )
    for topic in (bins, roads, events):
        confirmed(texter, topic)
    bulletin = campaign_with(bins, roads)
    url = tokens.unsubscribe_url(tokens.UnsubscribeTarget(texter.pk, bins.pk, "email", bulletin.pk))
    page = client.get(url.removeprefix("http://testserver")).content.decode()
    assert "Unsubscribe from Bin news and Roadworks by e-mail?" in page

    response = one_click(texter, bins, bulletin.pk)
    assert response.status_code == 200
    states = dict(Subscription.objects.values_list("topic__slug", "status"))
    assert states == {"bins": "unsubscribed", "roads": "unsubscribed", "events": "active"}
    assert not has_consent(texter, "roads", "email") and has_consent(texter, "events", "email")
    # The next bulletin to both topics reaches nobody through the other one.
    next_one = campaign_with(bins, roads, status=Campaign.Status.APPROVED)
    from engagement.fanout import audience_count

    assert audience_count(next_one) == 0


# --- 3. Messages already materialised stop too --------------------------------------------


def test_unsubscribing_suppresses_unsent_messages_of_the_topics_left(texter):
    bins, events = make_topic("bins", "Bin news"), make_topic("events", "Events")
    confirmed(texter, bins)
    confirmed(texter, events)
    about_bins = delivery(campaign_with(bins), texter)
    held = delivery(campaign_with(bins), texter, status=Delivery.Status.HELD)
    about_events = delivery(campaign_with(events), texter)
    unsubscribe(citizen=texter, topic=bins, channel="email", source="portal")
    assert Delivery.objects.get(pk=about_bins.pk).status == "suppressed"
    assert Delivery.objects.get(pk=held.pk).status == "suppressed"
    assert Delivery.objects.get(pk=about_events.pk).status == "pending"
    assert Delivery.objects.get(pk=about_bins.pk).reason == subscriptions.UNSUBSCRIBED_REASON


def test_erasure_suppresses_every_unsent_non_essential_message(texter):
    bins = make_topic("bins", "Bin news")
    confirmed(texter, bins)
    by_email = delivery(campaign_with(bins), texter)
    by_text = delivery(campaign_with(bins, channels=("sms",)), texter, "sms")
    erase_subscriptions(texter, case=SimpleNamespace(reference="ERA-1"), actor=None)
    assert not Subscription.objects.filter(citizen=texter).exists()
    for row in (by_email, by_text):
        row.refresh_from_db()
        assert row.status == "suppressed" and "ERA-1" in row.reason


# --- 4. Old confirmation links stay dead ---------------------------------------------------


def test_a_link_issued_before_the_latest_unsubscribe_never_confirms(texter):
    bins = make_topic("bins", "Bin news")
    pending = subscribe(citizen=texter, topic=bins, channel="email", source="portal")
    issued = pending.requested_at + datetime.timedelta(seconds=5)
    Subscription.objects.filter(pk=pending.pk).update(
        unsubscribed_at=issued + datetime.timedelta(minutes=1)
    )
    pending.refresh_from_db()
    assert confirmation_problem(pending, link_issued_at=issued) == "superseded"
    later = issued + datetime.timedelta(minutes=2)
    assert confirmation_problem(pending, link_issued_at=later) is None


def test_after_a_merge_a_link_sent_before_the_other_profiles_opt_out_is_refused():
    bins = make_topic("bins", "Bin news")
    survivor = citizen_create(given_name="Megan", family_name="Jones")
    duplicate = citizen_create(given_name="Meg", family_name="Jones")
    for citizen, address in ((survivor, "m@example.org"), (duplicate, "meg@example.org")):
        ContactPoint.objects.create(
            citizen=citizen, kind="email", value=address, normalised=address, match_key=address
        )
    two_hours_ago = timezone.now() - datetime.timedelta(hours=2)
    asked = subscribe(citizen=duplicate, topic=bins, channel="email", source="portal")
    Subscription.objects.filter(pk=asked.pk).update(requested_at=two_hours_ago)
    confirmed(survivor, bins)
    unsubscribe(citizen=survivor, topic=bins, channel="email", source="portal")  # later

    citizen_merge(survivor=survivor, duplicate=duplicate, by=None, reason="Same person")

    merged = Subscription.objects.get(topic=bins)
    assert merged.status == "pending" and merged.requested_at > two_hours_ago
    with pytest.raises(ApplicationError) as caught:
        confirm_subscription(
            subscription_id=merged.pk, link_issued_at=two_hours_ago + datetime.timedelta(seconds=1)
        )
    assert caught.value.code == "superseded"
    assert not has_consent(survivor, "bins", "email")


# --- 5. The preference page shows the ledger's truth; internal topics can be left ----------


def test_an_active_subscription_withdrawn_in_the_ledger_shows_as_not_subscribed(
    resident_client, resident, django_capture_on_commit_callbacks
):
    citizen = resident.citizen
    bins = make_topic("bins", "Bin news", kind="service")
    sub = confirmed(citizen, bins)
    record_consent(
        citizen=citizen,
        purpose="bins",
        channel="email",
        action="withdrawn",
        wording="Withdrawn by the council's CRM",
        wording_version="1",
        source="api",
    )
    assert Subscription.objects.get(pk=sub.pk).status == "active"
    page = resident_client.get("/my/preferences/").content.decode()
    box = f'value="bins:email" aria-describedby="subscription-{bins.pk}-email-status"'
    assert f"{box}>" in page and f"{box} checked>" not in page
    assert "Not subscribed" in page
    # Saving without the box: nothing comes back.
    resident_client.post("/my/preferences/", {})
    assert not has_consent(citizen, "bins", "email")
    # Ticking it: a new request the resident confirms, not a silent re-subscription.
    with django_capture_on_commit_callbacks(execute=True):
        resident_client.post("/my/preferences/", {"subscriptions": ["bins:email"]})
    assert Subscription.objects.get(pk=sub.pk).status == "pending"
    assert not has_consent(citizen, "bins", "email")


def test_internal_topics_appear_only_to_their_subscribers_who_can_leave_them(
    resident_client, resident, other_resident
):
    hidden = make_topic("staff-list", "Tenants panel", is_public=False)
    make_topic("bins", "Bin news")
    sub = confirmed(resident.citizen, hidden)
    page = resident_client.get("/my/preferences/").content.decode()
    assert "Tenants panel" in page and 'value="staff-list:email"' in page

    other = Client()
    other.force_login(other_resident)
    assert "Tenants panel" not in other.get("/my/preferences/").content.decode()

    response = resident_client.post("/my/preferences/", {})  # unticked: leave it
    assert response.status_code == 302
    assert Subscription.objects.get(pk=sub.pk).status == "unsubscribed"
    # Gone from the choices (the history still shows the withdrawal).
    assert (
        'value="staff-list:email"' not in resident_client.get("/my/preferences/").content.decode()
    )


def test_an_internal_topic_cannot_be_joined_on_another_channel(resident_client, resident):
    hidden = make_topic("staff-list", "Tenants panel", is_public=False)
    confirmed(resident.citizen, hidden)
    add_phone(resident.citizen)
    response = resident_client.post(
        "/my/preferences/", {"subscriptions": ["staff-list:email", "staff-list:sms"]}
    )
    assert response.status_code == 400
    assert "does not offer it to new subscribers" in response.content.decode()
    assert not Subscription.objects.filter(channel="sms").exists()


def test_a_test_text_never_goes_to_a_number_a_resident_removed():
    author = comms_officer()
    campaign = draft(
        author, channels=["email", "sms"], sms_text="Bins on Tuesday {{ unsubscribe_url }}"
    )
    resident = citizen_create(given_name="Rhian", family_name="Evans")
    point = add_phone(resident)
    ContactPoint.objects.filter(pk=point.pk).update(removed_at=timezone.now())
    with pytest.raises(ValidationError) as caught:
        campaigns.campaign_test_send(
            campaign=campaign, officer=author, channel="sms", to_phone="07700 900123"
        )
    assert "resident's record" in str(caught.value)
