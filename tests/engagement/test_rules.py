"""Contact rules: each suppresses or holds exactly what it should, with the rule and the
reason recorded; quiet-hours holds are released when the quiet hours end; and the set-based
SQL agrees with a plain Python reading of the same rules on a mixed population."""

from __future__ import annotations

import datetime
import random
import zoneinfo

import pytest
from django.utils import timezone

from citizenhub.models import ContactPoint, ServiceCase
from engagement.fanout import materialise_deliveries
from engagement.models import Campaign, ContactRule, Delivery, Subscription
from engagement.rules import (
    enabled_rules,
    quiet_hours_in_effect,
    quiet_hours_in_force,
    release_held_deliveries,
)
from tests.engagement.test_fanout import add_phone, consent, make_campaign, make_topic, subscriber
from tests.factories import (
    CitizenFactory,
    EmailContactPointFactory,
    ServiceCaseFactory,
    ServiceFactory,
)

pytestmark = pytest.mark.django_db

LONDON = zoneinfo.ZoneInfo("Europe/London")
# Last night and this morning, so deliveries made "days ago" fall in the caps' periods.
_TODAY = timezone.localdate()
NIGHT = datetime.datetime.combine(
    _TODAY - datetime.timedelta(days=1), datetime.time(22, 30), LONDON
)
EARLY = datetime.datetime.combine(_TODAY, datetime.time(7, 0), LONDON)
MORNING = datetime.datetime.combine(_TODAY, datetime.time(8, 30), LONDON)


@pytest.fixture
def topic():
    return make_topic()


@pytest.fixture
def care():
    return ServiceFactory(code="adult-social-care")


@pytest.fixture
def care_hold(care):
    ServiceFactory(code="bereavement")
    return ContactRule.objects.create(
        name="Sensitive cases",
        kind=ContactRule.Kind.SENSITIVE_CASE_HOLD,
        service_codes=["adult-social-care", "bereavement"],
    )


@pytest.fixture
def cap():
    return ContactRule.objects.create(
        name="Two a week", kind=ContactRule.Kind.FREQUENCY_CAP, max_messages=2, period_days=7
    )


@pytest.fixture
def quiet():
    return ContactRule.objects.create(
        name="Quiet nights",
        kind=ContactRule.Kind.QUIET_HOURS,
        quiet_start=datetime.time(21, 0),
        quiet_end=datetime.time(8, 0),
    )


def only_delivery(campaign: Campaign, **filters) -> Delivery:
    return Delivery.objects.get(campaign=campaign, **filters)


def earlier_delivery(citizen, *, days_ago=1, status="sent", message_class="informational", **kw):
    """A delivery of another campaign, as if it had gone `days_ago` days ago."""
    campaign = make_campaign(message_class=message_class, status=Campaign.Status.SENT)
    return Delivery.objects.create(
        campaign=campaign,
        citizen=citizen,
        channel=kw.pop("channel", "email"),
        status=status,
        created_at=timezone.now() - datetime.timedelta(days=days_ago),
        **kw,
    )


class TestSensitiveCaseHold:
    def test_an_open_case_in_a_named_service_suppresses_with_the_reason(
        self, topic, care, care_hold
    ):
        resident = subscriber(topic)
        ServiceCaseFactory(citizen=resident, service=care, status=ServiceCase.Status.IN_PROGRESS)
        campaign = make_campaign(topic)
        result = materialise_deliveries(campaign=campaign)
        delivery = only_delivery(campaign)
        assert delivery.status == Delivery.Status.SUPPRESSED
        assert delivery.rule == care_hold
        assert delivery.reason == "Open adult social care case"
        assert result.by_rule == {care_hold.pk: 1}

    def test_closed_cases_and_other_services_do_not_hold(self, topic, care, care_hold):
        closed = subscriber(topic)
        ServiceCaseFactory(citizen=closed, service=care, status=ServiceCase.Status.CLOSED)
        other_service = subscriber(topic)
        ServiceCaseFactory(citizen=other_service, service=ServiceFactory(code="missed-bin"))
        campaign = make_campaign(topic)
        assert materialise_deliveries(campaign=campaign).pending == 2

    def test_essential_messages_are_not_held(self, topic, care, care_hold):
        resident = subscriber(topic)
        ServiceCaseFactory(citizen=resident, service=care)
        campaign = make_campaign(topic, message_class="essential")
        materialise_deliveries(campaign=campaign)
        assert only_delivery(campaign).status == Delivery.Status.PENDING

    def test_a_disabled_rule_does_nothing(self, topic, care, care_hold):
        care_hold.enabled = False
        care_hold.save()
        resident = subscriber(topic)
        ServiceCaseFactory(citizen=resident, service=care)
        campaign = make_campaign(topic)
        assert materialise_deliveries(campaign=campaign).pending == 1

    def test_a_rule_for_some_channels_leaves_the_others(self, topic, care, care_hold):
        care_hold.channels = ["sms"]
        care_hold.save()
        resident = subscriber(topic)
        add_phone(resident)
        subscriber(topic, channel="sms", citizen=resident)
        ServiceCaseFactory(citizen=resident, service=care)
        campaign = make_campaign(topic, channels=("email", "sms"))
        materialise_deliveries(campaign=campaign)
        assert only_delivery(campaign, channel="email").status == Delivery.Status.PENDING
        assert only_delivery(campaign, channel="sms").status == Delivery.Status.SUPPRESSED


class TestFrequencyCap:
    def test_at_the_limit_further_news_is_suppressed_with_the_count(self, topic, cap):
        capped = subscriber(topic)
        for _ in range(3):
            earlier_delivery(capped)
        at_limit = subscriber(topic)
        for _ in range(2):
            earlier_delivery(at_limit)
        below = subscriber(topic)
        earlier_delivery(below)
        campaign = make_campaign(topic)
        result = materialise_deliveries(campaign=campaign)
        assert only_delivery(campaign, citizen=capped).reason == (
            "3 messages in the last 7 days (limit 2)"
        )
        at_limit_delivery = only_delivery(campaign, citizen=at_limit)
        assert at_limit_delivery.status == Delivery.Status.SUPPRESSED
        assert at_limit_delivery.rule == cap
        assert at_limit_delivery.reason == "2 messages in the last 7 days (limit 2)"
        assert only_delivery(campaign, citizen=below).status == Delivery.Status.PENDING
        assert (result.pending, result.suppressed, result.by_rule) == (1, 2, {cap.pk: 2})

    def test_what_does_not_count(self, topic, cap):
        resident = subscriber(topic)
        earlier_delivery(resident, days_ago=8)  # outside the period
        earlier_delivery(resident, message_class="essential")  # service information
        earlier_delivery(resident, status="suppressed")  # never reached them
        earlier_delivery(resident, status="failed")
        earlier_delivery(resident, status="bounced")
        earlier_delivery(resident)  # the one that counts
        campaign = make_campaign(topic)
        assert materialise_deliveries(campaign=campaign).pending == 1

    def test_a_campaign_on_two_channels_is_one_message(self, topic, cap):
        resident = subscriber(topic)
        bulletin = make_campaign(status=Campaign.Status.SENT)
        for channel in ("email", "sms"):
            Delivery.objects.create(
                campaign=bulletin, citizen=resident, channel=channel, status="delivered"
            )
        campaign = make_campaign(topic)
        assert materialise_deliveries(campaign=campaign).pending == 1
        # The bulletin and the campaign just written (pending deliveries count: they will go).
        later = make_campaign(topic)
        materialise_deliveries(campaign=later)
        assert only_delivery(later).reason == "2 messages in the last 7 days (limit 2)"

    def test_a_limit_of_one_reads_in_the_singular(self, topic, cap):
        cap.max_messages, cap.period_days = 1, 1
        cap.save()
        resident = subscriber(topic)
        earlier_delivery(resident, days_ago=0)
        campaign = make_campaign(topic)
        materialise_deliveries(campaign=campaign)
        assert only_delivery(campaign).reason == "1 message in the last day (limit 1)"

    def test_essential_messages_are_never_capped(self, topic, cap):
        resident = subscriber(topic)
        for _ in range(5):
            earlier_delivery(resident)
        campaign = make_campaign(topic, message_class="essential")
        assert materialise_deliveries(campaign=campaign).pending == 1


class TestQuietHours:
    def test_texts_are_held_at_night_and_e_mails_go(self, topic, quiet):
        resident = subscriber(topic)
        add_phone(resident)
        subscriber(topic, channel="sms", citizen=resident)
        campaign = make_campaign(topic, channels=("email", "sms"))
        result = materialise_deliveries(campaign=campaign, now=NIGHT)
        held = only_delivery(campaign, channel="sms")
        assert (held.status, held.rule) == (Delivery.Status.HELD, quiet)
        assert held.reason == "Quiet hours 21:00–08:00: held until 08:00"
        assert only_delivery(campaign, channel="email").status == Delivery.Status.PENDING
        assert (result.pending, result.held, result.by_rule) == (1, 1, {quiet.pk: 1})

    def test_by_day_texts_go(self, topic, quiet):
        subscriber(topic, channel="sms")
        campaign = make_campaign(topic, channels=("sms",))
        assert materialise_deliveries(campaign=campaign, now=MORNING).pending == 1

    def test_held_texts_are_released_when_the_quiet_hours_end(self, topic, quiet):
        subscriber(topic, channel="sms")
        subscriber(topic, channel="sms")
        campaign = make_campaign(topic, channels=("sms",))
        cancelled = make_campaign(topic, channels=("sms",))
        materialise_deliveries(campaign=campaign, now=NIGHT)
        materialise_deliveries(campaign=cancelled, now=NIGHT)
        Campaign.objects.filter(pk=cancelled.pk).update(status=Campaign.Status.CANCELLED)
        assert release_held_deliveries(now=EARLY) == {}
        assert release_held_deliveries(now=MORNING) == {campaign.pk: 2}
        released = Delivery.objects.filter(campaign=campaign)
        assert {d.status for d in released} == {Delivery.Status.PENDING}
        # The hold stays on record.
        assert {d.rule_id for d in released} == {quiet.pk}
        assert set(
            Delivery.objects.filter(campaign=cancelled).values_list("status", flat=True)
        ) == {Delivery.Status.HELD}
        assert release_held_deliveries(now=MORNING) == {}

    def test_essential_texts_are_not_held(self, topic, quiet):
        subscriber(topic, channel="sms")
        campaign = make_campaign(topic, channels=("sms",), message_class="essential")
        assert materialise_deliveries(campaign=campaign, now=NIGHT).pending == 1

    @pytest.mark.parametrize(
        ("start", "end", "clock", "expected"),
        [
            ((21, 0), (8, 0), (23, 0), True),
            ((21, 0), (8, 0), (7, 59), True),
            ((21, 0), (8, 0), (8, 0), False),
            ((21, 0), (8, 0), (20, 59), False),
            ((13, 0), (14, 0), (13, 30), True),
            ((13, 0), (14, 0), (14, 30), False),
            ((9, 0), (9, 0), (9, 0), False),
        ],
    )
    def test_quiet_hours_may_span_midnight(self, start, end, clock, expected):
        rule = ContactRule(
            kind=ContactRule.Kind.QUIET_HOURS,
            quiet_start=datetime.time(*start),
            quiet_end=datetime.time(*end),
        )
        now = datetime.datetime(2026, 7, 1, *clock, tzinfo=LONDON)
        assert quiet_hours_in_effect(rule, now) is expected


class TestQuietHoursInForce:
    """What sending asks before it queues a batch (engagement.sending._check_again)."""

    def test_texts_by_default_at_night_only(self, quiet):
        assert quiet_hours_in_force(NIGHT, "sms") == quiet
        assert quiet_hours_in_force(EARLY, "sms") == quiet
        assert quiet_hours_in_force(MORNING, "sms") is None
        assert quiet_hours_in_force(NIGHT, "email") is None

    def test_a_rule_naming_channels_covers_those(self, quiet):
        quiet.channels = ["email"]
        quiet.save()
        assert quiet_hours_in_force(NIGHT, "email") == quiet
        assert quiet_hours_in_force(NIGHT, "sms") is None

    def test_disabled_incomplete_and_other_rules_do_not_count(self, quiet, cap, care_hold):
        quiet.enabled = False
        quiet.save()
        ContactRule.objects.create(
            name="Half a rule", kind=ContactRule.Kind.QUIET_HOURS, quiet_start=datetime.time(20)
        )
        assert quiet_hours_in_force(NIGHT, "sms") is None

    def test_the_callers_rules_save_the_query(self, quiet, django_assert_num_queries):
        rules = enabled_rules()
        with django_assert_num_queries(0):
            assert quiet_hours_in_force(NIGHT, "sms", rules=rules) == quiet


class TestOrder:
    def test_the_first_matching_rule_decides(self, topic, care, care_hold, cap, quiet):
        # do-not-contact, then sensitive holds, then caps, then quiet hours.
        everything = subscriber(topic, channel="sms", do_not_contact=True)
        ServiceCaseFactory(citizen=everything, service=care)
        care_and_cap = subscriber(topic, channel="sms")
        ServiceCaseFactory(citizen=care_and_cap, service=care)
        cap_and_night = subscriber(topic, channel="sms")
        for _ in range(2):
            earlier_delivery(cap_and_night)
        night_only = subscriber(topic, channel="sms")
        campaign = make_campaign(topic, channels=("sms",))
        materialise_deliveries(campaign=campaign, now=NIGHT)
        decided = {
            d.citizen_id: (d.status, d.rule_id) for d in Delivery.objects.filter(campaign=campaign)
        }
        assert decided == {
            everything.pk: ("suppressed", None),
            care_and_cap.pk: ("suppressed", care_hold.pk),
            cap_and_night.pk: ("suppressed", cap.pk),
            night_only.pk: ("held", quiet.pk),
        }


# --- The SQL against a plain reading of the rules --------------------------------------------


def expected_in_python(campaign: Campaign, now: datetime.datetime) -> dict:
    """What the module docstrings say, read row by row with the ORM: the reference the
    set-based statement must agree with."""
    rules = list(ContactRule.objects.filter(enabled=True))
    topics = list(campaign.topics.all())
    local = timezone.localtime(now).time()
    expected = {}
    for subscription in Subscription.objects.filter(
        topic__in=topics, status="active", channel__in=campaign.channels
    ).select_related("citizen", "topic"):
        citizen, channel = subscription.citizen, subscription.channel
        if not citizen.is_live:
            continue
        latest = (
            citizen.consent_records.filter(purpose=subscription.topic.slug, channel=channel)
            .order_by("-occurred_at", "-id")
            .first()
        )
        if campaign.message_class == "promotional" and (latest is None or latest.action != "given"):
            continue
        if latest is not None and latest.action == "withdrawn":
            continue
        kind = "email" if channel == "email" else "phone"
        points = ContactPoint.objects.filter(
            citizen=citizen, kind=kind, removed_at=None, undeliverable_at=None
        )
        if channel == "sms":
            points = points.filter(verification_level__in=["confirmed", "staff_checked"])
        if not points.exists():
            continue
        verdict = ("pending", None)
        open_codes = set(
            citizen.cases.filter(status__in=ServiceCase.OPEN_STATUSES).values_list(
                "service__code", flat=True
            )
        )
        for rule in sorted(
            rules,
            key=lambda r: (
                ["sensitive_case_hold", "frequency_cap", "quiet_hours"].index(r.kind),
                r.pk,
            ),
        ):
            applies = channel in (
                rule.channels or (["sms"] if rule.kind == "quiet_hours" else [channel])
            )
            if not applies:
                continue
            if rule.kind == "sensitive_case_hold" and open_codes & set(rule.service_codes):
                verdict = ("suppressed", rule.pk)
            elif rule.kind == "frequency_cap":
                sent = (
                    Delivery.objects.filter(
                        citizen=citizen,
                        created_at__gte=now - datetime.timedelta(days=rule.period_days),
                        status__in=["pending", "held", "queued", "sent", "delivered", "complained"],
                    )
                    .exclude(campaign=campaign)
                    .exclude(campaign__message_class="essential")
                    .values("campaign_id")
                    .distinct()
                    .count()
                )
                if sent >= rule.max_messages:
                    verdict = ("suppressed", rule.pk)
            elif rule.kind == "quiet_hours" and (
                local >= rule.quiet_start or local < rule.quiet_end
            ):
                verdict = ("held", rule.pk)
            if verdict[0] != "pending":
                break
        if citizen.do_not_contact:
            verdict = ("suppressed", None)
        expected[(citizen.pk, channel)] = verdict
    return expected


@pytest.mark.parametrize("message_class", ["informational", "promotional"])
def test_the_statement_agrees_with_the_rules_read_in_python(
    message_class, care, care_hold, cap, quiet
):
    rng = random.Random(7)
    topic, other = make_topic("news"), make_topic("events")
    other_service = ServiceFactory(code="missed-bin")
    for _ in range(60):
        citizen = CitizenFactory(do_not_contact=rng.random() < 0.1)
        if rng.random() < 0.9:
            EmailContactPointFactory(
                citizen=citizen, undeliverable_at=timezone.now() if rng.random() < 0.1 else None
            )
        if rng.random() < 0.5:
            add_phone(citizen, level=rng.choice(["confirmed", "asserted", "staff_checked"]))
        for channel in ("email", "sms"):
            for chosen in (topic, other):
                if rng.random() < 0.5:
                    continue
                status = rng.choice(["active", "active", "pending", "unsubscribed"])
                Subscription.objects.create(
                    citizen=citizen, topic=chosen, channel=channel, status=status, source="portal"
                )
                for _ in range(rng.randint(0, 2)):
                    consent(
                        citizen,
                        chosen,
                        rng.choice(["given", "withdrawn"]),
                        channel=channel,
                        at=timezone.now() - datetime.timedelta(minutes=rng.randint(1, 10_000)),
                    )
        if rng.random() < 0.2:
            ServiceCaseFactory(
                citizen=citizen,
                service=rng.choice([care, other_service]),
                status=rng.choice(["open", "closed"]),
            )
        for _ in range(rng.randint(0, 3)):
            earlier_delivery(
                citizen,
                days_ago=rng.randint(0, 10),
                status=rng.choice(["sent", "delivered", "failed", "suppressed"]),
                message_class=rng.choice(["informational", "essential"]),
                channel=rng.choice(["email", "sms"]),
            )
    campaign = make_campaign(topic, other, message_class=message_class, channels=("email", "sms"))
    now = NIGHT
    expected = expected_in_python(campaign, now)
    materialise_deliveries(campaign=campaign, now=now)
    actual = {
        (d.citizen_id, d.channel): (d.status, d.rule_id)
        for d in Delivery.objects.filter(campaign=campaign)
    }
    assert actual == expected
    assert len({status for status, _ in actual.values()}) == 3  # the data exercised every verdict
