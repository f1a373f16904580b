"""Build the scale database the staff-page benchmark runs against (`make bench-data`).

A council-sized hub in its own PostgreSQL database, `citizenhub_bench_scale`: 1,000,000
citizens with realistic Welsh and English names, about 1.6 million e-mail addresses and
mobile numbers, 1,000,000 addresses over about 30,000 postcodes, 200,000 service cases over
the starter catalogue (each with its "created" history line) and 10,000,000 timeline
entries, skewed as a real council's are: most people have a handful, a few hundred have
thousands. `BENCH_SCALE` scales every count.

Everything is drawn from fixed seeds, so two builds hold the same rows. Each table is
streamed into `COPY ... FROM STDIN` block by block (a block is 1,000 citizens, generated
from its own seed), so memory stays bounded: only per-citizen counts and the case plan are
held in memory. Non-unique indexes and foreign keys of the loaded tables are dropped before
the load and rebuilt after it (the same definitions, read back from the catalogue); unique
indexes stay, so the load itself proves references, e-mail and phone identities unique.

Idempotent: when the database already holds a complete build of the same size and
generator version, it says so and exits; `--force` rebuilds from scratch.

    .venv/bin/python benchmarks/scale_data.py [--force]
"""

from __future__ import annotations

import argparse
import bisect
import datetime
import io
import itertools
import json
import math
import os
import random
import sys
import tempfile
import time
import unicodedata
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

# Run as a script, Python puts benchmarks/ itself on the path; the package needs the root.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import (
    BENCH_DATABASE,
    BenchmarkError,
    bench_scale,
    connect_server,
    database_exists,
    drop_database,
    report,
    scaled,
    setup_django,
)

NAME = "scale_data"
# Another name (it must start with "citizenhub_bench") keeps a second build, e.g. a small
# one for trying the benchmark out: BENCH_SCALE=0.01 BENCH_SCALE_DATABASE=citizenhub_bench_small
SCALE_DATABASE = os.environ.get("BENCH_SCALE_DATABASE", "").strip() or f"{BENCH_DATABASE}_scale"
CITIZENS = 1_000_000
TIMELINE_ENTRIES = 10_000_000
CASES = 200_000
# Bump when the generator changes what it writes: an older build is then rebuilt.
GENERATOR_VERSION = 2
SEED = 20_261_126
BLOCK = 1_000  # citizens generated together from one seed
MANIFEST_TABLE = "bench_scale_manifest"

UTC = datetime.UTC
LONDON = ZoneInfo("Europe/London")
# Data ends here rather than at the real "now", so every build writes the same rows.
DATA_NOW = datetime.datetime(2026, 11, 20, 17, 0, tzinfo=UTC)
NOW_TS = int(DATA_NOW.timestamp())
HISTORY_START_TS = int(datetime.datetime(2018, 4, 1, tzinfo=UTC).timestamp())
CASE_START_TS = NOW_TS - 3 * 365 * 86_400
DAY = 86_400


# --- names, places and what people get in touch about ----------------------------------------

# (name, relative frequency). Welsh names dominate in Wales, English ones elsewhere; the
# hub serves a council near the border, so both, plus the names of newer communities.
WELSH_GIVEN = (
    ("Dafydd", 6), ("Rhys", 8), ("Gareth", 6), ("Gethin", 4), ("Iwan", 4), ("Owain", 6),
    ("Aled", 4), ("Dylan", 7), ("Emyr", 2), ("Geraint", 4), ("Gwyn", 3), ("Huw", 5),
    ("Ieuan", 3), ("Iolo", 2), ("Llŷr", 1), ("Meilir", 1), ("Osian", 3), ("Rhodri", 3),
    ("Siôn", 3), ("Steffan", 3), ("Tomos", 5), ("Gruffudd", 2), ("Cai", 3), ("Macsen", 2),
    ("Siân", 7), ("Catrin", 6), ("Ffion", 6), ("Elin", 6), ("Carys", 5), ("Bethan", 6),
    ("Rhiannon", 5), ("Angharad", 3), ("Gwenllian", 2), ("Mair", 3), ("Nia", 6),
    ("Seren", 5), ("Cerys", 5), ("Efa", 3), ("Eluned", 1), ("Glesni", 1), ("Heledd", 2),
    ("Llinos", 2), ("Lowri", 5), ("Manon", 3), ("Mererid", 1), ("Non", 1), ("Sioned", 3),
    ("Tegan", 2), ("Alaw", 2), ("Mali", 3),
)  # fmt: skip
ENGLISH_GIVEN = (
    ("Oliver", 9), ("George", 8), ("Harry", 8), ("Jack", 8), ("Jacob", 5), ("Noah", 6),
    ("Charlie", 6), ("Thomas", 9), ("Oscar", 4), ("William", 8), ("James", 10),
    ("Henry", 4), ("Leo", 4), ("Alfie", 4), ("Joshua", 4), ("Daniel", 7), ("Samuel", 5),
    ("Matthew", 6), ("Michael", 8), ("David", 10), ("John", 10), ("Paul", 7),
    ("Mark", 6), ("Andrew", 7), ("Richard", 6), ("Robert", 7), ("Christopher", 6),
    ("Stephen", 6), ("Peter", 6), ("Anthony", 4), ("Kevin", 3), ("Gary", 3),
    ("Ian", 4), ("Alan", 3), ("Keith", 2), ("Brian", 3), ("Colin", 2), ("Graham", 2),
    ("Amelia", 8), ("Olivia", 9), ("Isla", 5), ("Ava", 5), ("Emily", 8), ("Sophie", 6),
    ("Grace", 5), ("Lily", 5), ("Isabella", 4), ("Mia", 5), ("Poppy", 3), ("Ella", 4),
    ("Charlotte", 6), ("Jessica", 5), ("Hannah", 5), ("Lucy", 5), ("Chloe", 4),
    ("Sarah", 8), ("Emma", 7), ("Laura", 6), ("Rebecca", 5), ("Rachel", 5),
    ("Claire", 5), ("Helen", 6), ("Karen", 5), ("Susan", 6), ("Margaret", 6),
    ("Elizabeth", 6), ("Patricia", 3), ("Linda", 3), ("Jennifer", 4), ("Joanne", 4),
    ("Nicola", 4), ("Julie", 4), ("Angela", 3), ("Catherine", 4), ("Deborah", 3),
    ("Zoë", 2), ("Chloë", 1), ("Renée", 1), ("Noémie", 1),
)  # fmt: skip
OTHER_GIVEN = (
    ("Mohammed", 6), ("Muhammad", 4), ("Ahmed", 3), ("Ali", 3), ("Omar", 2), ("Yusuf", 2),
    ("Ibrahim", 2), ("Aisha", 3), ("Fatima", 3), ("Maryam", 2), ("Zainab", 2),
    ("Priya", 2), ("Ravi", 2), ("Arjun", 2), ("Anjali", 1), ("Deepak", 1),
    ("Seán", 2), ("Siobhán", 2), ("Niamh", 2), ("Ciarán", 2), ("Aoife", 2), ("Eilidh", 1),
    ("Mòrag", 1), ("Zofia", 2), ("Bartosz", 2), ("Katarzyna", 2), ("Piotr", 2),
    ("Chidi", 1), ("Oluwaseun", 1), ("Adebayo", 1), ("Ngozi", 1), ("Kwame", 1),
    ("Andreea", 1), ("Ionuț", 1), ("Mei", 1), ("Wei", 1),
)  # fmt: skip
WELSH_FAMILY = (
    ("Jones", 58), ("Williams", 40), ("Davies", 36), ("Evans", 28), ("Thomas", 24),
    ("Roberts", 18), ("Hughes", 14), ("Lewis", 14), ("Morgan", 12), ("Griffiths", 11),
    ("Price", 7), ("Pritchard", 3), ("Lloyd", 5), ("Rees", 6), ("Powell", 5),
    ("Llewellyn", 3), ("Bowen", 4), ("Parry", 5), ("Jenkins", 7), ("James", 8),
    ("Edwards", 10), ("Owen", 8), ("Phillips", 7), ("Morris", 7), ("Watkins", 4),
    ("Howells", 2), ("Meredith", 2), ("Pugh", 3), ("Prosser", 2), ("Vaughan", 3),
    ("ap Dafydd", 1), ("ap Rhys", 1), ("Gwilym", 1), ("Prydderch", 1), ("Bevan", 3),
    ("Gittins", 1), ("Probert", 2), ("Rowlands", 4), ("Humphreys", 3), ("Harries", 2),
)  # fmt: skip
ENGLISH_FAMILY = (
    ("Smith", 30), ("Taylor", 16), ("Brown", 15), ("Wilson", 12), ("Johnson", 12),
    ("Walker", 10), ("Wright", 10), ("Robinson", 9), ("Thompson", 10), ("White", 9),
    ("Green", 8), ("Hall", 8), ("Wood", 8), ("Clarke", 8), ("Jackson", 7), ("Harris", 7),
    ("Martin", 7), ("Cooper", 6), ("King", 6), ("Baker", 6), ("Turner", 6), ("Hill", 6),
    ("Moore", 6), ("Ward", 6), ("Allen", 5), ("Young", 5), ("Harrison", 5), ("Mitchell", 5),
    ("Carter", 5), ("Bennett", 5), ("Shaw", 4), ("Cook", 4), ("Marshall", 4),
    ("Fitzgerald", 2), ("O'Neill", 3), ("O'Brien", 3), ("O'Connor", 2), ("D'Souza", 1),
    ("McDonald", 3), ("MacLeod", 1), ("Smith-Jones", 1), ("Ashworth-Hughes", 1),
    ("Patel", 8), ("Khan", 7), ("Begum", 5), ("Ahmed", 5), ("Hussain", 5), ("Ali", 4),
    ("Singh", 4), ("Kaur", 3), ("Kowalska", 2), ("Nowak", 2), ("Wiśniewski", 1),
    ("Okafor", 1), ("Adeyemi", 1), ("Nguyen", 1), ("Chen", 1), ("Popescu", 1),
)  # fmt: skip

STREET_NAMES = (
    "High Street", "Station Road", "Church Street", "Church Lane", "Mill Lane", "Main Road",
    "Park Road", "Victoria Road", "Queen Street", "King Street", "New Road", "School Lane",
    "Chapel Street", "Chapel Row", "Castle Street", "Bridge Street", "Market Street",
    "North Road", "Heol y Nant", "Heol y Bryn", "Heol Isaf", "Ffordd yr Afon",
    "Ffordd Glan-y-Môr", "Maes y Coed", "Maes Glas", "Bryn Glas", "Bryn Awelon",
    "Tan-y-bryn", "Pen-y-lan", "Cae Mawr", "Lôn Goch", "Ty'n y Coed", "Y Stryd Fawr",
    "Cwrt y Felin", "Llys Derwen", "Parc Ty Glas", "Ash Grove", "Beech Drive",
    "Willow Court", "Oakfield Way", "Orchard Close", "Meadow View", "Park Terrace",
    "Colliery Row", "Westgate", "Riverside Walk", "St Mary's Road", "St David's Close",
    "Fernside Crescent", "Heather Way", "Greenfield Road", "Primrose Hill", "Gorse Lane",
    "Holly Bank", "Kingsmead Close", "Moorside Avenue", "Abbey Road", "Brook Vale",
    "Quarry Lane", "Castle Hill", "The Avenue", "The Crescent", "Windsor Road",
    "Albert Street", "Edward Street", "Mount Pleasant", "Hillside", "Valley View",
    "Glanrhyd", "Heol Dewi Sant", "Clos yr Wylan", "Llwyn Onn", "Rhodfa'r Gorllewin",
)  # fmt: skip
TOWNS = (
    "Northmoor", "Aberfelin", "Pontnewydd", "Llanfair Isaf", "Castell Coch", "Brynmawr",
    "Trefynach", "Glyn Ceiriog", "Westford", "Ashby Moor", "Kingsley", "Holt Green",
    "Penrhos", "Cwm Du", "Rhydlafar", "Caerwen", "Millbrook", "Oakhampton Vale",
    "Nantgarw Uchaf", "St Dogmael's", "Llanwern Newydd", "Tŷ Croes", "Eastwick", "Marshfield",
)  # fmt: skip
# Letters allowed in a postcode's inward code (no C, I, K, M, O or V).
INWARD_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"
# Streets: each town has many, of different lengths; a street lies in one postcode sector
# and its postcode unit changes every 16 house numbers, as real ones roughly do.
STREETS_PER_TOWN = 220
PERSONAL_DOMAINS = (
    ("gmail.example", 40), ("outlook.example", 14), ("hotmail.example", 12),
    ("btinternet.example", 8), ("yahoo.example", 8), ("icloud.example", 6),
    ("sky.example", 4), ("talktalk.example", 3), ("virginmedia.example", 3),
    ("aol.example", 1), ("proton.example", 1),
)  # fmt: skip
WORK_DOMAINS = (
    "nhs.example", "northmoor.gov.example", "wales-university.example", "tesco.example",
    "police.example", "school.northmoor.example", "btconnect.example",
)  # fmt: skip
ACCESSIBILITY_NEEDS = (
    "Large print",
    "British Sign Language interpreter for appointments",
    "Easy read",
    "Hearing loop at appointments",
    "Blind: prefers phone calls, not letters",
    "Wheelchair user: needs step-free access for visits",
    "Dyslexic: prefers short messages",
)
# UK mobile number blocks (07xxx) that libphonenumber accepts as mobiles: 074xx-075xx and
# 07701-07999 except 07911. 07700 is Ofcom's drama range, and 076 pagers and Isle of Man.
MOBILE_PREFIXES = tuple(
    prefix for prefix in itertools.chain(range(7400, 7600), range(7701, 8000)) if prefix != 7911
)
MOBILE_SLOTS = len(MOBILE_PREFIXES) * 1_000_000
# Injective maps of a citizen index onto a number: multiplication modulo a prime (or a
# number coprime to the multiplier) never sends two indexes to the same value.
EMAIL_NUMBER_PRIME = 1_000_003
MONTHS = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
)  # fmt: skip


class Topic(NamedTuple):
    weight: int
    department: str
    service_code: str
    summaries: tuple[str, ...]  # may use {street}, {number}, {month}, {day}, {year}


# What people get in touch about. Service codes are the catalogue's (citizenhub/catalogue.py),
# so the sensitive ones (adult social care, bereavement) are hidden from officers outside
# those teams exactly as on a real timeline; other topics have a department only.
TOPICS = (
    Topic(18, "Environment", "missed-bin", (
        "Missed general waste collection at {number} {street}",
        "Recycling not collected on {street} this week",
        "Garden waste bin missed again on {street}",
        "Crew returning to {street} to empty the missed bin",
        "Bin collection missed after the bank holiday change",
        "Casgliad bin wedi'i fethu yn {street}",
    )),
    Topic(5, "Environment", "fly-tipping", (
        "Fly-tipping behind the garages on {street}",
        "Mattress and bags dumped in the lane off {street}",
        "Tipio anghyfreithlon ger {street}",
    )),
    Topic(9, "Place", "pothole", (
        "Pothole outside {number} {street}",
        "Deep pothole on {street} damaged a tyre",
        "Follow-up: pothole on {street} still not repaired",
        "Twll yn y ffordd ar {street}",
    )),
    Topic(4, "Place", "street-light", (
        "Street light out outside {number} {street}",
        "Street light flickering all night on {street}",
    )),
    Topic(4, "Environment", "noise", (
        "Noise from a neighbour's dog on {street}",
        "Loud music late at night from a house on {street}",
        "Noise diary sheets returned for {month}",
    )),
    Topic(12, "Resources", "council-tax", (
        "Council Tax Direct Debit moved to the {day}th of the month",
        "Single person discount application for {number} {street}",
        "Question about the {month} Council Tax instalment",
        "Council Tax reminder notice: payment arrangement agreed",
        "Moving out of {number} {street}: final bill requested",
        "Council Tax Reduction claim for {year}/{next_year}",
        "Ymholiad Treth y Cyngor ar gyfer {month}",
    )),
    Topic(7, "Housing", "housing-repair", (
        "Damp and mould in the back bedroom at {number} {street}",
        "Boiler not working, two children in the home",
        "Leaking roof at {number} {street}",
        "Repair appointment confirmed for {day} {month}",
    )),
    Topic(2, "Legal and democratic", "foi", (
        "Freedom of Information request about pothole repairs in {year}",
        "FOI request: spending on agency staff",
    )),
    Topic(3, "Customer services", "complaint-stage-1", (
        "Complaint about a missed appointment",
        "Complaint about the handling of a repair at {number} {street}",
    )),
    Topic(1, "Customer services", "complaint-stage-2", (
        "Asked for a stage 2 review of a complaint",
    )),
    Topic(1, "Legal and democratic", "subject-access", (
        "Subject access request for all records since {year}",
    )),
    Topic(3, "Adult social care", "adult-social-care", (
        "Care needs assessment requested for a parent",
        "Carer's assessment discussed with the family",
        "Occupational therapist visit: grab rails in the bathroom",
        "Safeguarding concern raised by a neighbour",
    )),
    Topic(1, "Registration and bereavement", "bereavement", (
        "Told us about a death in the family (Tell Us Once)",
        "Cremation booking at Northmoor crematorium",
    )),
    Topic(4, "Planning", "", (
        "Objection to planning application 24/0{number}/FUL",
        "Pre-application advice for a rear extension at {number} {street}",
        "Tree preservation order query for {street}",
    )),
    Topic(4, "Parking", "", (
        "Resident permit renewal for {street}",
        "Appeal against penalty charge notice NM{number}44",
        "Visitor permits not received",
    )),
    Topic(3, "Education", "", (
        "School place application for September {next_year}",
        "Free school meals application",
        "Home-to-school transport query",
    )),
    Topic(2, "Libraries and leisure", "", (
        "Library card renewal",
        "Leisure centre membership cancelled",
    )),
    Topic(3, "Democratic services", "", (
        "Asked how to register to vote",
        "Postal vote application form requested",
        "Asked which councillors represent {street}",
    )),
)  # fmt: skip


class KindSpec(NamedTuple):
    weight: int
    kind: str
    channels: tuple[str, ...]
    resident_share: float  # how many of this kind the resident sees in the portal
    topical: bool  # draws a topic (department, service code, summary)
    summaries: tuple[str, ...] = ()
    department: str = ""  # of entries that are not topical
    prefix: str = ""  # put before the topic's summary


KINDS = (
    KindSpec(36, "message_in", ("email",) * 5 + ("web",) * 3 + ("sms",) * 2
             + ("x", "facebook", "mastodon", "post"), 0.6, True),
    KindSpec(26, "message_out", ("email",) * 5 + ("sms",) * 2 + ("post",), 0.6, True,
             prefix="Reply: "),
    KindSpec(14, "call", ("phone",), 0.0, True),
    KindSpec(6, "note", ("",), 0.0, True),
    KindSpec(3, "visit", ("in_person",), 0.0, True),
    KindSpec(6, "subscription", ("web", "email"), 1.0, False, (
        "Subscribed to bin collection reminders",
        "Subscribed to the Northmoor news e-mail",
        "Unsubscribed from the events newsletter",
        "Subscribed to roadworks alerts for {street}",
    ), "Communications"),
    KindSpec(3, "consent", ("web", "phone", "post"), 1.0, False, (
        "Consent given for e-mail updates about council services",
        "Consent withdrawn for text messages",
        "Caniatâd i dderbyn negeseuon e-bost",
    ), "Communications"),
    KindSpec(4, "participation", ("web", "web", "post", "in_person"), 1.0, False, (
        "Signed the petition: Save Northmoor library",
        "Responded to the consultation on the {year} budget",
        "Voted in the participatory budget for {street} play park",
        "Booked a councillor surgery for {day} {month}",
    ), "Democratic services"),
    KindSpec(2, "profile", ("system", "web", ""), 0.0, False, (
        "Preferred language changed",
        "Phone number added by the resident",
        "Address updated after a house move",
        "Profile details checked by staff",
    ), "Customer services"),
)  # fmt: skip

# Case titles per service code, and how residents most often reach each.
CASE_TITLES = {
    "missed-bin": ("Missed general waste collection", "Missed recycling collection",
                   "Missed garden waste collection", "Missed food waste collection"),
    "fly-tipping": ("Fly-tipping: bags and a mattress", "Fly-tipping: builders' rubble",
                    "Fly-tipping: fridge dumped in a lane"),
    "pothole": ("Pothole in the road", "Pothole on the pavement", "Pothole in a cycle lane"),
    "street-light": ("Street light out", "Street light on during the day",
                     "Street light column damaged"),
    "noise": ("Barking dog", "Loud music at night", "Noise from a business"),
    "council-tax": ("Single person discount", "Council Tax bill query", "Direct Debit change",
                    "Council Tax exemption request"),
    "housing-repair": ("Damp and mould", "Boiler not working", "Leaking roof",
                       "Broken front door lock"),
    "foi": ("FOI request: pothole repair spending", "FOI request: agency staff costs",
            "FOI request: library opening hours"),
    "complaint-stage-1": ("Complaint about a missed appointment",
                          "Complaint about staff conduct", "Complaint about a repair"),
    "complaint-stage-2": ("Stage 2 review of a complaint",),
    "subject-access": ("Subject access request",),
    "adult-social-care": ("Care needs assessment", "Carer's assessment",
                          "Equipment for daily living", "Safeguarding concern"),
    "bereavement": ("Cremation booking", "Burial enquiry", "Tell Us Once notification"),
}  # fmt: skip
CASE_WEIGHTS = {
    "missed-bin": 30, "fly-tipping": 8, "pothole": 14, "street-light": 7, "noise": 6,
    "council-tax": 12, "housing-repair": 10, "foi": 2, "complaint-stage-1": 4,
    "complaint-stage-2": 1, "subject-access": 1, "adult-social-care": 3, "bereavement": 2,
}  # fmt: skip
CASE_CHANNELS = (("web", 45), ("phone", 25), ("email", 20), ("in_person", 5), ("x", 2),
                 ("facebook", 2), ("sms", 1))  # fmt: skip
RESOLUTIONS = (
    "Done: the crew returned and completed the work.",
    "Repaired within the target time. Thank you for reporting it.",
    "We have investigated and written to you with the outcome.",
    "No further action: we could not find a problem on inspection.",
    "Referred to the team responsible, who have completed the work.",
)


# --- helpers -----------------------------------------------------------------------------


def _cumulative(weights: Iterable[float]) -> list[float]:
    return list(itertools.accumulate(weights))


def _picker(
    rng: random.Random, items: Sequence[Any], weights: Sequence[float], size: int = 4_096
) -> Callable[[], Any]:
    """A function drawing from `items` by weight: one random() indexing a table in which each
    item appears in proportion to its weight (at least once). Ten times faster than
    random.choices, which matters over ten million rows."""
    total = sum(weights)
    table: list[Any] = []
    for item, weight in zip(items, weights, strict=True):
        table.extend([item] * max(1, round(weight / total * size)))
    length = len(table)
    random_ = rng.random

    def pick() -> Any:
        return table[int(random_() * length)]

    return pick


_ASCII_CACHE: dict[str, str] = {}


def _ascii(text: str) -> str:
    """'Siân O'Neill' -> 'sianoneill': what people type into e-mail addresses."""
    folded = _ASCII_CACHE.get(text)
    if folded is None:
        plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
        folded = _ASCII_CACHE[text] = "".join(ch for ch in plain.lower() if ch.isalnum())
    return folded


_DATE_CACHE: dict[int, str] = {}
# " HH:MM:SS+00" for every second of a day: formatting timestamps is the generator's
# largest cost otherwise.
_TIMES = tuple(
    f" {second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}+00" for second in range(DAY)
)


def _ts(epoch: int) -> str:
    """An epoch second as COPY reads a timestamptz, much faster than datetime formatting."""
    day, second = divmod(epoch, DAY)
    date = _DATE_CACHE.get(day)
    if date is None:
        date = _DATE_CACHE[day] = (
            datetime.date(1970, 1, 1) + datetime.timedelta(days=day)
        ).isoformat()
    return date + _TIMES[second]


def _uuid4(bits: int) -> str:
    """A version 4 UUID from 128 random bits, as text; what uuid.UUID(version=4) gives,
    without building the object."""
    bits = (bits & ~(0xF000 << 64) | (0x4000 << 64)) & ~(0xC000 << 48) | (0x8000 << 48)
    h = f"{bits:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _utc_date(epoch: int) -> datetime.date:
    return datetime.date(1970, 1, 1) + datetime.timedelta(days=epoch // DAY)


def _office_time(rng: random.Random, day_start: int) -> int:
    """A moment in office hours (08:30-17:30 UTC, near enough) on the given day."""
    return day_start + 30_600 + rng.randrange(32_400)


def _check_text(values: Iterable[str]) -> None:
    """Generated text goes into COPY unescaped: make sure it needs no escaping."""
    for value in values:
        if any(ch in value for ch in "\\\t\n\r"):
            raise BenchmarkError(f"generator text needs COPY escaping: {value!r}")


# --- the global plan: who has how many entries and cases -----------------------------------

ACTIVE, PROVISIONAL, MERGED = 0, 1, 2
STATUS_NAMES = ("active", "provisional", "merged")


class CasePlan(NamedTuple):
    opened_ts: int
    citizen: int  # citizen index, -1 for an anonymous report
    service: str  # service code
    title: str
    channel: str
    reference: str


@dataclass
class Plan:
    citizens: int
    entries: array  # timeline entries per citizen index (including its case entries)
    status: bytearray
    merged_into: dict[int, int]
    cases: list[CasePlan]  # in id order (case id = position + 1), opened_at ascending
    cases_by_citizen: list[tuple[int, int]]  # (citizen index, case id), sorted
    sequences: dict[int, int]  # year -> last reference number issued

    def case_ids_between(self, start: int, end: int) -> dict[int, list[int]]:
        """{citizen index: [case ids]} for citizens start <= i < end."""
        found: dict[int, list[int]] = {}
        position = bisect.bisect_left(self.cases_by_citizen, (start, 0))
        pairs = self.cases_by_citizen
        while position < len(pairs) and pairs[position][0] < end:
            citizen, case_id = pairs[position]
            found.setdefault(citizen, []).append(case_id)
            position += 1
        return found


def _log_uniform(rng: random.Random, low: float, high: float) -> int:
    return int(math.exp(rng.uniform(math.log(low), math.log(high))))


def build_plan(*, citizens: int, entries_total: int, cases_total: int) -> Plan:
    """Timeline sizes, statuses and the case plan, drawn from one seed."""
    rng = random.Random(f"{SEED}:plan")
    entries = array("I", bytes(4 * citizens))
    status = bytearray(citizens)
    merged_into: dict[int, int] = {}
    for index in range(citizens):
        draw = rng.random()
        if draw < 0.0005:  # a few hundred people the council hears from constantly
            count = _log_uniform(rng, 1_000, 5_000)
        elif draw < 0.0055:
            count = _log_uniform(rng, 100, 1_000)
        elif draw < 0.06:
            count = _log_uniform(rng, 20, 100)
        else:  # most: a handful, a fifth nothing at all (imported, never in touch)
            count = int(rng.expovariate(1 / 4.85))
        kind = rng.random()
        if index > 100 and kind < 0.005:
            status[index] = MERGED
            survivor = rng.randrange(index)
            while status[survivor] != ACTIVE:
                survivor = rng.randrange(index)
            merged_into[index] = survivor
            count = 0  # a merge moves the timeline to the surviving profile
        elif kind < 0.025:
            status[index] = PROVISIONAL  # made from an unknown sender: one or two messages
            count = 1 + rng.randrange(3)
        entries[index] = count

    # Cases go to people in proportion to how much they contact the council; a few are
    # anonymous street reports.
    cumulative = array("q", itertools.accumulate(entries))
    total = cumulative[-1] if citizens else 0
    services = list(CASE_WEIGHTS)
    pick_service = _picker(rng, services, [CASE_WEIGHTS[code] for code in services])
    anonymous_services = ("fly-tipping", "pothole", "street-light")
    pick_channel = _picker(rng, *zip(*CASE_CHANNELS, strict=True))
    drafts: list[tuple[int, int, int, str, str, str]] = []
    span = NOW_TS - 3_600 - CASE_START_TS
    cases_of: dict[int, int] = {}
    for number in range(cases_total):
        # Case volume grows over the three years, as digital reporting does.
        opened = CASE_START_TS + int(span * math.sqrt(rng.random()))
        if rng.random() < 0.04 or total == 0:
            citizen, service = -1, rng.choice(anonymous_services)
        else:
            citizen = bisect.bisect_right(cumulative, rng.randrange(total))
            service = pick_service()
            cases_of[citizen] = cases_of.get(citizen, 0) + 1
        title = rng.choice(CASE_TITLES[service])
        drafts.append((opened, number, citizen, service, title, pick_channel()))
    drafts.sort()

    # Ids and references in the order cases were opened, as the service would issue them.
    cases: list[CasePlan] = []
    sequences: dict[int, int] = {}
    for opened, _number, citizen, service, title, channel in drafts:
        year = datetime.datetime.fromtimestamp(opened, LONDON).year
        sequences[year] = sequences.get(year, 0) + 1
        reference = f"CH-{year}-{sequences[year]:06d}"
        cases.append(CasePlan(opened, citizen, service, title, channel, reference))
    cases_by_citizen = sorted(
        (case.citizen, case_id) for case_id, case in enumerate(cases, start=1) if case.citizen >= 0
    )

    # Every case is one of its citizen's timeline entries; then hit the total exactly.
    for citizen, count in cases_of.items():
        if entries[citizen] < count:
            entries[citizen] = count
    difference = entries_total - sum(entries)
    step = 1 if difference > 0 else -1
    while difference:
        index = rng.randrange(citizens)
        if status[index] == MERGED:
            continue
        if step < 0 and entries[index] <= cases_of.get(index, 0):
            continue
        entries[index] += step
        difference -= step
    return Plan(
        citizens=citizens,
        entries=entries,
        status=status,
        merged_into=merged_into,
        cases=cases,
        cases_by_citizen=cases_by_citizen,
        sequences=sequences,
    )


# --- places -------------------------------------------------------------------------------


class Street(NamedTuple):
    name: str
    town: str
    district: int  # NM<district>
    sector: int
    highest: int  # highest house number
    latitude: float
    longitude: float


def build_streets() -> list[Street]:
    """The council's streets: each town a postcode district (the largest two), its streets
    spread over the district's ten sectors."""
    rng = random.Random(f"{SEED}:streets")
    streets: list[Street] = []
    district = 0
    for town_index, town in enumerate(TOWNS):
        districts = 2 if town_index < 4 else 1  # Northmoor and the bigger towns
        centre_lat = 51.45 + rng.random() * 0.6
        centre_lon = -3.6 + rng.random() * 0.9
        names = rng.sample(STREET_NAMES, k=min(len(STREET_NAMES), 60))
        for number in range(STREETS_PER_TOWN * districts):
            base = names[number % len(names)]
            # Long streets' names come back with a qualifier: "Upper High Street".
            qualifier = ("", "Upper ", "Lower ", "West ", "East ", "Old ")[
                (number // len(names)) % 6
            ]
            name = f"{qualifier}{base}"
            streets.append(
                Street(
                    name=name,
                    town=town,
                    district=district + 1 + number % districts,
                    sector=rng.randrange(10),
                    highest=rng.choice((12, 24, 36, 48, 60, 80, 120, 160, 220)),
                    latitude=centre_lat + rng.gauss(0, 0.015),
                    longitude=centre_lon + rng.gauss(0, 0.02),
                )
            )
        district += districts
    return streets


def postcode_of(street_index: int, street: Street, number: int) -> str:
    # 400 units a sector (20 x 20 letters); streets of one sector share them, as real
    # postcodes cover a stretch of road, not a street each.
    unit = (street_index * 7 + number // 16) % 400
    inward = f"{street.sector}{INWARD_LETTERS[unit // 20]}{INWARD_LETTERS[unit % 20]}"
    return f"NM{street.district} {inward}"


def ward_of(street: Street) -> str:
    # Two postcode sectors a ward (about 7,000 residents), as ONS GSS codes for Welsh
    # wards (W05...).
    return f"W05{1_000 + ((street.district - 1) * 10 + street.sector) // 2:06d}"


# --- people -------------------------------------------------------------------------------


class Contact(NamedTuple):
    kind: str
    value: str
    normalised: str
    match_key: str
    is_primary: bool
    verification: str
    verified_ts: int | None
    source: str
    created_ts: int


class Home(NamedTuple):
    street_index: int
    line1: str
    line2: str
    town: str
    postcode: str
    uprn: str
    ward: str
    latitude: str
    longitude: str
    street: str
    number: int


class Person(NamedTuple):
    index: int
    public_id: str
    given: str
    family: str
    date_of_birth: str | None
    language: str
    preferred_channel: str
    accessibility: str
    do_not_contact: bool
    status: str
    merged_into: int | None  # citizen index
    created_ts: int
    home: Home
    contacts: tuple[Contact, ...]


class People:
    """Generates citizens block by block; block b is the same whenever it is asked for."""

    def __init__(self, plan: Plan, streets: list[Street]) -> None:
        self.plan = plan
        self.streets = streets
        self.street_weights = _cumulative(street.highest for street in streets)

    def block(self, block: int) -> list[Person]:
        rng = random.Random(f"{SEED}:people:{block}")
        welsh_given = _picker(rng, *zip(*WELSH_GIVEN, strict=True))
        english_given = _picker(rng, *zip(*ENGLISH_GIVEN, strict=True))
        other_given = _picker(rng, *zip(*OTHER_GIVEN, strict=True))
        welsh_family = _picker(rng, *zip(*WELSH_FAMILY, strict=True))
        english_family = _picker(rng, *zip(*ENGLISH_FAMILY, strict=True))
        personal_domain = _picker(rng, *zip(*PERSONAL_DOMAINS, strict=True))
        start = block * BLOCK
        end = min(start + BLOCK, self.plan.citizens)
        people: list[Person] = []
        members_left = 0
        home: Home | None = None
        family = ""
        welsh_home = False
        for index in range(start, end):
            status = self.plan.status[index]
            if members_left == 0 or home is None:
                members_left = rng.choices((1, 2, 3, 4, 5), (30, 35, 15, 13, 7))[0]
                home = self._home(rng)
                welsh_home = rng.random() < 0.45
                family = (
                    welsh_family()
                    if rng.random() < (0.75 if welsh_home else 0.2)
                    else english_family()
                )
            members_left -= 1
            # Most of a household share the family name; partners and lodgers often not.
            person_family = (
                family
                if rng.random() < 0.75
                else (welsh_family() if welsh_home else english_family())
            )
            draw = rng.random()
            if welsh_home and draw < 0.7:
                given = welsh_given()
            elif draw < 0.9:
                given = english_given()
            else:
                given = other_given()
            language = "cy" if rng.random() < (0.3 if welsh_home else 0.02) else "en"
            # Most profiles came from the systems the hub replaced; the rest joined since.
            if rng.random() < 0.6:
                created_ts = HISTORY_START_TS - rng.randrange(4 * 365 * DAY)
            else:
                created_ts = HISTORY_START_TS + rng.randrange(NOW_TS - HISTORY_START_TS)
            date_of_birth = None
            if rng.random() < 0.9:
                date_of_birth = (
                    datetime.date(1930, 1, 1) + datetime.timedelta(days=rng.randrange(29_000))
                ).isoformat()
            contacts = self._contacts(rng, index, status, given, person_family, created_ts,
                                      personal_domain)  # fmt: skip
            kinds = {contact.kind for contact in contacts}
            if rng.random() < 0.3:
                channel = ""
            elif "email" in kinds and rng.random() < 0.6:
                channel = "email"
            else:
                channel = rng.choice(("phone", "post", "web", "sms" if "phone" in kinds else "web"))
            people.append(
                Person(
                    index=index,
                    public_id=_uuid4(rng.getrandbits(128)),
                    given=given,
                    family=person_family,
                    date_of_birth=None if status == PROVISIONAL else date_of_birth,
                    language=language,
                    preferred_channel="" if status == PROVISIONAL else channel,
                    accessibility=(rng.choice(ACCESSIBILITY_NEEDS) if rng.random() < 0.03 else ""),
                    do_not_contact=rng.random() < 0.005,
                    status=STATUS_NAMES[status],
                    merged_into=self.plan.merged_into.get(index),
                    created_ts=created_ts,
                    home=home,
                    contacts=contacts,
                )
            )
        return people

    def _home(self, rng: random.Random) -> Home:
        total = self.street_weights[-1]
        street_index = bisect.bisect_right(self.street_weights, rng.random() * total)
        street_index = min(street_index, len(self.streets) - 1)
        street = self.streets[street_index]
        number = rng.randint(1, street.highest)
        flat = rng.randint(1, 9) if rng.random() < 0.12 else 0
        return Home(
            street_index=street_index,
            line1=f"Flat {flat}" if flat else f"{number} {street.name}",
            line2=f"{number} {street.name}" if flat else "",
            town=street.town,
            postcode=postcode_of(street_index, street, number),
            # One UPRN per dwelling: a household shares it, each flat has its own.
            uprn=str(100_000_000_000 + street_index * 10_000 + number * 10 + flat),
            ward=ward_of(street),
            latitude=f"{street.latitude + number * 0.00002:.6f}",
            longitude=f"{street.longitude + number * 0.00003:.6f}",
            street=street.name,
            number=number,
        )

    def _contacts(
        self,
        rng: random.Random,
        index: int,
        status: int,
        given: str,
        family: str,
        created_ts: int,
        personal_domain: Callable[[], str],
    ) -> tuple[Contact, ...]:
        if status == MERGED:
            return ()  # a merge moves the identities to the surviving profile
        contacts: list[Contact] = []
        g, f = _ascii(given), _ascii(family)
        # A number unique to the citizen makes every address unique; the forms vary.
        suffix = (index * 7_919 + 17) % EMAIL_NUMBER_PRIME
        since = max(created_ts, HISTORY_START_TS)
        if status == PROVISIONAL or rng.random() < 0.85:
            local = rng.choice((f"{g}.{f}", f"{g}{f}", f"{g[0]}{f}", f"{g}_{f}", f"{f}.{g}"))
            local = f"{local}{suffix}"
            shown = local.capitalize() if rng.random() < 0.1 else local
            domain = personal_domain()
            contacts.append(
                self._email(rng, f"{shown}@{domain}", local, domain, True, status, since)
            )
        if status == PROVISIONAL:
            return tuple(contacts)
        if rng.random() < 0.16:
            domain = rng.choice(WORK_DOMAINS)
            local = f"{g[0]}.{f}{suffix}"
            contacts.append(
                self._email(rng, f"{local}@{domain}", local, domain, not contacts, status, since)
            )
        if rng.random() < 0.6:
            slot = (index * 2_654_435_761 + 12_345) % MOBILE_SLOTS
            prefix, rest = divmod(slot, 1_000_000)
            digits = f"{MOBILE_PREFIXES[prefix]}{rest:06d}"  # 10 digits after 0 / +44
            e164 = f"+44{digits}"
            form = rng.random()
            if form < 0.6:
                value = f"0{digits[:4]} {digits[4:]}"
            elif form < 0.8:
                value = f"0{digits}"
            else:
                value = f"+44 {digits[:4]} {digits[4:]}"
            verification = rng.choice(("unverified", "asserted", "confirmed", "confirmed"))
            contacts.append(
                Contact("phone", value, e164, e164, True, verification,
                        since + DAY if verification == "confirmed" else None,
                        rng.choice(("import", "portal", "staff", "inbound")), since)
            )  # fmt: skip
        return tuple(contacts)

    @staticmethod
    def _email(
        rng: random.Random,
        value: str,
        local: str,
        domain: str,
        primary: bool,
        status: int,
        since: int,
    ) -> Contact:
        normalised = f"{value.split('@')[0]}@{domain}"
        if status == PROVISIONAL:
            verification, source = "asserted", "inbound"
        else:
            verification = rng.choice(("unverified", "asserted", "confirmed", "confirmed"))
            source = rng.choice(("import", "portal", "portal", "inbound", "staff", "webform"))
        return Contact(
            "email", value, normalised, f"{local.lower()}@{domain}", primary, verification,
            since + DAY if verification == "confirmed" else None, source, since,
        )  # fmt: skip


# --- COPY streams ---------------------------------------------------------------------------


class CopyStream(io.RawIOBase):
    """A file COPY reads from, filled from an iterator of (text, rows) chunks as it goes."""

    def __init__(self, chunks: Iterator[tuple[str, int]], progress: Callable[[int], None]):
        self.chunks = chunks
        self.progress = progress
        self.buffer = b""
        self.rows = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self.buffer) < size:
            try:
                text, rows = next(self.chunks)
            except StopIteration:
                break
            self.buffer += text.encode("utf-8")
            self.rows += rows
            self.progress(self.rows)
        if size < 0:
            size = len(self.buffer)
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data


def _file_chunks(path: Path, size: int = 1 << 20) -> Iterator[tuple[str, int]]:
    with path.open(encoding="utf-8") as handle:
        while chunk := handle.read(size):
            yield chunk, chunk.count("\n")


def _first(row: tuple[int, str]) -> int:
    return row[0]


def _null(value: object) -> str:
    return "\\N" if value is None else str(value)


class Builder:
    """Writes the plan into the database table by table and reports what each took."""

    def __init__(self, plan: Plan, people: People, services: dict[str, Any], officers: dict):
        from django.contrib.contenttypes.models import ContentType

        from citizenhub.models import CaseEvent

        self.plan = plan
        self.people = people
        self.services = services  # code -> Service
        self.officers = officers  # team id -> [user ids]
        self.blocks = (plan.citizens + BLOCK - 1) // BLOCK
        self.case_event_type = ContentType.objects.get_for_model(CaseEvent).pk
        self.case_homes: dict[int, Home] = {}  # citizen index -> home, for their cases
        # Per citizen index, from the people pass, for the timeline pass.
        zeros = bytes(2 * plan.citizens)
        self.street_of = array("H", zeros)
        self.number_of = array("H", zeros)
        self.begins = array("I", zeros + zeros)
        self.timings: list[dict[str, Any]] = []

    def people_files(self, directory: str) -> dict[str, Path]:
        """Generate every citizen once, writing the citizen, address and contact-point rows
        to three files COPY then reads; keeps only what later tables need (each person's
        street and house number for timeline summaries, the homes of people with cases)."""
        with_cases = {citizen for citizen, _case in self.plan.cases_by_citizen}
        paths = {
            name: Path(directory) / f"{name}.copy" for name in ("citizen", "address", "contact")
        }
        files = {name: path.open("w", encoding="utf-8") for name, path in paths.items()}
        next_contact = 1
        started = time.perf_counter()
        try:
            for block in range(self.blocks):
                citizens, addresses, contacts = [], [], []
                for p in self.people.block(block):
                    h = p.home
                    index = p.index
                    self.street_of[index] = h.street_index
                    self.number_of[index] = h.number
                    self.begins[index] = max(p.created_ts, HISTORY_START_TS)
                    if index in with_cases:
                        self.case_homes[index] = h
                    created = _ts(p.created_ts)
                    merged = "\\N" if p.merged_into is None else str(p.merged_into + 1)
                    citizens.append(
                        f"{index + 1}\t{p.public_id}\t{p.given}\t{p.family}\t"
                        f"{_null(p.date_of_birth)}\t{p.language}\t{p.preferred_channel}\t"
                        f"{p.accessibility}\t{'t' if p.do_not_contact else 'f'}\t{p.status}\t"
                        f"{merged}\t\\N\t{created}\t{_ts(max(p.created_ts, NOW_TS - 400 * DAY))}\n"
                    )
                    addresses.append(
                        f"{index + 1}\t{index + 1}\t{h.uprn}\t{h.line1}\t{h.line2}\t\t{h.town}\t"
                        f"{h.postcode}\t{h.ward}\t{h.latitude}\t{h.longitude}\tt\t{created}\n"
                    )
                    for c in p.contacts:
                        verified = "\\N" if c.verified_ts is None else _ts(c.verified_ts)
                        contacts.append(
                            f"{next_contact}\t{index + 1}\t{c.kind}\t{c.value}\t{c.normalised}\t"
                            f"{c.match_key}\t{'t' if c.is_primary else 'f'}\t{c.verification}\t"
                            f"{verified}\t{c.source}\t\\N\t\\N\t{_ts(c.created_ts)}\n"
                        )
                        next_contact += 1
                files["citizen"].write("".join(citizens))
                files["address"].write("".join(addresses))
                files["contact"].write("".join(contacts))
                if block % 100 == 99:
                    elapsed = time.perf_counter() - started
                    done = (block + 1) * BLOCK
                    print(f"  people: {done:,} generated, {elapsed:.0f} s, "
                          f"{done / elapsed:,.0f} a second", flush=True)  # fmt: skip
        finally:
            for handle in files.values():
                handle.close()
        seconds = time.perf_counter() - started
        print(f"people: {self.plan.citizens:,} citizens generated in {seconds:.1f} s", flush=True)
        self.timings.append({"generate": "people (citizens, addresses, contact points)",
                             "rows": self.plan.citizens, "seconds": round(seconds, 2)})  # fmt: skip
        return paths

    def case_rows(self) -> Iterator[tuple[str, int]]:
        from citizenhub import workdays

        rng = random.Random(f"{SEED}:cases")
        due_dates: dict[tuple[datetime.date, str], datetime.date] = {}
        today = DATA_NOW.date()
        lines: list[str] = []
        for case_id, case in enumerate(self.plan.cases, start=1):
            service = self.services[case.service]
            opened = case.opened_ts
            received = datetime.datetime.fromtimestamp(opened, LONDON).date()
            due_on = due_dates.get((received, case.service))
            if due_on is None:  # the same few thousand (day, service) pairs over and over
                due_on = due_dates[received, case.service] = workdays.due_date(
                    received=received, clock_type=service.clock_type, sla_days=service.sla_days
                )
            age_days = (NOW_TS - opened) / DAY
            sla_span = max((due_on - _utc_date(opened)).days, 1)
            if age_days < 2:
                status = rng.choices(("new", "open", "in_progress"), (60, 30, 10))[0]
            elif age_days < sla_span * 1.5 + 10:
                status = rng.choices(
                    ("open", "in_progress", "waiting", "resolved", "closed"), (25, 35, 10, 20, 10)
                )[0]
            else:
                status = rng.choices(
                    ("closed", "resolved", "in_progress", "waiting", "open"), (88, 7, 3, 1, 1)
                )[0]
            resolved_ts = closed_ts = stopped_ts = None
            if status in ("resolved", "closed"):
                took = min(int(rng.lognormvariate(math.log(sla_span * 0.7 + 1), 0.6) * DAY),
                           NOW_TS - opened - 3_600)  # fmt: skip
                resolved_ts = opened + max(took, 3_600)
                if status == "closed":
                    closed_ts = resolved_ts + rng.randint(7, 28) * DAY
                    if closed_ts > NOW_TS:
                        status, closed_ts = "resolved", None
            if status == "waiting":
                stopped_ts = opened + int((NOW_TS - opened) * rng.random())
            finished = resolved_ts or closed_ts
            if finished:
                breached = _utc_date(finished) > due_on
            else:
                breached = due_on < today and stopped_ts is None
            assignee = "\\N"
            if status != "new" and rng.random() < 0.85:
                assignee = str(rng.choice(self.officers[service.team_id]))
            if case.citizen >= 0:
                h = self.case_homes[case.citizen]
                citizen_id = address_id = str(case.citizen + 1)
                location = (
                    f"{h.line1}, {h.postcode}"
                    if not h.line2
                    else f"{h.line1}, {h.line2}, {h.postcode}"
                )
                uprn, postcode, ward = h.uprn, h.postcode, h.ward
                latitude, longitude = h.latitude, h.longitude
            else:
                citizen_id = address_id = "\\N"
                street_index = rng.randrange(len(self.people.streets))
                street = self.people.streets[street_index]
                number = rng.randint(1, street.highest)
                location = f"Near {number} {street.name}, {street.town}"
                uprn, ward = "", ward_of(street)
                postcode = postcode_of(street_index, street, number)
                latitude, longitude = f"{street.latitude:.6f}", f"{street.longitude:.6f}"
            description = f"{case.title}. Reported by {case.channel or 'staff'}."
            resolution = rng.choice(RESOLUTIONS) if resolved_ts else ""
            version = {"new": 1, "open": 2, "in_progress": 3, "waiting": 4, "resolved": 4,
                       "closed": 5}[status]  # fmt: skip
            updated = max(t for t in (opened, resolved_ts, closed_ts, stopped_ts) if t)
            priority = rng.choices((1, 2, 3, 4), (10, 70, 15, 5))[0]
            legal_hold = "t" if status == "closed" and rng.random() < 0.002 else "f"
            lines.append(
                f"{case_id}\t{case.reference}\t{citizen_id}\t{service.pk}\t{case.title}\t"
                f"{description}\t{address_id}\t{location}\t{uprn}\t{postcode}\t{latitude}\t"
                f"{longitude}\t{ward}\t{status}\t{priority}\t{service.team_id}\t{assignee}\t"
                f"{case.channel}\t{_ts(opened)}\t{due_on.isoformat()}\t"
                f"{_null(stopped_ts and _ts(stopped_ts))}\t{'t' if breached else 'f'}\t"
                f"{_null(resolved_ts and _ts(resolved_ts))}\t"
                f"{_null(closed_ts and _ts(closed_ts))}\t"
                f"{resolution}\t{legal_hold}\t\\N\t\\N\t{version}\t{_ts(updated)}\n"
            )
            if len(lines) == 5_000:
                yield "".join(lines), len(lines)
                lines = []
        if lines:
            yield "".join(lines), len(lines)

    def case_event_rows(self) -> Iterator[tuple[str, int]]:
        lines: list[str] = []
        for case_id, case in enumerate(self.plan.cases, start=1):
            label = (
                "resident" if case.channel in ("web", "email", "x", "facebook", "sms") else "system"
            )
            lines.append(
                f"{case_id}\t{case_id}\tcreated\t\tnew\t{case.title}\t{{}}\tresident\t\\N\t"
                f"{label}\t{_ts(case.opened_ts)}\n"
            )
            if len(lines) == 10_000:
                yield "".join(lines), len(lines)
                lines = []
        if lines:
            yield "".join(lines), len(lines)

    def timeline_rows(self) -> Iterator[tuple[str, int]]:
        next_id = 1
        entries = self.plan.entries
        streets = self.people.streets
        span = NOW_TS - HISTORY_START_TS
        day_facts: dict[int, dict[str, Any]] = {}
        for block in range(self.blocks):
            rng = random.Random(f"{SEED}:timeline:{block}")
            pick_kind = _picker(rng, KINDS, [spec.weight for spec in KINDS])
            pick_topic = _picker(rng, TOPICS, [topic.weight for topic in TOPICS])
            random_ = rng.random
            first = block * BLOCK
            last = min(first + BLOCK, self.plan.citizens)
            case_ids = self.plan.case_ids_between(first, last)
            rows: list[tuple[int, str]] = []
            for index in range(first, last):
                citizen_id = index + 1
                own_cases = case_ids.get(index, ())
                for case_id in own_cases:
                    case = self.plan.cases[case_id - 1]
                    service = self.services[case.service]
                    opened = _ts(case.opened_ts)
                    rows.append((
                        case.opened_ts,
                        f"{citizen_id}\t{opened}\tcase\t{case.channel}\t"
                        f"{service.department}\t{service.code}\t"
                        f"Case {case.reference} opened: {case.title}\tresident\t"
                        f"{self.case_event_type}\t{case_id}\t{opened}\n",
                    ))  # fmt: skip
                count = entries[index] - len(own_cases)
                if count <= 0:
                    continue
                begin = self.begins[index]
                own_span = NOW_TS - begin
                if own_span <= 0:
                    begin, own_span = HISTORY_START_TS, span
                street = streets[self.street_of[index]].name
                number = self.number_of[index]
                for _ in range(count):
                    # Denser towards now: councils hear more from people every year.
                    when = begin + int(own_span * math.sqrt(random_()))
                    spec = pick_kind()
                    if spec.kind in ("call", "visit"):
                        when = min(_office_time(rng, when - when % DAY), NOW_TS)
                    channel = spec.channels[int(random_() * len(spec.channels))]
                    if spec.topical:
                        topic = pick_topic()
                        department, code = topic.department, topic.service_code
                        summary = topic.summaries[int(random_() * len(topic.summaries))]
                    else:
                        department, code = spec.department, ""
                        summary = spec.summaries[int(random_() * len(spec.summaries))]
                    if "{" in summary:
                        day = when // DAY
                        facts = day_facts.get(day)
                        if facts is None:
                            date = _utc_date(when)
                            facts = day_facts[day] = {
                                "month": MONTHS[date.month - 1],
                                "day": date.day,
                                "year": date.year,
                                "next_year": date.year + 1,
                            }
                        summary = summary.format(street=street, number=number, **facts)
                    visibility = "resident" if random_() < spec.resident_share else "staff"
                    moment = _ts(when)
                    # created_at = occurred_at: recorded as it happened.
                    rows.append((
                        when,
                        f"{citizen_id}\t{moment}\t{spec.kind}\t{channel}\t{department}\t"
                        f"{code}\t{spec.prefix}{summary}\t{visibility}\t\\N\t\t{moment}\n",
                    ))  # fmt: skip
            # Stored roughly as they happened, so one person's entries spread over the
            # block's pages as on a real table, not side by side.
            rows.sort(key=_first)
            lines = []
            for _when, line in rows:
                lines.append(f"{next_id}\t{line}")
                next_id += 1
            yield "".join(lines), len(lines)

    # --- loading ----------------------------------------------------------------------

    def copy(self, model: Any, fields: Sequence[str], rows: Iterator[tuple[str, int]]) -> int:
        """TRUNCATE and COPY ... (FREEZE) one table in one transaction, timed."""
        from django.db import connection, transaction

        table = model._meta.db_table
        _check_fields(model, fields)
        quote = connection.ops.quote_name
        columns = ", ".join(quote(model._meta.get_field(name).column) for name in fields)
        started = time.perf_counter()
        shown = [0.0]

        def progress(count: int) -> None:
            now = time.perf_counter()
            if now - shown[0] >= 15:
                shown[0] = now
                elapsed = now - started
                print(f"  {table}: {count:,} rows, {elapsed:.0f} s, {count / elapsed:,.0f} rows/s",
                      flush=True)  # fmt: skip

        stream = CopyStream(rows, progress)
        with transaction.atomic(), connection.cursor() as cursor:
            # Emptied in the same transaction, COPY may write the rows frozen and all-visible:
            # no hint-bit writes or vacuum when the benchmark first reads them.
            cursor.execute(f"TRUNCATE {quote(table)} CASCADE")
            cursor.copy_expert(
                f"COPY {quote(table)} ({columns}) FROM STDIN WITH (FREEZE)", stream, size=1 << 18
            )
        seconds = time.perf_counter() - started
        print(f"{table}: {stream.rows:,} rows in {seconds:.1f} s "
              f"({stream.rows / seconds:,.0f} rows/s)", flush=True)  # fmt: skip
        self.timings.append({"table": table, "rows": stream.rows, "seconds": round(seconds, 2)})
        return stream.rows


def _check_fields(model: Any, fields: Sequence[str]) -> None:
    """The COPY column list must name every column, or a migration added one we do not fill."""
    concrete = {field.name for field in model._meta.concrete_fields}
    missing, unknown = concrete - set(fields), set(fields) - concrete
    if missing or unknown:
        raise BenchmarkError(
            f"{model.__name__}: the generator does not match the model (missing "
            f"{sorted(missing)}, unknown {sorted(unknown)}); update benchmarks/scale_data.py"
        )


CITIZEN_FIELDS = ("id", "public_id", "given_name", "family_name", "date_of_birth",
                  "preferred_language", "preferred_channel", "accessibility_needs",
                  "do_not_contact", "status", "merged_into", "user", "created_at",
                  "updated_at")  # fmt: skip
ADDRESS_FIELDS = ("id", "citizen", "uprn", "line1", "line2", "line3", "town", "postcode",
                  "ward_code", "latitude", "longitude", "is_primary", "created_at")  # fmt: skip
CONTACT_FIELDS = ("id", "citizen", "kind", "value", "normalised", "match_key", "is_primary",
                  "verification_level", "verified_at", "source", "undeliverable_at",
                  "removed_at", "created_at")  # fmt: skip
CASE_FIELDS = ("id", "reference", "citizen", "service", "title", "description", "address",
               "location_text", "uprn", "postcode", "latitude", "longitude", "ward_code",
               "status", "priority", "team", "assignee", "source_channel", "opened_at",
               "due_on", "clock_stopped_at", "breached", "resolved_at", "closed_at",
               "resolution", "legal_hold", "anonymised_at", "created_by", "version",
               "updated_at")  # fmt: skip
CASE_EVENT_FIELDS = ("id", "case", "kind", "from_status", "to_status", "text", "data",
                     "visibility", "actor", "actor_label", "created_at")  # fmt: skip
TIMELINE_FIELDS = ("id", "citizen", "occurred_at", "kind", "channel", "department",
                   "service_code", "summary", "visibility", "source_type", "source_id",
                   "created_at")  # fmt: skip


# --- indexes, constraints, manifest -------------------------------------------------------


def _secondary_definitions(cursor: Any, tables: Sequence[str]) -> tuple[list, list]:
    """Non-unique indexes and foreign keys of the tables: (name, table, SQL to recreate)."""
    cursor.execute(
        """
        SELECT i.relname, t.relname, pg_get_indexdef(i.oid)
        FROM pg_index x
        JOIN pg_class i ON i.oid = x.indexrelid
        JOIN pg_class t ON t.oid = x.indrelid
        WHERE t.relname = ANY(%s) AND NOT x.indisunique AND NOT x.indisprimary
        ORDER BY t.relname, i.relname
        """,
        [list(tables)],
    )
    indexes = list(cursor.fetchall())
    cursor.execute(
        """
        SELECT c.conname, t.relname, pg_get_constraintdef(c.oid)
        FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid
        WHERE t.relname = ANY(%s) AND c.contype = 'f'
        ORDER BY t.relname, c.conname
        """,
        [list(tables)],
    )
    foreign_keys = list(cursor.fetchall())
    return indexes, foreign_keys


def _create_officers(teams: Iterable[Any]) -> dict[int, list[int]]:
    """Eight caseworkers per team, as case assignees; staff accounts that cannot sign in."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from citizenhub.staff.access import CASEWORKER, ensure_staff_groups

    ensure_staff_groups()
    user_model = get_user_model()
    caseworkers = Group.objects.get(name=CASEWORKER)
    officers: dict[int, list[int]] = {}
    for team in teams:
        for number in range(1, 9):
            username = f"{team.slug}-officer-{number}"
            user, created = user_model.objects.get_or_create(
                username=username,
                defaults={"email": f"{username}@northmoor.gov.example", "is_staff": True},
            )
            if created:
                user.set_unusable_password()
                user.save(update_fields=["password"])
                user.groups.add(caseworkers)
                team.members.add(user)
            officers.setdefault(team.pk, []).append(user.pk)
    return officers


def _verify_samples(people: People) -> None:
    """The generator's identities must be what citizenhub.normalise makes of them, or exact
    searches would miss: check a few hundred of each kind from the first blocks."""
    from django.core.exceptions import ValidationError

    from citizenhub.normalise import normalise_email, normalise_phone, normalise_postcode

    checked = 0
    for block in range(min(2, people.plan.citizens // BLOCK + 1)):
        for person in people.block(block):
            try:
                normalise_postcode(person.home.postcode)
                for contact in person.contacts:
                    normalise = normalise_email if contact.kind == "email" else normalise_phone
                    result = normalise(contact.value)
                    if (result.normalised, result.match_key) != (
                        contact.normalised,
                        contact.match_key,
                    ):
                        raise BenchmarkError(
                            f"generated {contact.kind} {contact.value!r} normalises to "
                            f"{result}, not ({contact.normalised!r}, {contact.match_key!r})"
                        )
                    checked += 1
            except ValidationError as exc:
                raise BenchmarkError(f"generated data is invalid: {exc.messages}") from exc
            home = person.home
            _check_text((person.given, person.family, home.line1, home.line2, home.town))
    print(f"checked {checked:,} generated identities against citizenhub.normalise", flush=True)


def _targets() -> dict[str, int]:
    return {
        "citizens": scaled(CITIZENS),
        "timeline_entries": scaled(TIMELINE_ENTRIES),
        "cases": scaled(CASES),
    }


def _params() -> dict[str, Any]:
    return {"version": GENERATOR_VERSION, "seed": SEED, **_targets()}


# The tables the manifest counts, by label.
COUNTED_TABLES = {
    "citizens": "citizenhub_citizen",
    "contact_points": "citizenhub_contactpoint",
    "addresses": "citizenhub_address",
    "cases": "citizenhub_servicecase",
    "case_events": "citizenhub_caseevent",
    "timeline_entries": "citizenhub_timelineentry",
}


def read_manifest(database: str = SCALE_DATABASE) -> dict[str, Any] | None:
    """The manifest of a complete build, or None if there is none (or the build is partial):
    the recorded counts must still be what the tables hold."""
    if not database_exists(database):
        return None
    connection = connect_server(database)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT to_regclass(%s)", [MANIFEST_TABLE])
            if cursor.fetchone()[0] is None:
                return None
            cursor.execute(f"SELECT params, counts, built_at FROM {MANIFEST_TABLE} WHERE id = 1")
            row = cursor.fetchone()
            if row is None:
                return None
            params, counts, built_at = row
            for label, table in COUNTED_TABLES.items():
                cursor.execute(f"SELECT count(*) FROM {table}")
                if cursor.fetchone()[0] != counts.get(label):
                    return None
            return {"params": params, "counts": counts, "built_at": built_at.isoformat()}
    finally:
        connection.close()


def _write_manifest(cursor: Any, counts: dict[str, int], seconds: float) -> None:
    cursor.execute(
        f"CREATE TABLE IF NOT EXISTS {MANIFEST_TABLE} (id int PRIMARY KEY, "
        "built_at timestamptz NOT NULL, seconds real NOT NULL, params jsonb NOT NULL, "
        "counts jsonb NOT NULL)"
    )
    cursor.execute(
        f"INSERT INTO {MANIFEST_TABLE} (id, built_at, seconds, params, counts) "
        "VALUES (1, now(), %s, %s, %s) ON CONFLICT (id) DO UPDATE SET built_at = now(), "
        "seconds = EXCLUDED.seconds, params = EXCLUDED.params, counts = EXCLUDED.counts",
        [seconds, json.dumps(_params()), json.dumps(counts)],
    )


# --- the build -----------------------------------------------------------------------------


def build() -> dict[str, Any]:
    """Drop and recreate the scale database, migrate it and fill it; returns the counts."""
    started = time.perf_counter()
    targets = _targets()
    print(f"{NAME}: building {SCALE_DATABASE}: {targets['citizens']:,} citizens, "
          f"{targets['timeline_entries']:,} timeline entries, {targets['cases']:,} cases "
          f"(scale {bench_scale():g})", flush=True)  # fmt: skip
    drop_database(SCALE_DATABASE)
    setup_django(SCALE_DATABASE)  # creates it and runs every migration

    from django.db import connection

    from citizenhub.catalogue import load_service_catalogue
    from citizenhub.models import (
        Address,
        CaseEvent,
        CaseReferenceSequence,
        Citizen,
        ContactPoint,
        Service,
        ServiceCase,
        Team,
        TimelineEntry,
    )

    load_service_catalogue()
    services = {service.code: service for service in Service.objects.all()}
    unknown = set(CASE_WEIGHTS) - set(services)
    if unknown:
        raise BenchmarkError(f"the catalogue has no service(s) {sorted(unknown)}")
    officers = _create_officers(Team.objects.all())
    _check_text(
        [*(t for topic in TOPICS for t in topic.summaries),
         *(t for spec in KINDS for t in spec.summaries),
         *(t for titles in CASE_TITLES.values() for t in titles), *RESOLUTIONS]
    )  # fmt: skip

    timer = time.perf_counter()
    plan = build_plan(
        citizens=targets["citizens"],
        entries_total=targets["timeline_entries"],
        cases_total=targets["cases"],
    )
    plan_seconds = time.perf_counter() - timer
    print(
        f"plan: {len(plan.cases):,} cases, {sum(plan.entries):,} timeline entries, "
        f"largest timeline {max(plan.entries):,}, in {plan_seconds:.1f} s",
        flush=True,
    )
    people = People(plan, build_streets())
    _verify_samples(people)
    builder = Builder(plan, people, services, officers)

    loaded = [Citizen, Address, ContactPoint, ServiceCase, CaseEvent, TimelineEntry]
    tables = [model._meta.db_table for model in loaded]
    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit = off")
        cursor.execute("SET maintenance_work_mem = '512MB'")
        indexes, foreign_keys = _secondary_definitions(cursor, tables)
        for name, table, _sql in foreign_keys:
            cursor.execute(f'ALTER TABLE "{table}" DROP CONSTRAINT "{name}"')
        for name, _table, _sql in indexes:
            cursor.execute(f'DROP INDEX "{name}"')
    print(f"dropped {len(indexes)} non-unique indexes and {len(foreign_keys)} foreign keys "
          "for the load", flush=True)  # fmt: skip

    with tempfile.TemporaryDirectory(prefix="citizenhub-scale-") as directory:
        files = builder.people_files(directory)
        counts = {
            "citizens": builder.copy(Citizen, CITIZEN_FIELDS, _file_chunks(files["citizen"])),
            "addresses": builder.copy(Address, ADDRESS_FIELDS, _file_chunks(files["address"])),
            "contact_points": builder.copy(
                ContactPoint, CONTACT_FIELDS, _file_chunks(files["contact"])
            ),
        }
    counts |= {
        "cases": builder.copy(ServiceCase, CASE_FIELDS, builder.case_rows()),
        "case_events": builder.copy(CaseEvent, CASE_EVENT_FIELDS, builder.case_event_rows()),
        "timeline_entries": builder.copy(TimelineEntry, TIMELINE_FIELDS, builder.timeline_rows()),
    }

    with connection.cursor() as cursor:
        cursor.execute("SET maintenance_work_mem = '512MB'")
        for name, table, sql in indexes:
            timer = time.perf_counter()
            cursor.execute(sql)
            seconds = time.perf_counter() - timer
            print(f"index {name} on {table}: {seconds:.1f} s", flush=True)
            builder.timings.append({"index": name, "table": table, "seconds": round(seconds, 2)})
        for name, table, definition in foreign_keys:
            timer = time.perf_counter()
            cursor.execute(f'ALTER TABLE "{table}" ADD CONSTRAINT "{name}" {definition}')
            seconds = time.perf_counter() - timer
            print(f"foreign key {name} on {table}: {seconds:.1f} s", flush=True)
            builder.timings.append(
                {"foreign_key": name, "table": table, "seconds": round(seconds, 2)}
            )
        # Explicit ids: move the identity sequences past them, and the case reference
        # counters past the references issued, so the services keep working on this data.
        for table in tables:
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence(%s, 'id'), "
                f'GREATEST((SELECT max(id) FROM "{table}"), 1))',
                [table],
            )
        CaseReferenceSequence.objects.all().delete()
        CaseReferenceSequence.objects.bulk_create(
            CaseReferenceSequence(year=year, last_number=last)
            for year, last in sorted(plan.sequences.items())
        )
        timer = time.perf_counter()
        for table in tables:
            cursor.execute(f'VACUUM (ANALYZE) "{table}"')
        analyse_seconds = time.perf_counter() - timer
        print(f"VACUUM (ANALYZE): {analyse_seconds:.1f} s", flush=True)
        builder.timings.append({"vacuum_analyze": True, "seconds": round(analyse_seconds, 2)})
        cursor.execute("SELECT pg_database_size(current_database())")
        size = cursor.fetchone()[0]
        total = time.perf_counter() - started
        _write_manifest(cursor, counts, total)
    print(f"{NAME}: built in {total / 60:.1f} min; database size {size / 2**30:.2f} GiB",
          flush=True)  # fmt: skip
    return {
        "counts": counts,
        "seconds": round(total, 1),
        "plan_seconds": round(plan_seconds, 1),
        "database_bytes": size,
        "timings": builder.timings,
    }


def _print_summary(result: dict[str, Any]) -> None:
    print()
    print(f"{'table / step':<46} {'rows':>12} {'seconds':>9} {'rows/s':>10}")
    for timing in result["timings"]:
        if "generate" in timing:
            rate = timing["rows"] / timing["seconds"] if timing["seconds"] else 0
            print(f"generate {timing['generate'][:37]:<37} {timing['rows']:>12,} "
                  f"{timing['seconds']:>9.1f} {rate:>10,.0f}")  # fmt: skip
        elif "rows" in timing:
            rate = timing["rows"] / timing["seconds"] if timing["seconds"] else 0
            print(f"COPY {timing['table']:<41} {timing['rows']:>12,} {timing['seconds']:>9.1f} "
                  f"{rate:>10,.0f}")  # fmt: skip
        elif "index" in timing:
            print(f"index {timing['index'][:40]:<40} {'':>12} {timing['seconds']:>9.1f}")
        elif "foreign_key" in timing:
            print(f"FK {timing['foreign_key'][:43]:<43} {'':>12} {timing['seconds']:>9.1f}")
        else:
            print(f"{'VACUUM (ANALYZE)':<46} {'':>12} {timing['seconds']:>9.1f}")
    print(f"{'total':<46} {'':>12} {result['seconds']:>9.1f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--force", action="store_true", help="rebuild even if it is complete")
    args = parser.parse_args(argv)
    try:
        manifest = read_manifest()
        if manifest and manifest["params"] == _params() and not args.force:
            counts = ", ".join(f"{value:,} {label}" for label, value in manifest["counts"].items())
            print(f"{NAME}: {SCALE_DATABASE} is already built ({counts}; built "
                  f"{manifest['built_at']}). Nothing to do; --force rebuilds it.")  # fmt: skip
            return 0
        if manifest:
            print(f"{NAME}: {SCALE_DATABASE} holds a different build "
                  f"({manifest['params']}); rebuilding")  # fmt: skip
        result = build()
    except BenchmarkError as exc:
        print(f"{NAME}: FAILED: {exc}", file=sys.stderr)
        return 1
    _print_summary(result)
    report(
        NAME,
        f"{NAME}: {result['counts']['timeline_entries']:,} timeline entries, "
        f"{result['counts']['citizens']:,} citizens in {result['seconds'] / 60:.1f} min",
        result,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
