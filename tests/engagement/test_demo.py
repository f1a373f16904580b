"""The engagement demo seeder: topics for services, every ward and themes, the default
contact rules, and subscriptions in every state with their ledger lines; run twice, it adds
nothing."""

import datetime

import pytest
from django.db.models import Count

from citizenhub.catalogue import load_service_catalogue
from citizenhub.demo import DemoOptions, discover_demo_seeders
from citizenhub.demo_data import DEMO_NOW
from citizenhub.models import Citizen, TimelineEntry
from democracy.demo import NORTHMOOR_WARDS, seed_demo_wards
from engagement.demo import SUBSCRIPTIONS_MIN_RESIDENTS, seed_demo_engagement
from engagement.models import ConsentRecord, ContactRule, Subscription, Topic
from engagement.services import current_consents
from engagement.subscriptions import is_waiting

pytestmark = pytest.mark.django_db


def seed(residents: int) -> dict:
    from citizenhub.demo import seed_demo_residents

    options = DemoOptions(residents=residents)
    seed_demo_wards(options)
    load_service_catalogue()
    seed_demo_residents(options)
    return seed_demo_engagement(options)


def snapshot() -> tuple:
    return (
        Topic.objects.count(),
        ContactRule.objects.count(),
        Subscription.objects.count(),
        ConsentRecord.objects.count(),
        TimelineEntry.objects.count(),
    )


def test_it_runs_after_casework_and_portal_accounts_and_before_channels():
    names = [seeder.name for seeder in discover_demo_seeders()]
    assert (
        names.index("casework")
        < names.index("portal accounts")
        < names.index("engagement")
        < names.index("channels")
    )


def test_a_demo_council_has_topics_rules_and_subscriptions_in_every_state():
    counts = seed(SUBSCRIPTIONS_MIN_RESIDENTS)
    topics = Topic.objects.all()
    assert counts["topics"] == topics.count() == 9 + len(NORTHMOOR_WARDS)
    kinds = dict(topics.values_list("kind").annotate(n=Count("pk")))
    assert kinds == {"service": 3, "ward": len(NORTHMOOR_WARDS), "theme": 6}
    assert {"residents-newsletter", "research-panel", "events", "consultations", "jobs"} <= set(
        topics.values_list("slug", flat=True)
    )
    assert Topic.objects.get(slug="bins-and-recycling").service.code == "missed-bin"

    rules = {rule.kind: rule for rule in ContactRule.objects.all()}
    assert rules["sensitive_case_hold"].service_codes == ["adult-social-care", "bereavement"]
    assert (rules["frequency_cap"].max_messages, rules["frequency_cap"].period_days) == (2, 7)
    quiet = rules["quiet_hours"]
    assert (quiet.quiet_start, quiet.quiet_end, quiet.channels) == (
        datetime.time(21),
        datetime.time(8),
        ["sms"],
    )

    statuses = dict(Subscription.objects.values_list("status").annotate(n=Count("pk")))
    assert set(statuses) == {"active", "pending", "unsubscribed"}
    assert statuses["active"] > statuses["unsubscribed"] > 0
    subscribers = Subscription.objects.values("citizen").distinct().count()
    assert subscribers >= 0.4 * Citizen.objects.filter(status="active").count()
    assert counts["subscriptions created"] == Subscription.objects.count()
    assert counts["consent records created"] == ConsentRecord.objects.count()

    # The ledger agrees with every subscription, and the times make sense.
    for subscription in Subscription.objects.select_related("topic", "citizen"):
        record = current_consents(subscription.citizen).get(
            (subscription.topic.slug, subscription.channel)
        )
        if subscription.status == "active":
            assert record.action == "given" and subscription.confirmed_at <= DEMO_NOW
        elif subscription.status == "unsubscribed":
            assert record.action == "withdrawn"
            assert subscription.confirmed_at < subscription.unsubscribed_at <= DEMO_NOW
        else:
            assert record is None and is_waiting(subscription)
    assert TimelineEntry.objects.filter(kind="consent").count() == ConsentRecord.objects.count()


def test_a_second_run_adds_nothing():
    seed(SUBSCRIPTIONS_MIN_RESIDENTS)
    before = snapshot()
    counts = seed_demo_engagement(DemoOptions(residents=SUBSCRIPTIONS_MIN_RESIDENTS))
    assert snapshot() == before
    assert counts == {
        "topics": 9 + len(NORTHMOOR_WARDS),
        "contact rules": 3,
        "subscriptions created": 0,
        "consent records created": 0,
    }


def test_a_small_council_gets_topics_and_rules_only():
    counts = seed(40)
    assert counts == {
        "topics": 21,
        "contact rules": 3,
        "subscriptions created": 0,
        "consent records created": 0,
    }
    assert not Subscription.objects.exists() and not ConsentRecord.objects.exists()
