"""My data (/my/data/): the export as JSON and as a page from one assembly, who viewed my
record (teams, never names), and subject access and erasure requests opened as cases."""

import datetime
import json

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from citizenhub import gdpr
from citizenhub.catalogue import load_service_catalogue
from citizenhub.models import AuditEvent, CaseEvent, Service, ServiceCase, TimelineEntry
from citizenhub.services.cases import case_add_note, case_transition, open_case
from engagement.services import record_consent
from tests.factories import StaffUserFactory, TeamFactory

pytestmark = pytest.mark.django_db
D = datetime.date


@pytest.fixture
def catalogue(db):
    load_service_catalogue()
    return {service.code: service for service in Service.objects.all()}


def _report(citizen, service, title="Bin not emptied on Mill Lane", **extra):
    return open_case(service=service, title=title, citizen=citizen, actor=citizen.user, **extra)


def _everything(citizen, service, n=1):
    """n cases with a resident-visible reply and an internal note each, and a consent."""
    officer = StaffUserFactory()
    for i in range(n):
        case = _report(citizen, service, title=f"Bin {i} not emptied")
        case_add_note(case=case, text=f"INTERNAL NOTE {i}: neighbour says otherwise", actor=officer)
        case_transition(
            case=case,
            to_status="resolved",
            expected_version=case.version,
            actor=officer,
            resolution=f"Collected bin {i} on Tuesday.",
        )
    record_consent(
        citizen=citizen,
        purpose="residents-newsletter",
        channel="email",
        action="given",
        wording="Send me the monthly residents’ newsletter by e-mail",
        wording_version="2026-1",
        source="portal",
        actor=citizen.user,
    )


@pytest.mark.parametrize(
    "url",
    [
        "/my/data/",
        "/my/data/export.json",
        "/my/data/export/",
        "/my/data/views/",
        "/my/data/requests/subject-access/",
        "/my/data/requests/erasure/",
    ],
)
def test_every_page_needs_a_signed_in_resident(client, url):
    response = client.get(url)
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_the_page_explains_what_is_held_and_what_the_copy_leaves_out(resident_client):
    page = resident_client.get("/my/data/").content.decode()
    assert "<title>My data – " in page
    assert "What we hold and why" in page
    assert "notes council staff wrote for each other" in page
    assert 'href="/my/data/export.json"' in page and 'href="/my/data/export/"' in page
    assert "Make a formal subject access request" in page
    assert 'href="/my/data/requests/erasure/"' in page


class TestExport:
    def test_json_download_has_schema_sections_and_the_resident_s_data(
        self, resident_client, resident, other_resident, catalogue
    ):
        citizen = resident.citizen
        _everything(citizen, catalogue["missed-bin"])
        _report(other_resident.citizen, catalogue["missed-bin"], title="OTHER RESIDENT'S CASE")
        response = resident_client.get("/my/data/export.json")
        assert response.status_code == 200
        assert response["Content-Type"] == "application/json"
        assert response["Content-Disposition"].startswith('attachment; filename="my-data-')
        data = json.loads(response.content)
        assert data["schema_version"] == gdpr.EXPORT_SCHEMA_VERSION
        assert datetime.datetime.fromisoformat(data["generated_at"])
        sections = data["sections"]
        assert {
            "profile",
            "contact_points",
            "addresses",
            "cases",
            "timeline",
            "messages",  # the channels app's section
            "consents",
            "record_accesses",
        } <= set(sections)
        assert sections["profile"]["data"]["given_name"] == "Rhian"
        assert sections["contact_points"]["data"][0]["value"] == resident.email
        [case] = sections["cases"]["data"]
        assert case["title"] == "Bin 0 not emptied"
        assert case["resolution"] == "Collected bin 0 on Tuesday."
        assert [event["event"] for event in case["history"]] == ["Opened", "Status changed"]
        assert sections["consents"]["data"]["history"][0]["action"] == "Given"
        body = response.content.decode()
        assert "INTERNAL NOTE" not in body  # staff-only history stays out
        assert "OTHER RESIDENT" not in body

    def test_each_export_is_audited(self, resident_client, resident):
        resident_client.get("/my/data/export.json")
        resident_client.get("/my/data/export/")
        events = AuditEvent.objects.filter(citizen=resident.citizen, action="export")
        assert sorted(event.details["format"] for event in events) == ["html", "json"]
        assert {event.actor for event in events} == {resident}

    def test_the_web_page_shows_the_same_data_readably(self, resident_client, resident, catalogue):
        _everything(resident.citizen, catalogue["missed-bin"])
        response = resident_client.get("/my/data/export/")
        assert response.status_code == 200
        page = response.content.decode()
        assert "<title>Your data – " in page
        for text in (
            "Your cases",
            "Bin 0 not emptied",
            "Collected bin 0 on Tuesday.",
            "Your consents",
            "Send me the monthly residents’ newsletter by e-mail",
            "Who viewed your record",
            'id="section-consents"',
        ):
            assert text in page, text
        assert "INTERNAL NOTE" not in page
        assert '<style media="print">' in page

    def test_sensitive_case_details_written_by_staff_are_withheld(self, resident, catalogue):
        officer = StaffUserFactory()
        open_case(
            service=catalogue["adult-social-care"],
            title="Concern raised by a neighbour about Rhian's father",
            description="Third party details",
            citizen=resident.citizen,
            actor=officer,
        )
        _report(resident.citizen, catalogue["bereavement"], title="My own bereavement question")
        cases = {
            case["service"]: case
            for case in gdpr.export_citizen_data(resident.citizen)["sections"]["cases"]["data"]
        }
        withheld = cases["Adult social care contact"]
        assert "neighbour" not in json.dumps(withheld)
        assert withheld["title"] == "Available through a formal subject access request"
        assert cases["Bereavement services"]["title"] == "My own bereavement question"

    def test_the_export_costs_the_same_queries_for_1_and_10_cases(
        self, resident, other_resident, catalogue, django_assert_max_num_queries
    ):
        _everything(resident.citizen, catalogue["missed-bin"], n=1)
        _everything(other_resident.citizen, catalogue["missed-bin"], n=10)
        with CaptureQueriesContext(connection) as one:
            gdpr.export_citizen_data(resident.citizen)
        with django_assert_max_num_queries(len(one.captured_queries)):
            gdpr.export_citizen_data(other_resident.citizen)


class TestWhoViewed:
    @pytest.fixture
    def waste_officer(self, caseworker):
        TeamFactory(slug="waste-x", name="Waste and recycling").members.add(caseworker)
        TeamFactory(slug="contact-x", name="Contact centre").members.add(caseworker)
        caseworker.username = "jo.bloggs"
        caseworker.first_name, caseworker.last_name = "Jo", "Bloggs"
        caseworker.save()
        return caseworker

    def test_staff_views_show_teams_and_reasons_never_names(
        self, resident_client, resident, waste_officer, caseworker, catalogue
    ):
        case = _report(resident.citizen, catalogue["missed-bin"])
        staff = Client()
        staff.force_login(waste_officer)
        assert (
            staff.get(
                f"/staff/citizens/{resident.citizen.public_id}/",
                {"purpose": "Checking the missed bin"},
            ).status_code
            == 200
        )
        assert staff.get(f"/staff/cases/{case.reference}/").status_code == 200
        loner = StaffUserFactory(username="sam.loner")
        loner.groups.set(caseworker.groups.all())
        staff.force_login(loner)
        staff.get(f"/staff/citizens/{resident.citizen.public_id}/")

        page = resident_client.get("/my/data/views/").content.decode()
        assert "Contact centre, Waste and recycling" in page
        assert "Checking the missed bin" in page
        assert f"Looked at your case {case.reference}" in page
        assert "Council staff" in page  # the officer in no team
        for secret in ("jo.bloggs", "Bloggs", "sam.loner", "user:"):
            assert secret not in page
        # The resident's own export is not a "view by council staff".
        resident_client.get("/my/data/export.json")
        accesses = gdpr.record_accesses(resident.citizen)
        assert len(accesses) == 3 and all(a.action == "view" for a in accesses)

    def test_other_residents_views_never_show(self, resident_client, other_resident, waste_officer):
        staff = Client()
        staff.force_login(waste_officer)
        staff.get(f"/staff/citizens/{other_resident.citizen.public_id}/")
        page = resident_client.get("/my/data/views/").content.decode()
        assert "No council staff have looked at your record yet." in page

    def test_teams_recorded_at_view_time_win_over_today_s(self, resident):
        officer = StaffUserFactory()
        housing = TeamFactory(slug="housing-x", name="Housing repairs")
        waste = TeamFactory(slug="waste-x", name="Waste and recycling")
        housing.members.add(officer)
        gdpr.audit_record(
            action="view", target=resident.citizen, actor=officer, citizen=resident.citizen
        )
        # The officer moves to another team after looking.
        housing.members.remove(officer)
        waste.members.add(officer)

        [access] = gdpr.record_accesses(resident.citizen)

        assert access.teams == ("Housing repairs",)

    def test_query_count_is_the_same_for_1_and_30_views(
        self, resident_client, resident, catalogue, django_assert_max_num_queries
    ):
        def views(n):
            for i in range(n):
                officer = StaffUserFactory()
                TeamFactory(slug=f"t-{n}-{i}", name=f"Team {i}").members.add(officer)
                case = _report(resident.citizen, catalogue["missed-bin"])
                gdpr.audit_record(
                    action="view", target=case, actor=officer, citizen=resident.citizen
                )

        views(1)
        with CaptureQueriesContext(connection) as one:
            resident_client.get("/my/data/views/")
        views(29)
        with django_assert_max_num_queries(len(one.captured_queries)):
            page = resident_client.get("/my/data/views/").content.decode()
        assert page.count("Looked at your case") == 30


class TestRequests:
    def test_a_subject_access_request_opens_a_case_and_confirms_the_reference(
        self, resident_client, resident, catalogue
    ):
        response = resident_client.post(
            "/my/data/requests/subject-access/", {"explanation": "Council tax letters 2024"}
        )
        case = ServiceCase.objects.get(citizen=resident.citizen)
        assert case.service.code == "subject-access" and case.team.slug == "information-governance"
        assert case.description == "Council tax letters 2024" and case.source_channel == "web"
        assert response.status_code == 302
        assert response["Location"] == f"/my/data/requests/subject-access/{case.reference}/"
        page = resident_client.get(response["Location"]).content.decode()
        assert case.reference in page and "Request received" in page
        assert case.due_on.strftime("%-d %B %Y") in page

    def test_a_second_request_while_one_is_open_shows_the_first(
        self, resident_client, resident, catalogue
    ):
        resident_client.post("/my/data/requests/erasure/", {"explanation": ""})
        first = ServiceCase.objects.get(citizen=resident.citizen)
        assert first.service.code == "erasure-request"
        response = resident_client.post("/my/data/requests/erasure/", {"explanation": "again"})
        assert response.status_code == 200
        assert ServiceCase.objects.filter(citizen=resident.citizen).count() == 1
        assert f"Its reference is {first.reference}" in response.content.decode()
        assert first.reference in resident_client.get("/my/data/").content.decode()
        # The service function refuses a second one too, whoever calls it.
        result = gdpr.open_data_request(citizen=resident.citizen, service_code="erasure-request")
        assert result.case == first and not result.created
        # A subject access request is a different kind: it may be open at the same time.
        resident_client.post("/my/data/requests/subject-access/", {})
        assert ServiceCase.objects.filter(citizen=resident.citizen).count() == 2

    def test_a_closed_request_allows_a_new_one(self, resident, catalogue):
        first = gdpr.open_data_request(citizen=resident.citizen, service_code="subject-access").case
        case_transition(
            case=first, to_status="resolved", expected_version=first.version, resolution="Sent."
        )
        second = gdpr.open_data_request(citizen=resident.citizen, service_code="subject-access")
        assert second.created and second.case != first

    def test_a_too_long_explanation_is_a_clear_error_and_saves_nothing(
        self, resident_client, resident, catalogue
    ):
        response = resident_client.post(
            "/my/data/requests/erasure/", {"explanation": "x" * (gdpr.EXPLANATION_LIMIT + 1)}
        )
        assert response.status_code == 400
        page = response.content.decode()
        assert "<title>Error: Ask us to erase your information" in page
        assert "must be 2000 characters or fewer" in page
        assert 'href="#id_explanation"' in page
        assert not ServiceCase.objects.exists()

    def test_without_the_service_in_the_catalogue_the_resident_is_told(self, resident_client):
        response = resident_client.post("/my/data/requests/subject-access/", {})
        assert response.status_code == 400
        assert "cannot be made online at the moment" in response.content.decode()
        assert not ServiceCase.objects.exists()

    def test_a_post_without_csrf_token_is_refused(self, resident, catalogue):
        client = Client(enforce_csrf_checks=True)
        client.force_login(resident)
        assert client.post("/my/data/requests/erasure/", {}).status_code == 403
        assert not ServiceCase.objects.exists()

    def test_unknown_kinds_and_other_residents_references_are_not_found(
        self, resident_client, other_resident, catalogue
    ):
        theirs = gdpr.open_data_request(
            citizen=other_resident.citizen, service_code="subject-access"
        ).case
        assert resident_client.get("/my/data/requests/delete-everything/").status_code == 404
        assert (
            resident_client.get(f"/my/data/requests/subject-access/{theirs.reference}/").status_code
            == 404
        )
        assert (
            resident_client.get("/my/data/requests/subject-access/CH-2026-999999/").status_code
            == 404
        )

    @pytest.mark.parametrize(
        ("received", "due"),
        [
            # ICO: one calendar month from the day of receipt...
            (D(2026, 9, 3), D(2026, 10, 5)),  # ...3 October is a Saturday: next working day
            (D(2027, 1, 31), D(2027, 3, 1)),  # no 31 Feb: 28 Feb, a Sunday: Monday 1 March
            (D(2026, 3, 31), D(2026, 4, 30)),  # no 31 April: the last day of April
            (D(2028, 1, 30), D(2028, 2, 29)),  # a leap year has 29 February
            (D(2026, 11, 26), D(2026, 12, 29)),  # 26 Dec Saturday, 28 Dec bank holiday
            (D(2026, 12, 25), D(2027, 1, 25)),  # received on a bank holiday: counts from it
        ],
    )
    @pytest.mark.parametrize("code", ["subject-access", "erasure-request"])
    def test_the_due_date_follows_the_ico_rule(self, resident, catalogue, code, received, due):
        opened_at = timezone.make_aware(datetime.datetime.combine(received, datetime.time(10)))
        case = gdpr.open_data_request(
            citizen=resident.citizen, service_code=code, opened_at=opened_at
        ).case
        assert case.due_on == due

    def test_the_day_of_receipt_is_the_council_s_day_not_utc(self, resident, catalogue):
        # 23:30 UTC on 31 March 2026 is 00:30 on 1 April in London (BST): due 1 May.
        opened_at = datetime.datetime(2026, 3, 31, 23, 30, tzinfo=datetime.UTC)
        case = gdpr.open_data_request(
            citizen=resident.citizen, service_code="subject-access", opened_at=opened_at
        ).case
        assert case.due_on == D(2026, 5, 1)


def test_the_timeline_in_the_export_is_only_what_the_resident_may_see(resident, catalogue):
    TimelineEntry.objects.create(
        citizen=resident.citizen,
        occurred_at=timezone.now(),
        kind="note",
        summary="STAFF-ONLY REMARK",
        visibility="staff",
    )
    _report(resident.citizen, catalogue["missed-bin"])
    timeline = gdpr.export_citizen_data(resident.citizen)["sections"]["timeline"]["data"]
    assert [entry["kind"] for entry in timeline] == ["Service case"]
    assert "STAFF-ONLY" not in json.dumps(timeline)
    assert not CaseEvent.objects.filter(kind="note").exists()


def test_a_merged_profile_s_views_show_on_the_survivor(resident, catalogue):
    from citizenhub.services import citizen_create, citizen_merge

    duplicate = citizen_create(given_name="R", family_name="Evans")
    officer = StaffUserFactory()
    gdpr.audit_record(action="view", target=duplicate, actor=officer)
    citizen_merge(survivor=resident.citizen, duplicate=duplicate, by=officer, reason="Same")
    assert [a.what for a in gdpr.record_accesses(resident.citizen)] == ["Looked at your record"]


def test_every_field_of_the_export_has_a_translated_label(resident, catalogue):
    """The readable page labels each field of the export in the resident's language; a key
    without a label would show as code-ish English in a Welsh page."""
    from channels.models import Channel
    from channels.services.outbound import start_conversation
    from citizenhub.portal.views.my_data import FIELD_LABELS

    _everything(resident.citizen, catalogue["missed-bin"])
    channel = Channel.objects.create(
        kind="email-smtp", slug="labels", name="Mailbox", address="contact@example.gov.uk"
    )
    start_conversation(
        citizen=resident.citizen, channel=channel, subject="Your bin", body="Hello", by=None
    )
    export = gdpr.export_citizen_data(resident.citizen)

    def keys(value):
        if isinstance(value, dict):
            for key, inner in value.items():
                yield key
                yield from keys(inner)
        elif isinstance(value, list):
            for inner in value:
                yield from keys(inner)

    found = {key for section in export["sections"].values() for key in keys(section["data"])}
    assert {"conversations", "messages", "direction"} <= found  # the data is rich enough
    missing = sorted(found - set(FIELD_LABELS))
    assert missing == [], missing


@pytest.mark.parametrize(
    "url",
    [
        "/my/data/",
        "/my/data/export/",
        "/my/data/views/",
        "/my/data/requests/subject-access/",
        "/my/data/requests/erasure/",
        "/my/preferences/",
    ],
)
def test_pages_render_in_welsh_too(resident_client, resident, catalogue, settings, url):
    _everything(resident.citizen, catalogue["missed-bin"])
    resident_client.cookies[settings.LANGUAGE_COOKIE_NAME] = "cy"  # the toggle's choice
    response = resident_client.get(url)
    assert response.status_code == 200
    assert '<html lang="cy"' in response.content.decode()
