"""Campaign fan-out: who a campaign reaches by message class, consent and segment, through
which contact point, written once per citizen and channel in a constant number of queries."""

from __future__ import annotations

import datetime
import itertools

import pytest
from django.utils import timezone

from citizenhub.errors import ApplicationError
from citizenhub.models import Citizen, ContactPoint, ServiceCase
from citizenhub.services import citizen_merge
from engagement.fanout import audience_count, clean_segment, materialise_deliveries
from engagement.models import Campaign, ContactRule, Delivery, Subscription, Topic
from engagement.services import record_consent
from tests.factories import (
    AddressFactory,
    CitizenFactory,
    EmailContactPointFactory,
    ServiceCaseFactory,
    ServiceFactory,
    StaffUserFactory,
)

pytestmark = pytest.mark.django_db

_numbers = itertools.count(1000)


# --- helpers, shared with test_rules.py and test_analytics.py --------------------------------


def make_topic(slug: str = "bin-collections", **fields) -> Topic:
    return Topic.objects.create(
        slug=slug,
        name=fields.pop("name", slug.replace("-", " ").capitalize()),
        consent_wording=f"Tell me about {slug}",
        **fields,
    )


def add_phone(citizen: Citizen, *, level: str = "confirmed", **fields) -> ContactPoint:
    number = f"+4477009{next(_numbers):05d}"
    return ContactPoint.objects.create(
        citizen=citizen,
        kind=ContactPoint.Kind.PHONE,
        value=number,
        normalised=number,
        match_key=number,
        is_primary=fields.pop("is_primary", True),
        verification_level=level,
        **fields,
    )


def consent(citizen: Citizen, topic: Topic, action: str, channel: str = "email", at=None):
    return record_consent(
        citizen=citizen,
        purpose=topic.slug,
        channel=channel,
        action=action,
        wording=topic.consent_wording,
        wording_version="1",
        source="portal",
        occurred_at=at,
    )


def subscriber(
    topic: Topic,
    *,
    channel: str = "email",
    status: str = Subscription.Status.ACTIVE,
    consent_action: str | None = "given",
    citizen: Citizen | None = None,
    **citizen_fields,
) -> Citizen:
    """A citizen who can be reached on `channel`, subscribed to `topic` with `status`, and
    (unless consent_action is None) the ledger line a confirmation would have written."""
    if citizen is None:
        citizen = CitizenFactory(**citizen_fields)
        if channel == "email":
            EmailContactPointFactory(citizen=citizen)
        else:
            add_phone(citizen)
    Subscription.objects.create(
        citizen=citizen, topic=topic, channel=channel, status=status, source="portal"
    )
    if consent_action:
        consent(citizen, topic, consent_action, channel=channel)
    return citizen


def make_campaign(
    *topics: Topic,
    message_class: str = "informational",
    channels: tuple[str, ...] = ("email",),
    segment: dict | None = None,
    status: str = Campaign.Status.APPROVED,
) -> Campaign:
    campaign = Campaign.objects.create(
        title=f"Campaign {next(_numbers)}",
        message_class=message_class,
        channels=list(channels),
        segment=segment or {},
        email_subject="News",
        email_text="Hello",
        sms_text="Hello",
        status=status,
    )
    campaign.topics.set(topics)
    return campaign


def delivered_to(campaign: Campaign, status: str | None = None) -> set[tuple[int, str]]:
    rows = Delivery.objects.filter(campaign=campaign)
    if status:
        rows = rows.filter(status=status)
    return set(rows.values_list("citizen_id", "channel"))


def pending(campaign: Campaign) -> set[int]:
    return {citizen for citizen, _ in delivered_to(campaign, Delivery.Status.PENDING)}


@pytest.fixture
def topic():
    return make_topic()


# --- message classes ---------------------------------------------------------------------------


class TestWhoReceivesWhat:
    @pytest.mark.parametrize("message_class", ["informational", "promotional", "essential"])
    def test_pending_subscribers_receive_nothing(self, topic, message_class):
        waiting = subscriber(topic, status=Subscription.Status.PENDING, consent_action=None)
        confirmed = subscriber(topic)
        campaign = make_campaign(topic, message_class=message_class)
        result = materialise_deliveries(campaign=campaign)
        assert delivered_to(campaign) == {(confirmed.pk, "email")}
        assert waiting.pk not in {c for c, _ in delivered_to(campaign)}
        assert (result.created, result.pending) == (1, 1)

    def test_unsubscribed_get_no_informational_or_promotional_but_do_get_essential(self, topic):
        gone = subscriber(topic)
        Subscription.objects.filter(citizen=gone).update(
            status=Subscription.Status.UNSUBSCRIBED, confirmed_at=timezone.now()
        )
        consent(gone, topic, "withdrawn")
        stayed = subscriber(topic)
        # A request that lapsed unconfirmed is no evidence the person is affected.
        lapsed = subscriber(topic, status=Subscription.Status.UNSUBSCRIBED, consent_action=None)
        assert Subscription.objects.get(citizen=lapsed).confirmed_at is None
        for message_class in ("informational", "promotional"):
            campaign = make_campaign(topic, message_class=message_class)
            materialise_deliveries(campaign=campaign)
            assert pending(campaign) == {stayed.pk}, message_class
        essential = make_campaign(topic, message_class="essential")
        materialise_deliveries(campaign=essential)
        assert pending(essential) == {gone.pk, stayed.pk}

    def test_a_withdrawal_wins_over_a_subscription_left_active(self, topic):
        # Erasure and merges write withdrawals to the ledger; the subscription may lag.
        withdrawn = subscriber(topic)
        consent(withdrawn, topic, "withdrawn")
        for message_class in ("informational", "promotional"):
            campaign = make_campaign(topic, message_class=message_class)
            materialise_deliveries(campaign=campaign)
            assert delivered_to(campaign) == set(), message_class
        essential = make_campaign(topic, message_class="essential")
        materialise_deliveries(campaign=essential)
        assert pending(essential) == {withdrawn.pk}

    def test_promotional_needs_the_latest_ledger_line_to_be_given(self, topic):
        now = timezone.now()
        never_asked = subscriber(topic, consent_action=None)
        gave_again = subscriber(topic, consent_action=None)
        consent(gave_again, topic, "withdrawn", at=now - datetime.timedelta(days=2))
        consent(gave_again, topic, "given", at=now - datetime.timedelta(days=1))
        other_channel = subscriber(topic, consent_action=None)
        consent(other_channel, topic, "given", channel="sms")
        promotional = make_campaign(topic, message_class="promotional")
        materialise_deliveries(campaign=promotional)
        assert pending(promotional) == {gave_again.pk}
        informational = make_campaign(topic)
        materialise_deliveries(campaign=informational)
        assert pending(informational) == {never_asked.pk, gave_again.pk, other_channel.pk}

    def test_non_essential_without_topics_reaches_nobody(self, topic):
        subscriber(topic)
        for message_class in ("informational", "promotional"):
            campaign = make_campaign(message_class=message_class)
            assert audience_count(campaign) == 0
            assert materialise_deliveries(campaign=campaign).total == 0

    def test_essential_without_topics_reaches_everyone_in_the_segment(self, topic):
        subscribed = subscriber(topic)
        AddressFactory(citizen=subscribed, ward_code="W05000001")
        unsubscribed_resident = CitizenFactory()
        EmailContactPointFactory(citizen=unsubscribed_resident)
        AddressFactory(citizen=unsubscribed_resident, ward_code="W05000001")
        elsewhere = CitizenFactory()
        EmailContactPointFactory(citizen=elsewhere)
        AddressFactory(citizen=elsewhere, ward_code="W05000002")
        campaign = make_campaign(message_class="essential", segment={"ward_codes": ["W05000001"]})
        assert audience_count(campaign) == 2
        materialise_deliveries(campaign=campaign)
        assert pending(campaign) == {subscribed.pk, unsubscribed_resident.pk}

    def test_inactive_topics_reach_nobody_with_news(self, topic):
        subscriber(topic)
        topic.is_active = False
        topic.save()
        campaign = make_campaign(topic)
        materialise_deliveries(campaign=campaign)
        assert delivered_to(campaign) == set()

    def test_erased_and_merged_profiles_never_get_anything(self, topic):
        erased = subscriber(topic, status=Subscription.Status.ACTIVE)
        Citizen.objects.filter(pk=erased.pk).update(status=Citizen.Status.ERASED)
        live = subscriber(topic)
        campaign = make_campaign(topic, message_class="essential")
        materialise_deliveries(campaign=campaign)
        assert pending(campaign) == {live.pk}

    def test_do_not_contact_suppresses_news_but_not_essential_messages(self, topic):
        resident = subscriber(topic, do_not_contact=True)
        news = make_campaign(topic)
        result = materialise_deliveries(campaign=news)
        delivery = Delivery.objects.get(campaign=news, citizen=resident)
        assert delivery.status == Delivery.Status.SUPPRESSED
        assert (delivery.rule, delivery.reason) == (None, "Asked not to be contacted")
        assert (result.suppressed, result.by_rule) == (1, {None: 1})
        essential = make_campaign(topic, message_class="essential")
        materialise_deliveries(campaign=essential)
        assert pending(essential) == {resident.pk}


class TestMergedProfiles:
    @pytest.mark.parametrize("withdrawn_first", [True, False])
    def test_a_withdrawal_on_the_merged_profile_never_yields_a_promotional_message(
        self, topic, withdrawn_first
    ):
        now = timezone.now()
        survivor = subscriber(topic, consent_action=None)
        duplicate = CitizenFactory()
        # Whichever came later, the merge leaves the survivor withdrawn.
        withdrawn_at, given_at = (
            (now - datetime.timedelta(days=3), now - datetime.timedelta(days=1))
            if withdrawn_first
            else (now - datetime.timedelta(days=1), now - datetime.timedelta(days=3))
        )
        consent(survivor, topic, "given", at=given_at)
        consent(duplicate, topic, "withdrawn", at=withdrawn_at)
        citizen_merge(
            survivor=survivor, duplicate=duplicate, by=StaffUserFactory(), reason="Same person"
        )
        campaign = make_campaign(topic, message_class="promotional")
        materialise_deliveries(campaign=campaign)
        assert delivered_to(campaign) == set()
        assert audience_count(campaign) == 0


class TestContactPoints:
    def test_the_primary_live_deliverable_address_is_used(self, topic):
        resident = subscriber(topic)
        primary = resident.contact_points.get()
        primary.undeliverable_at = timezone.now()
        primary.save()
        spare = EmailContactPointFactory(citizen=resident, is_primary=False)
        EmailContactPointFactory(citizen=resident, is_primary=False, removed_at=timezone.now())
        campaign = make_campaign(topic)
        materialise_deliveries(campaign=campaign)
        delivery = Delivery.objects.get(campaign=campaign)
        assert (delivery.contact_point_id, delivery.to_value) == (spare.pk, spare.normalised)

    def test_nobody_without_a_deliverable_address_gets_a_delivery(self, topic):
        resident = subscriber(topic)
        resident.contact_points.update(removed_at=timezone.now())
        campaign = make_campaign(topic, message_class="essential")
        materialise_deliveries(campaign=campaign)
        assert delivered_to(campaign) == set()

    def test_texts_go_only_to_confirmed_or_staff_checked_numbers(self, topic):
        confirmed = subscriber(topic, channel="sms")
        checked = CitizenFactory()
        add_phone(checked, level="staff_checked")
        subscriber(topic, channel="sms", citizen=checked)
        typed = CitizenFactory()
        add_phone(typed, level="asserted")
        subscriber(topic, channel="sms", citizen=typed)
        campaign = make_campaign(topic, channels=("sms",))
        materialise_deliveries(campaign=campaign)
        assert pending(campaign) == {confirmed.pk, checked.pk}

    def test_one_delivery_per_citizen_and_channel_however_many_topics(self, topic):
        second = make_topic("roadworks")
        resident = subscriber(topic)
        subscriber(second, citizen=resident)
        add_phone(resident)
        subscriber(topic, channel="sms", citizen=resident)
        campaign = make_campaign(topic, second, channels=("email", "sms"))
        result = materialise_deliveries(campaign=campaign)
        assert delivered_to(campaign) == {(resident.pk, "email"), (resident.pk, "sms")}
        assert result.pending == 2
        assert audience_count(campaign) == 1  # people, not deliveries

    def test_essential_messages_go_on_every_campaign_channel_the_person_can_be_reached_on(
        self, topic
    ):
        both = subscriber(topic)
        add_phone(both)
        email_only = subscriber(topic)
        campaign = make_campaign(topic, message_class="essential", channels=("email", "sms"))
        materialise_deliveries(campaign=campaign)
        assert delivered_to(campaign) == {
            (both.pk, "email"),
            (both.pk, "sms"),
            (email_only.pk, "email"),
        }


class TestSegments:
    def test_ward_language_and_open_case_narrow_the_subscribers(self, topic):
        service = ServiceFactory(code="missed-bin")
        match = subscriber(topic, preferred_language="cy")
        AddressFactory(citizen=match, ward_code="W05000001")
        ServiceCaseFactory(citizen=match, service=service, status=ServiceCase.Status.OPEN)
        wrong_language = subscriber(topic, preferred_language="en")
        AddressFactory(citizen=wrong_language, ward_code="W05000001")
        ServiceCaseFactory(citizen=wrong_language, service=service)
        closed_case = subscriber(topic, preferred_language="cy")
        AddressFactory(citizen=closed_case, ward_code="W05000001")
        ServiceCaseFactory(citizen=closed_case, service=service, status=ServiceCase.Status.CLOSED)
        old_address = subscriber(topic, preferred_language="cy")
        AddressFactory(citizen=old_address, ward_code="W05000001", is_primary=False)
        AddressFactory(citizen=old_address, ward_code="W05000009")
        ServiceCaseFactory(citizen=old_address, service=service)
        campaign = make_campaign(
            topic,
            segment={
                "ward_codes": ["W05000001"],
                "languages": ["cy"],
                "open_case_services": ["missed-bin"],
            },
        )
        assert audience_count(campaign) == 1
        materialise_deliveries(campaign=campaign)
        assert pending(campaign) == {match.pk}

    @pytest.mark.parametrize(
        "segment",
        [{"tags": ["carers"]}, {"ward_codes": "W05000001"}, {"languages": [3]}, ["cy"]],
    )
    def test_a_segment_the_fan_out_cannot_honour_is_refused(self, topic, segment):
        subscriber(topic)
        campaign = make_campaign(topic, segment=segment)
        with pytest.raises(ApplicationError):
            audience_count(campaign)
        with pytest.raises(ApplicationError):
            materialise_deliveries(campaign=campaign)
        assert not Delivery.objects.exists()

    def test_clean_segment_drops_repeats(self):
        assert clean_segment({"languages": ["cy", "cy "]}).languages == ("cy",)


class TestRunningIt:
    def test_running_again_writes_nothing_new(self, topic):
        first = subscriber(topic)
        campaign = make_campaign(topic)
        assert materialise_deliveries(campaign=campaign).created == 1
        again = materialise_deliveries(campaign=campaign)
        assert (again.created, again.pending) == (0, 1)
        # A retry while sending adds people who subscribed since, and only them.
        later = subscriber(topic)
        third = materialise_deliveries(campaign=campaign)
        assert (third.created, third.pending) == (1, 2)
        assert pending(campaign) == {first.pk, later.pk}

    @pytest.mark.parametrize(
        "status",
        [
            Campaign.Status.DRAFT,
            Campaign.Status.AWAITING_APPROVAL,
            Campaign.Status.SENT,
            Campaign.Status.CANCELLED,
        ],
    )
    def test_only_approved_or_sending_campaigns_are_fanned_out(self, topic, status):
        subscriber(topic)
        campaign = make_campaign(topic, status=status)
        with pytest.raises(ApplicationError):
            materialise_deliveries(campaign=campaign)
        assert not Delivery.objects.exists()
        assert audience_count(campaign) == 1  # the audience can be counted before approval

    def test_channels_without_a_bulk_sender_are_refused(self, topic):
        campaign = make_campaign(topic, channels=("email", "x"))
        with pytest.raises(ApplicationError):
            materialise_deliveries(campaign=campaign)

    @pytest.mark.parametrize("message_class", ["informational", "essential"])
    def test_queries_do_not_grow_with_the_audience(
        self, message_class, django_assert_max_num_queries
    ):
        counts = []
        ContactRule.objects.create(
            name="Care", kind="sensitive_case_hold", service_codes=["adult-social-care"]
        )
        ContactRule.objects.create(name="Cap", kind="frequency_cap", max_messages=2, period_days=7)
        for size in (5, 200):
            topic = make_topic(f"topic-{size}")
            for _ in range(size):
                subscriber(topic)
            campaign = make_campaign(topic, message_class=message_class)
            with django_assert_max_num_queries(12) as captured:
                result = materialise_deliveries(campaign=campaign)
            assert result.pending == size
            counts.append(len(captured.captured_queries))
        assert counts[0] == counts[1]
