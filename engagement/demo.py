"""Demo data for engagement: topics (services, every demo ward, themes), the default contact
rules, and for a council of at least SUBSCRIPTIONS_MIN_RESIDENTS residents, subscriptions
(active, waiting for confirmation, unsubscribed) with their consent ledger lines.

Idempotent: topics and rules are put back as they are here; a resident's subscription to a
topic on a channel is created once, with its ledger lines, and never again. Who subscribes
to what is decided by a generator seeded with the resident's public id, so every run picks
the same. Times are before the demo's fixed "now" (citizenhub.demo_data.DEMO_NOW), except
requests waiting for confirmation, made in the real last three days.
"""

from __future__ import annotations

import datetime
import random
from dataclasses import dataclass

from django.apps import apps
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.utils import timezone

from citizenhub.demo import DemoOptions, SeedCounts, register_demo_seeder
from citizenhub.demo_data import DEMO_NOW
from citizenhub.models import Address, Citizen, ContactPoint, Service, TimelineEntry
from citizenhub.services.timeline import TimelineEntryData, record_timeline_entries
from engagement.models import ConsentRecord, ContactRule, Subscription, Topic
from engagement.purposes import ensure_standard_topics

# Below this many residents: topics and rules only. A council that small is one to test
# with, and the residents seeder's tests count every resident's timeline entries (as the
# casework and channels seeders do).
SUBSCRIPTIONS_MIN_RESIDENTS = 100
# Of the residents with an e-mail address, this share has subscriptions.
SUBSCRIBING_SHARE = 0.6
DEMO_ACTOR_LABEL = "demo data"
CONFIRMATION_DAYS = 7


@dataclass(frozen=True)
class DemoTopic:
    slug: str
    name: str
    kind: str
    description: str
    service_code: str = ""


_WORDING = (
    "Send me updates about {name} from Northmoor District Council. I can unsubscribe at any time."
)

DEMO_TOPICS: tuple[DemoTopic, ...] = (
    DemoTopic(
        "bins-and-recycling",
        "Bin collections and recycling",
        Topic.Kind.SERVICE,
        "Changes to collection days, Christmas collections, what goes in which bin.",
        "missed-bin",
    ),
    DemoTopic(
        "roads-and-street-lights",
        "Roads and street lights",
        Topic.Kind.SERVICE,
        "Road works, closures and repairs near you.",
        "pothole",
    ),
    DemoTopic(
        "council-tax",
        "Council Tax",
        Topic.Kind.SERVICE,
        "Bills, discounts and payment reminders.",
        "council-tax",
    ),
    DemoTopic("events", "Events", Topic.Kind.THEME, "What’s on in Northmoor."),  # noqa: RUF001
    DemoTopic(
        "consultations",
        "Consultations",
        Topic.Kind.THEME,
        "Have your say on plans and budgets.",
    ),
    DemoTopic("jobs", "Jobs at the council", Topic.Kind.THEME, "New vacancies every week."),
    DemoTopic(
        "climate",
        "Climate and nature",
        Topic.Kind.THEME,
        "Energy saving, tree planting and the council’s climate plan.",  # noqa: RUF001
    ),
)

DEMO_CONTACT_RULES: tuple[dict, ...] = (
    {
        "name": "Hold during adult social care or bereavement cases",
        "kind": ContactRule.Kind.SENSITIVE_CASE_HOLD,
        "service_codes": ["adult-social-care", "bereavement"],
    },
    {
        "name": "At most 2 non-essential messages in 7 days",
        "kind": ContactRule.Kind.FREQUENCY_CAP,
        "max_messages": 2,
        "period_days": 7,
    },
    {
        "name": "No text messages between 21:00 and 08:00",
        "kind": ContactRule.Kind.QUIET_HOURS,
        "quiet_start": datetime.time(21, 0),
        "quiet_end": datetime.time(8, 0),
        "channels": ["sms"],
    },
)


def _wards() -> list[tuple[str, str]]:
    """(GSS code, name) of the demo wards, if the democracy app is installed; looked up by
    label so this app does not import another feature app."""
    try:
        ward_model = apps.get_model("democracy", "Ward")
    except LookupError:
        return []
    return list(ward_model.objects.order_by("gss_code").values_list("gss_code", "name"))


def seed_topics() -> list[Topic]:
    ensure_standard_topics()
    services = dict(Service.objects.values_list("code", "pk"))
    topics = []
    for demo in DEMO_TOPICS:
        topic, _created = Topic.objects.update_or_create(
            slug=demo.slug,
            defaults={
                "name": demo.name,
                "kind": demo.kind,
                "description": demo.description,
                "service_id": services.get(demo.service_code),
                "consent_wording": _WORDING.format(name=demo.name.lower()),
                "consent_wording_version": "demo-1",
                "is_public": True,
                "is_active": True,
            },
        )
        topics.append(topic)
    for gss_code, name in _wards():
        topic, _created = Topic.objects.update_or_create(
            slug=f"ward-{gss_code.lower()}",
            defaults={
                "name": f"{name} ward news",
                "kind": Topic.Kind.WARD,
                "description": f"Local news, works and meetings in {name} ward.",
                "ward_code": gss_code,
                "consent_wording": _WORDING.format(name=f"{name} ward"),
                "consent_wording_version": "demo-1",
                "is_public": True,
                "is_active": True,
            },
        )
        topics.append(topic)
    topics.extend(Topic.objects.filter(slug__in=["residents-newsletter", "research-panel"]))
    return topics


def seed_contact_rules() -> int:
    for rule in DEMO_CONTACT_RULES:
        ContactRule.objects.update_or_create(name=rule["name"], defaults={"enabled": True, **rule})
    return len(DEMO_CONTACT_RULES)


@dataclass
class _Batch:
    subscriptions: list[Subscription]
    records: list[ConsentRecord]


def _plan_for(
    citizen: Citizen, email_point_exists: bool, ward_code: str, topics: dict[str, Topic]
) -> list[tuple[Topic, str, datetime.datetime]]:
    """(topic, status, requested at) for the resident: the same every run."""
    rng = random.Random(f"engagement-demo-{citizen.public_id}")  # noqa: S311 - demo data
    if not email_point_exists or rng.random() >= SUBSCRIBING_SHARE:
        return []
    wanted = []
    ward_topic = topics.get(f"ward-{ward_code.lower()}") if ward_code else None
    if ward_topic is not None and rng.random() < 0.6:
        wanted.append(ward_topic)
    others = sorted(
        (topic for topic in topics.values() if topic.kind != Topic.Kind.WARD),
        key=lambda topic: topic.slug,
    )
    wanted.extend(rng.sample(others, k=rng.randint(1, 3)))
    plan = []
    for topic in wanted:
        roll = rng.random()
        status = (
            Subscription.Status.ACTIVE
            if roll < 0.75
            else Subscription.Status.PENDING
            if roll < 0.85
            else Subscription.Status.UNSUBSCRIBED
        )
        if status == Subscription.Status.PENDING:
            # Relative to the real now, unlike everything else: a request the demo shows as
            # waiting must not have lapsed before anyone looks at it.
            requested = timezone.now() - datetime.timedelta(hours=rng.randint(1, 72))
        else:
            requested = DEMO_NOW - datetime.timedelta(
                days=rng.randint(20, 360), hours=rng.randint(0, 23)
            )
        plan.append((topic, status, requested))
    return plan


def _rows(citizen: Citizen, topic: Topic, status: str, requested: datetime.datetime) -> _Batch:
    confirmed = requested + datetime.timedelta(hours=2)
    subscription = Subscription(
        citizen=citizen,
        topic=topic,
        channel="email",
        status=status,
        requested_at=requested,
        confirm_by=requested + datetime.timedelta(days=CONFIRMATION_DAYS),
        source=ConsentRecord.Source.PORTAL,
    )
    records = []
    if status == Subscription.Status.PENDING:
        return _Batch([subscription], records)
    subscription.confirmed_at = confirmed

    def line(action: str, at: datetime.datetime, wording: str) -> ConsentRecord:
        return ConsentRecord(
            citizen=citizen,
            purpose=topic.slug,
            channel="email",
            action=action,
            wording=wording,
            wording_version=topic.consent_wording_version,
            source=ConsentRecord.Source.PORTAL,
            actor_label=DEMO_ACTOR_LABEL,
            occurred_at=at,
        )

    records.append(line(ConsentRecord.Action.GIVEN, confirmed, topic.consent_wording))
    if status == Subscription.Status.UNSUBSCRIBED:
        unsubscribed = min(DEMO_NOW, confirmed + (DEMO_NOW - confirmed) / 2)
        subscription.unsubscribed_at = unsubscribed
        records.append(
            line(
                ConsentRecord.Action.WITHDRAWN,
                unsubscribed,
                f"Unsubscribe from {topic.name} by e-mail?",
            )
        )
    return _Batch([subscription], records)


def seed_subscriptions(topics: list[Topic]) -> tuple[int, int]:
    """Subscriptions and ledger lines for demo residents who have none for a topic yet.
    Returns (subscriptions created, consent records created)."""
    by_slug = {topic.slug: topic for topic in topics}
    existing = set(Subscription.objects.values_list("citizen_id", "topic_id", "channel"))
    has_email = set(
        ContactPoint.objects.filter(
            kind=ContactPoint.Kind.EMAIL, removed_at__isnull=True, undeliverable_at__isnull=True
        ).values_list("citizen_id", flat=True)
    )
    wards = dict(Address.objects.filter(is_primary=True).values_list("citizen_id", "ward_code"))
    subscriptions: list[Subscription] = []
    records: list[ConsentRecord] = []
    for citizen in Citizen.objects.filter(status=Citizen.Status.ACTIVE).order_by("pk"):
        for topic, status, requested in _plan_for(
            citizen, citizen.pk in has_email, wards.get(citizen.pk, ""), by_slug
        ):
            if (citizen.pk, topic.pk, "email") in existing:
                continue
            batch = _rows(citizen, topic, status, requested)
            subscriptions.extend(batch.subscriptions)
            records.extend(batch.records)
    with transaction.atomic():
        Subscription.objects.bulk_create(subscriptions, batch_size=1000)
        created = ConsentRecord.objects.bulk_create(records, batch_size=1000)
        consent_type = ContentType.objects.get_for_model(ConsentRecord)
        titles = {topic.slug: topic.name for topic in topics}
        record_timeline_entries(
            TimelineEntryData(
                citizen_id=record.citizen_id,
                kind=TimelineEntry.Kind.CONSENT,
                occurred_at=record.occurred_at,
                summary=(
                    f"Consent given: {titles[record.purpose]}"
                    if record.action == ConsentRecord.Action.GIVEN
                    else f"Consent withdrawn: {titles[record.purpose]}"
                ),
                channel="email",
                department="Engagement",
                visibility=TimelineEntry.Visibility.RESIDENT,
                source_type_id=consent_type.pk,
                source_id=str(record.pk),
            )
            for record in created
        )
    return len(subscriptions), len(records)


@register_demo_seeder("engagement", order=180)
def seed_demo_engagement(options: DemoOptions) -> SeedCounts:
    """After the residents, their cases and the portal accounts; before the channels."""
    topics = seed_topics()
    rules = seed_contact_rules()
    subscriptions = records = 0
    if options.residents >= SUBSCRIPTIONS_MIN_RESIDENTS:
        subscriptions, records = seed_subscriptions(topics)
    return {
        "topics": len(topics),
        "contact rules": rules,
        "subscriptions created": subscriptions,
        "consent records created": records,
    }
