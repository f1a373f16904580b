"""Staff case pages: the queue, opening a case, the case page and its changes."""

import datetime
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from citizenhub.case_selectors import REDACTED_TITLE
from citizenhub.models import AuditEvent, CaseEvent, ServiceCase
from citizenhub.services.cases import case_add_note, case_transition, open_case
from citizenhub.staff.access import ensure_staff_groups
from tests.factories import (
    CitizenFactory,
    ServiceCaseFactory,
    ServiceFactory,
    StaffUserFactory,
    TeamFactory,
)

pytestmark = pytest.mark.django_db

QUEUE = "/staff/cases/"
NEW = "/staff/cases/new/"
Status = ServiceCase.Status


def case_url(case: ServiceCase, action: str = "") -> str:
    return f"/staff/cases/{case.reference}/" + (f"{action}/" if action else "")


def text(response) -> str:
    return response.content.decode()


def queue_references(response) -> list[str]:
    return re.findall(r'data-reference="([^"]+)"', text(response))


@pytest.fixture
def team(caseworker):
    team = TeamFactory(name="Waste and recycling")
    team.members.add(caseworker)
    return team


@pytest.fixture
def service(team):
    return ServiceFactory(name="Missed bin collection", team=team)


@pytest.fixture
def officer_client(client, caseworker):
    client.force_login(caseworker)
    return client


@pytest.fixture
def sensitive():
    """A sensitive service run by a team the caseworker is not in."""
    care_team = TeamFactory(name="Adult social care front door")
    insider = StaffUserFactory(first_name="Ines", last_name="Insider")
    care_team.members.add(insider)
    service = ServiceFactory(name="Adult social care referral", team=care_team, is_sensitive=True)
    case = open_case(
        service=service,
        title="Carer's assessment for Mrs Jones",
        description="Needs help with washing and dressing.",
        citizen=CitizenFactory(given_name="Maud", family_name="Ellery"),
    )
    case_add_note(case=case, text="Daughter has power of attorney.")
    return case


def count_queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return len(queries)


class TestAccess:
    @pytest.mark.parametrize("url", [QUEUE, NEW])
    def test_anonymous_goes_to_sign_in(self, client, url):
        response = client.get(url)
        assert response.status_code == 302
        assert "/accounts/login/" in response["Location"]

    def test_residents_are_refused(self, client, resident_user):
        client.force_login(resident_user)
        assert client.get(QUEUE).status_code == 403

    def test_staff_without_a_casework_role_are_refused(self, client, staff_user):
        case = ServiceCaseFactory()
        client.force_login(staff_user)
        assert client.get(QUEUE).status_code == 403
        assert client.get(case_url(case)).status_code == 403
        assert client.get(NEW).status_code == 403

    def test_unknown_case_is_404(self, officer_client):
        assert officer_client.get("/staff/cases/CH-2026-999999/").status_code == 404


class TestQueue:
    def test_scopes(self, officer_client, caseworker, team, service):
        other_team = TeamFactory()
        teammate = StaffUserFactory()
        team.members.add(teammate)
        mine = ServiceCaseFactory(service=service, assignee=caseworker)
        teammates = ServiceCaseFactory(service=service, assignee=teammate)
        unassigned = ServiceCaseFactory(service=service)
        elsewhere = ServiceCaseFactory(service=ServiceFactory(team=other_team))
        ServiceCaseFactory(service=service, assignee=caseworker, status=Status.CLOSED)

        def refs(scope):
            response = officer_client.get(QUEUE, {"scope": scope})
            assert response.status_code == 200
            return set(queue_references(response))

        assert refs("mine") == {mine.reference}
        assert refs("team") == {mine.reference, teammates.reference, unassigned.reference}
        assert refs("unassigned") == {unassigned.reference}
        assert refs("all") == {
            mine.reference,
            teammates.reference,
            unassigned.reference,
            elsewhere.reference,
        }
        # Without a scope the queue is the officer's own.
        assert set(queue_references(officer_client.get(QUEUE))) == {mine.reference}

    def test_sorted_by_due_date_with_overdue_and_due_today_tags(self, officer_client, service):
        today = timezone.localdate()
        later = ServiceCaseFactory(service=service, due_on=today + datetime.timedelta(days=5))
        overdue = ServiceCaseFactory(service=service, due_on=today - datetime.timedelta(days=2))
        due_today = ServiceCaseFactory(service=service, due_on=today)
        response = officer_client.get(QUEUE, {"scope": "team"})
        assert queue_references(response) == [
            overdue.reference,
            due_today.reference,
            later.reference,
        ]
        body = text(response)
        assert f'data-reference="{overdue.reference}" data-deadline="overdue"' in body
        assert f'data-reference="{due_today.reference}" data-deadline="today"' in body
        assert f'data-reference="{later.reference}" data-deadline="due"' in body
        assert 'govuk-tag govuk-tag--red">Overdue' in body
        assert "Due today" in body

    def test_a_stopped_clock_is_not_shown_as_overdue(self, officer_client, service):
        today = timezone.localdate()
        waiting = ServiceCaseFactory(
            service=service,
            status=Status.WAITING,
            due_on=today - datetime.timedelta(days=1),
            clock_stopped_at=timezone.now() - datetime.timedelta(days=5),
        )
        body = text(officer_client.get(QUEUE, {"scope": "team"}))
        assert f'data-reference="{waiting.reference}" data-deadline="stopped"' in body
        assert "Clock stopped" in body

    def test_filters(self, officer_client, team, service):
        other_service = ServiceFactory(team=team)
        bins = ServiceCaseFactory(service=service)
        waiting = ServiceCaseFactory(service=other_service, status=Status.WAITING)
        resolved = ServiceCaseFactory(service=service, status=Status.RESOLVED)
        elsewhere = ServiceCaseFactory()

        def refs(**params):
            response = officer_client.get(QUEUE, params)
            assert response.status_code == 200, text(response)
            return set(queue_references(response))

        assert refs(scope="team", service=service.code) == {bins.reference}
        assert refs(scope="team", status="waiting") == {waiting.reference}
        assert refs(scope="team", status="resolved") == {resolved.reference}
        assert refs(scope="all", team=elsewhere.team.slug) == {elsewhere.reference}
        assert refs(scope="team", team=team.slug) == {bins.reference, waiting.reference}

    @pytest.mark.parametrize(
        "params", [{"team": "no-such-team"}, {"status": "archived"}, {"page": "0"}, {"page": "x"}]
    )
    def test_bad_filters_are_a_400_with_an_error_summary(self, officer_client, params):
        response = officer_client.get(QUEUE, params)
        assert response.status_code == 400
        assert "There is a problem" in text(response)

    def test_sensitive_rows_show_only_reference_service_status_and_due(
        self, officer_client, sensitive
    ):
        body = text(officer_client.get(QUEUE, {"scope": "all"}))
        assert sensitive.reference in body
        assert REDACTED_TITLE in body
        assert "Adult social care referral" in body
        assert "Carer" not in body
        assert sensitive.citizen.family_name not in body

    def test_paging_caps_a_page_at_fifty(self, officer_client, service):
        today = timezone.localdate()
        cases = [
            ServiceCaseFactory(service=service, due_on=today + datetime.timedelta(days=n))
            for n in range(51)
        ]
        first = officer_client.get(QUEUE, {"scope": "team"})
        assert len(queue_references(first)) == 50
        assert 'rel="next"' in text(first)
        second = officer_client.get(QUEUE, {"scope": "team", "page": 2})
        assert queue_references(second) == [cases[-1].reference]
        assert 'rel="prev"' in text(second) and 'rel="next"' not in text(second)

    def test_query_count_is_constant(self, officer_client, caseworker, service, sensitive):
        url = f"{QUEUE}?scope=all"
        ServiceCaseFactory(service=service, assignee=caseworker)
        few = count_queries(officer_client, url)
        for _ in range(29):
            ServiceCaseFactory(service=ServiceFactory(), assignee=caseworker)
        many = count_queries(officer_client, url)
        assert many == few
        assert few <= 10


class TestOpenCase:
    def test_open_a_case_for_a_resident(self, officer_client, caseworker, service):
        citizen = CitizenFactory(given_name="Jane", family_name="Price")
        url = f"{NEW}?citizen={citizen.public_id}"
        page = officer_client.get(url)
        assert page.status_code == 200
        assert citizen.display_name in text(page)
        response = officer_client.post(
            url,
            {
                "service": service.code,
                "title": "Green bin missed",
                "description": "Third time this month.",
                "priority": "3",
                "source_channel": "phone",
                "location_text": "Outside 4 Mill Lane",
                "postcode": "nm1 4ab",
            },
            follow=True,
        )
        case = ServiceCase.objects.get()
        assert response.redirect_chain[-1][0] == case_url(case)
        assert case.citizen == citizen
        assert case.priority == 3 and case.postcode == "NM1 4AB"
        assert case.created_by == caseworker
        assert f"Case {case.reference} opened." in text(response)

    @pytest.mark.parametrize(
        ("data", "message"),
        [
            ({"service": "", "title": "Bin"}, "Choose the service"),
            ({"title": ""}, "Enter a title"),
            ({"postcode": "12345"}, "is not a UK postcode"),
            ({"priority": "9"}, "Select a valid choice"),
        ],
    )
    def test_bad_input_is_shown_on_the_form(self, officer_client, service, data, message):
        payload = {"service": service.code, "title": "Bin", "priority": "2", **data}
        response = officer_client.post(NEW, payload)
        assert response.status_code == 400
        assert "There is a problem" in text(response)
        assert message in text(response)
        assert not ServiceCase.objects.exists()

    def test_an_erased_profile_is_refused_with_the_service_message(self, officer_client, service):
        citizen = CitizenFactory(status="erased")
        response = officer_client.post(
            f"{NEW}?citizen={citizen.public_id}",
            {"service": service.code, "title": "Bin", "priority": "2"},
        )
        assert response.status_code == 400
        assert "erased profile" in text(response)

    @pytest.mark.parametrize("value", ["not-a-uuid", "7b0c5b1e-0000-4000-8000-000000000000"])
    def test_unknown_resident_is_404(self, officer_client, value):
        assert officer_client.get(f"{NEW}?citizen={value}").status_code == 404

    def test_needs_the_add_permission(self, client, staff_user, service):
        client.force_login(staff_user)
        response = client.post(NEW, {"service": service.code, "title": "Bin", "priority": "2"})
        assert response.status_code == 403
        assert not ServiceCase.objects.exists()


@pytest.fixture
def case(service):
    return open_case(
        service=service,
        title="Green bin not emptied",
        description="Bin was out by 7am.",
        citizen=CitizenFactory(given_name="Tom", family_name="Baker"),
        location_text="4 Mill Lane",
    )


class TestCasePage:
    def test_shows_the_case_and_records_the_view(self, officer_client, caseworker, case):
        response = officer_client.get(case_url(case))
        assert response.status_code == 200
        body = text(response)
        assert "Green bin not emptied" in body
        assert f'href="/staff/citizens/{case.citizen.public_id}/"' in body
        assert "Missed bin collection" in body and "Waste and recycling" in body
        assert "4 Mill Lane" in body
        assert 'name="version" value="1"' in body
        audit = AuditEvent.objects.get(action=AuditEvent.Action.VIEW, target_id=str(case.pk))
        assert audit.actor == caseworker
        assert audit.citizen == case.citizen

    def test_only_allowed_transitions_have_buttons(self, officer_client, case):
        body = text(officer_client.get(case_url(case)))
        offered = set(re.findall(r'name="status" value="([a-z_]+)"', body))
        assert offered == {"open", "in_progress", "waiting", "resolved", "closed"}
        case_transition(case=case, to_status=Status.CLOSED, expected_version=1, reason="Dup")
        body = text(officer_client.get(case_url(case)))
        assert set(re.findall(r'name="status" value="([a-z_]+)"', body)) == {"open"}

    def test_transition_by_post(self, officer_client, case):
        response = officer_client.post(
            case_url(case, "transition"), {"status": "in_progress", "version": "1"}, follow=True
        )
        assert response.redirect_chain[-1][0] == case_url(case)
        assert "is now “In progress”" in text(response)
        case.refresh_from_db()
        assert case.status == Status.IN_PROGRESS and case.version == 2

    def test_resolve_needs_the_resolution_text(self, officer_client, case):
        response = officer_client.post(
            case_url(case, "transition"),
            {"status": "resolved", "version": "1", "resolution": ""},
        )
        assert response.status_code == 400
        assert "Write the resolution the resident will receive." in text(response)
        case.refresh_from_db()
        assert case.status == Status.NEW
        response = officer_client.post(
            case_url(case, "transition"),
            {"status": "resolved", "version": "1", "resolution": "Emptied on Tuesday."},
        )
        assert response.status_code == 302
        case.refresh_from_db()
        assert case.status == Status.RESOLVED and case.resolution == "Emptied on Tuesday."

    def test_stale_version_says_who_changed_the_case(self, officer_client, case):
        colleague = StaffUserFactory(first_name="Priya", last_name="Shah")
        case_transition(case=case, to_status=Status.OPEN, expected_version=1, actor=colleague)
        response = officer_client.post(
            case_url(case, "transition"), {"status": "in_progress", "version": "1"}
        )
        assert response.status_code == 409
        body = text(response)
        assert "There is a problem" in body
        assert "This case was changed by Priya Shah since you opened it" in body
        case.refresh_from_db()
        assert case.status == Status.OPEN and case.version == 2
        # The page now shows the current version, so acting again is an informed choice.
        assert 'name="version" value="2"' in body

    def test_illegal_transition_posted_by_hand(self, officer_client, case):
        case_transition(case=case, to_status=Status.CLOSED, expected_version=1, reason="Dup")
        response = officer_client.post(
            case_url(case, "transition"), {"status": "resolved", "version": "2", "resolution": "x"}
        )
        assert response.status_code == 400
        assert "A case that is closed cannot move to “Resolved”" in text(response)
        case.refresh_from_db()
        assert case.status == Status.CLOSED and case.version == 2

    @pytest.mark.parametrize(
        "data", [{"status": "archived", "version": "1"}, {"status": "open"}, {"version": "x"}]
    )
    def test_malformed_transition_is_a_400(self, officer_client, case, data):
        response = officer_client.post(case_url(case, "transition"), data)
        assert response.status_code == 400
        case.refresh_from_db()
        assert case.version == 1

    def test_notes(self, officer_client, case):
        response = officer_client.post(
            case_url(case, "notes"), {"text": "Called the resident back."}, follow=True
        )
        assert "Note added." in text(response)
        note = case.events.get(kind=CaseEvent.Kind.NOTE)
        assert note.text == "Called the resident back."
        assert note.visibility == CaseEvent.Visibility.STAFF
        assert "Internal" in text(response)
        empty = officer_client.post(case_url(case, "notes"), {"text": "  "})
        assert empty.status_code == 400
        assert "Enter the note." in text(empty)

    def test_assign_to_a_team_member_only(self, officer_client, caseworker, team, case):
        outsider = StaffUserFactory(username="outsider")
        refused = officer_client.post(
            case_url(case, "assign"), {"assignee": outsider.pk, "version": "1"}
        )
        assert refused.status_code == 400
        assert "outsider is not in the team" in text(refused)
        case.refresh_from_db()
        assert case.assignee is None and case.version == 1

        response = officer_client.post(
            case_url(case, "assign"), {"assignee": caseworker.pk, "version": "1"}
        )
        assert response.status_code == 302
        case.refresh_from_db()
        assert case.assignee == caseworker and case.version == 2

    def test_edit_details(self, officer_client, case):
        response = officer_client.post(
            case_url(case, "edit"),
            {
                "version": "1",
                "title": "Green bin not emptied (twice)",
                "description": "Bin was out by 7am.",
                "priority": "4",
                "location_text": "4 Mill Lane",
                "postcode": "",
            },
        )
        assert response.status_code == 302
        case.refresh_from_db()
        assert case.title == "Green bin not emptied (twice)" and case.priority == 4
        bad = officer_client.post(
            case_url(case, "edit"), {"version": "2", "title": "", "priority": "2"}
        )
        assert bad.status_code == 400
        assert "Enter a title for the case." in text(bad)

    def test_changes_need_their_permissions(self, client, staff_user, case, team):
        team.members.add(staff_user)
        client.force_login(staff_user)
        for action, data in [
            ("transition", {"status": "open", "version": "1"}),
            ("assign", {"assignee": "", "version": "1"}),
            ("notes", {"text": "Hello"}),
            ("edit", {"version": "1", "title": "X", "priority": "2"}),
        ]:
            assert client.post(case_url(case, action), data).status_code == 403
        case.refresh_from_db()
        assert case.version == 1 and case.events.count() == 1

    def test_legal_hold_is_for_supervisors(self, client, officer_client, supervisor, case):
        refused = officer_client.post(case_url(case, "legal-hold"), {"hold": "1", "reason": "x"})
        assert refused.status_code == 403
        client.force_login(supervisor)
        response = client.post(
            case_url(case, "legal-hold"), {"hold": "1", "reason": "Ombudsman complaint"}
        )
        assert response.status_code == 302
        case.refresh_from_db()
        assert case.legal_hold is True

    def test_get_only_routes_refuse_post(self, officer_client, case):
        assert officer_client.post(case_url(case)).status_code == 405
        assert officer_client.get(case_url(case, "transition")).status_code == 405

    def test_query_count_is_constant_in_the_history_length(self, officer_client, case):
        few = count_queries(officer_client, case_url(case))
        for n in range(29):
            case_add_note(case=case, text=f"Note {n}")
        many = count_queries(officer_client, case_url(case))
        assert many == few
        assert few <= 16


class TestSensitiveCasePage:
    def test_outsider_sees_only_that_the_case_exists(self, officer_client, caseworker, sensitive):
        response = officer_client.get(case_url(sensitive))
        assert response.status_code == 200
        body = text(response)
        assert sensitive.reference in body
        assert "Adult social care referral" in body
        assert "Adult social care front door" in body
        assert "sensitive service" in body
        for secret in ("Carer", "washing", "power of attorney", sensitive.citizen.family_name):
            assert secret not in body
        assert 'name="version"' not in body
        audit = AuditEvent.objects.get(action="view", target_id=str(sensitive.pk))
        assert audit.actor == caseworker and audit.details["content_visible"] is False

    def test_outsider_cannot_change_it(self, officer_client, sensitive):
        for action, data in [
            ("transition", {"status": "open", "version": "1"}),
            ("assign", {"assignee": "", "version": "1"}),
            ("notes", {"text": "Hello"}),
            ("edit", {"version": "1", "title": "X", "priority": "2"}),
        ]:
            response = officer_client.post(case_url(sensitive, action), data)
            assert response.status_code == 403
            assert "Carer" not in text(response)
        sensitive.refresh_from_db()
        assert sensitive.version == 1 and sensitive.status == Status.NEW
        assert sensitive.events.count() == 2

    def test_team_member_sees_and_works_the_case(self, client, sensitive):
        insider = sensitive.team.members.get()
        insider.groups.add(ensure_staff_groups()["caseworker"])
        client.force_login(insider)
        body = text(client.get(case_url(sensitive)))
        assert "Carer&#x27;s assessment for Mrs Jones" in body
        assert "power of attorney" in body
        response = client.post(case_url(sensitive, "notes"), {"text": "Visited."})
        assert response.status_code == 302
