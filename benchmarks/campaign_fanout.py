"""Campaign fan-out: materialise_deliveries for 200,000 subscribers against a raw INSERT … SELECT.

Imported by run.py after Django is set up. It works on its own database,
`citizenhub_bench_fanout` (created and migrated on first use, and kept: the data is built
once with COPY and reused while it matches this file's generator), so the other benchmarks'
emptying of their tables never costs it a rebuild.

The data (times BENCH_SCALE, fixed seed): 200,000 citizens subscribed to one topic by e-mail
(94 % active, 3 % pending, 3 % unsubscribed), a fifth also by text message with a
confirmed number; the consent ledger lines those subscriptions wrote (4 % withdrew
afterwards); 2 % asked not to be contacted, 0.5 % erased, 1 % with an undeliverable
address; 2 % with an open adult social care case and 1 % with a closed one; earlier
campaigns' deliveries (10 % had two in the last week, 15 % one, 5 % one ten days
old, 30 % an essential one). Rules: the sensitive case hold, a cap of 2 a week, and
quiet hours 21:00-08:00 for texts.

Timed, each after emptying the campaign's deliveries and a VACUUM:

1. `materialise_deliveries` of a promotional campaign on e-mail and SMS at 22:30 (so every
   rule decides some rows): audience, consent from the ledger, contact points, rules,
   the INSERT … ON CONFLICT DO NOTHING and the counts, in its transaction.
2. A raw `INSERT INTO engagement_delivery … SELECT` of exactly the rows step 1 wrote, from
   a scratch table: the floor for writing them to the same table with the same indexes.

It checks the deliveries against the generator's own reading of the rules (counts per
status and rule kind), that a second run writes nothing, and reports deliveries/s, the
raw rate and the ratio, with PASS or FAIL against the issue's target of 20,000
deliveries/s (a FAIL is printed; it does not fail the run, as for staff_pages).
"""

from __future__ import annotations

import datetime
import io
import json
import random
import uuid
import zoneinfo
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from django.core.management import call_command
from django.core.management.color import no_style
from django.db import connection, transaction
from django.db.models import Count
from django.utils import timezone

from benchmarks.common import (
    BENCH_DATABASE,
    BenchmarkError,
    _ensure_database,
    report,
    scaled,
    timed,
    use_database,
)

NAME = "campaign_fanout"
DATABASE = f"{BENCH_DATABASE}_fanout"
SUBSCRIBERS = 200_000
TARGET_PER_SECOND = 20_000
SEED = 20_261_126
# Bump when the generator changes: a database built by another version is rebuilt.
GENERATOR_VERSION = 1
TOPIC_SLUG = "bench-residents-news"
LONDON = zoneinfo.ZoneInfo("Europe/London")
CHUNK = 20_000


@dataclass(frozen=True)
class Person:
    live: bool
    do_not_contact: bool
    email_deliverable: bool
    email_subscription: str  # active | pending | unsubscribed
    email_withdrew: bool  # consent given, later withdrawn (subscription left active)
    sms: bool  # confirmed number and an active SMS subscription with consent
    open_care_case: bool
    closed_care_case: bool
    recent: int  # earlier non-essential campaigns in the last 7 days
    old: bool  # a delivery ten days ago (outside the cap's week)
    essential: bool  # an essential message this week (never counts)


def plan_people(count: int) -> list[Person]:
    rng = random.Random(SEED)
    people = []
    for _ in range(count):
        draw = rng.random()
        email_subscription = (
            "active" if draw < 0.94 else "pending" if draw < 0.97 else "unsubscribed"
        )
        recent_draw = rng.random()
        people.append(
            Person(
                live=rng.random() >= 0.005,
                do_not_contact=rng.random() < 0.02,
                email_deliverable=rng.random() >= 0.01,
                email_subscription=email_subscription,
                email_withdrew=email_subscription == "active" and rng.random() < 0.04,
                sms=rng.random() < 0.2,
                open_care_case=(care := rng.random()) < 0.02,
                closed_care_case=0.02 <= care < 0.03,
                recent=2 if recent_draw < 0.10 else 1 if recent_draw < 0.25 else 0,
                old=rng.random() < 0.05,
                essential=rng.random() < 0.3,
            )
        )
    return people


def expected_verdicts(people: list[Person]) -> Counter[tuple[str, str]]:
    """What the fan-out must write, read from the plan: (status, rule kind or "")."""
    expected: Counter[tuple[str, str]] = Counter()
    for person in people:
        if not person.live:
            continue
        channels = []
        if (
            person.email_subscription == "active"
            and not person.email_withdrew
            and person.email_deliverable
        ):
            channels.append("email")
        if person.sms:
            channels.append("sms")
        for channel in channels:
            if person.do_not_contact:
                expected["suppressed", ""] += 1
            elif person.open_care_case:
                expected["suppressed", "sensitive_case_hold"] += 1
            elif person.recent >= 2:
                expected["suppressed", "frequency_cap"] += 1
            elif channel == "sms":
                expected["held", "quiet_hours"] += 1
            else:
                expected["pending", ""] += 1
    return expected


# --- COPY ------------------------------------------------------------------------------------


def _copy_text(value: Any) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, dict | list):
        value = json.dumps(value)
    text = str(value)
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def copy_rows(model: Any, rows: Iterable[dict[str, Any]]) -> int:
    """COPY rows (dicts keyed by attname, e.g. "citizen_id") into the model's table; every
    column a row does not give gets the field's default, as the ORM would have written."""
    quote = connection.ops.quote_name
    total = 0
    batch: list[dict[str, Any]] = []

    def flush(cursor: Any) -> None:
        fields = [
            f for f in model._meta.concrete_fields if not f.primary_key or f.attname in batch[0]
        ]
        defaults = {f.attname: _copy_text(f.get_default()) for f in fields}
        lines = [
            "\t".join(
                _copy_text(row[f.attname]) if f.attname in row else defaults[f.attname]
                for f in fields
            )
            for row in batch
        ]
        columns = ", ".join(quote(f.column) for f in fields)
        cursor.copy_expert(
            f"COPY {quote(model._meta.db_table)} ({columns}) FROM STDIN",
            io.StringIO("\n".join(lines) + "\n"),
        )

    with connection.cursor() as cursor:
        for row in rows:
            batch.append(row)
            if len(batch) == CHUNK:
                flush(cursor)
                total += len(batch)
                batch = []
        if batch:
            flush(cursor)
            total += len(batch)
    return total


# --- building the data -----------------------------------------------------------------------


def _marker(count: int) -> str:
    return f"campaign_fanout v{GENERATOR_VERSION} seed {SEED} subscribers {count}"


def _built(count: int) -> bool:
    from engagement.models import Topic

    return Topic.objects.filter(slug=TOPIC_SLUG, description=_marker(count)).exists()


def build(people: list[Person], now: datetime.datetime) -> None:
    from citizenhub.catalogue import load_service_catalogue
    from citizenhub.models import Citizen, ContactPoint, Service, ServiceCase
    from engagement.models import (
        Campaign,
        ConsentRecord,
        ContactRule,
        Delivery,
        Subscription,
        Topic,
    )

    print(f"{NAME}: building {len(people):,} subscribers in {DATABASE} (once)", flush=True)
    tables = [
        Delivery, Campaign.topics.through, Campaign, ContactRule, ConsentRecord, Subscription,
        Topic, ServiceCase, ContactPoint, Citizen,
    ]  # fmt: skip
    with transaction.atomic(), connection.cursor() as cursor:
        names = ", ".join(connection.ops.quote_name(m._meta.db_table) for m in tables)
        cursor.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
    load_service_catalogue()
    care = Service.objects.get(code="adult-social-care")
    with transaction.atomic():
        ids = range(1, len(people) + 1)
        copy_rows(
            Citizen,
            (
                {
                    "id": i,
                    "public_id": uuid.UUID(int=i),
                    "given_name": "Resident",
                    "family_name": f"Number {i}",
                    "status": "active" if p.live else "erased",
                    "do_not_contact": p.do_not_contact,
                    "created_at": now,
                    "updated_at": now,
                }
                for i, p in zip(ids, people, strict=True)
            ),
        )

        def contact_points() -> Iterator[dict[str, Any]]:
            for i, p in zip(ids, people, strict=True):
                address = f"resident{i}@bench.example"
                yield {
                    "citizen_id": i,
                    "kind": "email",
                    "value": address,
                    "normalised": address,
                    "match_key": address,
                    "is_primary": True,
                    "verification_level": "asserted",
                    "undeliverable_at": None if p.email_deliverable else now,
                    "created_at": now,
                }
                if p.sms:
                    number = f"+4477{i:09d}"
                    yield {
                        "citizen_id": i,
                        "kind": "phone",
                        "value": number,
                        "normalised": number,
                        "match_key": number,
                        "is_primary": True,
                        "verification_level": "confirmed",
                        "created_at": now,
                    }

        copy_rows(ContactPoint, contact_points())
        topic = Topic.objects.create(
            slug=TOPIC_SLUG,
            name="Residents' news (benchmark)",
            description=_marker(len(people)),
            consent_wording="Send me residents' news",
        )
        given_at = now - datetime.timedelta(days=200)

        def subscriptions() -> Iterator[dict[str, Any]]:
            for i, p in zip(ids, people, strict=True):
                yield {
                    "citizen_id": i,
                    "topic_id": topic.pk,
                    "channel": "email",
                    "status": p.email_subscription,
                    "requested_at": given_at,
                    "source": "portal",
                }
                if p.sms:
                    yield {
                        "citizen_id": i,
                        "topic_id": topic.pk,
                        "channel": "sms",
                        "status": "active",
                        "requested_at": given_at,
                        "source": "portal",
                    }

        copy_rows(Subscription, subscriptions())

        def ledger() -> Iterator[dict[str, Any]]:
            line = {
                "purpose": TOPIC_SLUG,
                "wording": "Send me residents' news",
                "wording_version": "1",
                "source": "portal",
                "actor_label": "benchmark",
                "lawful_basis": "consent",
            }
            for i, p in zip(ids, people, strict=True):
                if p.email_subscription != "pending":
                    yield line | {"citizen_id": i, "channel": "email", "action": "given",
                                  "occurred_at": given_at}  # fmt: skip
                if p.email_subscription == "unsubscribed" or p.email_withdrew:
                    withdrawn_at = given_at + datetime.timedelta(days=30)
                    yield line | {"citizen_id": i, "channel": "email", "action": "withdrawn",
                                  "occurred_at": withdrawn_at}  # fmt: skip
                if p.sms:
                    yield line | {"citizen_id": i, "channel": "sms", "action": "given",
                                  "occurred_at": given_at}  # fmt: skip

        copy_rows(ConsentRecord, ledger())

        def cases() -> Iterator[dict[str, Any]]:
            for i, p in zip(ids, people, strict=True):
                if p.open_care_case or p.closed_care_case:
                    yield {
                        "reference": f"BF-{i:08d}",
                        "citizen_id": i,
                        "service_id": care.pk,
                        "team_id": care.team_id,
                        "title": "Care needs assessment",
                        "status": "in_progress" if p.open_care_case else "closed",
                        "opened_at": now - datetime.timedelta(days=20),
                        "due_on": (now + datetime.timedelta(days=10)).date(),
                        "updated_at": now,
                    }

        copy_rows(ServiceCase, cases())

        earlier = [
            Campaign.objects.create(
                title=f"Earlier bulletin {n}", message_class=cls, channels=["email"], status="sent"
            )
            for n, cls in enumerate(
                ["informational", "promotional", "informational", "essential"], start=1
            )
        ]

        def deliveries() -> Iterator[dict[str, Any]]:
            for i, p in zip(ids, people, strict=True):
                sent = []
                if p.recent:
                    sent += [(earlier[n], 1 + n) for n in range(p.recent)]
                if p.old:
                    sent.append((earlier[2], 10))
                if p.essential:
                    sent.append((earlier[3], 2))
                for campaign, days in sent:
                    yield {
                        "campaign_id": campaign.pk,
                        "citizen_id": i,
                        "channel": "email",
                        "to_value": f"resident{i}@bench.example",
                        "status": "delivered",
                        "created_at": now - datetime.timedelta(days=days),
                    }

        copy_rows(Delivery, deliveries())
        ContactRule.objects.create(
            name="Sensitive cases", kind="sensitive_case_hold",
            service_codes=["adult-social-care", "bereavement"],
        )  # fmt: skip
        ContactRule.objects.create(
            name="Two a week", kind="frequency_cap", max_messages=2, period_days=7
        )
        ContactRule.objects.create(
            name="Quiet nights", kind="quiet_hours",
            quiet_start=datetime.time(21), quiet_end=datetime.time(8),
        )  # fmt: skip
        campaign = Campaign.objects.create(
            title="Benchmark bulletin", message_class="promotional", channels=["email", "sms"],
            email_subject="News", email_text="News", sms_text="News", status="approved",
        )  # fmt: skip
        campaign.topics.set([topic])
        with connection.cursor() as cursor:
            for statement in connection.ops.sequence_reset_sql(
                no_style(), [Citizen, ContactPoint, ServiceCase, ConsentRecord, Subscription]
            ):
                cursor.execute(statement)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


# --- measuring -------------------------------------------------------------------------------


def _vacuum(table: str) -> None:
    connection.ensure_connection()
    previous = connection.connection.autocommit
    connection.connection.autocommit = True  # VACUUM cannot run in a transaction
    try:
        with connection.connection.cursor() as cursor:
            cursor.execute(f"VACUUM (ANALYZE) {connection.ops.quote_name(table)}")
    finally:
        connection.connection.autocommit = previous


def _empty(campaign: Any) -> None:
    from engagement.models import Delivery

    Delivery.objects.filter(campaign=campaign).delete()
    _vacuum(Delivery._meta.db_table)


def _verdicts(campaign: Any) -> Counter[tuple[str, str]]:
    from engagement.models import Delivery

    rows = (
        Delivery.objects.filter(campaign=campaign)
        .values_list("status", "rule__kind")
        .order_by()
        .annotate(n=Count("id"))
    )
    return Counter({(status, kind or ""): n for status, kind, n in rows})


def run() -> None:
    from engagement.fanout import DELIVERY_COLUMNS, materialise_deliveries
    from engagement.models import Campaign, Delivery

    count = scaled(SUBSCRIBERS)
    people = plan_people(count)
    expected = expected_verdicts(people)
    _ensure_database(DATABASE)
    with use_database(DATABASE):
        call_command("migrate", interactive=False, verbosity=0)
        # 22:30 tonight: inside the quiet hours, so each rule decides some deliveries.
        now = datetime.datetime.combine(timezone.localdate(), datetime.time(22, 30), LONDON)
        if not _built(count):
            with timed() as building:
                build(people, now)
            print(f"{NAME}: built in {building.seconds:.0f} s", flush=True)
        campaign = Campaign.objects.get(title="Benchmark bulletin")
        table = connection.ops.quote_name(Delivery._meta.db_table)
        columns = ", ".join(connection.ops.quote_name(name) for name in DELIVERY_COLUMNS)

        _empty(campaign)
        with timed() as fanout:
            result = materialise_deliveries(campaign=campaign, now=now)
        written = result.created
        actual = _verdicts(campaign)
        if actual != expected or written != sum(expected.values()):
            raise BenchmarkError(
                f"the fan-out wrote {dict(actual)} ({written} rows); expected {dict(expected)}"
            )
        with timed() as repeat:
            again = materialise_deliveries(campaign=campaign, now=now)
        if again.created != 0:
            raise BenchmarkError(f"a second fan-out wrote {again.created} more rows")

        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE IF EXISTS bench_fanout_rows")
            cursor.execute(
                f"CREATE UNLOGGED TABLE bench_fanout_rows AS SELECT {columns} FROM {table}"
                " WHERE campaign_id = %s",
                [campaign.pk],
            )
        _empty(campaign)
        with timed() as raw, transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} ({columns}) SELECT {columns} FROM bench_fanout_rows"
            )
            raw_rows = cursor.rowcount
        if raw_rows != written or _verdicts(campaign) != actual:
            raise BenchmarkError(f"the raw INSERT … SELECT wrote {raw_rows} rows, not {written}")
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE bench_fanout_rows")
        _empty(campaign)

    rate, raw_rate = fanout.rate(written), raw.rate(written)
    ratio = rate / raw_rate
    verdict = "PASS" if rate >= TARGET_PER_SECOND else "FAIL"
    by = ", ".join(f"{status}{'/' + kind if kind else ''} {n:,}" for (status, kind), n in
                   sorted(actual.items()))  # fmt: skip
    report(
        NAME,
        f"{NAME}: {rate:,.0f} deliveries/s ({written:,} in {fanout.seconds:.2f} s), raw "
        f"INSERT … SELECT {raw_rate:,.0f} rows/s, ratio {ratio:.2f}; repeat run "
        f"{repeat.seconds:.2f} s; {verdict} (target {TARGET_PER_SECOND:,}/s)\n"
        f"{NAME}: {count:,} subscribers: {by}",
        {
            "subscribers": count,
            "deliveries": written,
            "fanout_seconds": round(fanout.seconds, 3),
            "deliveries_per_s": round(rate),
            "raw_seconds": round(raw.seconds, 3),
            "raw_rows_per_s": round(raw_rate),
            "ratio": round(ratio, 3),
            "repeat_seconds": round(repeat.seconds, 3),
            "verdicts": {f"{s}/{k}": n for (s, k), n in actual.items()},
            "target_per_s": TARGET_PER_SECOND,
            "pass": verdict == "PASS",
        },
    )
