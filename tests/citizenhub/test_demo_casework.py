"""The demo council's casework: officers who can sign in, in their roles and teams, and cases
worked through the case services into a realistic, repeatable mix."""

import datetime
import io
from collections import Counter

import pytest
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.urls import reverse

from citizenhub import demo_casework
from citizenhub.case_selectors import can_see_case_content
from citizenhub.catalogue import SERVICES
from citizenhub.demo import discover_demo_seeders
from citizenhub.demo_casework import (
    CASEWORK_MIN_RESIDENTS,
    DEMO_OFFICERS,
    DEMO_PASSWORD,
    Outcome,
    ServiceTerms,
    plan_cases,
    seed_cases,
)
from citizenhub.demo_data import DEMO_NOW, plan_residents
from citizenhub.management.commands import demo_staff
from citizenhub.models import AuditEvent, CaseEvent, ServiceCase, Team, TimelineEntry
from citizenhub.services.cases import case_opened, case_status_changed
from citizenhub.staff.access import CASEWORKER, SUPERVISOR

RESIDENTS = 40  # small and fast; the planner's cycle still gives every kind of case
User = get_user_model()


@pytest.fixture(autouse=True)
def demo_mode(settings):
    settings.DEBUG = True


@pytest.fixture
def seeded(db, monkeypatch):
    """A 40-resident council, with its cases (the seeder opens none below 100 residents)."""
    monkeypatch.setattr(demo_casework, "CASEWORK_MIN_RESIDENTS", 0)
    call_command("seed_demo", residents=RESIDENTS, quiet=True)


def catalogue_terms() -> dict[str, ServiceTerms]:
    return {spec.code: ServiceTerms(spec.clock_type, spec.sla_days, spec.team) for spec in SERVICES}


def case_table_counts() -> dict[str, int]:
    return {
        "cases": ServiceCase.objects.count(),
        "events": CaseEvent.objects.count(),
        "timeline": TimelineEntry.objects.count(),
        "audit": AuditEvent.objects.count(),
        "users": User.objects.count(),
        "team members": Team.members.through.objects.count(),
    }


@pytest.mark.django_db
def test_a_small_council_has_officers_but_no_cases():
    out = io.StringIO()
    call_command("seed_demo", residents=RESIDENTS, stdout=out)

    assert not ServiceCase.objects.exists()
    assert User.objects.filter(username__in=[o.username for o in DEMO_OFFICERS]).count() == 14
    assert "14 demo officers, 0 cases opened" in out.getvalue()
    assert RESIDENTS < CASEWORK_MIN_RESIDENTS


def test_the_seeder_runs_after_the_residents_and_before_the_channels():
    names = [seeder.name for seeder in discover_demo_seeders()]

    assert names.index("residents") < names.index("casework") < names.index("channels")


@pytest.mark.django_db
def test_seed_demo_opens_the_cases_and_a_second_run_adds_nothing(monkeypatch):
    receivers = (list(case_opened.receivers), list(case_status_changed.receivers))
    monkeypatch.setattr(demo_casework, "CASEWORK_MIN_RESIDENTS", 0)
    call_command("seed_demo", residents=RESIDENTS, quiet=True)
    first = case_table_counts()
    # The seeder silences them while it replays the past; they must be back afterwards.
    assert (case_opened.receivers, case_status_changed.receivers) == receivers

    out = io.StringIO()
    call_command("seed_demo", residents=RESIDENTS, stdout=out)

    assert case_table_counts() == first
    assert first["cases"] >= 15
    assert f"0 cases opened, {first['cases']} cases already present" in out.getvalue()
    assert seed_cases(residents=RESIDENTS) == {
        "cases opened": 0,
        "cases already present": first["cases"],
    }
    assert case_table_counts() == first


@pytest.mark.django_db
def test_a_larger_run_adds_only_the_new_residents_cases(seeded):
    before = dict(ServiceCase.objects.values_list("reference", "version"))

    call_command("seed_demo", residents=60, quiet=True)

    expected = len(plan_cases(plan_residents(60), catalogue_terms()))
    assert ServiceCase.objects.count() == expected > len(before)
    unchanged = ServiceCase.objects.filter(reference__in=before)
    assert dict(unchanged.values_list("reference", "version")) == before


def test_the_plan_is_the_same_every_time_and_grows_by_appending():
    small = plan_cases(plan_residents(RESIDENTS), catalogue_terms())
    larger = plan_cases(plan_residents(RESIDENTS * 2), catalogue_terms())

    assert small == plan_cases(plan_residents(RESIDENTS), catalogue_terms())
    assert [plan for plan in larger if plan.resident_index < RESIDENTS] == small
    keys = [(plan.service_code, plan.opened_at) for plan in larger]
    assert len(keys) == len(set(keys))  # how a second run recognises a case


def test_the_default_council_has_about_300_cases_in_a_realistic_mix():
    plans = plan_cases(plan_residents(500), catalogue_terms())
    outcomes = Counter(plan.outcome for plan in plans)

    assert 250 <= len(plans) <= 350
    assert {plan.service_code for plan in plans} == {spec.code for spec in SERVICES}
    assert 20 <= outcomes[Outcome.OVERDUE] <= 30
    resolved = outcomes[Outcome.ON_TIME] + outcomes[Outcome.AFTER_WAIT]
    assert resolved > len(plans) / 2 > outcomes[Outcome.LATE] > 0
    half_year_before = DEMO_NOW - datetime.timedelta(days=190)
    for plan in plans:
        assert half_year_before <= plan.opened_at < DEMO_NOW
        moments = [plan.opened_at, *(step.at for step in plan.steps)]
        assert moments == sorted(moments) and moments[-1] <= DEMO_NOW


@pytest.mark.django_db
def test_the_mix_has_overdue_sensitive_waiting_late_and_new_cases(seeded):
    today = DEMO_NOW.date()
    cases = ServiceCase.objects.select_related("service", "team", "assignee")
    open_cases = cases.filter(status__in=ServiceCase.OPEN_STATUSES)

    overdue = open_cases.filter(due_on__lt=today)
    assert overdue.exists() and all(case.breached for case in overdue)
    waiting = open_cases.filter(status=ServiceCase.Status.WAITING)
    assert waiting.exists()
    assert all(case.clock_stopped_at is not None for case in waiting)
    late = cases.filter(resolved_at__isnull=False, breached=True)
    assert late.exists()
    assert all(case.resolved_at.date() > case.due_on for case in late)
    on_time = cases.filter(resolved_at__isnull=False, breached=False)
    assert on_time.count() > late.count()
    assert cases.filter(status=ServiceCase.Status.CLOSED).exists()
    new = open_cases.filter(status=ServiceCase.Status.NEW)
    assert new.exists() and all(case.assignee is None for case in new)
    assert open_cases.filter(status=ServiceCase.Status.IN_PROGRESS, due_on__gte=today).exists()

    sensitive = list(cases.filter(service__is_sensitive=True))
    assert {case.service.code for case in sensitive} == {"adult-social-care", "bereavement"}
    socialcare = User.objects.get(username="demo.socialcare")
    caseworker = User.objects.get(username="demo.caseworker")
    for case in sensitive:
        assert case.team == case.service.team
        if case.assignee is not None:
            assert case.team.members.filter(pk=case.assignee.pk).exists()
        # demo.socialcare is the role login that shows it; other caseworkers see no content.
        assert can_see_case_content(socialcare, case)
        assert not can_see_case_content(caseworker, case)


@pytest.mark.django_db
def test_every_case_has_its_created_event_and_timeline_entry(seeded):
    event_type = ContentType.objects.get_for_model(CaseEvent)
    cases = list(ServiceCase.objects.prefetch_related("events"))
    timeline_sources = set(
        TimelineEntry.objects.filter(source_type=event_type).values_list("source_id", flat=True)
    )

    assert cases
    for case in cases:
        events = sorted(case.events.all(), key=lambda event: (event.created_at, event.pk))
        assert events[0].kind == CaseEvent.Kind.CREATED
        assert events[0].created_at == case.opened_at
        assert str(events[0].pk) in timeline_sources
        assert events[-1].created_at <= DEMO_NOW
        for event in events:
            if event.kind == CaseEvent.Kind.STATUS:
                assert str(event.pk) in timeline_sources
        assert case.citizen is not None and case.citizen.timeline.filter(kind="case").exists()
    notes = CaseEvent.objects.filter(kind=CaseEvent.Kind.NOTE)
    assert notes.exists()
    assert all(note.actor is not None and note.actor.is_staff for note in notes)
    # Resolutions months ago must not be e-mailed today (the channels app would try).
    assert not CaseEvent.objects.filter(kind=CaseEvent.Kind.REPLY).exists()
    assert not CaseEvent.objects.filter(created_at__gt=DEMO_NOW).exists()


@pytest.mark.django_db
def test_officers_are_in_their_groups_and_teams():
    call_command("seed_demo", residents=0, quiet=True)
    officers = {
        user.username: user
        for user in User.objects.filter(username__startswith="demo.").prefetch_related(
            "groups", "teams"
        )
    }

    assert set(officers) == {officer.username for officer in DEMO_OFFICERS}
    for officer in DEMO_OFFICERS:
        user = officers[officer.username]
        assert user.is_staff and user.is_active
        assert {group.name for group in user.groups.all()} == set(officer.groups)
        assert {team.slug for team in user.teams.all()} == set(officer.teams)
    assert {group.name for group in officers["demo.officer"].groups.all()} == {
        SUPERVISOR,
        CASEWORKER,
    }
    assert {team.slug for team in officers["demo.socialcare"].teams.all()} >= {"adult-social-care"}
    # Every team has someone to give its cases to.
    for team in Team.objects.all():
        assert team.members.filter(groups__name=CASEWORKER).exists(), team.slug


@pytest.mark.django_db
def test_each_officer_can_sign_in_with_username_and_with_e_mail(client):
    call_command("seed_demo", residents=0, quiet=True)

    for officer in DEMO_OFFICERS:
        assert officer.email == f"{officer.username}@northmoor.example"
        assert client.login(username=officer.username, password=DEMO_PASSWORD), officer
        client.logout()
        response = client.post(
            reverse("account_login"), {"login": officer.email, "password": DEMO_PASSWORD}
        )
        assert response.status_code == 302, officer
        user = User.objects.get(username=officer.username)
        assert client.session["_auth_user_id"] == str(user.pk)
        client.logout()


@pytest.mark.django_db
def test_a_wrong_password_does_not_sign_in(client):
    call_command("seed_demo", residents=0, quiet=True)

    assert not client.login(username="demo.caseworker", password="not-the-demo-password")


def test_demo_staff_prints_the_same_password_the_officers_have():
    assert demo_staff.DEMO_PASSWORD == DEMO_PASSWORD


@pytest.mark.django_db
def test_demo_staff_prints_one_line_per_role_login_and_places_demo_officer(client):
    out = io.StringIO()
    call_command("demo_staff", stdout=out)

    lines = out.getvalue().splitlines()
    for officer in DEMO_OFFICERS:
        line = next(line for line in lines if line.split()[:1] == [officer.username])
        assert officer.role in line
        for slug in officer.teams:
            assert Team.objects.get(slug=slug).name in line
    user = User.objects.get(username="demo.officer")
    assert user.is_superuser
    assert set(user.groups.values_list("name", flat=True)) == {SUPERVISOR, CASEWORKER}
    assert set(user.teams.values_list("slug", flat=True)) == {"waste", "highways"}
    assert client.login(username="demo.supervisor", password=DEMO_PASSWORD)


@pytest.mark.django_db
def test_demo_staff_resets_a_changed_password_and_seeding_does_not():
    call_command("seed_demo", residents=0, quiet=True)
    user = User.objects.get(username="demo.caseworker")
    user.set_password("changed-in-the-demo")
    user.save()

    call_command("seed_demo", residents=0, quiet=True)
    user.refresh_from_db()
    assert user.check_password("changed-in-the-demo")

    call_command("demo_staff", stdout=io.StringIO())
    user.refresh_from_db()
    assert user.check_password(DEMO_PASSWORD)
