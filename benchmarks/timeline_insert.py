"""Bulk timeline writes: record_timeline_entries against a raw PostgreSQL COPY of the same rows.

Imported by run.py after Django is set up. The service's rate is the baseline for every bulk
writer (ingest batches, imports); COPY is the floor the database itself allows on this
machine, so the ratio says how much the ORM path costs.
"""

from __future__ import annotations

import datetime
import io
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from benchmarks.common import BenchmarkError, report, scaled, timed
from citizenhub.models import ChannelKind, Citizen, TimelineEntry
from citizenhub.services import TimelineEntryData, record_timeline_entries

NAME = "timeline_insert"
ENTRIES = 200_000
CITIZENS = 1_000
# Fixed seeds: every run writes the same rows, so runs on different commits compare.
SEED = 20_251_126

TABLE = TimelineEntry._meta.db_table
# Everything the service writes except the id, in COPY's column order.
_COPY_FIELDS = (
    "citizen",
    "occurred_at",
    "kind",
    "channel",
    "department",
    "service_code",
    "summary",
    "visibility",
    "source_type",
    "source_id",
    "created_at",
)
COPY_SQL = "COPY {table} ({columns}) FROM STDIN".format(
    table=connection.ops.quote_name(TABLE),
    columns=", ".join(
        connection.ops.quote_name(TimelineEntry._meta.get_field(name).column)
        for name in _COPY_FIELDS
    ),
)

Kind = TimelineEntry.Kind
Channel = ChannelKind

# How often each kind happens, and the channels it arrives or leaves by.
_KIND_CHANNELS: dict[str, tuple[int, Sequence[str]]] = {
    Kind.MESSAGE_IN: (
        34,
        (Channel.EMAIL,) * 5
        + (Channel.WEB,) * 2
        + (Channel.SMS,) * 2
        + (Channel.X, Channel.FACEBOOK, Channel.MASTODON, Channel.POST),
    ),
    Kind.MESSAGE_OUT: (24, (Channel.EMAIL,) * 4 + (Channel.SMS,) * 2 + (Channel.POST,)),
    Kind.CALL: (12, (Channel.PHONE,)),
    Kind.CASE: (10, (Channel.WEB, Channel.WEB, Channel.PHONE, Channel.EMAIL, "")),
    Kind.NOTE: (6, ("",)),
    Kind.VISIT: (3, (Channel.IN_PERSON,)),
    Kind.SUBSCRIPTION: (4, (Channel.WEB, Channel.EMAIL)),
    Kind.CONSENT: (2, (Channel.WEB, Channel.PHONE, Channel.POST)),
    Kind.PARTICIPATION: (3, (Channel.WEB, Channel.WEB, Channel.POST, Channel.IN_PERSON)),
    Kind.PROFILE: (2, (Channel.SYSTEM, Channel.WEB, "")),
}

_STREETS = (
    "Church Lane",
    "Station Road",
    "St Mary's Road",
    "Heol y Bryn",
    "Mill Street",
    "Ffordd Glan-y-Môr",
    "Queen's Avenue",
    "Y Stryd Fawr",
    "Orchard Close",
    "Bryn Awelon",
)
_TOPICS: dict[str, tuple[str, Sequence[str]]] = {
    "Waste and Recycling": (
        "WST",
        (
            "Missed bin collection at {street}",
            "Request for a replacement recycling box",
            "Bulky waste collection booked for {date}",
            "Garden waste subscription renewal",
            "Fly-tipping reported behind {street}",
        ),
    ),
    "Council Tax": (
        "CTX",
        (
            "Single person discount application",
            "Direct debit moved to day {day} of the month",
            "Question about the {month} instalment",
            "Moving out of {number} {street}: final bill requested",
            "Council Tax Reduction claim",
        ),
    ),
    "Housing": (
        "HSG",
        (
            "Damp and mould in the bathroom at {number} {street}",
            "Housing register application update",
            "Boiler not working, two children in the home",
            "Request to swap tenancy (mutual exchange)",
        ),
    ),
    "Highways": (
        "HWY",
        (
            "Pothole on {street} near number {number}",
            "Street light out outside {number} {street}",
            "Dropped kerb application",
            "Overgrown hedge blocking the footpath on {street}",
        ),
    ),
    "Planning": (
        "PLN",
        (
            "Objection to planning application 24/0{number}/FUL",
            "Pre-application advice for a rear extension",
            "Tree preservation order query for {street}",
        ),
    ),
    "Parking": (
        "PRK",
        (
            "Resident permit renewal for {street}",
            "Appeal against penalty charge notice NM{number}44",
            "Visitor permits not received",
        ),
    ),
    "Environmental Health": (
        "ENV",
        (
            "Noise from a neighbour on {street} late at night",
            "Food hygiene concern about a café on {street}",
            "Rats seen in the alley behind {street}",
        ),
    ),
    "Adult Social Care": (
        "ASC",
        (
            "Blue Badge application",
            "Request for a care needs assessment for a parent",
            "Meals on wheels: change of delivery days",
        ),
    ),
    "Libraries": (
        "LIB",
        (
            "Library card renewal",
            "Reserved book ready to collect at the {street} branch",
        ),
    ),
}
_KIND_PREFIX = {
    Kind.MESSAGE_IN: "",
    Kind.MESSAGE_OUT: "Reply sent: ",
    Kind.CALL: "Call: ",
    Kind.CASE: "Case opened: ",
    Kind.NOTE: "Note: ",
    Kind.VISIT: "Visit to the customer service centre: ",
}
_OTHER_SUMMARIES = {
    Kind.SUBSCRIPTION: (
        "Subscribed to bin collection reminders",
        "Subscribed to {street} roadworks updates",
        "Unsubscribed from the council newsletter",
    ),
    Kind.CONSENT: (
        "Consent to contact by text message given",
        "Consent to share details with the housing association withdrawn",
    ),
    Kind.PARTICIPATION: (
        "Signed the petition 'Save the {street} library'",
        "Responded to the consultation on the 2026/27 budget",
        "Voted in participatory budgeting for {street} play area",
        "Booked a councillor surgery appointment",
    ),
    Kind.PROFILE: (
        "Preferred language changed to Welsh",
        "Accessibility needs updated: large print",
        "Postal address changed to {number} {street}",
    ),
}
_DETAILS = (
    "Resident says this is the third time it has happened.",
    "Asked for a reply in Welsh.",
    "Photos attached.",
    "Wants a call back after 5pm.",
    "Mentioned a neighbour has the same problem.",
    "Previous reference given by the resident did not match.",
    "Resident is housebound; please arrange a home visit if needed.",
    "Follow-up to last week's e-mail, still no reply.",
)
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


@dataclass(frozen=True)
class _Fingerprint:
    """Enough of the table's contents to tell that both writers stored the same rows."""

    rows: int
    summary_chars: int
    citizen_id_sum: int
    earliest: datetime.datetime | None
    latest: datetime.datetime | None


def _citizen_ids(count: int) -> list[int]:
    """Ids of `count` active citizens, creating the missing ones."""
    live = Citizen.objects.filter(status=Citizen.Status.ACTIVE).order_by("id")
    ids = list(live.values_list("id", flat=True)[:count])
    missing = count - len(ids)
    if missing:
        rng = random.Random(SEED)
        given = ("Aled", "Bethan", "Chloe", "Dafydd", "Emma", "Farah", "Gareth", "Priya")
        family = ("Jones", "Williams", "Davies", "Evans", "Khan", "Thomas", "Roberts", "Smith")
        # Set-up, not measured: straight to the table, without citizen_create's per-profile
        # audit rows.
        Citizen.objects.bulk_create(
            Citizen(given_name=rng.choice(given), family_name=rng.choice(family))
            for _ in range(missing)
        )
        ids = list(live.values_list("id", flat=True)[:count])
    return ids


def _fill(template: str, rng: random.Random, now: datetime.datetime) -> str:
    return template.format(
        street=rng.choice(_STREETS),
        number=rng.randint(1, 240),
        day=rng.randint(1, 28),
        month=rng.choice(_MONTHS),
        date=(now + datetime.timedelta(days=rng.randint(1, 20))).strftime("%d %B"),
    )


def build_entries(citizen_ids: Sequence[int], count: int) -> list[TimelineEntryData]:
    """`count` varied entries for the given citizens, spread over the past year."""
    rng = random.Random(SEED)
    now = timezone.now()
    year_ago = now - datetime.timedelta(days=365)
    year_seconds = 365 * 24 * 3600
    kinds = list(_KIND_CHANNELS)
    kind_weights = [weight for weight, _channels in _KIND_CHANNELS.values()]
    departments = list(_TOPICS)
    entries: list[TimelineEntryData] = []
    for kind in rng.choices(kinds, weights=kind_weights, k=count):
        department = rng.choice(departments)
        code, topics = _TOPICS[department]
        topic_index = rng.randrange(len(topics))
        if kind in _OTHER_SUMMARIES:
            summary = _fill(rng.choice(_OTHER_SUMMARIES[kind]), rng, now)
        else:
            summary = _KIND_PREFIX[kind] + _fill(topics[topic_index], rng, now)
        details = rng.choices(_DETAILS, k=rng.choice((0, 0, 1, 1, 2, 3)))
        if details:
            summary = " ".join((summary + ".", *details))
        resident_sees = (
            kind in (Kind.MESSAGE_IN, Kind.MESSAGE_OUT, Kind.CASE) and rng.random() < 0.6
        )
        entries.append(
            TimelineEntryData(
                citizen_id=rng.choice(citizen_ids),
                kind=kind,
                occurred_at=year_ago + datetime.timedelta(seconds=rng.randrange(year_seconds)),
                summary=summary,
                channel=rng.choice(_KIND_CHANNELS[kind][1]),
                department=department,
                service_code=f"{code}-{topic_index + 1:03d}",
                visibility=(
                    TimelineEntry.Visibility.RESIDENT
                    if resident_sees
                    else TimelineEntry.Visibility.STAFF
                ),
            )
        )
    return entries


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_text(value: str) -> str:
    return value.translate(_COPY_ESCAPES)


def copy_buffer(entries: Iterable[TimelineEntryData], created_at: datetime.datetime) -> io.StringIO:
    """The entries in COPY's text format, columns in _COPY_FIELDS order."""
    created = created_at.isoformat()
    buffer = io.StringIO()
    write = buffer.write
    for entry in entries:
        source_type = r"\N" if entry.source_type_id is None else str(entry.source_type_id)
        write(
            "\t".join(
                (
                    str(entry.citizen_id),
                    entry.occurred_at.isoformat(),
                    entry.kind,
                    entry.channel,
                    _copy_text(entry.department),
                    _copy_text(entry.service_code),
                    _copy_text(entry.summary),
                    entry.visibility,
                    source_type,
                    _copy_text(entry.source_id),
                    created,
                )
            )
            + "\n"
        )
    buffer.seek(0)
    return buffer


def _reset_table() -> None:
    """Empty the table (indexes stay) and flush dirty pages, so each writer starts alike."""
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {connection.ops.quote_name(TABLE)} RESTART IDENTITY")
    try:
        # Otherwise the first writer's WAL may be checkpointed during the second's run.
        # Needs superuser or pg_checkpoint; without it the figures are only noisier.
        with connection.cursor() as cursor:
            cursor.execute("CHECKPOINT")
    except DatabaseError as exc:
        print(f"{NAME}: CHECKPOINT skipped ({exc.__class__.__name__})")


def _fingerprint() -> _Fingerprint:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), coalesce(sum(length(summary)), 0), coalesce(sum(citizen_id), 0),"
            f" min(occurred_at), max(occurred_at) FROM {connection.ops.quote_name(TABLE)}"
        )
        rows, chars, citizen_sum, earliest, latest = cursor.fetchone()
    return _Fingerprint(int(rows), int(chars), int(citizen_sum), earliest, latest)


def run() -> None:
    count = scaled(ENTRIES)
    citizen_ids = _citizen_ids(CITIZENS)
    entries = build_entries(citizen_ids, count)

    _reset_table()
    with timed() as service:
        offered = record_timeline_entries(entries)
    stored_by_service = _fingerprint()
    if offered != count or stored_by_service.rows != count:
        raise BenchmarkError(
            f"service offered {offered} and stored {stored_by_service.rows} of {count} entries"
        )

    _reset_table()
    with timed() as copy_total, transaction.atomic():
        # Built inside the timer: turning the same entries into rows is part of this path's
        # cost, as it is of the service's.
        with timed() as copy_build:
            buffer = copy_buffer(entries, timezone.now())
        with timed() as copy_load, connection.cursor() as cursor:
            cursor.copy_expert(COPY_SQL, buffer)
    stored_by_copy = _fingerprint()
    if stored_by_copy != stored_by_service:
        raise BenchmarkError(
            f"COPY stored different rows from the service: {stored_by_copy} vs {stored_by_service}"
        )
    _reset_table()

    service_rate = service.rate(count)
    copy_rate = copy_total.rate(count)
    ratio = service_rate / copy_rate
    report(
        NAME,
        f"{NAME}: service {service_rate:,.0f} rows/s, COPY {copy_rate:,.0f} rows/s, "
        f"ratio {ratio:.2f} ({count:,} rows, {len(citizen_ids):,} citizens)",
        {
            "rows": count,
            "citizens": len(citizen_ids),
            "service_seconds": round(service.seconds, 3),
            "service_rows_per_s": round(service_rate),
            "copy_seconds": round(copy_total.seconds, 3),
            "copy_build_seconds": round(copy_build.seconds, 3),
            "copy_load_seconds": round(copy_load.seconds, 3),
            "copy_rows_per_s": round(copy_rate),
            "copy_load_rows_per_s": round(copy_load.rate(count)),
            "ratio": round(ratio, 3),
        },
    )
    print(
        f"{NAME}: COPY split: buffer built in {copy_build.seconds:.2f} s, loaded in "
        f"{copy_load.seconds:.2f} s (load alone {copy_load.rate(count):,.0f} rows/s)"
    )
