"""The demo council's casework: officers in their roles and teams, and half a year of service
cases worked through the case services, as the staff dashboard shows them on DEMO_NOW.

Cases are planned resident by resident from random streams seeded with the resident's index,
so resident i has the same cases whether 100 or 4,000 residents are seeded, and a larger run
adds only the new residents' cases. What happens to a case (resolved on time, resolved late,
overdue, waiting on the resident, not yet picked up, ...) follows a fixed cycle over the cases
in order, so every mix of outcomes is there even in a small council. Each case is opened,
assigned, moved and noted through `citizenhub.services.cases` with its historical times, so
its history, due date, breach flag and the resident's timeline are the services' own work.

A second run knows a case it made by its service and the minute it was opened (the planner
never gives two cases of one service the same minute); references cannot say it, as the
reference sequence moves on with every case, demo or real.

No case is old enough for its service's retention period to have ended: the retention task
would anonymise it on its first run, and an anonymised case could no longer be recognised
here, so the next run would open it again.
"""

from __future__ import annotations

import datetime
import random
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TextIO

from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from tqdm import tqdm

from citizenhub import workdays
from citizenhub.catalogue import TEAMS, load_service_catalogue
from citizenhub.demo_data import DEMO_NOW, LONDON, ResidentPlan, plan_residents
from citizenhub.models import Address, ChannelKind, Citizen, Service, ServiceCase, Team
from citizenhub.services.cases import (
    case_add_note,
    case_assign,
    case_opened,
    case_status_changed,
    case_transition,
    mark_breached_cases,
    open_case,
)
from citizenhub.staff.access import (
    ADMINISTRATOR,
    CASEWORKER,
    COMMS_OFFICER,
    DEMOCRACY_OFFICER,
    SUPERVISOR,
    ensure_staff_groups,
)

# The password demo_staff prints for demo.officer; every demo officer shares it.
DEMO_PASSWORD = "northmoor-demo-2026"  # noqa: S105 - a published demo login, DEBUG only
DEMO_EMAIL_DOMAIN = "northmoor.example"
# Below this many residents there are officers but no cases: a council that small is one to
# test with (the residents seeder's tests count every resident's timeline entries).
CASEWORK_MIN_RESIDENTS = 100
# Cases a resident has had in the half year: none for most, two for a few (about 0.6 each).
CASES_PER_RESIDENT = ((0, 52), (1, 33), (2, 15))
HISTORY_DAYS = 182  # cases were opened over the half year before DEMO_NOW
# Cases closed long before DEMO_NOW are given to their officer as they are opened and resolved
# without being marked "in progress": two service calls fewer for most cases (the seeder's
# time is its service calls), and nobody reads those histories step by step.
SHORT_HISTORY_AFTER_DAYS = 30

Status = ServiceCase.Status
Priority = ServiceCase.Priority


# --- officers -------------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoOfficer:
    username: str
    given_name: str
    family_name: str
    role: str  # as demo_staff prints it
    groups: tuple[str, ...]
    teams: tuple[str, ...] = ()  # team slugs from the catalogue
    is_superuser: bool = False

    @property
    def email(self) -> str:
        return f"{self.username}@{DEMO_EMAIL_DOMAIN}"

    @property
    def works_cases(self) -> bool:
        return CASEWORKER in self.groups


DEMO_OFFICERS: tuple[DemoOfficer, ...] = (
    # demo_staff's login: it also makes this one a superuser, so the seeder does the same.
    DemoOfficer("demo.officer", "Demo", "Officer", "supervisor and caseworker (superuser)",
                (SUPERVISOR, CASEWORKER), ("waste", "highways"), is_superuser=True),
    DemoOfficer("demo.caseworker", "Carys", "Pritchard", "caseworker",
                (CASEWORKER,), ("waste", "streetscene")),
    DemoOfficer("demo.supervisor", "Martin", "Okafor", "supervisor",
                (SUPERVISOR,), ("waste", "streetscene", "highways", "customer-feedback")),
    # The login that shows both sensitive services' case content; demo.caseworker sees none.
    DemoOfficer("demo.socialcare", "Rhiannon", "Vaughan",
                "caseworker, adult social care and bereavement",
                (CASEWORKER,), ("adult-social-care", "bereavement")),
    DemoOfficer("demo.comms", "Priya", "Shah", "comms officer", (COMMS_OFFICER,)),
    DemoOfficer("demo.democracy", "Gethin", "Lloyd", "democracy officer", (DEMOCRACY_OFFICER,)),
    DemoOfficer("demo.admin", "Joanne", "Clarke", "administrator", (ADMINISTRATOR,)),
    DemoOfficer("demo.tom.walker", "Tom", "Walker", "caseworker", (CASEWORKER,), ("highways",)),
    DemoOfficer("demo.ffion.rees", "Ffion", "Rees", "caseworker", (CASEWORKER,), ("revenues",)),
    DemoOfficer("demo.aisha.khan", "Aisha", "Khan", "caseworker",
                (CASEWORKER,), ("housing-repairs",)),
    DemoOfficer("demo.owain.price", "Owain", "Price", "caseworker",
                (CASEWORKER,), ("environmental-health", "streetscene")),
    DemoOfficer("demo.sue.fitzgerald", "Sue", "Fitzgerald", "caseworker",
                (CASEWORKER,), ("information-governance", "customer-feedback")),
    DemoOfficer("demo.mair.evans", "Mair", "Evans", "caseworker, adult social care",
                (CASEWORKER,), ("adult-social-care",)),
    DemoOfficer("demo.huw.bowen", "Huw", "Bowen", "caseworker, bereavement",
                (CASEWORKER,), ("bereavement",)),
)  # fmt: skip


def ensure_demo_officers(*, password: str = DEMO_PASSWORD, reset: bool = False) -> int:
    """Create the demo officers that are missing, in their groups and teams, each able to
    sign in by username or by (verified) e-mail; returns how many were created.

    Memberships are only ever added. With `reset`, existing officers get their name, e-mail,
    flags and password back as planned (demo_staff does this); without it they are left as
    they are, so a second seed neither changes a password nor pays for hashing one.
    """
    load_service_catalogue()
    groups = ensure_staff_groups()
    teams = {team.slug: team for team in Team.objects.all()}
    User = get_user_model()
    existing = {
        user.username: user
        for user in User.objects.filter(username__in=[o.username for o in DEMO_OFFICERS])
    }
    # One hash for all: PBKDF2 takes most of a second each, on purpose.
    hashed = make_password(password) if reset or len(existing) < len(DEMO_OFFICERS) else ""
    created = 0
    for officer in DEMO_OFFICERS:
        user = existing.get(officer.username)
        if user is None or reset:
            user = user or User(username=officer.username)
            created += user.pk is None
            user.email = officer.email
            user.first_name, user.last_name = officer.given_name, officer.family_name
            user.is_staff = user.is_active = True
            user.is_superuser = user.is_superuser or officer.is_superuser
            user.password = hashed
            user.save()
        user.groups.add(*(groups[name] for name in officer.groups))
        for slug in officer.teams:
            teams[slug].members.add(user)
        EmailAddress.objects.update_or_create(
            user=user, email=officer.email, defaults={"verified": True, "primary": True}
        )
    return created


def demo_officer_logins() -> str:
    """The role logins, one line each (username, role, teams), for demo_staff to print."""
    team_names = {team.slug: team.name for team in TEAMS}
    width = max(len(officer.username) for officer in DEMO_OFFICERS)
    lines = [
        "\nRole logins (the same password; sign in with the username at /admin/ or with "
        f"<username>@{DEMO_EMAIL_DOMAIN} at /accounts/login/):"
    ]
    for officer in DEMO_OFFICERS:
        teams = ", ".join(team_names[slug] for slug in officer.teams) or "none"
        lines.append(f"  {officer.username:<{width}}  {officer.role}; teams: {teams}")
    return "\n".join(lines) + "\n"


# --- what the cases say -----------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceContent:
    """How residents ask for a service and how officers answer, to draw cases from.

    Texts may use {street}, {number} and {thing}: `things` is what the case is about (a bin,
    a dumped item, ...), drawn once per case so the title and description agree.
    """

    titles: tuple[str, ...]
    descriptions: tuple[str, ...]
    resolutions: tuple[str, ...]
    notes: tuple[str, ...]
    waiting: tuple[str, ...]  # why the clock stopped
    resumed: tuple[str, ...]  # what came back from the resident
    where: str = ""  # "home": the resident's address; "street": near it; "": nowhere
    things: tuple[str, ...] = ("",)
    channels: tuple[tuple[str, int], ...] = (
        (ChannelKind.WEB, 40),
        (ChannelKind.PHONE, 25),
        (ChannelKind.EMAIL, 20),
        (ChannelKind.SMS, 5),
        (ChannelKind.IN_PERSON, 5),
        (ChannelKind.POST, 5),
    )
    weight: int = 0  # how often residents ask, among the services that are not sensitive
    urgent_share: float = 0.02
    high_share: float = 0.1
    note_share: float = 0.3  # cases with an internal note


_WRITTEN = ((ChannelKind.EMAIL, 65), (ChannelKind.POST, 20), (ChannelKind.WEB, 15))
_CARE = ((ChannelKind.PHONE, 60), (ChannelKind.EMAIL, 20), (ChannelKind.IN_PERSON, 12),
         (ChannelKind.WEB, 8))  # fmt: skip

CONTENT: dict[str, ServiceContent] = {
    "missed-bin": ServiceContent(
        titles=("Missed {thing} collection at {number} {street}",
                "{thing} bin not emptied, {street}"),
        descriptions=("The {thing} bin was out by 7am on collection day and was not emptied.",
                      "The lorry went past; every bin on our side of {street} was left.",
                      "Second week running the {thing} bin has been missed."),
        resolutions=("The crew went back and emptied the bin.",
                     "Collected on the crew's return visit; sorry for the trouble.",
                     "Emptied today. We have added a note for the crew about your bin."),
        notes=("Crew sheet says the bin was not out at 7am; sent back anyway as a goodwill visit.",
               "Third missed collection on this round this month: raised with the supervisor.",
               "Access blocked by parked cars on the collection day."),
        waiting=("Asked the resident which bin was missed: the report did not say.",),
        resumed=("Resident confirmed it was the recycling bin.",),
        where="home",
        things=("general waste", "recycling", "garden waste", "food waste"),
        weight=26,
        urgent_share=0.0,
        high_share=0.03,
    ),
    "fly-tipping": ServiceContent(
        titles=("Fly-tipping on {street}: {thing}", "{thing} dumped on {street}"),
        descriptions=("Dumped overnight by the garages behind {street}.",
                      "On the verge opposite {number} {street}, partly blocking the path.",
                      "Been there since the weekend and is attracting rats."),
        resolutions=("Cleared by the street scene crew; evidence passed to enforcement.",
                     "Cleared. An address found in the waste is being followed up.",
                     "Cleared; the land is private, so we have written to the owner too."),
        notes=("Envelope with an address found in the bags: passed to the enforcement officer.",
               "Camera on {street} requested for the next four weeks."),
        waiting=("Asked the resident for a photo and the exact spot.",),
        resumed=("Resident sent a photo with the location pinned.",),
        where="street",
        things=("a mattress and black bags", "builders' rubble", "a fridge-freezer",
                "an old sofa", "garden waste in bags", "tyres"),
        weight=9,
        urgent_share=0.01,
    ),
    "pothole": ServiceContent(
        titles=("Pothole outside {number} {street}", "Pothole on {street}: {thing}"),
        descriptions=("About 8 cm deep in the nearside lane; cars are swerving round it.",
                      "By the drain near {number} {street}; a cyclist came off last week.",
                      "Broken edge of the carriageway, filling with water."),
        resolutions=("Repaired: a permanent patch was laid.",
                     "Inspected: below the intervention level, so it goes on the resurfacing "
                     "programme.",
                     "Made safe the same day and permanently repaired since."),
        notes=("Inspector: category 2, repair within 28 days.",
               "Contractor's gang booked for the whole street next week."),
        waiting=("Asked the resident for a photo: the inspector could not find it.",),
        resumed=("Resident sent a photo showing the pothole by the lamp column.",),
        where="street",
        things=("deep", "by the bus stop", "near the junction", "on the bend"),
        channels=((ChannelKind.WEB, 55), (ChannelKind.PHONE, 20), (ChannelKind.EMAIL, 15),
                  (ChannelKind.X, 5), (ChannelKind.MASTODON, 5)),
        weight=14,
        urgent_share=0.04,
    ),
    "street-light": ServiceContent(
        titles=("Street light out on {street}", "Street light {thing} on {street}"),
        descriptions=("The light outside {number} {street} has been out for a week.",
                      "The lamp column by the footpath is flickering all night."),
        resolutions=("Lantern replaced; the light is working again.",
                     "Fault was in the supply: the network operator has repaired it."),
        notes=("Supply fault: referred to the network operator, who have 20 working days.",),
        waiting=("Asked the resident for the number on the lamp column.",),
        resumed=("Resident sent the column number.",),
        where="street",
        things=("out", "flickering", "on all day", "damaged"),
        weight=8,
        urgent_share=0.0,
    ),
    "noise": ServiceContent(
        titles=("Noise from a neighbour: {thing}", "Noise complaint: {thing}"),
        descriptions=("Going on most nights until after midnight; we cannot sleep.",
                      "Started when new tenants moved in next door to {number} {street}."),
        resolutions=("Warning letter sent to the neighbour; no further complaints since.",
                     "Noise abatement notice served.",
                     "Diary sheets showed no statutory nuisance; advised on mediation."),
        notes=("Out-of-hours officer witnessed the noise on Saturday night.",
               "Previous complaint about the same address in 2025."),
        waiting=("Sent noise diary sheets; waiting for the resident to return them.",),
        resumed=("Diary sheets returned, covering two weeks.",),
        where="home",
        things=("dog barking through the night", "loud music late at night",
                "a car alarm going off repeatedly", "building work on Sundays"),
        weight=6,
        urgent_share=0.0,
    ),
    "council-tax": ServiceContent(
        titles=("{thing}",),
        descriptions=("Account for {number} {street}. Please call back after 5pm.",
                      "I have written before and heard nothing."),
        resolutions=("Account updated and a new bill sent.",
                     "Explained the charge; no change was due.",
                     "Single person discount applied from the date you told us."),
        notes=("Checked against the electoral register: one adult at the address.",
               "Recovery action paused while this is looked at."),
        waiting=("Asked the resident for the date they moved in.",
                 "Asked for a copy of the tenancy agreement."),
        resumed=("Resident sent the tenancy agreement.",),
        where="home",
        things=("Single person discount application", "Query about the council tax band",
                "Direct Debit date change", "Reminder notice queried",
                "Council tax refund after moving out"),
        weight=12,
        urgent_share=0.0,
        high_share=0.03,
    ),
    "housing-repair": ServiceContent(
        titles=("{thing} at {number} {street}",),
        descriptions=("Council tenancy. It has been getting worse since October.",
                      "We have a baby in the house; please come soon.",
                      "Reported once by phone already."),
        resolutions=("Repair completed by the housing repairs team.",
                     "Surveyor visited; the work has been done and checked.",
                     "Repaired; a follow-up inspection is booked in six weeks."),
        notes=("Surveyor: mould in two rooms, treat and fit an extractor fan.",
               "Access refused on the first visit; new appointment made with the tenant.",
               "Vulnerable household: prioritised under the damp and mould policy."),
        waiting=("Waiting for the tenant to confirm an access date.",),
        resumed=("Tenant confirmed access for Tuesday morning.",),
        where="home",
        things=("Damp and mould in the back bedroom", "Leaking kitchen tap",
                "Boiler not heating water", "Broken window catch",
                "Front door will not lock", "Blocked bathroom drain"),
        weight=9,
        urgent_share=0.06,
        high_share=0.2,
        note_share=0.6,
    ),
    "foi": ServiceContent(
        titles=("FOI: {thing}",),
        descriptions=("Please provide the information as a spreadsheet, by year.",
                      "Under the Freedom of Information Act 2000, please send me the "
                      "information below for the last three financial years."),
        resolutions=("Information sent in full.",
                     "Information sent; some withheld under section 43 (commercial interests).",
                     "Not held: the council does not record this."),
        notes=("Asked Finance and Highways for the figures.",
               "Similar request answered in March: reusing the published response."),
        waiting=("Asked the requester to narrow the request: it would exceed the cost limit.",),
        resumed=("Requester narrowed the request to the last financial year.",),
        things=("spending on agency staff", "potholes repaired by ward",
                "fly-tipping enforcement notices issued", "contracts with consultants",
                "empty council homes", "parking fines issued on {street}"),
        channels=_WRITTEN,
        weight=4,
        urgent_share=0.0,
        high_share=0.0,
    ),
    "complaint-stage-1": ServiceContent(
        titles=("Complaint: {thing}",),
        descriptions=("I want a proper explanation and an apology.",
                      "This is the third time I have had to contact you about it."),
        resolutions=("Complaint upheld: apology sent and the team briefed.",
                     "Complaint partly upheld; explained what we will do differently.",
                     "Complaint not upheld; explained how to ask for a stage 2 review."),
        notes=("Spoke to the service manager, who agrees the delay was too long.",),
        waiting=("Asked the resident for the dates of the earlier calls.",),
        resumed=("Resident sent the dates and times of the calls.",),
        things=("bins missed repeatedly on {street}", "rude telephone call",
                "delay repairing damp", "no reply to three e-mails", "parking fine"),
        channels=((ChannelKind.WEB, 45), (ChannelKind.EMAIL, 35), (ChannelKind.PHONE, 10),
                  (ChannelKind.POST, 10)),
        weight=6,
        urgent_share=0.0,
        high_share=0.05,
    ),
    "complaint-stage-2": ServiceContent(
        titles=("Stage 2 review: {thing}",),
        descriptions=("The resident is unhappy with the stage 1 response and asked for a "
                      "review.",),
        resolutions=("Review found the stage 1 response fair; explained how to go to the "
                     "Ombudsman.",
                     "Review upheld the complaint; a £50 time-and-trouble payment offered."),
        notes=("Read the stage 1 file and the call recordings.",),
        waiting=("Asked the resident what outcome they are looking for.",),
        resumed=("Resident replied with the outcome they want.",),
        things=("bins missed repeatedly", "delay repairing damp", "no reply to e-mails"),
        channels=_WRITTEN,
        weight=2,
        urgent_share=0.0,
        high_share=0.1,
    ),
    "subject-access": ServiceContent(
        titles=("Subject access request: {thing}",),
        descriptions=("Please send me copies of all the personal information you hold "
                      "about me.",),
        resolutions=("Records sent by secure e-mail.",
                     "Records sent by recorded post, with third parties' details removed."),
        notes=("Searching Revenues, Housing and the contact centre's records.",),
        # The ICO's clock does not run until the council has what it needs to identify them.
        waiting=("Asked for proof of identity before the search can start.",),
        resumed=("Proof of identity received.",),
        things=("all records", "council tax records", "housing file", "complaint records"),
        channels=_WRITTEN,
        weight=3,
        urgent_share=0.0,
        high_share=0.0,
    ),
    "erasure-request": ServiceContent(
        titles=("Erasure request: {thing}",),
        descriptions=("Please delete the information you hold about me that you no longer "
                      "need.",
                      "I have moved away and would like my details removed."),
        resolutions=("Newsletter consent withdrawn and optional details deleted; case "
                     "records kept until their retention date, as explained.",),
        notes=("Checked which records are kept for a public task or a legal obligation.",),
        waiting=("Asked the resident to confirm which account they mean.",),
        resumed=("The resident confirmed the account.",),
        things=("my details", "marketing preferences", "old account"),
        channels=_WRITTEN,
        weight=1,
        urgent_share=0.0,
        high_share=0.0,
    ),
    "adult-social-care": ServiceContent(
        titles=("{thing}",),
        descriptions=("Caller is worried about how they are managing at home since a fall.",
                      "Daughter says her father is forgetting meals and medication.",
                      "Self-referral: struggling with stairs and bathing."),
        resolutions=("Assessment completed; a care and support plan is agreed.",
                     "Referred to the reablement team for six weeks' support.",
                     "Advice and information given; no eligible needs at present."),
        notes=("Spoke to the GP surgery: a recent hospital admission after a fall.",
               "Carer's assessment offered to the daughter.",
               "Safeguarding screening: no concerns at this point."),
        waiting=("Waiting for the family to confirm a date for the home visit.",),
        resumed=("Family confirmed the visit for Thursday.",),
        where="home",
        things=("Care needs assessment for a parent", "Carer's assessment request",
                "Help at home after a hospital discharge", "Concern about a neighbour living "
                "alone", "Equipment for bathing"),
        channels=_CARE,
        urgent_share=0.1,
        high_share=0.35,
        note_share=0.8,
    ),
    "bereavement": ServiceContent(
        titles=("{thing}",),
        descriptions=("Funeral director is acting for the family.",
                      "The family would like the service on a weekday morning if possible."),
        resolutions=("Booking confirmed with the family and the funeral director.",
                     "Permit issued.",
                     "Tell Us Once notifications sent to the services the family chose."),
        notes=("Family asked that we do not phone before 10am.",
               "Grave reopening: the grave deeds are with the family's solicitor."),
        waiting=("Waiting for the grave deeds from the family.",),
        resumed=("Grave deeds received.",),
        things=("Burial booking at Northmoor cemetery", "Tell Us Once: notification of a "
                "death", "Memorial headstone permit", "Cremation arrangements",
                "Exclusive right of burial transfer"),
        channels=((ChannelKind.PHONE, 50), (ChannelKind.IN_PERSON, 30), (ChannelKind.EMAIL, 20)),
        urgent_share=0.0,
        high_share=0.2,
        note_share=0.5,
    ),
}  # fmt: skip

# Who opened a case, as its history shows it, by the channel it came in on.
OPENED_BY = {
    ChannelKind.WEB: "online form",
    ChannelKind.EMAIL: "e-mail",
    ChannelKind.SMS: "text message",
    ChannelKind.POST: "letter",
    ChannelKind.PHONE: "contact centre (phone)",
    ChannelKind.IN_PERSON: "contact centre (in person)",
    ChannelKind.X: "X",
    ChannelKind.MASTODON: "Mastodon",
}
DUPLICATE_REASONS = (
    "Duplicate of an earlier report of the same problem.",
    "Withdrawn: the resident says it has been sorted out.",
)


# --- plans ------------------------------------------------------------------------------------


class Outcome:
    """Where a case stands on DEMO_NOW."""

    ON_TIME = "resolved on time"  # then closed a week or two later, unless that is still ahead
    LATE = "resolved late"  # after its due date: breached
    AFTER_WAIT = "resolved after waiting"  # the clock stopped while it waited, then moved on
    DUPLICATE = "closed as a duplicate"
    OVERDUE = "open and overdue"
    WAITING = "waiting on the resident"
    NEW = "new, not picked up"
    IN_PROGRESS = "in progress, on time"


# Case n has outcome CYCLE[n % len(CYCLE)]: the rare ones come early, so a few dozen cases
# already have every kind. Per 24: 12 on time, 3 late, 1 after a wait, 1 duplicate,
# 2 overdue, 1 waiting, 2 new, 2 in progress.
CYCLE = (
    Outcome.ON_TIME, Outcome.OVERDUE, Outcome.LATE, Outcome.WAITING, Outcome.NEW,
    Outcome.ON_TIME, Outcome.IN_PROGRESS, Outcome.DUPLICATE, Outcome.ON_TIME,
    Outcome.AFTER_WAIT, Outcome.LATE, Outcome.ON_TIME, Outcome.OVERDUE, Outcome.ON_TIME,
    Outcome.NEW, Outcome.ON_TIME, Outcome.IN_PROGRESS, Outcome.ON_TIME, Outcome.LATE,
    Outcome.ON_TIME, Outcome.ON_TIME, Outcome.ON_TIME, Outcome.ON_TIME, Outcome.ON_TIME,
)  # fmt: skip
# The sensitive services by case number rather than by chance, so every size has some.
ADULT_SOCIAL_CARE_EVERY, ADULT_SOCIAL_CARE_OFFSET = 11, 4
BEREAVEMENT_EVERY, BEREAVEMENT_OFFSET = 23, 9

ASSIGN, STATUS, NOTE = "assign", "status", "note"


@dataclass(frozen=True)
class CaseStep:
    at: datetime.datetime
    action: str  # ASSIGN, STATUS or NOTE
    by: str = ""  # the officer's username; "" is the system
    to_status: str = ""
    text: str = ""  # the note, the reason, or the resolution


@dataclass(frozen=True)
class CasePlan:
    ordinal: int
    resident_index: int
    public_id: uuid.UUID
    service_code: str
    outcome: str
    title: str
    description: str
    source_channel: str
    priority: int
    opened_at: datetime.datetime
    where: str  # "home", "street" or ""
    location_text: str
    assignee: str  # the officer the case was given to as it was opened, if any
    steps: tuple[CaseStep, ...]


@dataclass(frozen=True)
class ServiceTerms:
    """What the planner needs of a catalogue service: its clock and its team."""

    clock_type: str
    sla_days: int
    team: str  # slug


def plan_cases(
    residents: Sequence[ResidentPlan], services: Mapping[str, ServiceTerms]
) -> list[CasePlan]:
    """The demo cases of these residents, in the order they were opened; the same every time
    for the same residents and catalogue."""
    planner = _CasePlanner(services)
    plans = []
    for resident in residents:
        # Second profiles and unknown senders are for the merge tools, not for casework.
        if resident.provisional or resident.duplicate_of is not None or resident.address is None:
            continue
        plans.extend(planner.plan_resident(resident))
    return sorted(plans, key=lambda plan: (plan.opened_at, plan.ordinal))


class _CasePlanner:
    def __init__(self, services: Mapping[str, ServiceTerms]) -> None:
        self.services = services
        self.ordinal = 0
        self.taken: set[tuple[str, datetime.datetime]] = set()  # (service, opened_at)
        self.caseworkers = {
            slug: tuple(
                officer.username
                for officer in DEMO_OFFICERS
                if officer.works_cases and slug in officer.teams
            )
            for slug in {terms.team for terms in services.values()}
        }
        ordinary = [
            (code, content.weight)
            for code, content in CONTENT.items()
            if content.weight and code in services
        ]
        self.ordinary_codes = [code for code, _weight in ordinary]
        self.ordinary_weights = [weight for _code, weight in ordinary]

    def plan_resident(self, resident: ResidentPlan) -> list[CasePlan]:
        # A stream per resident: their cases do not depend on how many residents there are.
        rng = random.Random(f"demo-cases-{resident.index}")  # noqa: S311 - demo data
        counts, weights = zip(*CASES_PER_RESIDENT, strict=True)
        plans = []
        for _ in range(rng.choices(counts, weights=weights)[0]):
            ordinal = self.ordinal
            self.ordinal += 1
            code = self._service(rng, ordinal)
            if code is not None:
                plans.append(self._plan(rng, ordinal, resident, code))
        return plans

    def _service(self, rng: random.Random, ordinal: int) -> str | None:
        if ordinal % ADULT_SOCIAL_CARE_EVERY == ADULT_SOCIAL_CARE_OFFSET:
            code = "adult-social-care"
        elif ordinal % BEREAVEMENT_EVERY == BEREAVEMENT_OFFSET:
            code = "bereavement"
        else:
            if not self.ordinary_codes:
                return None
            return rng.choices(self.ordinary_codes, weights=self.ordinary_weights)[0]
        return code if code in self.services else None

    def _plan(
        self, rng: random.Random, ordinal: int, resident: ResidentPlan, code: str
    ) -> CasePlan:
        content = CONTENT[code]
        terms = self.services[code]
        outcome = CYCLE[ordinal % len(CYCLE)]
        address = resident.address
        assert address is not None  # plan_cases skips residents without one
        thing = rng.choice(content.things)
        fill = {"street": address.street, "number": address.number}
        fill["thing"] = thing.format(**fill)

        def text(template: str) -> str:
            return template.format(**fill)

        channels, channel_weights = zip(*content.channels, strict=True)
        channel = rng.choices(channels, weights=channel_weights)[0]
        draw = rng.random()
        priority = (
            Priority.URGENT
            if draw < content.urgent_share
            else Priority.HIGH
            if draw < content.urgent_share + content.high_share
            else Priority.LOW
            if draw > 0.94
            else Priority.NORMAL
        )
        title = text(rng.choice(content.titles))
        title = title[0].upper() + title[1:]
        caseworkers = self.caseworkers.get(terms.team, ())
        officer = rng.choice(caseworkers) if caseworkers else ""
        history: tuple[str, tuple[CaseStep, ...]] | None = None
        for _attempt in range(60):
            opened_at = self._opened_at(rng, outcome, channel, code)
            history = self._steps(rng, outcome, opened_at, terms, content, officer, text)
            if history is not None:
                break
        if history is None:
            # Some outcome cannot happen to a service (none in the catalogue as it is): fall
            # back to the commonest, which fits any clock half a year back.
            outcome = Outcome.ON_TIME
            opened_at = self._opened_at(rng, outcome, channel, code, days_back=(120, 150))
            history = self._steps(rng, outcome, opened_at, terms, content, officer, text)
        assignee, steps = history or ("", ())
        self.taken.add((code, opened_at))
        location_text = ""
        if content.where == "street":
            location_text = f"Near {address.number} {address.street}"
        return CasePlan(
            ordinal=ordinal,
            resident_index=resident.index,
            public_id=resident.public_id,
            service_code=code,
            outcome=outcome,
            title=title,
            description=text(rng.choice(content.descriptions)),
            source_channel=channel,
            priority=priority,
            opened_at=opened_at,
            where=content.where,
            location_text=location_text,
            assignee=assignee,
            steps=steps,
        )

    # --- when ---------------------------------------------------------------------------------

    def _opened_at(
        self,
        rng: random.Random,
        outcome: str,
        channel: str,
        code: str,
        days_back: tuple[int, int] | None = None,
    ) -> datetime.datetime:
        low, high = days_back or {
            Outcome.OVERDUE: (3, 60),
            Outcome.WAITING: (1, 30),
            Outcome.NEW: (0, 4),
            Outcome.IN_PROGRESS: (0, 30),
        }.get(outcome, (3, HISTORY_DAYS))
        office = channel in (ChannelKind.PHONE, ChannelKind.IN_PERSON)
        while True:
            day = DEMO_NOW.date() - datetime.timedelta(days=rng.randint(low, high))
            if office and not workdays.is_working_day(day):
                continue
            minutes = rng.randint(8 * 60 + 30, 17 * 60) if office else rng.randint(7 * 60, 23 * 60)
            moment = _at(day, minutes)
            while (code, moment) in self.taken:  # one case per service and minute
                moment += datetime.timedelta(minutes=1)
            if moment <= DEMO_NOW - datetime.timedelta(minutes=5):
                return moment

    def _office_after(
        self, rng: random.Random, moment: datetime.datetime, working_days: tuple[int, int]
    ) -> datetime.datetime:
        """An office-hours moment on the working day `working_days` after `moment` (0: the
        same day if there is office time left, else the next working day)."""
        local = moment.astimezone(LONDON)
        day = workdays.add_working_days(local.date(), rng.randint(*working_days))
        earliest = 8 * 60 + 30
        if day == local.date():
            if not workdays.is_working_day(day) or local.hour * 60 + local.minute > 16 * 60 + 45:
                day = workdays.add_working_days(day, 1)
            else:
                earliest = max(earliest, local.hour * 60 + local.minute + 5)
        return _at(day, rng.randint(earliest, max(earliest, 17 * 60)))

    def _office_on(
        self, rng: random.Random, day: datetime.date, after: datetime.datetime
    ) -> datetime.datetime:
        """An office-hours moment on `day`, after `after` if that is the same day."""
        local = after.astimezone(LONDON)
        earliest = 8 * 60 + 30
        if day == local.date():
            earliest = max(earliest, local.hour * 60 + local.minute + 5)
        return _at(day, rng.randint(earliest, max(earliest, 17 * 60 + 15)))

    def _working_day_between(
        self, rng: random.Random, first: datetime.date, last: datetime.date
    ) -> datetime.date | None:
        days = [
            first + datetime.timedelta(days=offset)
            for offset in range((last - first).days + 1)
            if workdays.is_working_day(first + datetime.timedelta(days=offset))
        ]
        return rng.choice(days) if days else None

    # --- what happened ------------------------------------------------------------------------

    def _steps(
        self,
        rng: random.Random,
        outcome: str,
        opened_at: datetime.datetime,
        terms: ServiceTerms,
        content: ServiceContent,
        officer: str,
        text: Callable[[str], str],
    ) -> tuple[str, tuple[CaseStep, ...]] | None:
        """Whom the case was given to as it was opened, and its history after that; or None
        if this opening time cannot lead to the outcome (the planner then draws another)."""
        today = DEMO_NOW.date()
        due_on = workdays.due_date(
            received=opened_at.astimezone(LONDON).date(),
            clock_type=terms.clock_type,
            sla_days=terms.sla_days,
        )
        steps: list[CaseStep] = []

        def add(at: datetime.datetime, action: str, **fields: Any) -> datetime.datetime:
            steps.append(CaseStep(at=at, action=action, **fields))
            return at

        if outcome == Outcome.NEW:
            return ("", ()) if due_on >= today else None
        if outcome == Outcome.DUPLICATE:
            closed = self._office_after(rng, opened_at, (0, 1))
            add(closed, STATUS, by=officer, to_status=Status.CLOSED,
                text=rng.choice(DUPLICATE_REASONS))  # fmt: skip
            return ("", tuple(steps)) if closed <= DEMO_NOW else None

        short = outcome in (Outcome.ON_TIME, Outcome.LATE) and opened_at < DEMO_NOW - (
            datetime.timedelta(days=SHORT_HISTORY_AFTER_DAYS)
        )
        if short:
            # Given to the officer as it was opened; work starts within a working day.
            started = self._office_after(rng, opened_at, (0, 1))
        else:
            assigned = add(self._office_after(rng, opened_at, (0, 1)), ASSIGN, by=officer)
            # Some cases are picked up and never marked as started: "open", not "in progress".
            started_status = (
                Status.IN_PROGRESS
                if outcome != Outcome.OVERDUE or rng.random() < 0.7
                else Status.OPEN
            )
            started = add(
                self._office_after(rng, assigned, (0, 1)),
                STATUS,
                by=officer,
                to_status=started_status,
            )
        wants_note = rng.random() < content.note_share
        note = text(rng.choice(content.notes))

        if outcome in (Outcome.IN_PROGRESS, Outcome.OVERDUE):
            if started > DEMO_NOW or (due_on >= today) != (outcome == Outcome.IN_PROGRESS):
                return None
            if wants_note or outcome == Outcome.OVERDUE:
                noted = self._office_after(rng, started, (0, 3))
                if noted <= DEMO_NOW:
                    add(noted, NOTE, by=officer, text=note)
            return "", tuple(steps)

        if outcome == Outcome.WAITING:
            stopped = self._office_after(rng, started, (0, 2))
            if stopped > DEMO_NOW or stopped.date() > due_on or due_on < today:
                return None
            add(stopped, STATUS, by=officer, to_status=Status.WAITING,
                text=text(rng.choice(content.waiting)))  # fmt: skip
            return "", tuple(steps)

        if outcome == Outcome.AFTER_WAIT:
            stopped = self._office_after(rng, started, (0, 1))
            if stopped.date() > due_on:
                return None
            add(stopped, STATUS, by=officer, to_status=Status.WAITING,
                text=text(rng.choice(content.waiting)))  # fmt: skip
            restarted = self._office_after(rng, stopped, (2, 6))
            started = add(restarted, STATUS, by=officer, to_status=Status.IN_PROGRESS,
                          text=text(rng.choice(content.resumed)))  # fmt: skip
            due_on = workdays.extend_for_stopped_clock(
                due_on=due_on,
                stopped=stopped.date(),
                restarted=restarted.date(),
                clock_type=terms.clock_type,
            )

        if wants_note:
            noted = self._office_after(rng, started, (0, 1))
            started = add(noted, NOTE, by=officer, text=note)

        if outcome == Outcome.LATE:
            day = workdays.add_working_days(max(due_on, started.date()), rng.randint(1, 10))
        else:
            day = self._working_day_between(rng, started.date(), min(due_on, today))
            if day is None:
                return None
        resolved = self._office_on(rng, day, started)
        if resolved > DEMO_NOW:
            return None
        add(resolved, STATUS, by=officer, to_status=Status.RESOLVED,
            text=text(rng.choice(content.resolutions)))  # fmt: skip
        # Resolved cases are closed once the resident has had time to say it is not fixed.
        closed = self._office_after(rng, resolved, (5, 10))
        if closed <= DEMO_NOW:
            add(closed, STATUS, to_status=Status.CLOSED)
        return (officer if short else ""), tuple(steps)


def _at(day: datetime.date, minutes: int) -> datetime.datetime:
    return datetime.datetime.combine(day, datetime.time(minutes // 60, minutes % 60), LONDON)


# --- writing ----------------------------------------------------------------------------------


def _service_terms() -> dict[str, Service]:
    return {
        service.code: service
        for service in Service.objects.select_related("team").filter(
            is_active=True, code__in=CONTENT
        )
    }


def _citizens(public_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Citizen]:
    found: dict[uuid.UUID, Citizen] = {}
    for start in range(0, len(public_ids), 500):  # SQLite caps a query's parameters
        chunk = public_ids[start : start + 500]
        found.update(
            (citizen.public_id, citizen) for citizen in Citizen.objects.filter(public_id__in=chunk)
        )
    return found


def _home_addresses(citizen_ids: Iterable[int]) -> dict[int, Address]:
    ids = sorted(set(citizen_ids))
    addresses: dict[int, Address] = {}
    for start in range(0, len(ids), 500):
        for address in Address.objects.filter(
            citizen_id__in=ids[start : start + 500], is_primary=True
        ).order_by("citizen_id", "-pk"):
            addresses.setdefault(address.citizen_id, address)
    return addresses


def existing_demo_cases(plans: Sequence[CasePlan]) -> set[tuple[str, datetime.datetime]]:
    """(service code, opened_at) of the planned cases already in the database."""
    if not plans:
        return set()
    earliest = min(plan.opened_at for plan in plans)
    latest = max(plan.opened_at for plan in plans)
    planned = {(plan.service_code, plan.opened_at) for plan in plans}
    present = ServiceCase.objects.filter(
        opened_at__gte=earliest, opened_at__lte=latest
    ).values_list("service__code", "opened_at")
    return {key for key in present if key in planned}


def _write_case(
    plan: CasePlan,
    *,
    service: Service,
    citizen: Citizen,
    home: Address | None,
    officers: Mapping[str, Any],
) -> ServiceCase:
    place: dict[str, Any] = {}
    if plan.where == "home" and home is not None:
        place = {"address": home}
    elif plan.where == "street" and home is not None:
        # Near the resident's home, not at it: the street's postcode and ward, no UPRN.
        place = {
            "location_text": plan.location_text,
            "postcode": home.postcode,
            "ward_code": home.ward_code,
        }
    case = open_case(
        service=service,
        title=plan.title,
        description=plan.description,
        citizen=citizen,
        assignee=officers.get(plan.assignee),
        actor_label=OPENED_BY.get(plan.source_channel, "system"),
        source_channel=plan.source_channel,
        priority=plan.priority,
        opened_at=plan.opened_at,
        **place,
    )
    for step in plan.steps:
        officer = officers.get(step.by)
        if step.action == ASSIGN:
            case = case_assign(
                case=case,
                expected_version=case.version,
                assignee=officer,
                actor=officer,
                at=step.at,
            )
        elif step.action == STATUS:
            resolving = step.to_status == Status.RESOLVED
            case = case_transition(
                case=case,
                to_status=step.to_status,
                expected_version=case.version,
                actor=officer,
                resolution=step.text if resolving else "",
                reason="" if resolving else step.text,
                at=step.at,
            )
        else:
            case_add_note(case=case, text=step.text, actor=officer, at=step.at)
    return case


@contextmanager
def _past_changes_unannounced() -> Iterator[None]:
    """Run the case services without the receivers of their signals.

    Receivers react to a change happening now: the channels app e-mails a resolved case's
    resolution to the resident. These changes happened months before DEMO_NOW; announcing
    them today would queue hundreds of messages at today's date, or (before any channel is
    seeded) note on every case that the resolution could not be sent.
    """
    signals = (case_opened, case_status_changed)
    saved = [(signal, signal.receivers) for signal in signals]
    try:
        for signal in signals:
            with signal.lock:
                signal.receivers = []
                signal.sender_receivers_cache.clear()
        yield
    finally:
        for signal, receivers in saved:
            with signal.lock:
                signal.receivers = receivers
                signal.sender_receivers_cache.clear()


def seed_cases(*, residents: int, progress: TextIO | None = None) -> dict[str, int]:
    """Open the demo cases of the first `residents` residents that are not there yet, and work
    them to where they stand on DEMO_NOW. Cases already present are left as they are."""
    services = _service_terms()
    terms = {
        code: ServiceTerms(service.clock_type, service.sla_days, service.team.slug)
        for code, service in services.items()
    }
    plans = plan_cases(plan_residents(residents), terms)
    present = existing_demo_cases(plans)
    missing = [plan for plan in plans if (plan.service_code, plan.opened_at) not in present]
    citizens = _citizens([plan.public_id for plan in missing])
    homes = _home_addresses(citizen.pk for citizen in citizens.values())
    User = get_user_model()
    officers = {
        user.username: user
        for user in User.objects.filter(username__in=[o.username for o in DEMO_OFFICERS])
    }
    opened = 0
    bar = tqdm(
        missing,
        desc="Demo cases",
        unit=" cases",
        file=progress,
        disable=True if progress is None else None,  # None: hide when not a terminal
    )
    with _past_changes_unannounced():
        for plan in bar:
            citizen = citizens.get(plan.public_id)
            # Erased since the residents were seeded (or never were): no case to open for them.
            if citizen is None or citizen.status == Citizen.Status.ERASED:
                continue
            _write_case(
                plan,
                service=services[plan.service_code],
                citizen=citizen,
                home=homes.get(citizen.pk),
                officers=officers,
            )
            opened += 1
    # As the nightly task would have left them on DEMO_NOW.
    mark_breached_cases(today=DEMO_NOW.date())
    return {"cases opened": opened, "cases already present": len(present)}


def seed_casework(*, residents: int, progress: TextIO | None = None) -> dict[str, int]:
    """The demo seeder's work: the officers, then (for a council big enough) the cases."""
    ensure_demo_officers()
    counts = {"demo officers": len(DEMO_OFFICERS)}
    if residents < CASEWORK_MIN_RESIDENTS:
        return {**counts, "cases opened": 0, "cases already present": 0}
    return {**counts, **seed_cases(residents=residents, progress=progress)}
