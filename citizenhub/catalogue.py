"""The starter service catalogue: the services most English and Welsh councils offer.

`load_service_catalogue()` puts it in the database (it is idempotent: running it again
updates names and targets but never the choices a council has made since, such as which
team does the work). Targets are typical published council standards; statutory clocks
follow the law: FOI 20 working days, subject access and erasure one calendar month (ICO), complaints
10 and 20 working days (the Housing Ombudsman's complaint handling code). LGSL codes are
left empty: councils fill them from the Local Government Services List (esd.org.uk) rather
than trust a guessed mapping.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import transaction

from citizenhub.models import ClockType, Service, Team


@dataclass(frozen=True)
class TeamSpec:
    slug: str
    name: str
    department: str


@dataclass(frozen=True)
class ServiceSpec:
    code: str
    name: str
    team: str
    group: str
    sla_days: int
    description: str
    clock_type: str = ClockType.WORKING_DAYS
    is_public: bool = True
    is_sensitive: bool = False
    allows_anonymous: bool = False
    retention_days: int = 6 * 365
    keywords: str = ""
    attributes: list[dict] = field(default_factory=list)


TEAMS = (
    TeamSpec("waste", "Waste and recycling", "Environment"),
    TeamSpec("streetscene", "Street scene and enforcement", "Environment"),
    TeamSpec("highways", "Highways", "Place"),
    TeamSpec("environmental-health", "Environmental health", "Environment"),
    TeamSpec("revenues", "Council tax and revenues", "Resources"),
    TeamSpec("housing-repairs", "Housing repairs", "Housing"),
    TeamSpec("information-governance", "Information governance", "Legal and democratic"),
    TeamSpec("customer-feedback", "Customer feedback", "Customer services"),
    TeamSpec("adult-social-care", "Adult social care front door", "Adult social care"),
    TeamSpec("bereavement", "Bereavement services", "Registration and bereavement"),
)

_BIN_TYPE = {
    "code": "bin_type",
    "datatype": "singlevaluelist",
    "required": True,
    "description": "Which bin was missed?",
    "values": [
        {"key": "general", "name": "General waste"},
        {"key": "recycling", "name": "Recycling"},
        {"key": "garden", "name": "Garden waste"},
        {"key": "food", "name": "Food waste"},
    ],
}

SERVICES = (
    ServiceSpec(
        "missed-bin",
        "Missed bin collection",
        "waste",
        "Bins and recycling",
        2,
        "Your bin was out on time but was not emptied.",
        keywords="bin, rubbish, recycling, collection",
        attributes=[_BIN_TYPE],
        retention_days=2 * 365,
    ),
    ServiceSpec(
        "fly-tipping",
        "Fly-tipping",
        "streetscene",
        "Streets and environment",
        5,
        "Rubbish dumped on a street, path or open land.",
        allows_anonymous=True,
        keywords="dumped rubbish, fly tipping, waste",
    ),
    ServiceSpec(
        "pothole",
        "Pothole",
        "highways",
        "Roads and pavements",
        10,
        "A hole or damage in a road, pavement or cycle lane.",
        allows_anonymous=True,
        keywords="road, pavement, hole, highway",
    ),
    ServiceSpec(
        "street-light",
        "Street light fault",
        "highways",
        "Roads and pavements",
        7,
        "A street light that is out, on during the day, flickering or damaged.",
        allows_anonymous=True,
        keywords="lamp, lighting, column",
    ),
    ServiceSpec(
        "noise",
        "Noise complaint",
        "environmental-health",
        "Nuisance",
        10,
        "Noise from a home, business or street that is affecting you.",
        keywords="nuisance, music, barking, party",
    ),
    ServiceSpec(
        "council-tax",
        "Council tax query",
        "revenues",
        "Council tax and benefits",
        10,
        "Questions about your bill, discounts, exemptions or payments.",
        keywords="bill, discount, single person, direct debit",
    ),
    ServiceSpec(
        "housing-repair",
        "Housing repair",
        "housing-repairs",
        "Housing",
        20,
        "A repair in your council home (emergencies: phone us).",
        keywords="leak, damp, mould, boiler, repair",
    ),
    ServiceSpec(
        "foi",
        "Freedom of Information request",
        "information-governance",
        "Your information",
        20,
        "Ask for information the council holds.",
        clock_type=ClockType.FOI,
        keywords="FOI, information request",
    ),
    ServiceSpec(
        "complaint-stage-1",
        "Complaint (stage 1)",
        "customer-feedback",
        "Comments and complaints",
        10,
        "Tell us when something went wrong.",
        keywords="complaint, unhappy",
    ),
    ServiceSpec(
        "complaint-stage-2",
        "Complaint (stage 2 review)",
        "customer-feedback",
        "Comments and complaints",
        20,
        "Ask for a review if you are unhappy with our stage 1 response.",
        is_public=False,
        keywords="escalation, review",
    ),
    ServiceSpec(
        "subject-access",
        "Subject access request",
        "information-governance",
        "Your information",
        0,
        "Ask for a copy of the personal information the council holds about you.",
        clock_type=ClockType.SUBJECT_ACCESS,
        keywords="SAR, my data, GDPR",
    ),
    # UK GDPR Art 12(3) gives erasure (Art 17) the same one-month clock as subject access.
    ServiceSpec(
        "erasure-request",
        "Request to erase your information",
        "information-governance",
        "Your information",
        0,
        "Ask the council to erase personal information it holds about you. Information the "
        "council must keep (for example records of your cases) is kept, and you are told why "
        "and until when.",
        clock_type=ClockType.SUBJECT_ACCESS,
        keywords="erasure, right to be forgotten, delete my data, GDPR",
    ),
    ServiceSpec(
        "adult-social-care",
        "Adult social care contact",
        "adult-social-care",
        "Care and support",
        3,
        "Ask for help or advice about care and support for yourself or someone else.",
        is_sensitive=True,
        retention_days=8 * 365,
        keywords="care, support, carer, assessment",
    ),
    ServiceSpec(
        "bereavement",
        "Bereavement services",
        "bereavement",
        "Births, deaths and ceremonies",
        5,
        "Burials, cremations and telling the council about a death.",
        is_sensitive=True,
        keywords="death, funeral, burial, cremation, tell us once",
    ),
)


def load_service_catalogue() -> dict[str, int]:
    """Create the starter teams and services that do not exist yet; refresh wording of those
    that do. Returns counts for the command's report."""
    created = {"teams": 0, "services": 0}
    with transaction.atomic():
        teams = {}
        for spec in TEAMS:
            team, was_created = Team.objects.get_or_create(
                slug=spec.slug, defaults={"name": spec.name, "department": spec.department}
            )
            teams[spec.slug] = team
            created["teams"] += was_created
        for spec in SERVICES:
            _, was_created = Service.objects.update_or_create(
                code=spec.code,
                defaults={"name": spec.name, "description": spec.description},
                create_defaults={
                    "name": spec.name,
                    "description": spec.description,
                    "group": spec.group,
                    "keywords": spec.keywords,
                    "department": teams[spec.team].department,
                    "team": teams[spec.team],
                    "clock_type": spec.clock_type,
                    "sla_days": spec.sla_days,
                    "is_public": spec.is_public,
                    "is_sensitive": spec.is_sensitive,
                    "allows_anonymous": spec.allows_anonymous,
                    "retention_days": spec.retention_days,
                    "open311_attributes": spec.attributes,
                },
            )
            created["services"] += was_created
    return created
