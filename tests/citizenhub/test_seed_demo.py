"""The demo council seeder: repeatable, idempotent, valid data with duplicates to merge."""

import ast
import datetime
import io
import uuid
from collections import Counter
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.db.models import Count

from citizenhub.demo import discover_demo_seeders, register_demo_seeder
from citizenhub.demo_data import DEMO_NAMESPACE, DEMO_NOW, plan_residents
from citizenhub.models import Address, Citizen, ContactPoint, TimelineEntry
from citizenhub.normalise import normalise_identity, normalise_postcode
from citizenhub.services import citizen_create
from democracy.models import Ward

CORE = Path(__file__).resolve().parents[2] / "citizenhub"


@pytest.fixture(autouse=True)
def demo_mode(settings):
    settings.DEBUG = True


@pytest.mark.django_db
def test_refuses_to_seed_a_live_database(settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="DEBUG"):
        call_command("seed_demo", residents=5, quiet=True)
    assert not Citizen.objects.exists()


def table_counts() -> dict[str, int]:
    return {
        "citizens": Citizen.objects.count(),
        "contact points": ContactPoint.objects.count(),
        "addresses": Address.objects.count(),
        "timeline": TimelineEntry.objects.count(),
        "wards": Ward.objects.count(),
    }


def expected_public_ids(count: int) -> set[uuid.UUID]:
    return {uuid.uuid5(DEMO_NAMESPACE, f"demo-resident-{index}") for index in range(count)}


@pytest.mark.django_db
def test_second_run_adds_nothing():
    call_command("seed_demo", residents=40, quiet=True)
    first = table_counts()
    out, err = io.StringIO(), io.StringIO()
    call_command("seed_demo", residents=40, stdout=out, stderr=err)

    assert table_counts() == first
    assert first["citizens"] == 40
    assert first["wards"] == 12
    assert first["contact points"] >= 30
    assert first["addresses"] >= 35
    assert first["timeline"] >= 40 * 6 * 0.8
    assert out.getvalue().strip() == (
        "Demo council seeded: 12 wards, 0 residents created, "
        "40 residents already present, 0 timeline entries, 14 demo officers, 0 cases opened, "
        "0 cases already present, 0 portal accounts created, 21 topics, 3 contact rules, "
        "0 subscriptions created, 0 consent records created, 9 channels, 6 routing rules, "
        "0 history messages, 0 staff replies."
    )
    assert err.getvalue() == ""  # no progress bar when stderr is not a terminal


@pytest.mark.django_db
def test_public_ids_are_the_fixed_uuid5_values():
    call_command("seed_demo", residents=40, quiet=True)

    assert set(Citizen.objects.values_list("public_id", flat=True)) == expected_public_ids(40)


@pytest.mark.django_db
def test_database_holds_the_planned_residents():
    call_command("seed_demo", residents=40, quiet=True)

    for plan in plan_residents(40):
        citizen = Citizen.objects.get(public_id=plan.public_id)
        assert (citizen.given_name, citizen.family_name) == (plan.given_name, plan.family_name)
        assert citizen.preferred_language == plan.preferred_language
        assert citizen.timeline.count() == len(plan.timeline)
        assert sorted(citizen.contact_points.values_list("value", flat=True)) == sorted(
            value for _kind, value in plan.contact_points
        )


def test_plan_is_the_same_every_time_and_grows_by_appending():
    assert plan_residents(40) == plan_residents(40)
    assert plan_residents(80)[:40] == plan_residents(40)


@pytest.mark.django_db
def test_a_larger_run_adds_only_the_new_residents():
    call_command("seed_demo", residents=20, quiet=True)
    before = dict(Citizen.objects.values_list("public_id", "updated_at"))
    timeline_before = TimelineEntry.objects.count()

    call_command("seed_demo", residents=40, quiet=True)

    assert set(Citizen.objects.values_list("public_id", flat=True)) == expected_public_ids(40)
    unchanged = Citizen.objects.filter(public_id__in=before)
    assert dict(unchanged.values_list("public_id", "updated_at")) == before
    new_entries = TimelineEntry.objects.exclude(citizen__public_id__in=before).count()
    assert TimelineEntry.objects.count() == timeline_before + new_entries > timeline_before


@pytest.mark.django_db
def test_there_are_duplicate_candidates_with_the_same_name_and_postcode():
    call_command("seed_demo", residents=40, quiet=True)

    pairs = (
        Address.objects.values("citizen__given_name", "citizen__family_name", "postcode")
        .annotate(profiles=Count("citizen", distinct=True))
        .filter(profiles__gte=2)
    )
    assert pairs.exists()


@pytest.mark.django_db
def test_provisional_profiles_carry_the_name_of_an_active_one():
    call_command("seed_demo", residents=60, quiet=True)

    provisional = Citizen.objects.filter(status=Citizen.Status.PROVISIONAL)
    assert provisional.exists()
    for citizen in provisional:
        assert not citizen.addresses.exists()  # an unknown sender: we only have their address
        assert Citizen.objects.filter(
            status=Citizen.Status.ACTIVE,
            given_name=citizen.given_name,
            family_name=citizen.family_name,
        ).exists()


@pytest.mark.django_db
def test_every_contact_point_renormalises_to_its_match_key():
    call_command("seed_demo", residents=40, quiet=True)

    contact_points = list(ContactPoint.objects.all())
    assert {cp.kind for cp in contact_points} >= {"email", "phone"}
    for cp in contact_points:
        identity = normalise_identity(cp.kind, cp.value)
        assert (identity.normalised, identity.match_key) == (cp.normalised, cp.match_key)
        assert cp.source == ContactPoint.Source.DEMO


@pytest.mark.django_db
def test_addresses_are_valid_and_placed_in_seeded_wards():
    call_command("seed_demo", residents=40, quiet=True)

    ward_codes = set(Ward.objects.values_list("gss_code", flat=True))
    assert all(len(code) == 9 and code.startswith("E05") for code in ward_codes)
    addresses = list(Address.objects.all())
    for address in addresses:
        assert normalise_postcode(address.postcode).normalised == address.postcode
        assert address.postcode.startswith("NM")
        assert address.ward_code in ward_codes
        assert address.uprn.isdigit() and len(address.uprn) <= 12
        assert address.town == "Northmoor" and address.is_primary
    assert len({address.ward_code for address in addresses}) >= 5


@pytest.mark.django_db
def test_timelines_cover_the_year_before_the_fixed_now():
    call_command("seed_demo", residents=40, quiet=True)

    entries = list(TimelineEntry.objects.all())
    year_before = DEMO_NOW - datetime.timedelta(days=366)
    assert all(year_before <= entry.occurred_at <= DEMO_NOW for entry in entries)
    assert {entry.kind for entry in entries} == {
        "message_in", "message_out", "call", "visit", "case", "note",
    }  # fmt: skip
    assert {"email", "phone", "web", "in_person"} <= {entry.channel for entry in entries}
    active = Citizen.objects.filter(status=Citizen.Status.ACTIVE).annotate(n=Count("timeline"))
    assert all(6 <= citizen.n <= 12 for citizen in active)


def test_default_size_has_realistic_proportions():
    plans = plan_residents(500)

    duplicates = [plan for plan in plans if plan.duplicate_of is not None]
    assert 12 <= len(duplicates) <= 18
    assert any(plan.provisional for plan in duplicates)
    welsh = sum(plan.preferred_language == "cy" for plan in plans)
    assert 0.10 <= welsh / len(plans) <= 0.20
    kinds = Counter(kind for plan in plans for kind, _value in plan.contact_points)
    assert kinds["email"] > kinds["phone"] > kinds["mastodon"] > 0 and kinds["x"] > 0
    year_before = DEMO_NOW - datetime.timedelta(days=366)
    moments = [entry.occurred_at for plan in plans for entry in plan.timeline]
    assert all(year_before <= moment <= DEMO_NOW for moment in moments)
    names = {plan.given_name + plan.family_name for plan in plans}
    assert any("'" in name for name in names) and any(not name.isascii() for name in names)


@pytest.mark.django_db
def test_wards_are_seeded_before_residents():
    names = [seeder.name for seeder in discover_demo_seeders()]

    assert names.index("wards") < names.index("residents")


def test_a_seeder_name_cannot_be_claimed_twice():
    discover_demo_seeders()

    def another_wards_seeder(options):
        return {}

    with pytest.raises(ImproperlyConfigured, match="wards"):
        register_demo_seeder("wards", order=1)(another_wards_seeder)


def test_the_core_does_not_import_feature_apps():
    for module in ("demo.py", "demo_data.py"):
        tree = ast.parse((CORE / module).read_text())
        imported = {
            name.split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.Import | ast.ImportFrom)
            for name in (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
            )
        }
        assert not imported & {"democracy", "channels", "engagement"}, module


@pytest.mark.django_db
def test_negative_resident_count_is_refused():
    with pytest.raises(CommandError, match="negative"):
        call_command("seed_demo", residents=-1, quiet=True)


@pytest.mark.django_db
def test_a_taken_identity_stops_the_residents_step_and_saves_none_of_it():
    planned_email = next(
        value
        for plan in plan_residents(5)
        for kind, value in plan.contact_points
        if kind == "email"
    )
    citizen_create(
        given_name="Real", family_name="Resident", contact_points=[("email", planned_email)]
    )

    with pytest.raises(CommandError, match="cannot be created"):
        call_command("seed_demo", residents=5, quiet=True)

    assert not Citizen.objects.filter(public_id__in=expected_public_ids(5)).exists()
    assert Citizen.objects.count() == 1
    assert Ward.objects.count() == 12  # each seeder commits on its own
