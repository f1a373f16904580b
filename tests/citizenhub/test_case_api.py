"""The cases API (and the catalogue's): reads, filters, changes, conflicts, sensitive cases."""

import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

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

CASES = "/api/v1/cases/"
Status = ServiceCase.Status


def case_url(case: ServiceCase, action: str = "") -> str:
    return f"{CASES}{case.reference}/" + (f"{action}/" if action else "")


@pytest.fixture
def team(caseworker):
    team = TeamFactory(slug="waste", name="Waste and recycling")
    team.members.add(caseworker)
    return team


@pytest.fixture
def service(team):
    return ServiceFactory(code="missed-bin", name="Missed bin collection", team=team)


@pytest.fixture
def api(caseworker):
    client = APIClient()
    client.force_authenticate(caseworker)
    return client


@pytest.fixture
def case(service):
    return open_case(
        service=service,
        title="Green bin not emptied",
        description="Out by 7am.",
        citizen=CitizenFactory(),
        postcode="NM1 4AB",
    )


@pytest.fixture
def sensitive():
    care_team = TeamFactory(slug="adult-social-care", name="Adult social care front door")
    service = ServiceFactory(code="asc-referral", team=care_team, is_sensitive=True)
    case = open_case(
        service=service,
        title="Carer's assessment for Mrs Jones",
        description="Needs help with washing.",
        citizen=CitizenFactory(),
        location_text="4 Mill Lane",
    )
    case_add_note(case=case, text="Daughter has power of attorney.")
    return case


def references(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [row["reference"] for row in response.json()["results"]]


class TestAccess:
    def test_anonymous_is_refused_in_the_error_shape(self, api_client):
        response = api_client.get(CASES)
        assert response.status_code in (401, 403)
        assert response.json()["error"]["code"] == "not_authenticated"

    def test_staff_without_the_casework_role_are_refused(self, staff_api, case):
        response = staff_api.get(CASES)
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "permission_denied"
        assert staff_api.get(case_url(case)).status_code == 403
        assert staff_api.post(CASES, {"service": "missed-bin", "title": "x"}).status_code == 403

    def test_integration_user_with_a_token_and_a_group(self, api_client, case):
        integration = StaffUserFactory(username="crm-integration")
        integration.groups.add(ensure_staff_groups()["caseworker"])
        token = Token.objects.create(user=integration)
        response = api_client.get(CASES, HTTP_AUTHORIZATION=f"Token {token.key}")
        assert references(response) == [case.reference]


class TestRead:
    def test_list_and_retrieve(self, api, caseworker, case):
        response = api.get(CASES)
        [row] = response.json()["results"]
        assert row["reference"] == case.reference
        assert row["citizen"] == str(case.citizen.public_id)
        assert row["service"] == "missed-bin"
        assert row["service_name"] == "Missed bin collection"
        assert row["team"] == "waste"
        assert row["status"] == "new" and row["version"] == 1
        assert row["title"] == "Green bin not emptied"
        assert row["postcode"] == "NM1 4AB"
        assert row["content_restricted"] is False
        assert row["overdue"] is False

        detail = api.get(case_url(case))
        assert detail.status_code == 200
        assert detail.json() == row
        audit = AuditEvent.objects.get(action="view", target_id=str(case.pk))
        assert audit.actor == caseworker and audit.citizen == case.citizen

    def test_unknown_reference_is_404_in_the_error_shape(self, api):
        response = api.get(f"{CASES}CH-2026-999999/")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"

    def test_keyset_pages(self, api, service):
        made = [ServiceCaseFactory(service=service) for _ in range(5)]
        first = api.get(CASES, {"page_size": 2})
        assert references(first) == [made[4].reference, made[3].reference]
        rows = []
        url = f"{CASES}?page_size=2"
        while url:
            page = api.get(url)
            rows.extend(references(page))
            url = page.json()["next"]
        assert rows == [c.reference for c in reversed(made)]

    def test_filters(self, api, caseworker, team, service):
        today = timezone.localdate()
        citizen = CitizenFactory()
        other_team = TeamFactory(slug="highways")
        mine = ServiceCaseFactory(service=service, assignee=caseworker, citizen=citizen)
        overdue = ServiceCaseFactory(service=service, due_on=today - datetime.timedelta(days=1))
        waiting = ServiceCaseFactory(service=service, status=Status.WAITING, title="Fox damage")
        pothole = ServiceCaseFactory(service=ServiceFactory(code="pothole", team=other_team))

        def refs(**params):
            return set(references(api.get(CASES, params)))

        assert refs(status="waiting") == {waiting.reference}
        assert refs(service="pothole") == {pothole.reference}
        assert refs(team="highways") == {pothole.reference}
        assert refs(assignee=caseworker.username) == {mine.reference}
        assert refs(citizen=str(citizen.public_id)) == {mine.reference}
        assert refs(overdue="true") == {overdue.reference}
        assert overdue.reference not in refs(overdue="false")
        assert refs(q=pothole.reference.lower()) == {pothole.reference}
        assert refs(q="fox") == {waiting.reference}

    @pytest.mark.parametrize(
        "params", [{"status": "archived"}, {"citizen": "not-a-uuid"}, {"cursor": "%%%"}]
    )
    def test_bad_filters_are_400(self, api, params):
        response = api.get(CASES, params)
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invalid"

    def test_list_query_count_is_constant(self, api, caseworker, service, sensitive):
        def fresh_user():
            # A new user object per request, as in production: permissions are not cached.
            api.force_authenticate(type(caseworker).objects.get(pk=caseworker.pk))

        ServiceCaseFactory(service=service)
        fresh_user()
        with CaptureQueriesContext(connection) as few:
            assert api.get(CASES).status_code == 200
        for _ in range(29):
            ServiceCaseFactory(service=ServiceFactory(), assignee=StaffUserFactory())
        fresh_user()
        with CaptureQueriesContext(connection) as many:
            response = api.get(CASES)
        assert len(response.json()["results"]) == 31
        assert len(many) == len(few)
        assert len(few) <= 6


class TestCreate:
    def test_open_a_case(self, api, caseworker, service):
        citizen = CitizenFactory()
        response = api.post(
            CASES,
            {
                "service": "missed-bin",
                "citizen": str(citizen.public_id),
                "title": "Green bin not emptied",
                "priority": 3,
                "source_channel": "phone",
                "postcode": "nm1 4ab",
            },
            format="json",
        )
        assert response.status_code == 201, response.content
        body = response.json()
        case = ServiceCase.objects.get(reference=body["reference"])
        assert body["reference"].startswith("CH-")
        assert body["due_on"] == case.due_on.isoformat()
        assert case.citizen == citizen and case.created_by == caseworker
        assert case.priority == 3 and case.postcode == "NM1 4AB"

    def test_anonymous_report(self, api, service):
        response = api.post(CASES, {"service": "missed-bin", "title": "Pothole"}, format="json")
        assert response.status_code == 201
        assert response.json()["citizen"] is None

    @pytest.mark.parametrize(
        ("payload", "field"),
        [
            ({"service": "missed-bin", "title": "Bin", "colour": "green"}, "colour"),
            ({"service": "no-such-service", "title": "Bin"}, "service"),
            ({"service": "missed-bin"}, "title"),
            ({"service": "missed-bin", "title": "Bin", "priority": 9}, "priority"),
            (
                {
                    "service": "missed-bin",
                    "title": "Bin",
                    "citizen": "7b0c5b1e-0000-4000-8000-000000000000",
                },
                "citizen",
            ),
            ({"service": "missed-bin", "title": "Bin", "postcode": "12345"}, "postcode"),
        ],
    )
    def test_bad_input_is_400_naming_the_field(self, api, service, payload, field):
        response = api.post(CASES, payload, format="json")
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["code"] == "invalid"
        assert field in error["fields"]
        assert not ServiceCase.objects.exists()

    def test_inactive_service_is_refused_by_the_service(self, api, service):
        service.is_active = False
        service.save()
        response = api.post(CASES, {"service": "missed-bin", "title": "Bin"}, format="json")
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "inactive"


class TestTransition:
    def test_transition(self, api, case):
        response = api.post(
            case_url(case, "transition"), {"status": "in_progress", "version": 1}, format="json"
        )
        assert response.status_code == 200, response.content
        assert response.json()["status"] == "in_progress"
        assert response.json()["version"] == 2

    def test_stale_version_is_409(self, api, case):
        colleague = StaffUserFactory(first_name="Priya", last_name="Shah")
        case_transition(case=case, to_status=Status.OPEN, expected_version=1, actor=colleague)
        response = api.post(
            case_url(case, "transition"), {"status": "in_progress", "version": 1}, format="json"
        )
        assert response.status_code == 409
        error = response.json()["error"]
        assert error["code"] == "conflict"
        assert error["details"] == {"current_version": 2, "changed_by": "Priya Shah"}
        case.refresh_from_db()
        assert case.status == Status.OPEN and case.version == 2

    def test_illegal_transition_is_400(self, api, case):
        case_transition(case=case, to_status=Status.CLOSED, expected_version=1, reason="Dup")
        response = api.post(
            case_url(case, "transition"),
            {"status": "resolved", "version": 2, "resolution": "Done"},
            format="json",
        )
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["code"] == "illegal_transition"
        assert error["details"]["allowed"] == ["open"]
        case.refresh_from_db()
        assert case.status == Status.CLOSED and case.version == 2

    @pytest.mark.parametrize(
        ("payload", "field"),
        [
            ({"status": "resolved", "version": 1}, "resolution"),
            ({"status": "archived", "version": 1}, "status"),
            ({"status": "open"}, "version"),
            ({"status": "open", "version": 1, "note": "hi"}, "note"),
        ],
    )
    def test_bad_input_is_400(self, api, case, payload, field):
        response = api.post(case_url(case, "transition"), payload, format="json")
        assert response.status_code == 400
        assert field in response.json()["error"]["fields"]
        case.refresh_from_db()
        assert case.version == 1


class TestNotesAndAssign:
    def test_notes(self, api, case):
        created = api.post(case_url(case, "notes"), {"text": "Called back."}, format="json")
        assert created.status_code == 201
        assert created.json()["visibility"] == "staff"
        listed = api.get(case_url(case, "notes"))
        assert listed.status_code == 200
        assert [n["text"] for n in listed.json()["results"]] == ["Called back."]
        assert api.post(case_url(case, "notes"), {"text": ""}, format="json").status_code == 400
        assert api.post(case_url(case, "notes"), {}, format="json").status_code == 400

    def test_assign(self, api, caseworker, case):
        response = api.post(
            case_url(case, "assign"),
            {"assignee": caseworker.username, "version": 1},
            format="json",
        )
        assert response.status_code == 200, response.content
        assert response.json()["assignee"] == caseworker.username
        unassigned = api.post(
            case_url(case, "assign"), {"assignee": None, "version": 2}, format="json"
        )
        assert unassigned.json()["assignee"] is None

    def test_assign_refusals(self, api, case):
        outsider = StaffUserFactory(username="outsider")
        response = api.post(
            case_url(case, "assign"), {"assignee": "outsider", "version": 1}, format="json"
        )
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "not_in_team"
        unknown = api.post(
            case_url(case, "assign"), {"assignee": "nobody-here", "version": 1}, format="json"
        )
        assert unknown.status_code == 400
        assert "assignee" in unknown.json()["error"]["fields"]
        stale = api.post(case_url(case, "assign"), {"assignee": None, "version": 7}, format="json")
        assert stale.status_code == 409
        case.refresh_from_db()
        assert case.version == 1 and outsider.pk

    def test_read_only_role_cannot_change(self, api_client, case, team):
        reader = StaffUserFactory()
        reader.groups.add(ensure_staff_groups()["comms officer"])
        team.members.add(reader)
        api_client.force_authenticate(reader)
        assert api_client.post(case_url(case, "notes"), {"text": "x"}).status_code == 403


class TestSensitive:
    def test_outsider_sees_a_redacted_case(self, api, sensitive):
        [row] = [
            r for r in api.get(CASES).json()["results"] if r["reference"] == sensitive.reference
        ]
        assert row["content_restricted"] is True
        for field in ("title", "description", "resolution", "citizen", "location_text"):
            assert row[field] is None
        assert row["service"] == "asc-referral" and row["team"] == "adult-social-care"
        assert row["status"] == "new" and row["due_on"]
        detail = api.get(case_url(sensitive)).json()
        assert detail == row

    def test_outsider_cannot_find_it_by_title(self, api, sensitive):
        assert references(api.get(CASES, {"q": "carer"})) == []
        # The reference is not secret: searching by it finds the redacted case.
        assert references(api.get(CASES, {"q": sensitive.reference})) == [sensitive.reference]

    def test_outsider_cannot_work_on_it(self, api, sensitive):
        for method, action, payload in [
            ("get", "notes", None),
            ("post", "notes", {"text": "hi"}),
            ("post", "transition", {"status": "open", "version": 1}),
            ("post", "assign", {"assignee": None, "version": 1}),
        ]:
            response = getattr(api, method)(case_url(sensitive, action), payload, format="json")
            assert response.status_code == 403, (action, response.content)
            assert response.json()["error"]["code"] == "permission_denied"
            assert b"attorney" not in response.content
        sensitive.refresh_from_db()
        assert sensitive.version == 1
        assert sensitive.events.filter(kind=CaseEvent.Kind.NOTE).count() == 1

    def test_team_member_sees_everything(self, api_client, sensitive):
        insider = StaffUserFactory()
        insider.groups.add(ensure_staff_groups()["caseworker"])
        sensitive.team.members.add(insider)
        api_client.force_authenticate(insider)
        row = api_client.get(case_url(sensitive)).json()
        assert row["content_restricted"] is False
        assert row["title"] == "Carer's assessment for Mrs Jones"
        assert references(api_client.get(CASES, {"q": "carer"})) == [sensitive.reference]
        notes = api_client.get(case_url(sensitive, "notes")).json()["results"]
        assert [n["text"] for n in notes] == ["Daughter has power of attorney."]


class TestCatalogue:
    def test_services_and_teams(self, api, service, sensitive):
        services = api.get("/api/v1/services/")
        assert services.status_code == 200
        codes = [row["code"] for row in services.json()]
        assert set(codes) == {"missed-bin", "asc-referral"}
        one = api.get("/api/v1/services/missed-bin/").json()
        assert one["team"] == "waste" and one["clock_type"] == "working_days"
        teams = api.get("/api/v1/teams/")
        assert {row["slug"] for row in teams.json()} == {"waste", "adult-social-care"}

    def test_catalogue_is_read_only_and_for_staff(self, api, api_client, service):
        assert api.post("/api/v1/services/", {"code": "x"}).status_code == 405
        assert api.post("/api/v1/teams/", {"slug": "x"}).status_code == 405
        assert api_client.get("/api/v1/services/").status_code in (401, 403)
