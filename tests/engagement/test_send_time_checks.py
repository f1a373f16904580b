"""Sending checks each batch again: a resident who unsubscribes, withdraws consent, asks not
to be contacted, is erased or merged into an opted-out profile, or opens a sensitive case
between the fan-out and the send gets nothing; texts wait while quiet hours are in force;
essential messages are checked only for a live profile and a deliverable address; and
unsubscribing or erasure can stop unsent deliveries at once (suppress_unsent_deliveries)."""

from __future__ import annotations

import datetime
import zoneinfo

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from channels.models import Channel, OutboundMessage
from citizenhub.models import Citizen, ContactPoint, ServiceCase
from citizenhub.services import citizen_merge
from engagement import sending
from engagement.fanout import materialise_deliveries
from engagement.models import Campaign, ContactRule, Delivery, Subscription, Topic
from engagement.rules import DO_NOT_CONTACT_REASON, release_held_deliveries
from tests.engagement.test_fanout import consent, make_campaign, make_topic
from tests.engagement.test_fanout import subscriber as fanout_subscriber
from tests.factories import EmailContactPointFactory, ServiceCaseFactory, ServiceFactory

pytestmark = pytest.mark.django_db

LONDON = zoneinfo.ZoneInfo("Europe/London")
_TODAY = timezone.localdate()
EVENING = datetime.datetime.combine(_TODAY, datetime.time(20, 59), LONDON)
NIGHT = datetime.datetime.combine(_TODAY, datetime.time(21, 30), LONDON)
SMALL_HOURS = datetime.datetime.combine(
    _TODAY + datetime.timedelta(days=1), datetime.time(3, 0), LONDON
)
MORNING = datetime.datetime.combine(
    _TODAY + datetime.timedelta(days=1), datetime.time(8, 30), LONDON
)
NOON = datetime.datetime.combine(_TODAY, datetime.time(12, 0), LONDON)


@pytest.fixture(autouse=True)
def accounts(settings):
    """Sending accounts for both channels; nothing is really sent (after-commit sending is
    never run here), so they point nowhere."""
    settings.SITE_URL = "https://council.example"
    Channel.objects.create(kind="email-smtp", slug="news", name="News", address="n@x.example")
    Channel.objects.create(kind="sms-notify", slug="texts", name="Texts", address="NORTHMOOR")


@pytest.fixture
def topic() -> Topic:
    return make_topic("bin-collections")


@pytest.fixture
def quiet() -> ContactRule:
    return ContactRule.objects.create(
        name="Quiet nights",
        kind=ContactRule.Kind.QUIET_HOURS,
        quiet_start=datetime.time(21, 0),
        quiet_end=datetime.time(8, 0),
    )


@pytest.fixture
def care():
    return ServiceFactory(code="adult-social-care")


@pytest.fixture
def care_hold(care) -> ContactRule:
    return ContactRule.objects.create(
        name="Sensitive cases",
        kind=ContactRule.Kind.SENSITIVE_CASE_HOLD,
        service_codes=["adult-social-care"],
    )


def subscriber(topic: Topic, **kwargs) -> Citizen:
    """A subscriber whose subscription was confirmed (essential campaigns need that)."""
    citizen = fanout_subscriber(topic, **kwargs)
    Subscription.objects.filter(citizen=citizen, topic=topic).update(confirmed_at=timezone.now())
    return citizen


def sending_campaign(*topics: Topic, now=None, **fields) -> Campaign:
    """A campaign started (fan-out written) and now SENDING."""
    campaign = make_campaign(*topics, **fields)
    materialise_deliveries(campaign=campaign, now=now)
    Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.SENDING)
    campaign.refresh_from_db()
    return campaign


def send(campaign: Campaign, django_capture_on_commit_callbacks, now=None, **kwargs) -> int:
    with django_capture_on_commit_callbacks(execute=False):
        return sending.queue_deliveries(campaign=campaign, now=now or NOON, **kwargs)


def delivery(campaign: Campaign, citizen: Citizen, channel: str = "email") -> Delivery:
    return Delivery.objects.get(campaign=campaign, citizen=citizen, channel=channel)


def assert_not_sent(row: Delivery, reason: str, status: str = Delivery.Status.SUPPRESSED):
    assert (row.status, row.reason) == (status, reason)
    assert row.outbound_id is None
    assert not OutboundMessage.objects.filter(citizen_id=row.citizen_id).exists()


# --- Changes of mind between the fan-out and the send -----------------------------------------


def test_a_resident_who_unsubscribed_since_the_fanout_gets_nothing(
    topic, django_capture_on_commit_callbacks
):
    leaving, staying = subscriber(topic), subscriber(topic)
    campaign = sending_campaign(topic)
    Subscription.objects.filter(citizen=leaving).update(status=Subscription.Status.UNSUBSCRIBED)

    assert send(campaign, django_capture_on_commit_callbacks) == 1
    row = delivery(campaign, leaving)
    assert_not_sent(row, "Unsubscribed before sending")
    assert row.rule_id is None and row.finished_at
    assert delivery(campaign, staying).status == Delivery.Status.QUEUED


@pytest.mark.parametrize("message_class", ["informational", "promotional"])
def test_a_consent_withdrawn_in_the_ledger_stops_the_message(
    topic, message_class, django_capture_on_commit_callbacks
):
    # The subscription is left active (a withdrawal through the API, on erasure, a merge):
    # the ledger wins.
    withdrawn = subscriber(topic)
    subscriber(topic)
    campaign = sending_campaign(topic, message_class=message_class)
    consent(withdrawn, topic, "withdrawn")

    assert send(campaign, django_capture_on_commit_callbacks) == 1
    assert_not_sent(delivery(campaign, withdrawn), "Consent withdrawn before sending")


def test_a_subscription_to_another_of_the_campaigns_topics_still_counts(
    topic, django_capture_on_commit_callbacks
):
    roads = make_topic("road-works")
    resident = subscriber(topic)
    subscriber(roads, citizen=resident)
    campaign = sending_campaign(topic, roads)
    Subscription.objects.filter(citizen=resident, topic=topic).update(
        status=Subscription.Status.UNSUBSCRIBED
    )
    assert send(campaign, django_capture_on_commit_callbacks) == 1
    assert delivery(campaign, resident).status == Delivery.Status.QUEUED


def test_asking_not_to_be_contacted_since_the_fanout_stops_the_message(
    topic, django_capture_on_commit_callbacks
):
    resident = subscriber(topic)
    campaign = sending_campaign(topic)
    Citizen.objects.filter(pk=resident.pk).update(do_not_contact=True)
    assert send(campaign, django_capture_on_commit_callbacks) == 0
    assert_not_sent(delivery(campaign, resident), DO_NOT_CONTACT_REASON)


def test_an_erased_profile_gets_nothing(topic, django_capture_on_commit_callbacks):
    resident = subscriber(topic)
    campaign = sending_campaign(topic)
    Citizen.objects.filter(pk=resident.pk).update(status=Citizen.Status.ERASED)
    assert send(campaign, django_capture_on_commit_callbacks) == 0
    assert_not_sent(delivery(campaign, resident), sending.NOT_LIVE_REASON)


def test_merged_into_an_opted_out_profile_gets_nothing(topic, django_capture_on_commit_callbacks):
    opted_out = subscriber(topic)
    Subscription.objects.filter(citizen=opted_out).update(status=Subscription.Status.UNSUBSCRIBED)
    consent(opted_out, topic, "withdrawn")
    duplicate = subscriber(topic)
    campaign = sending_campaign(topic)
    assert delivery(campaign, duplicate).status == Delivery.Status.PENDING

    citizen_merge(survivor=opted_out, duplicate=duplicate, by=None, reason="Same person")

    assert send(campaign, django_capture_on_commit_callbacks) == 0
    [row] = Delivery.objects.filter(campaign=campaign)
    assert row.citizen_id == opted_out.pk and row.status == Delivery.Status.SUPPRESSED
    assert row.reason in ("Unsubscribed before sending", "Consent withdrawn before sending")
    assert not OutboundMessage.objects.exists()


def test_a_sensitive_case_opened_since_the_fanout_holds_the_message_back(
    topic, care, care_hold, django_capture_on_commit_callbacks
):
    resident = subscriber(topic)
    campaign = sending_campaign(topic)
    ServiceCaseFactory(citizen=resident, service=care, status=ServiceCase.Status.IN_PROGRESS)
    assert send(campaign, django_capture_on_commit_callbacks) == 0
    row = delivery(campaign, resident)
    assert_not_sent(row, "Open adult social care case")
    assert row.rule_id == care_hold.pk


def test_a_text_held_overnight_is_not_sent_to_someone_who_unsubscribed_in_the_night(
    topic, quiet, django_capture_on_commit_callbacks
):
    resident = subscriber(topic, channel="sms")
    campaign = sending_campaign(topic, channels=("sms",), now=NIGHT)
    assert delivery(campaign, resident, "sms").status == Delivery.Status.HELD
    Subscription.objects.filter(citizen=resident).update(status=Subscription.Status.UNSUBSCRIBED)

    assert release_held_deliveries(now=MORNING) == {campaign.pk: 1}
    assert send(campaign, django_capture_on_commit_callbacks, now=MORNING) == 0
    row = delivery(campaign, resident, "sms")
    assert_not_sent(row, "Unsubscribed before sending")
    assert row.rule_id is None


def test_essential_messages_are_checked_only_for_a_live_profile_and_an_address(
    topic, care, care_hold, quiet, django_capture_on_commit_callbacks
):
    changed_mind = subscriber(topic, channel="sms")
    erased = subscriber(topic, channel="sms")
    moved_away = subscriber(topic, channel="sms")
    campaign = sending_campaign(topic, channels=("sms",), message_class="essential")
    assert Delivery.objects.filter(campaign=campaign, status="pending").count() == 3
    Subscription.objects.filter(citizen=changed_mind).update(
        status=Subscription.Status.UNSUBSCRIBED
    )
    consent(changed_mind, topic, "withdrawn", channel="sms")
    Citizen.objects.filter(pk=changed_mind.pk).update(do_not_contact=True)
    ServiceCaseFactory(citizen=changed_mind, service=care)
    Citizen.objects.filter(pk=erased.pk).update(status=Citizen.Status.ERASED)
    ContactPoint.objects.filter(citizen=moved_away).update(removed_at=timezone.now())

    # At night too: service information is not held for quiet hours.
    assert send(campaign, django_capture_on_commit_callbacks, now=NIGHT) == 1
    assert delivery(campaign, changed_mind, "sms").status == Delivery.Status.QUEUED
    assert_not_sent(delivery(campaign, erased, "sms"), sending.NOT_LIVE_REASON)
    gone = delivery(campaign, moved_away, "sms")
    assert gone.status == Delivery.Status.FAILED and "removed" in gone.reason


def test_the_check_costs_the_same_queries_whatever_the_batch(
    care_hold, django_capture_on_commit_callbacks
):
    def queries_for(residents: int) -> int:
        audience = make_topic(f"audience-of-{residents}")
        for _ in range(residents):
            subscriber(audience)
        campaign = sending_campaign(audience)
        with CaptureQueriesContext(connection) as captured:
            assert send(campaign, django_capture_on_commit_callbacks) == residents
        Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.SENT)
        return len(captured)

    assert queries_for(2) == queries_for(12)


# --- Quiet hours at sending time ---------------------------------------------------------------


def test_texts_of_a_campaign_started_just_before_quiet_hours_wait_for_the_morning(
    topic, quiet, django_capture_on_commit_callbacks
):
    resident = subscriber(topic, channel="sms")
    emailed = subscriber(topic)
    campaign = sending_campaign(topic, channels=("email", "sms"), now=EVENING)
    assert set(Delivery.objects.filter(campaign=campaign).values_list("status", flat=True)) == {
        "pending"
    }

    # The send task runs after 21:00 (a queue backlog, the later batches, an outage).
    assert send(campaign, django_capture_on_commit_callbacks, now=NIGHT) == 1
    held = delivery(campaign, resident, "sms")
    assert (held.status, held.rule_id) == (Delivery.Status.HELD, quiet.pk)
    assert held.reason == "Quiet hours 21:00–08:00: held until 08:00"
    assert held.finished_at is None and held.outbound_id is None
    assert delivery(campaign, emailed).status == Delivery.Status.QUEUED
    # Held is unfinished: the campaign keeps sending.
    assert sending.finish_campaigns_if_done([campaign.pk]) == []

    # A backlog at 3 a.m. is still quiet: nothing is released, nothing sent.
    assert release_held_deliveries(now=SMALL_HOURS) == {}
    assert send(campaign, django_capture_on_commit_callbacks, now=SMALL_HOURS) == 0

    assert release_held_deliveries(now=MORNING) == {campaign.pk: 1}
    assert send(campaign, django_capture_on_commit_callbacks, now=MORNING) == 1
    assert delivery(campaign, resident, "sms").status == Delivery.Status.QUEUED
    assert sending.finish_campaigns_if_done([campaign.pk]) == []  # still queued
    Delivery.objects.filter(campaign=campaign).update(status=Delivery.Status.SENT)
    assert sending.finish_campaigns_if_done([campaign.pk]) == [campaign.pk]


def test_pending_texts_found_in_quiet_hours_are_held_not_failed(
    topic, quiet, django_capture_on_commit_callbacks
):
    subscriber(topic, channel="sms")
    campaign = sending_campaign(topic, channels=("sms",), now=NOON)
    assert send(campaign, django_capture_on_commit_callbacks, now=SMALL_HOURS) == 0
    assert Delivery.objects.get(campaign=campaign).status == Delivery.Status.HELD
    assert not OutboundMessage.objects.exists()


# --- Stopping unsent deliveries at once ------------------------------------------------------


def test_suppress_unsent_deliveries_stops_pending_and_held_non_essential_ones(topic, quiet):
    resident = subscriber(topic, channel="sms")
    EmailContactPointFactory(citizen=resident)
    subscriber(topic, citizen=resident)  # e-mail too
    other = subscriber(topic, channel="sms")
    news = sending_campaign(topic, channels=("email", "sms"), now=NOON)
    night_news = sending_campaign(topic, channels=("sms",), now=NIGHT)  # held
    essential = sending_campaign(topic, channels=("sms",), message_class="essential")
    already_queued = sending_campaign(topic, channels=("sms",), now=NOON)
    Delivery.objects.filter(campaign=already_queued).update(status=Delivery.Status.QUEUED)

    stopped = sending.suppress_unsent_deliveries(
        citizen_id=resident.pk, channel="sms", reason="The resident unsubscribed."
    )

    assert stopped == 2
    for campaign in (news, night_news):
        row = delivery(campaign, resident, "sms")
        assert (row.status, row.reason, row.rule_id) == (
            "suppressed",
            "The resident unsubscribed.",
            None,
        )
        assert row.finished_at
    assert delivery(news, resident, "email").status == "pending"  # another channel
    assert delivery(essential, resident, "sms").status == "pending"
    assert delivery(already_queued, resident, "sms").status == "queued"
    assert delivery(news, other, "sms").status == "pending"
    assert (
        sending.suppress_unsent_deliveries(citizen_id=resident.pk, channel="sms", reason="again")
        == 0
    )


def test_suppress_unsent_deliveries_by_topic_keeps_what_the_resident_still_wants(
    topic, django_capture_on_commit_callbacks
):
    roads = make_topic("road-works")
    parks = make_topic("parks")
    resident = subscriber(topic)
    subscriber(roads, citizen=resident)
    subscriber(parks, citizen=resident)
    about_bins = sending_campaign(topic)
    about_bins_and_roads = sending_campaign(topic, roads)
    about_parks = sending_campaign(parks)
    # The caller (unsubscribe) changes the subscriptions first, then stops the messages.
    Subscription.objects.filter(citizen=resident, topic=topic).update(
        status=Subscription.Status.UNSUBSCRIBED
    )

    stopped = sending.suppress_unsent_deliveries(
        citizen_id=resident.pk, channel="email", topic_ids=[topic.pk], reason="Unsubscribed"
    )

    assert stopped == 1
    assert delivery(about_bins, resident).status == "suppressed"
    # Still subscribed to road works, which that campaign is also about.
    assert delivery(about_bins_and_roads, resident).status == "pending"
    assert delivery(about_parks, resident).status == "pending"
    assert (
        sending.suppress_unsent_deliveries(
            citizen_id=resident.pk, channel="email", topic_ids=[], reason="Unsubscribed"
        )
        == 0
    )


def test_suppress_unsent_deliveries_is_one_statement(topic, django_assert_num_queries):
    resident = subscriber(topic)
    for _ in range(3):
        sending_campaign(topic)
    Subscription.objects.filter(citizen=resident).update(status=Subscription.Status.UNSUBSCRIBED)
    with django_assert_num_queries(1):
        assert (
            sending.suppress_unsent_deliveries(
                citizen_id=resident.pk, channel="email", topic_ids=[topic.pk], reason="x"
            )
            == 3
        )
    with django_assert_num_queries(1):
        sending.suppress_unsent_deliveries(citizen_id=resident.pk, channel="email", reason="x")


def test_a_campaign_whose_audience_all_changed_its_mind_is_sent(
    topic, django_capture_on_commit_callbacks
):
    resident = subscriber(topic)
    campaign = sending_campaign(topic)
    Subscription.objects.filter(citizen=resident).update(status=Subscription.Status.UNSUBSCRIBED)
    with django_capture_on_commit_callbacks(execute=True):
        assert sending.queue_deliveries(campaign=campaign, now=NOON) == 0
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.SENT
