"""The demo council's residents: fixed name lists, a seeded plan of each one, and the seeder
that writes the plan through the hub's services.

Resident i is planned from one `random.Random(DEMO_SEED)` stream taken in order, so resident i
is the same person whether 40 or 4,000 are asked for, and a later, larger run adds only the new
ones. Every identity is fictional: e-mail domains and Mastodon instances end in `.example`
(RFC 2606) and mobiles are in Ofcom's drama range 07700 900000-900999, so nothing seeded can
reach a real person. X handles cannot be made safe that way; they are few and odd-looking.
"""

from __future__ import annotations

import datetime
import random
import unicodedata
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import TextIO
from zoneinfo import ZoneInfo

from django.apps import apps
from django.core.exceptions import ValidationError
from tqdm import tqdm

from citizenhub.errors import ApplicationError
from citizenhub.models import Address, ChannelKind, Citizen, ContactPoint, Language, TimelineEntry
from citizenhub.normalise import normalise_postcode
from citizenhub.services import (
    TimelineEntryData,
    citizen_create,
    record_timeline_entries,
    resolve_identity,
)

DEFAULT_RESIDENTS = 500
DEMO_SEED = 2026
# Resident i always gets the same public id: that is how a second run knows whom it made.
DEMO_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_DNS, "residents.northmoor.example")
LONDON = ZoneInfo("Europe/London")
# Timelines end here rather than at the real "now", so every run writes the same rows.
DEMO_NOW = datetime.datetime(2026, 11, 2, 17, 30, tzinfo=LONDON)
TOWN = "Northmoor"

# Every DUPLICATE_EVERY-th resident (starting at DUPLICATE_OFFSET) is a second profile of
# someone planned earlier: 15 in the default 500, and at least one in a 40-resident test run.
DUPLICATE_EVERY = 33
DUPLICATE_OFFSET = 16
HOUSEHOLD_SHARE = 0.08  # residents who live with someone planned earlier
# Ofcom's drama range has 1,000 numbers; later residents simply have no mobile.
DRAMA_MOBILES = 1000

WELSH_GIVEN_NAMES = (
    "Siân", "Rhys", "Dafydd", "Gwenllian", "Elin", "Catrin", "Iolo", "Llinos", "Ffion",
    "Gethin", "Aled", "Carys", "Bethan", "Owain", "Rhiannon", "Tomos", "Seren", "Gruffudd",
    "Angharad", "Mair", "Dylan", "Nia", "Efa", "Cerys", "Ieuan", "Eluned", "Siôn", "Glesni",
    "Meinir", "Gwyn",
)  # fmt: skip
OTHER_GIVEN_NAMES = (
    "Oliver", "Amelia", "George", "Isla", "Harry", "Emily", "Jack", "Sophie", "Thomas",
    "Grace", "William", "Charlotte", "James", "Olivia", "Margaret", "Robert", "Elizabeth",
    "David", "Susan", "Mohammed", "Aisha", "Priya", "Ravi", "Zoë", "Chloë", "Renée", "Seán",
    "Siobhán", "Niamh", "Ciarán", "Aoife", "Eilidh", "Mòrag", "Zofia", "Bartosz", "Chidi",
    "Oluwaseun", "Fatima", "Yusuf", "Hannah", "Catherine", "Jennifer", "Peter", "Patricia",
    "Daniel", "Joanne",
)  # fmt: skip
WELSH_FAMILY_NAMES = (
    "Jones", "Williams", "Davies", "Evans", "Thomas", "Roberts", "Hughes", "Lewis", "Morgan",
    "Griffiths", "Price", "Pritchard", "Lloyd", "Rees", "Powell", "Llewellyn", "Bowen",
    "Parry", "Jenkins", "ap Dafydd", "Prosser", "Vaughan",
)  # fmt: skip
OTHER_FAMILY_NAMES = (
    "Smith", "Taylor", "Brown", "Wilson", "Walker", "Wright", "Robinson", "Thompson", "Green",
    "Hall", "Wood", "Clarke", "Patel", "Khan", "Begum", "Ahmed", "Singh", "Kowalska", "Nowak",
    "Okafor", "Adeyemi", "O'Neill", "O'Brien", "D'Souza", "McDonald", "MacLeod", "Fitzgerald",
    "Smith-Jones",
)  # fmt: skip
# The short forms a second profile is often opened under.
NICKNAMES = {
    "William": "Bill", "Robert": "Bob", "Elizabeth": "Liz", "Thomas": "Tom",
    "Margaret": "Maggie", "Catherine": "Cathy", "Dafydd": "Dai", "Gwenllian": "Gwen",
    "James": "Jim", "Jennifer": "Jenny", "Daniel": "Dan", "Patricia": "Pat", "Peter": "Pete",
    "Susan": "Sue", "David": "Dave", "Oliver": "Ollie", "Joanne": "Jo", "Tomos": "Tom",
}  # fmt: skip

# (street, highest house number)
STREETS = (
    ("Mill Lane", 64), ("Ash Grove", 38), ("Church Street", 90), ("Station Road", 140),
    ("High Street", 120), ("Victoria Road", 86), ("Chapel Row", 24), ("Heol y Nant", 52),
    ("Ffordd yr Afon", 70), ("Maes y Coed", 44), ("Moorside Avenue", 110),
    ("Kingsmead Close", 22), ("Beech Drive", 58), ("Willow Court", 30), ("Castle Hill", 48),
    ("Abbey Road", 96), ("Brook Vale", 40), ("Quarry Lane", 34), ("Oakfield Way", 76),
    ("Bryn Glas", 28), ("Meadow View", 50), ("Park Terrace", 36), ("Colliery Row", 42),
    ("Westgate", 80), ("Orchard Close", 26), ("Riverside Walk", 60), ("St Mary's Road", 72),
    ("Tan-y-bryn", 32), ("Fernside Crescent", 54), ("Heather Way", 46), ("Pen-y-lan", 38),
    ("Greenfield Road", 100), ("School Lane", 44), ("Northmoor Road", 150),
    ("Primrose Hill", 30), ("Gorse Lane", 24), ("Cae Mawr", 40), ("Lôn Goch", 20),
    ("Ty'n y Coed", 18), ("Holly Bank", 34),
)  # fmt: skip
POSTCODE_DISTRICTS = 9  # NM1 .. NM9
POSTCODE_SECTORS = POSTCODE_DISTRICTS * 10  # NM1 0 .. NM9 9; wards are drawn over these
# Letters allowed in the inward code (no C, I, K, M, O or V).
INWARD_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"

EMAIL_DOMAINS = (
    "gmail.example", "outlook.example", "btinternet.example", "yahoo.example",
    "icloud.example", "sky.example", "talktalk.example",
)  # fmt: skip
MASTODON_INSTANCES = ("mastodon.example", "toot.northmoor.example", "social.cymru.example")
ACCESSIBILITY_NEEDS = (
    "Large print",
    "British Sign Language interpreter for appointments",
    "Easy read",
    "Hearing loop at appointments",
    "Blind: prefers phone calls, not letters",
    "Wheelchair user: needs step-free access for visits",
    "Dyslexic: prefers short messages",
)


@dataclass(frozen=True)
class _Topic:
    """Something residents get in touch about, and what typically follows."""

    department: str
    service_code: str
    request: str  # what the resident asked or reported; may use {number} and {street}
    reply: str = ""
    case: str = ""
    visit: str = ""
    note: str = ""


# (topic, weight): bins and potholes are most of a council's contact.
TOPICS: tuple[tuple[_Topic, int], ...] = (
    (_Topic("Waste & Recycling", "WR-MISSED",
            "Reported missed green bin collection on {street}",
            reply="Apologised; crew will return to {street} within 2 working days",
            case="Missed green bin collection logged for {street}"), 9),
    (_Topic("Waste & Recycling", "WR-MISSED",
            "Reported missed blue recycling collection on {street}",
            reply="Confirmed the recycling crew will return to {street} on Thursday"), 6),
    (_Topic("Waste & Recycling", "WR-CONTAINER", "Requested a replacement food waste caddy",
            reply="Replacement caddy ordered; delivery within 10 working days"), 4),
    (_Topic("Waste & Recycling", "WR-BULKY",
            "Booked a bulky waste collection: sofa and two chairs",
            reply="Bulky waste collection confirmed; £28 paid"), 3),
    (_Topic("Waste & Recycling", "WR-FLYTIP",
            "Reported fly-tipping behind the garages on {street}",
            reply="Thanked for the report; an enforcement officer will inspect",
            case="Fly-tipping investigation opened for {street}"), 3),
    (_Topic("Waste & Recycling", "WR-GARDEN", "Asked to renew the garden waste subscription",
            reply="Garden waste permit renewed for 2026/27"), 3),
    (_Topic("Highways", "HW-POTHOLE", "Reported a pothole outside {number} {street}",
            reply="Pothole on {street} scheduled for repair within 28 days",
            case="Pothole repair raised for {street}, category 2"), 7),
    (_Topic("Highways", "HW-LIGHT", "Reported a street light out on {street}",
            reply="Street light on {street} repaired",
            case="Street lighting fault raised for {street}"), 4),
    (_Topic("Highways", "HW-GRIT", "Asked whether {street} is on the gritting route",
            reply="Sent the gritting route map; {street} is a secondary route"), 2),
    (_Topic("Highways", "HW-KERB", "Applied for a dropped kerb at {number} {street}",
            case="Dropped kerb application received for {number} {street}",
            visit="Highways inspector site visit for dropped kerb"), 1),
    (_Topic("Council Tax", "CT-DD", "Asked to set up a Direct Debit for Council Tax",
            reply="Direct Debit set up; first payment on the 1st of next month"), 4),
    (_Topic("Council Tax", "CT-SPD", "Applied for single person discount",
            reply="Single person discount (25%) applied to the account",
            case="Single person discount review opened"), 4),
    (_Topic("Council Tax", "CT-BAND", "Queried the Council Tax band for {number} {street}",
            reply="Explained banding and how to appeal to the Valuation Office Agency"), 2),
    (_Topic("Council Tax", "CT-ARREARS", "Got in touch about a Council Tax reminder notice",
            reply="Payment arrangement confirmed in writing",
            note="Agreed payment arrangement of £50 a month"), 3),
    (_Topic("Council Tax", "CT-MOVE", "Told us about moving house within Northmoor",
            reply="Council Tax account updated from the moving date"), 2),
    (_Topic("Housing", "HO-DAMP", "Reported damp and mould in the back bedroom",
            reply="Inspection booked with the council's surveyor",
            case="Damp and mould inspection case opened",
            visit="Housing officer visit: damp and mould inspection"), 3),
    (_Topic("Housing", "HO-REGISTER", "Asked about joining the housing register",
            reply="Sent the housing register application pack"), 2),
    (_Topic("Housing", "HO-PREVENT", "Asked for advice after being served a Section 21 notice",
            case="Homelessness prevention case opened",
            note="Referred to the housing options team"), 1),
    (_Topic("Adult Social Care", "ASC-ASSESS", "Requested a care needs assessment for a parent",
            case="Care needs assessment referral received",
            visit="Social worker home visit: needs assessment",
            note="Carer's assessment offered to the family"), 2),
    (_Topic("Adult Social Care", "ASC-OT", "Asked for grab rails in the bathroom",
            visit="Occupational therapist home visit: grab rails",
            note="Equipment ordered from the community equipment store"), 2),
    (_Topic("Adult Social Care", "ASC-BADGE", "Asked how to renew a Blue Badge",
            reply="Sent the Blue Badge renewal link and the documents needed"), 2),
    (_Topic("Democratic Services", "DS-REGISTER", "Asked how to register to vote",
            reply="Sent the register-to-vote link and polling station details"), 2),
    (_Topic("Democratic Services", "DS-POSTAL", "Requested a postal vote application form",
            reply="Postal vote application form sent"), 2),
    (_Topic("Democratic Services", "DS-QUESTION", "Submitted a public question for Full Council",
            reply="Question accepted for the next Full Council meeting"), 1),
    (_Topic("Democratic Services", "DS-COUNCILLOR", "Asked which councillors represent {street}",
            reply="Sent the ward councillors' contact details"), 2),
    (_Topic("Environmental Health", "EH-NOISE", "Reported noise from a neighbour's dog",
            reply="Sent noise diary sheets to fill in for two weeks",
            case="Noise nuisance case opened"), 2),
)  # fmt: skip


@dataclass(frozen=True)
class AddressPlan:
    line1: str
    line2: str
    postcode: str
    uprn: str
    street: str
    number: int
    postcode_sector: int  # 0 .. POSTCODE_SECTORS - 1; decides the ward


@dataclass(frozen=True)
class TimelinePlan:
    occurred_at: datetime.datetime
    kind: str
    channel: str
    department: str
    service_code: str
    summary: str
    visibility: str


@dataclass(frozen=True)
class ResidentPlan:
    index: int
    public_id: uuid.UUID
    given_name: str
    family_name: str
    date_of_birth: datetime.date | None
    preferred_language: str
    preferred_channel: str
    accessibility_needs: str
    contact_points: tuple[tuple[str, str], ...]
    address: AddressPlan | None
    timeline: tuple[TimelinePlan, ...]
    # Created from an unknown sender, as the ingest pipeline does; it has one contact point.
    provisional: bool = False
    duplicate_of: int | None = None  # the index of the resident this is a second profile of


def demo_resident_public_id(index: int) -> uuid.UUID:
    return uuid.uuid5(DEMO_NAMESPACE, f"demo-resident-{index}")


def plan_residents(count: int) -> list[ResidentPlan]:
    """The first `count` demo residents; the same list every time."""
    planner = _Planner()
    return [planner.plan(index) for index in range(count)]


def _ascii(text: str) -> str:
    """'Siân O'Neill' -> 'sianoneill': what people type into e-mail addresses and handles."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return "".join(ch for ch in folded.lower() if ch.isalnum())


def _name_variant(given: str) -> str | None:
    """The name a second profile is often opened under: a short form, or without accents."""
    if given in NICKNAMES:
        return NICKNAMES[given]
    plain = unicodedata.normalize("NFKD", given).encode("ascii", "ignore").decode("ascii")
    return plain if plain != given else None


def _at(day: datetime.date, minutes: int) -> datetime.datetime:
    return datetime.datetime.combine(day, datetime.time(minutes // 60, minutes % 60), LONDON)


class _Planner:
    """Draws residents one after another from a single seeded stream."""

    def __init__(self) -> None:
        self.rng = random.Random(DEMO_SEED)  # noqa: S311 - repeatable demo data, not secrets
        self.taken: set[tuple[str, str]] = set()  # (kind, lower-cased identity) handed out
        self.mobiles_issued = 0
        self.planned: list[ResidentPlan] = []

    def plan(self, index: int) -> ResidentPlan:
        if index % DUPLICATE_EVERY == DUPLICATE_OFFSET:
            plan = self._duplicate(index)
        elif self.planned and self.rng.random() < HOUSEHOLD_SHARE:
            plan = self._household_member(index)
        else:
            plan = self._resident(index)
        self.planned.append(plan)
        return plan

    # --- people ---------------------------------------------------------------------------

    def _resident(self, index: int) -> ResidentPlan:
        rng = self.rng
        welsh = rng.random() < 0.35
        given = rng.choice(WELSH_GIVEN_NAMES if welsh else OTHER_GIVEN_NAMES)
        welsh_family = rng.random() < (0.7 if welsh else 0.35)
        family = rng.choice(WELSH_FAMILY_NAMES if welsh_family else OTHER_FAMILY_NAMES)
        # About 15% in all: most Welsh speakers have Welsh names, not all.
        language = Language.WELSH if rng.random() < (0.36 if welsh else 0.04) else Language.ENGLISH
        return self._person(index, given, family, self._date_of_birth(), language, self._address())

    def _household_member(self, index: int) -> ResidentPlan:
        """Someone living with an earlier resident: same family name and address, not a
        duplicate. Merge tools must not offer these as the same person."""
        rng = self.rng
        housemates = [p for p in self.planned if p.address and p.duplicate_of is None]
        if not housemates:
            return self._resident(index)
        housemate = rng.choice(housemates)
        welsh = housemate.preferred_language == Language.WELSH
        given = rng.choice(WELSH_GIVEN_NAMES if welsh else OTHER_GIVEN_NAMES)
        if given == housemate.given_name:
            given = rng.choice(OTHER_GIVEN_NAMES)
        return self._person(
            index,
            given,
            housemate.family_name,
            self._date_of_birth(),
            housemate.preferred_language,
            housemate.address,
        )

    def _duplicate(self, index: int) -> ResidentPlan:
        """A second profile of someone planned earlier, for the merge tools to find. They take
        turns: the same name again, a provisional profile, a variant of the name."""
        rng = self.rng
        variety = (index // DUPLICATE_EVERY) % 3
        duplicated = {p.duplicate_of for p in self.planned}
        originals = [
            p
            for p in self.planned
            if p.address
            and not p.provisional
            and p.duplicate_of is None
            and p.index not in duplicated
        ]
        if variety == 2:
            originals = [p for p in originals if _name_variant(p.given_name)] or originals
        if not originals:
            return self._resident(index)
        original = rng.choice(originals)
        if variety == 1:
            return self._provisional_duplicate(index, original)
        given = original.given_name
        if variety == 2:
            given = _name_variant(given) or given
        # Same person, same home, registered again from another e-mail address.
        date_of_birth = original.date_of_birth if rng.random() < 0.5 else None
        plan = self._person(
            index,
            given,
            original.family_name,
            date_of_birth,
            original.preferred_language,
            original.address,
            email_share=1.0,
            mobile_share=0.0,  # the number is already on the first profile
        )
        return replace(plan, duplicate_of=original.index)

    def _provisional_duplicate(self, index: int, original: ResidentPlan) -> ResidentPlan:
        """What the ingest pipeline makes when a known resident writes from a new address."""
        rng = self.rng
        given, family = original.given_name, original.family_name
        if rng.random() < 0.7:
            contact = (ContactPoint.Kind.EMAIL, self._email(given, family))
            channel = ChannelKind.EMAIL
        else:
            contact = (ContactPoint.Kind.MASTODON, self._mastodon(given, family))
            channel = ChannelKind.MASTODON
        timeline = self._episode(
            self._pick_topic(), original.address, original.preferred_language,
            start=self._day_time(office=False), first=(TimelineEntry.Kind.MESSAGE_IN, channel),
            reply_channel=channel,
        )  # fmt: skip
        return ResidentPlan(
            index=index,
            public_id=demo_resident_public_id(index),
            given_name=given,
            family_name=family,
            date_of_birth=None,
            preferred_language=Language.ENGLISH,
            preferred_channel="",
            accessibility_needs="",
            contact_points=(contact,),
            address=None,
            timeline=tuple(sorted(timeline, key=lambda entry: entry.occurred_at)),
            provisional=True,
            duplicate_of=original.index,
        )

    def _person(
        self,
        index: int,
        given: str,
        family: str,
        date_of_birth: datetime.date | None,
        language: str,
        address: AddressPlan | None,
        *,
        email_share: float = 0.85,
        mobile_share: float = 0.6,
    ) -> ResidentPlan:
        rng = self.rng
        contact_points: list[tuple[str, str]] = []
        if rng.random() < email_share:
            contact_points.append((ContactPoint.Kind.EMAIL, self._email(given, family)))
        if rng.random() < mobile_share and self.mobiles_issued < DRAMA_MOBILES:
            contact_points.append((ContactPoint.Kind.PHONE, self._mobile()))
        if rng.random() < 0.10:
            contact_points.append((ContactPoint.Kind.MASTODON, self._mastodon(given, family)))
        if rng.random() < 0.04:
            contact_points.append((ContactPoint.Kind.X, self._x_handle(given, family)))
        kinds = {kind for kind, _value in contact_points}
        preferred_channel = self._preferred_channel(kinds)
        accessibility = rng.choice(ACCESSIBILITY_NEEDS) if rng.random() < 0.09 else ""
        timeline = self._timeline(kinds, preferred_channel, language, address)
        return ResidentPlan(
            index=index,
            public_id=demo_resident_public_id(index),
            given_name=given,
            family_name=family,
            date_of_birth=date_of_birth,
            preferred_language=language,
            preferred_channel=preferred_channel,
            accessibility_needs=accessibility,
            contact_points=tuple(contact_points),
            address=address,
            timeline=timeline,
        )

    def _date_of_birth(self) -> datetime.date | None:
        if self.rng.random() < 0.1:
            return None  # not everyone has told us
        return datetime.date(1938, 1, 1) + datetime.timedelta(days=self.rng.randrange(25_000))

    def _preferred_channel(self, kinds: set[str]) -> str:
        options = [ChannelKind.WEB, ChannelKind.PHONE, ChannelKind.POST]
        if ContactPoint.Kind.EMAIL in kinds:
            options += [ChannelKind.EMAIL] * 3
        if ContactPoint.Kind.PHONE in kinds:
            options += [ChannelKind.SMS, ChannelKind.PHONE]
        if not kinds:
            return ChannelKind.POST
        return "" if self.rng.random() < 0.2 else self.rng.choice(options)

    # --- where they live ------------------------------------------------------------------

    def _address(self) -> AddressPlan:
        rng = self.rng
        street_index = rng.randrange(len(STREETS))
        street, highest = STREETS[street_index]
        number = rng.randint(1, highest)
        flat = rng.randint(1, 6) if rng.random() < 0.08 else 0
        # A street's postcode changes every 16 houses and its sector every 50, as real ones do.
        district = street_index % POSTCODE_DISTRICTS + 1
        sector = (street_index // POSTCODE_DISTRICTS + number // 50) % 10
        block = number // 16
        inward = (
            f"{sector}{INWARD_LETTERS[(street_index * 3 + block) % len(INWARD_LETTERS)]}"
            f"{INWARD_LETTERS[(street_index * 7 + block * 11) % len(INWARD_LETTERS)]}"
        )
        postcode = normalise_postcode(f"NM{district}{inward}").normalised
        return AddressPlan(
            line1=f"Flat {flat}" if flat else f"{number} {street}",
            line2=f"{number} {street}" if flat else "",
            postcode=postcode,
            # One UPRN per dwelling, so a household shares it and each flat has its own.
            uprn=str(100_090_000_000 + street_index * 10_000 + number * 10 + flat),
            street=street,
            number=number,
            postcode_sector=(district - 1) * 10 + sector,
        )

    # --- contact points -------------------------------------------------------------------

    def _claim(self, kind: str, base: str, render: Callable[[str], str], limit: int) -> str:
        """`base`, or `base` with a number, not yet handed out as this kind of identity."""
        candidate, number = base[:limit], 1
        while (kind, render(candidate).lower()) in self.taken:
            number += 1
            candidate = base[: limit - len(str(number))] + str(number)
        self.taken.add((kind, render(candidate).lower()))
        return render(candidate)

    def _email(self, given: str, family: str) -> str:
        rng = self.rng
        g, f = _ascii(given) or "resident", _ascii(family) or "northmoor"
        local = rng.choice(
            (f"{g}.{f}", f"{g}{f}", f"{g[0]}{f}", f"{g}.{f}{rng.randint(50, 99)}", f"{f}.{g}")
        )
        domain = rng.choice(EMAIL_DOMAINS)
        address = self._claim("email", local, lambda part: f"{part}@{domain}", limit=64)
        if rng.random() < 0.15:
            # As typed on a phone: matching must ignore the capitals.
            address = address[0].upper() + address[1:]
        return address

    def _mobile(self) -> str:
        # 617 is coprime with 1000, so slot k -> a distinct number for every k below 1000.
        number = (self.mobiles_issued * 617 + 211) % DRAMA_MOBILES
        self.mobiles_issued += 1
        layout = self.rng.choice(
            ("07700 900{:03d}", "07700900{:03d}", "+44 7700 900{:03d}", "(07700) 900 {:03d}")
        )
        return layout.format(number)

    def _mastodon(self, given: str, family: str) -> str:
        rng = self.rng
        user = rng.choice(
            (f"{_ascii(given)}_{_ascii(family)}", f"{_ascii(given)}{rng.randint(1, 99)}")
        )
        instance = rng.choice(MASTODON_INSTANCES)
        return self._claim("mastodon", user, lambda part: f"@{part}@{instance}", limit=30)

    def _x_handle(self, given: str, family: str) -> str:
        base = f"{_ascii(given)[:6].title()}{_ascii(family)[:4].title()}_NM"
        return self._claim("x", base, lambda part: f"@{part}", limit=15)

    # --- timeline -------------------------------------------------------------------------

    def _pick_topic(self) -> _Topic:
        topics, weights = zip(*TOPICS, strict=True)
        return self.rng.choices(topics, weights=weights)[0]

    def _day_time(self, *, office: bool) -> datetime.datetime:
        """A moment in the year before DEMO_NOW: office hours on a weekday for calls and
        visits, any waking hour for messages."""
        rng = self.rng
        day = DEMO_NOW.date() - datetime.timedelta(days=rng.randint(1, 365))
        while office and day.weekday() >= 5:  # draw again rather than leave the year
            day = DEMO_NOW.date() - datetime.timedelta(days=rng.randint(1, 365))
        if office:
            return _at(day, rng.randint(8 * 60 + 30, 17 * 60))
        return _at(day, rng.randint(7 * 60, 23 * 60))

    def _office_time_after(
        self, moment: datetime.datetime, *, days: tuple[int, int]
    ) -> datetime.datetime:
        """A weekday office-hours moment some days after `moment` (the same day when 0)."""
        rng = self.rng
        day = moment.date() + datetime.timedelta(days=rng.randint(*days))
        while day.weekday() >= 5:
            day += datetime.timedelta(days=1)
        earliest = 8 * 60 + 30
        if day == moment.date():
            earliest = max(earliest, moment.hour * 60 + moment.minute + 5)
        if earliest > 17 * 60:
            return self._office_time_after(moment, days=(1, max(1, days[1])))
        return _at(day, rng.randint(earliest, 17 * 60))

    def _timeline(
        self, kinds: set[str], preferred_channel: str, language: str, address: AddressPlan | None
    ) -> tuple[TimelinePlan, ...]:
        """Six to twelve entries, in episodes: a contact, then the case, visit, reply or note
        it led to."""
        rng = self.rng
        first_contacts: list[tuple[tuple[str, str], int]] = [
            ((TimelineEntry.Kind.MESSAGE_IN, ChannelKind.WEB), 25),
            ((TimelineEntry.Kind.CALL, ChannelKind.PHONE), 25),
            ((TimelineEntry.Kind.VISIT, ChannelKind.IN_PERSON), 6),
        ]
        if ContactPoint.Kind.EMAIL in kinds:
            first_contacts.append(((TimelineEntry.Kind.MESSAGE_IN, ChannelKind.EMAIL), 25))
        if ContactPoint.Kind.PHONE in kinds:
            first_contacts.append(((TimelineEntry.Kind.MESSAGE_IN, ChannelKind.SMS), 8))
        if ContactPoint.Kind.MASTODON in kinds:
            first_contacts.append(((TimelineEntry.Kind.MESSAGE_IN, ChannelKind.MASTODON), 6))
        if ContactPoint.Kind.X in kinds:
            first_contacts.append(((TimelineEntry.Kind.MESSAGE_IN, ChannelKind.X), 6))
        options = [contact for contact, _weight in first_contacts]
        weights = [
            weight * (3 if contact[1] == preferred_channel else 1)
            for contact, weight in first_contacts
        ]
        # Replies to a web form, call or visit go out by e-mail, else text, else post.
        written_reply = (
            ChannelKind.EMAIL
            if ContactPoint.Kind.EMAIL in kinds
            else ChannelKind.SMS
            if ContactPoint.Kind.PHONE in kinds
            else ChannelKind.POST
        )
        target = rng.randint(6, 12)
        entries: list[TimelinePlan] = []
        while len(entries) < target:
            first = rng.choices(options, weights=weights)[0]
            in_office = first[0] in (TimelineEntry.Kind.CALL, TimelineEntry.Kind.VISIT)
            reply_channel = first[1] if first[0] == TimelineEntry.Kind.MESSAGE_IN else ""
            if reply_channel in ("", ChannelKind.WEB):
                reply_channel = written_reply
            episode = self._episode(
                self._pick_topic(), address, language,
                start=self._day_time(office=in_office), first=first, reply_channel=reply_channel,
            )  # fmt: skip
            if len(entries) >= 6 and len(entries) + len(episode) > 12:
                break
            entries.extend(episode)
        return tuple(sorted(entries, key=lambda entry: entry.occurred_at))

    def _episode(
        self,
        topic: _Topic,
        address: AddressPlan | None,
        language: str,
        *,
        start: datetime.datetime,
        first: tuple[str, str],
        reply_channel: str,
    ) -> list[TimelinePlan]:
        rng = self.rng
        street, number = (address.street, address.number) if address else ("Northmoor Road", 1)

        def entry(when: datetime.datetime, kind: str, channel: str, text: str) -> TimelinePlan:
            return TimelinePlan(
                occurred_at=when,
                kind=kind,
                channel=channel,
                department=topic.department,
                service_code=topic.service_code,
                summary=text.format(street=street, number=number),
                visibility=(
                    TimelineEntry.Visibility.STAFF
                    if kind == TimelineEntry.Kind.NOTE
                    else TimelineEntry.Visibility.RESIDENT
                ),
            )

        kind, channel = first
        episode = [entry(start, kind, channel, topic.request)]
        follow_ups: list[TimelinePlan] = []
        if topic.case and rng.random() < 0.75:
            when = self._office_time_after(start, days=(0, 1))
            follow_ups.append(entry(when, TimelineEntry.Kind.CASE, channel, topic.case))
        if topic.visit and rng.random() < 0.7:
            when = self._office_time_after(start, days=(3, 21))
            follow_ups.append(
                entry(when, TimelineEntry.Kind.VISIT, ChannelKind.IN_PERSON, topic.visit)
            )
        if topic.reply and rng.random() < 0.85:
            when = self._office_time_after(start, days=(0, 4))
            text = topic.reply + (" (sent in Welsh)" if language == Language.WELSH else "")
            follow_ups.append(entry(when, TimelineEntry.Kind.MESSAGE_OUT, reply_channel, text))
        if topic.note and rng.random() < 0.6:
            when = self._office_time_after(start, days=(1, 7))
            follow_ups.append(entry(when, TimelineEntry.Kind.NOTE, "", topic.note))
        # Whatever would have happened after the demo's "now" has not happened yet.
        episode.extend(e for e in follow_ups if e.occurred_at <= DEMO_NOW)
        return episode


# --- writing ------------------------------------------------------------------------------


def _ward_codes() -> list[str]:
    """The ward codes residents are placed in, if the democracy app is installed. Looked up by
    label: the core must not import a feature app."""
    try:
        ward_model = apps.get_model("democracy", "Ward")
    except LookupError:
        return []
    return list(ward_model.objects.order_by("gss_code").values_list("gss_code", flat=True))


def _existing_public_ids(public_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
    present: set[uuid.UUID] = set()
    for start in range(0, len(public_ids), 500):  # SQLite caps a query's parameters
        chunk = public_ids[start : start + 500]
        present.update(
            Citizen.objects.filter(public_id__in=chunk).values_list("public_id", flat=True)
        )
    return present


def _create_profile(plan: ResidentPlan) -> Citizen:
    if plan.provisional:
        kind, value = plan.contact_points[0]
        resolution = resolve_identity(
            kind=kind,
            value=value,
            source=ContactPoint.Source.DEMO,
            display_name=f"{plan.given_name} {plan.family_name}",
        )
        if not resolution.created:
            raise ApplicationError(
                f"Demo resident {plan.index}: {value} already belongs to another profile.",
                code="identity_taken",
            )
        citizen = resolution.citizen
        # resolve_identity has no id parameter; the id is what makes the next run skip it.
        Citizen.objects.filter(pk=citizen.pk).update(public_id=plan.public_id)
        citizen.public_id = plan.public_id
        return citizen
    try:
        return citizen_create(
            public_id=plan.public_id,
            given_name=plan.given_name,
            family_name=plan.family_name,
            date_of_birth=plan.date_of_birth,
            preferred_language=plan.preferred_language,
            preferred_channel=plan.preferred_channel,
            accessibility_needs=plan.accessibility_needs,
            contact_points=plan.contact_points,
            source=ContactPoint.Source.DEMO,
        )
    except ValidationError as exc:
        # Someone added one of this resident's identities by hand since the last run.
        raise ApplicationError(
            f"Demo resident {plan.index} ({plan.given_name} {plan.family_name}) cannot be "
            f"created: {'; '.join(exc.messages)}",
            code="identity_taken",
        ) from exc


def _address_row(citizen: Citizen, plan: AddressPlan, ward_codes: Sequence[str]) -> Address:
    ward_code = (
        ward_codes[plan.postcode_sector * len(ward_codes) // POSTCODE_SECTORS] if ward_codes else ""
    )
    return Address(
        citizen=citizen,
        uprn=plan.uprn,
        line1=plan.line1,
        line2=plan.line2,
        town=TOWN,
        postcode=plan.postcode,
        ward_code=ward_code,
        is_primary=True,
    )


def _timeline_rows(citizen: Citizen, plan: ResidentPlan) -> Iterator[TimelineEntryData]:
    for entry in plan.timeline:
        yield TimelineEntryData(
            citizen_id=citizen.pk,
            kind=entry.kind,
            occurred_at=entry.occurred_at,
            summary=entry.summary,
            channel=entry.channel,
            department=entry.department,
            service_code=entry.service_code,
            visibility=entry.visibility,
        )


def seed_residents(*, count: int, progress: TextIO | None = None) -> dict[str, int]:
    """Create the first `count` demo residents that do not exist yet, with their addresses and
    timelines. Residents already present are left exactly as they are."""
    plans = plan_residents(count)
    present = _existing_public_ids([plan.public_id for plan in plans])
    ward_codes = _ward_codes()
    missing = [plan for plan in plans if plan.public_id not in present]
    addresses: list[Address] = []
    timeline: list[TimelineEntryData] = []
    bar = tqdm(
        missing,
        desc="Demo residents",
        unit=" residents",
        file=progress,
        disable=True if progress is None else None,  # None: hide when not a terminal
    )
    for plan in bar:
        citizen = _create_profile(plan)
        if plan.address is not None:
            addresses.append(_address_row(citizen, plan.address, ward_codes))
        timeline.extend(_timeline_rows(citizen, plan))
    Address.objects.bulk_create(addresses, batch_size=500)
    recorded = record_timeline_entries(timeline)
    return {
        "residents created": len(missing),
        "residents already present": len(present),
        "timeline entries": recorded,
    }
