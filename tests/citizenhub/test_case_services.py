"""The case services: references, deadlines, the workflow, clock stops, locking, retention."""

import datetime
import io
import os
import threading
import zoneinfo
from io import StringIO

import pytest
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import connection
from django.forms.models import model_to_dict

from citizenhub.celery import app as celery_app
from citizenhub.errors import ApplicationError, ConflictError
from citizenhub.models import (
    AuditEvent,
    CaseEvent,
    ClockType,
    Service,
    ServiceCase,
    Team,
    TimelineEntry,
)
from citizenhub.services.cases import (
    ALLOWED_TRANSITIONS,
    ANONYMISED_TEXT,
    anonymise_expired_cases,
    case_add_note,
    case_assign,
    case_set_legal_hold,
    case_transition,
    case_update_details,
    mark_breached_cases,
    open_case,
)
from citizenhub.tasks import anonymise_expired_cases_task, mark_breached_cases_task
from tests.factories import (
    CitizenFactory,
    ServiceCaseFactory,
    ServiceFactory,
    StaffUserFactory,
    TeamFactory,
)

pytestmark = pytest.mark.django_db

LONDON = zoneinfo.ZoneInfo("Europe/London")
Status = ServiceCase.Status
D = datetime.date


def at(year: int, month: int, day: int, hour: int = 10) -> datetime.datetime:
    return datetime.datetime(year, month, day, hour, tzinfo=LONDON)


def snapshot(case: ServiceCase) -> dict:
    """Everything stored about a case and its history, to prove a refusal changed nothing."""
    case = ServiceCase.objects.get(pk=case.pk)
    return {
        "row": model_to_dict(case),
        "updated_at": case.updated_at,
        "events": list(case.events.values_list("pk", flat=True)),
        "timeline": TimelineEntry.objects.count(),
    }


def case_in(status: str, **kwargs) -> ServiceCase:
    """A case made directly in a status (workflow tests start from every status)."""
    extra = {}
    if status == Status.WAITING:
        extra["clock_stopped_at"] = at(2026, 3, 2)
    if status in (Status.RESOLVED, Status.CLOSED):
        extra["resolved_at"] = at(2026, 3, 2)
        extra["resolution"] = "Bin emptied on Tuesday."
    if status == Status.CLOSED:
        extra["closed_at"] = at(2026, 3, 3)
    return ServiceCaseFactory(status=status, due_on=D(2026, 3, 16), **extra, **kwargs)


class TestOpenCase:
    def test_references_count_up_within_the_year(self):
        service = ServiceFactory()
        first = open_case(service=service, title="Missed bin", opened_at=at(2026, 3, 2))
        second = open_case(service=service, title="Missed bin again", opened_at=at(2026, 3, 3))
        next_year = open_case(service=service, title="New year", opened_at=at(2027, 1, 4))
        assert first.reference == "CH-2026-000001"
        assert second.reference == "CH-2026-000002"
        assert next_year.reference == "CH-2027-000001"

    def test_working_day_deadline_skips_easter(self):
        # Thursday 2 April 2026 + 5 working days: Good Friday, the weekend and Easter Monday
        # do not count -> 7, 8, 9, 10, 13 April.
        service = ServiceFactory(clock_type=ClockType.WORKING_DAYS, sla_days=5)
        case = open_case(service=service, title="Fly-tipping", opened_at=at(2026, 4, 2))
        assert case.due_on == D(2026, 4, 13)

    def test_foi_deadline_is_twenty_working_days(self):
        # From 2 April 2026: Easter and the early May bank holiday (4 May) are skipped.
        service = ServiceFactory(clock_type=ClockType.FOI, sla_days=3)
        case = open_case(service=service, title="FOI request", opened_at=at(2026, 4, 2))
        assert case.due_on == D(2026, 5, 5)

    def test_subject_access_deadline_is_a_calendar_month_on_a_working_day(self):
        service = ServiceFactory(clock_type=ClockType.SUBJECT_ACCESS)
        case = open_case(service=service, title="My records", opened_at=at(2026, 8, 31))
        assert case.due_on == D(2026, 9, 30)
        # 31 January 2026 -> 28 February is a Saturday -> Monday 2 March.
        case = open_case(service=service, title="My records", opened_at=at(2026, 1, 31))
        assert case.due_on == D(2026, 3, 2)

    def test_deadline_uses_the_local_date_of_receipt(self):
        # 23:30 UTC on Friday 26 June 2026 is 00:30 on Saturday in London (BST).
        service = ServiceFactory(clock_type=ClockType.WORKING_DAYS, sla_days=1)
        case = open_case(
            service=service,
            title="Night report",
            opened_at=datetime.datetime(2026, 6, 26, 23, 30, tzinfo=datetime.UTC),
        )
        assert case.due_on == D(2026, 6, 29)

    def test_opening_writes_history_timeline_and_audit(self):
        citizen = CitizenFactory()
        officer = StaffUserFactory()
        service = ServiceFactory()
        case = open_case(
            service=service,
            title="Missed bin",
            citizen=citizen,
            actor=officer,
            source_channel="email",
            opened_at=at(2026, 3, 2),
        )
        assert case.team == service.team
        assert case.status == Status.NEW and case.version == 1
        event = case.events.get()
        assert event.kind == CaseEvent.Kind.CREATED
        assert event.visibility == CaseEvent.Visibility.RESIDENT
        assert event.actor == officer
        entry = TimelineEntry.objects.get(citizen=citizen)
        assert entry.kind == TimelineEntry.Kind.CASE
        assert entry.visibility == TimelineEntry.Visibility.RESIDENT
        assert entry.service_code == service.code
        assert entry.channel == "email"
        assert case.reference in entry.summary
        assert AuditEvent.objects.filter(
            action=AuditEvent.Action.CREATE, target_id=str(case.pk), citizen=citizen
        ).exists()

    def test_anonymous_case_has_no_timeline_entry(self):
        case = open_case(service=ServiceFactory(), title="Pothole on Mill Lane")
        assert case.citizen is None
        assert not TimelineEntry.objects.exists()

    @pytest.mark.parametrize(
        ("kwargs", "field"),
        [
            ({"title": "   "}, "title"),
            ({"title": "x" * 201}, "title"),
            ({"title": "Bin", "priority": 9}, "priority"),
        ],
    )
    def test_bad_fields_are_validation_errors(self, kwargs, field):
        with pytest.raises(ValidationError) as excinfo:
            open_case(service=ServiceFactory(), **kwargs)
        assert field in excinfo.value.message_dict
        assert not ServiceCase.objects.exists()

    def test_inactive_service_and_erased_citizen_are_refused(self):
        with pytest.raises(ApplicationError, match="no longer offered"):
            open_case(service=ServiceFactory(is_active=False), title="Bin")
        erased = CitizenFactory(status="erased")
        with pytest.raises(ApplicationError, match="erased"):
            open_case(service=ServiceFactory(), title="Bin", citizen=erased)
        assert not ServiceCase.objects.exists()

    def test_case_for_a_merged_profile_goes_to_the_survivor(self):
        survivor = CitizenFactory()
        merged = CitizenFactory(status="merged", merged_into=survivor)
        case = open_case(service=ServiceFactory(), title="Bin", citizen=merged)
        assert case.citizen == survivor


ALLOWED = [(a, b) for a, targets in ALLOWED_TRANSITIONS.items() for b in targets]
ILLEGAL = [(a, b) for a in Status.values for b in Status.values if (a, b) not in ALLOWED]


class TestTransitions:
    def test_the_workflow_table_covers_every_status(self):
        assert set(ALLOWED_TRANSITIONS) == set(Status.values)
        assert (Status.CLOSED, Status.RESOLVED) in ILLEGAL
        assert (Status.RESOLVED, Status.IN_PROGRESS) in ILLEGAL

    @pytest.mark.parametrize(("from_status", "to_status"), ALLOWED)
    def test_every_allowed_transition_works(self, from_status, to_status):
        citizen = CitizenFactory()
        case = case_in(from_status, citizen=citizen)
        moved = case_transition(
            case=case,
            to_status=to_status,
            expected_version=1,
            reason="Resident asked us to look again",
            resolution="Collected on Wednesday.",
            at=at(2026, 3, 5),
        )
        case.refresh_from_db()
        assert case.status == moved.status == to_status
        assert case.version == 2
        # (Other apps may add to the history, e.g. the inbox sending the resolution.)
        event = case.events.get(kind=CaseEvent.Kind.STATUS)
        assert (event.from_status, event.to_status) == (from_status, to_status)
        assert event.visibility == CaseEvent.Visibility.RESIDENT
        entry = TimelineEntry.objects.get(citizen=citizen, kind=TimelineEntry.Kind.CASE)
        assert entry.visibility == TimelineEntry.Visibility.RESIDENT
        assert entry.summary.startswith(f"Case {case.reference} {Status(to_status).label.lower()}")
        if to_status == Status.WAITING:
            assert case.clock_stopped_at == at(2026, 3, 5)
        else:
            assert case.clock_stopped_at is None
        if to_status == Status.RESOLVED:
            assert case.resolved_at == at(2026, 3, 5)
        if to_status == Status.CLOSED:
            assert case.closed_at == at(2026, 3, 5)
        if to_status == Status.OPEN and from_status in (Status.RESOLVED, Status.CLOSED):
            assert case.resolved_at is None and case.closed_at is None

    @pytest.mark.parametrize(("from_status", "to_status"), ILLEGAL)
    def test_every_illegal_transition_is_refused_and_changes_nothing(self, from_status, to_status):
        case = case_in(from_status, citizen=CitizenFactory())
        before = snapshot(case)
        with pytest.raises(ApplicationError) as excinfo:
            case_transition(
                case=case,
                to_status=to_status,
                expected_version=1,
                reason="Because",
                resolution="Done",
            )
        assert excinfo.value.code == "illegal_transition"
        assert f"cannot move to “{Status(to_status).label}”" in excinfo.value.message
        assert excinfo.value.extra["allowed"] == list(ALLOWED_TRANSITIONS[from_status])
        assert snapshot(case) == before

    def test_unknown_status_is_a_validation_error(self):
        case = case_in(Status.OPEN)
        before = snapshot(case)
        with pytest.raises(ValidationError, match="not a case status"):
            case_transition(case=case, to_status="archived", expected_version=1)
        assert snapshot(case) == before

    def test_resolving_needs_a_resolution(self):
        case = case_in(Status.IN_PROGRESS)
        before = snapshot(case)
        with pytest.raises(ValidationError) as excinfo:
            case_transition(case=case, to_status=Status.RESOLVED, expected_version=1)
        assert "resolution" in excinfo.value.message_dict
        assert snapshot(case) == before
        case_transition(
            case=case, to_status=Status.RESOLVED, expected_version=1, resolution="Repaired."
        )
        case.refresh_from_db()
        assert case.resolution == "Repaired."

    @pytest.mark.parametrize(
        ("from_status", "to_status"),
        [(Status.RESOLVED, Status.OPEN), (Status.CLOSED, Status.OPEN), (Status.NEW, Status.CLOSED)],
    )
    def test_reopening_and_closing_unworked_cases_need_a_reason(self, from_status, to_status):
        case = case_in(from_status)
        before = snapshot(case)
        with pytest.raises(ValidationError) as excinfo:
            case_transition(case=case, to_status=to_status, expected_version=1, reason="  ")
        assert "reason" in excinfo.value.message_dict
        assert snapshot(case) == before

    def test_resolving_late_marks_the_breach(self):
        case = case_in(Status.IN_PROGRESS)  # due 16 March 2026
        case_transition(
            case=case,
            to_status=Status.RESOLVED,
            expected_version=1,
            resolution="Done",
            at=at(2026, 3, 17),
        )
        case.refresh_from_db()
        assert case.breached is True


class TestClockStops:
    def test_waiting_stops_the_clock_and_restarting_moves_the_due_date(self):
        # Opened Monday 2 March 2026, 10 working days -> due Monday 16 March.
        service = ServiceFactory(clock_type=ClockType.WORKING_DAYS, sla_days=10)
        case = open_case(service=service, title="Overgrown hedge", opened_at=at(2026, 3, 2))
        assert case.due_on == D(2026, 3, 16)
        case = case_transition(
            case=case, to_status=Status.WAITING, expected_version=1, at=at(2026, 3, 4)
        )
        assert case.clock_stopped_at == at(2026, 3, 4)
        assert case.due_on == D(2026, 3, 16)  # not moved until the clock restarts
        # Waited Wed 4 to Wed 11 March: 4, 5, 6, 9, 10 did not run -> five working days.
        case = case_transition(
            case=case, to_status=Status.IN_PROGRESS, expected_version=2, at=at(2026, 3, 11)
        )
        case.refresh_from_db()
        assert case.clock_stopped_at is None
        assert case.due_on == D(2026, 3, 23)

    def test_bank_holidays_while_waiting_do_not_count(self):
        service = ServiceFactory(clock_type=ClockType.WORKING_DAYS, sla_days=10)
        case = open_case(service=service, title="Broken street light", opened_at=at(2026, 3, 30))
        assert case.due_on == D(2026, 4, 15)  # 10 working days, skipping Easter
        case_transition(case=case, to_status=Status.WAITING, expected_version=1, at=at(2026, 4, 2))
        # Stopped Thursday 2 April, restarted Tuesday 7 April: only the 2nd was a working day.
        case_transition(case=case, to_status=Status.OPEN, expected_version=2, at=at(2026, 4, 7))
        case.refresh_from_db()
        assert case.due_on == D(2026, 4, 16)

    def test_resolving_straight_from_waiting_restarts_the_clock(self):
        service = ServiceFactory(clock_type=ClockType.WORKING_DAYS, sla_days=10)
        case = open_case(service=service, title="Hedge", opened_at=at(2026, 3, 2))
        case_transition(case=case, to_status=Status.WAITING, expected_version=1, at=at(2026, 3, 4))
        # 17 March is after the first due date (16 March), but the clock was stopped from
        # 4 March: nine working days (4-6, 9-13, 16) move it to Friday 27 March.
        case_transition(
            case=case,
            to_status=Status.RESOLVED,
            expected_version=2,
            resolution="Cut back",
            at=at(2026, 3, 17),
        )
        case.refresh_from_db()
        assert case.due_on == D(2026, 3, 27)
        assert case.breached is False
        assert case.clock_stopped_at is None


class TestOptimisticLocking:
    def test_two_officers_saving_the_same_case(self):
        first_officer = StaffUserFactory(first_name="Ann", last_name="Jones")
        second_officer = StaffUserFactory()
        case = case_in(Status.OPEN)
        screen_one = ServiceCase.objects.get(pk=case.pk)
        screen_two = ServiceCase.objects.get(pk=case.pk)
        assert screen_one.version == screen_two.version == 1

        case_transition(
            case=screen_one,
            to_status=Status.IN_PROGRESS,
            expected_version=screen_one.version,
            actor=first_officer,
        )
        before = snapshot(case)
        with pytest.raises(ConflictError) as excinfo:
            case_transition(
                case=screen_two,
                to_status=Status.WAITING,
                expected_version=screen_two.version,
                actor=second_officer,
            )
        assert excinfo.value.status_code == 409
        assert excinfo.value.extra["current_version"] == 2
        assert excinfo.value.extra["changed_by"] == "Ann Jones"
        assert "changed by Ann Jones since you opened it" in excinfo.value.message
        assert snapshot(case) == before
        case.refresh_from_db()
        assert case.status == Status.IN_PROGRESS

    def test_stale_edit_and_assign_are_refused_too(self):
        team = TeamFactory()
        officer = StaffUserFactory()
        team.members.add(officer)
        case = case_in(Status.OPEN, team=team, service=ServiceFactory(team=team))
        case_update_details(case=case, expected_version=1, title="Bin not emptied twice")
        before = snapshot(case)
        with pytest.raises(ConflictError):
            case_update_details(case=case, expected_version=1, title="Something else")
        with pytest.raises(ConflictError):
            case_assign(case=case, expected_version=1, assignee=officer)
        assert snapshot(case) == before


class TestAssignEditNote:
    def test_assign_to_a_team_member(self):
        team = TeamFactory()
        officer = StaffUserFactory(first_name="Sam", last_name="Patel")
        team.members.add(officer)
        case = case_in(Status.NEW, team=team, service=ServiceFactory(team=team))
        case = case_assign(case=case, expected_version=1, assignee=officer)
        case.refresh_from_db()
        assert case.assignee == officer and case.version == 2
        event = case.events.get()
        assert event.kind == CaseEvent.Kind.ASSIGNED
        assert event.text == f"Assigned to Sam Patel in {team.name}"
        assert event.visibility == CaseEvent.Visibility.STAFF

    def test_assign_refuses_an_officer_outside_the_team(self):
        case = case_in(Status.NEW)
        outsider = StaffUserFactory()
        before = snapshot(case)
        with pytest.raises(ApplicationError) as excinfo:
            case_assign(case=case, expected_version=1, assignee=outsider)
        assert excinfo.value.code == "not_in_team"
        assert outsider.username in excinfo.value.message
        assert snapshot(case) == before

    def test_assign_refuses_a_resident_account(self):
        team = TeamFactory()
        resident = StaffUserFactory(is_staff=False)
        team.members.add(resident)
        case = case_in(Status.NEW, team=team, service=ServiceFactory(team=team))
        with pytest.raises(ApplicationError, match="not an active officer"):
            case_assign(case=case, expected_version=1, assignee=resident)

    def test_edit_details_keeps_the_old_values_in_history(self):
        case = case_in(Status.OPEN, title="Bin")
        case = case_update_details(
            case=case, expected_version=1, title="Green bin", priority=ServiceCase.Priority.HIGH
        )
        assert case.version == 2
        event = case.events.get()
        assert event.kind == CaseEvent.Kind.DETAILS
        assert event.data["before"] == {"title": "Bin", "priority": ServiceCase.Priority.NORMAL}

    def test_edit_refuses_fields_it_does_not_own(self):
        case = case_in(Status.OPEN)
        with pytest.raises(ValidationError) as excinfo:
            case_update_details(case=case, expected_version=1, status=Status.CLOSED)
        assert "status" in excinfo.value.message_dict

    def test_notes_are_staff_only_history(self):
        citizen = CitizenFactory()
        officer = StaffUserFactory()
        case = case_in(Status.OPEN, citizen=citizen)
        note = case_add_note(case=case, text="Resident is hard of hearing.", actor=officer)
        assert note.kind == CaseEvent.Kind.NOTE
        assert note.visibility == CaseEvent.Visibility.STAFF
        assert note.actor == officer
        assert not TimelineEntry.objects.filter(citizen=citizen).exists()
        case.refresh_from_db()
        assert case.version == 1  # notes never conflict with other officers' saves
        with pytest.raises(ValidationError):
            case_add_note(case=case, text="   ")


class TestBreaches:
    def test_marks_open_cases_past_due_only(self):
        today = D(2026, 3, 16)
        overdue = ServiceCaseFactory(status=Status.OPEN, due_on=D(2026, 3, 13))
        due_today = ServiceCaseFactory(status=Status.OPEN, due_on=today)
        closed_late = ServiceCaseFactory(status=Status.CLOSED, due_on=D(2026, 3, 1))
        assert mark_breached_cases(today=today) == 1
        assert mark_breached_cases(today=today) == 0  # idempotent
        overdue.refresh_from_db()
        due_today.refresh_from_db()
        closed_late.refresh_from_db()
        assert overdue.breached is True
        assert due_today.breached is False
        assert closed_late.breached is False

    def test_a_stopped_clock_is_not_a_breach(self):
        today = D(2026, 3, 16)
        # Stopped on 10 March, before its due date of 13 March: the clock is not running.
        stopped_in_time = ServiceCaseFactory(
            status=Status.WAITING, due_on=D(2026, 3, 13), clock_stopped_at=at(2026, 3, 10)
        )
        # Stopped on 14 March, after the due date had passed: already late when it stopped.
        stopped_late = ServiceCaseFactory(
            status=Status.WAITING, due_on=D(2026, 3, 13), clock_stopped_at=at(2026, 3, 14)
        )
        assert mark_breached_cases(today=today) == 1
        stopped_in_time.refresh_from_db()
        stopped_late.refresh_from_db()
        assert stopped_in_time.breached is False
        assert stopped_late.breached is True


class TestRetention:
    def _closed(self, service, closed_at, **kwargs) -> ServiceCase:
        citizen = CitizenFactory()
        case = open_case(
            service=service,
            citizen=citizen,
            title="Carer's assessment for my mother",
            description="She lives at 4 Mill Lane and needs help with washing.",
            location_text="4 Mill Lane",
            postcode="NM1 4AB",
            opened_at=closed_at - datetime.timedelta(days=20),
        )
        case_transition(
            case=case,
            to_status=Status.RESOLVED,
            expected_version=1,
            resolution="Assessment booked.",
            at=closed_at - datetime.timedelta(days=1),
        )
        case_transition(case=case, to_status=Status.CLOSED, expected_version=2, at=closed_at)
        if kwargs.get("legal_hold"):
            case_set_legal_hold(case=case, hold=True, reason="Ombudsman complaint")
        case.refresh_from_db()
        return case

    def test_anonymises_only_expired_closed_cases(self):
        now = at(2026, 6, 1)
        short = ServiceFactory(retention_days=30)
        long = ServiceFactory(retention_days=365)
        expired = self._closed(short, now - datetime.timedelta(days=31))
        not_yet = self._closed(short, now - datetime.timedelta(days=29))
        other_service = self._closed(long, now - datetime.timedelta(days=31))
        on_hold = self._closed(short, now - datetime.timedelta(days=40), legal_hold=True)
        still_open = open_case(
            service=short, title="Old open case", opened_at=now - datetime.timedelta(days=90)
        )
        citizen = expired.citizen

        assert anonymise_expired_cases(now=now) == 1
        assert anonymise_expired_cases(now=now) == 0  # idempotent

        for untouched in (not_yet, other_service, on_hold, still_open):
            untouched.refresh_from_db()
            assert untouched.anonymised_at is None
            assert untouched.title != ANONYMISED_TEXT

        tombstone = ServiceCase.objects.get(pk=expired.pk)
        assert tombstone.anonymised_at == now
        assert tombstone.reference == expired.reference
        assert tombstone.service == short
        assert tombstone.status == Status.CLOSED
        assert tombstone.opened_at == expired.opened_at
        assert tombstone.closed_at == expired.closed_at
        assert tombstone.due_on == expired.due_on
        assert tombstone.title == ANONYMISED_TEXT
        assert tombstone.description == tombstone.resolution == tombstone.location_text == ""
        assert tombstone.citizen is None
        assert tombstone.postcode == "NM1"

        texts = list(tombstone.events.exclude(kind="anonymised").values_list("text", flat=True))
        assert texts and all(text == "" for text in texts)
        assert tombstone.events.filter(kind=CaseEvent.Kind.ANONYMISED).count() == 1

        erase = AuditEvent.objects.get(
            action=AuditEvent.Action.ERASE,
            target_type=ContentType.objects.get_for_model(ServiceCase),
            target_id=str(expired.pk),
        )
        assert erase.citizen == citizen
        assert erase.actor_label == "retention"

        summaries = list(
            TimelineEntry.objects.filter(citizen=citizen, kind=TimelineEntry.Kind.CASE).values_list(
                "summary", flat=True
            )
        )
        assert len(summaries) == 3  # opened, resolved, closed
        assert all(
            summary == f"Case {expired.reference} {ANONYMISED_TEXT}" for summary in summaries
        )
        assert not any("Carer" in s or "Assessment" in s for s in summaries)

    def test_anonymising_deletes_the_photos_and_their_files(
        self, django_capture_on_commit_callbacks
    ):
        from django.core.files.uploadedfile import SimpleUploadedFile
        from PIL import Image

        from citizenhub.services.attachments import attach_file

        service = ServiceFactory(retention_days=1)
        case = self._closed(service, at(2026, 1, 1))
        buffer = io.BytesIO()
        Image.new("RGB", (8, 8), (10, 120, 10)).save(buffer, format="PNG")
        photo = attach_file(
            case=case,
            uploaded_file=SimpleUploadedFile("p.png", buffer.getvalue(), content_type="image/png"),
            citizen=case.citizen,
            user=None,
        )
        path = photo.file.path
        assert os.path.exists(path)

        with django_capture_on_commit_callbacks(execute=True):
            anonymise_expired_cases(now=at(2026, 6, 1))

        assert not case.attachments.exists()
        assert not os.path.exists(path)
        erase = AuditEvent.objects.get(action=AuditEvent.Action.ERASE, target_id=str(case.pk))
        assert erase.details["attachments_deleted"] == 1

    def test_anonymised_cases_cannot_be_changed(self):
        service = ServiceFactory(retention_days=1)
        case = self._closed(service, at(2026, 1, 1))
        anonymise_expired_cases(now=at(2026, 6, 1))
        with pytest.raises(ApplicationError, match="anonymised"):
            case_transition(case=case, to_status=Status.OPEN, expected_version=None, reason="x")

    def test_limit_bounds_a_run(self):
        service = ServiceFactory(retention_days=1)
        for day in (1, 2, 3):
            self._closed(service, at(2026, 1, day))
        assert anonymise_expired_cases(now=at(2026, 6, 1), limit=2) == 2
        assert anonymise_expired_cases(now=at(2026, 6, 1), limit=2) == 1


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks need PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_two_threads_opening_cases_get_distinct_consecutive_references():
    service = ServiceFactory()
    rounds = 5
    references: list[str] = []
    for round_number in range(rounds):
        barrier = threading.Barrier(2)
        results: list[str] = []
        errors: list[Exception] = []

        def open_one(barrier=barrier, results=results, errors=errors, n=round_number):
            try:
                barrier.wait(timeout=10)
                case = open_case(service=service, title=f"Race {n}", opened_at=at(2026, 3, 2))
                results.append(case.reference)
            except Exception as exc:  # surfaced by the assertion below
                errors.append(exc)
            finally:
                connection.close()

        threads = [threading.Thread(target=open_one) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert errors == []
        assert len(results) == 2 and results[0] != results[1]
        references.extend(results)
    assert sorted(references) == [f"CH-2026-{n:06d}" for n in range(1, 2 * rounds + 1)]


class TestBeatTasksAndCommand:
    def test_beat_tasks_run_the_services_and_are_idempotent(self):
        ServiceCaseFactory(status=Status.OPEN, due_on=D(2020, 1, 6))
        ServiceCaseFactory(
            status=Status.CLOSED,
            due_on=D(2020, 1, 6),
            closed_at=at(2020, 1, 10),
            service=ServiceFactory(retention_days=30),
        )
        assert mark_breached_cases_task.apply().get() == 1
        assert mark_breached_cases_task.apply().get() == 0
        assert anonymise_expired_cases_task.apply().get() == 1
        assert anonymise_expired_cases_task.apply(kwargs={"limit": 10}).get() == 0

    def test_beat_task_names(self):
        assert "citizenhub.mark_breached_cases" in celery_app.tasks
        assert "citizenhub.anonymise_expired_cases" in celery_app.tasks

    def test_load_service_catalogue_command(self):
        out = StringIO()
        call_command("load_service_catalogue", stdout=out)
        assert "Teams: 10 created, 0 already there" in out.getvalue()
        assert "Services: 14 created, 0 refreshed" in out.getvalue()
        assert Team.objects.count() == 10 and Service.objects.count() == 14
        again = StringIO()
        call_command("load_service_catalogue", stdout=again)
        assert "Teams: 0 created, 10 already there" in again.getvalue()
        assert "Services: 0 created, 14 refreshed" in again.getvalue()
        assert Service.objects.filter(is_sensitive=True).exists()


def test_marking_a_service_sensitive_hides_it_at_once_despite_the_cache(db, caseworker):
    from citizenhub.case_selectors import catalogue_summary, hidden_service_codes

    service = ServiceFactory(code="carers-assessment", is_sensitive=False)
    assert "carers-assessment" not in hidden_service_codes(caseworker)
    assert catalogue_summary().sensitive == ()  # now cached
    service.is_sensitive = True
    service.save()
    fresh_user = type(caseworker).objects.get(pk=caseworker.pk)  # a new request's user
    assert "carers-assessment" in hidden_service_codes(fresh_user)
    service.delete()
    assert catalogue_summary().sensitive == ()
