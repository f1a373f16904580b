"""The citizen 360 page: sections, redaction, timeline filters and keyset paging, audit."""

from __future__ import annotations

import datetime
import re
import uuid
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from citizenhub import selectors
from citizenhub.models import (
    AuditEvent,
    Citizen,
    ContactPoint,
    DuplicateCandidate,
    ServiceCase,
    TimelineEntry,
)
from citizenhub.staff import panels as panel_registry
from citizenhub.staff.access import ensure_staff_groups
from tests.e2e import conftest as e2e
from tests.factories import (
    AddressFactory,
    CitizenFactory,
    EmailContactPointFactory,
    ServiceCaseFactory,
    ServiceFactory,
    StaffUserFactory,
    TeamFactory,
    TimelineEntryFactory,
)

pytestmark = pytest.mark.django_db

REDACTED_ENTRY = "Sensitive: restricted to its team"
REDACTED_CASE = "Sensitive case: content restricted to its team"
NOW = timezone.now()


def page_url(citizen: Citizen) -> str:
    return f"/staff/citizens/{citizen.public_id}/"


def entry_ids(html: str) -> list[int]:
    return [int(pk) for pk in re.findall(r'data-entry="(\d+)"', html)]


def older_link(html: str) -> str | None:
    match = re.search(r'<div id="timeline-more"[^>]*>\s*<a [^>]*href="([^"#]+)', html)
    return match.group(1).replace("&amp;", "&") if match else None


@pytest.fixture
def officer(caseworker, client):
    client.force_login(caseworker)
    return caseworker


@pytest.fixture
def citizen(db):
    return CitizenFactory(given_name="Bethan", family_name="Rees")


@pytest.fixture
def sensitive_service(db):
    team = TeamFactory(slug="adult-social-care", name="Adult social care front door")
    return ServiceFactory(
        code="asc-assessment",
        name="Care needs assessment",
        team=team,
        department="Adult social care",
        is_sensitive=True,
    )


def fill(citizen: Citizen, n: int, *, service=None) -> None:
    """n of every kind of thing a 360 page shows."""
    for i in range(n):
        EmailContactPointFactory(citizen=citizen, is_primary=i == 0)
        AddressFactory(citizen=citizen, is_primary=i == 0, ward_code=f"E0500{1000 + i}")
        ServiceCaseFactory(citizen=citizen, status=ServiceCase.Status.OPEN)
        ServiceCaseFactory(citizen=citizen, status=ServiceCase.Status.CLOSED)
        TimelineEntryFactory(citizen=citizen, occurred_at=NOW - datetime.timedelta(minutes=i))
        if service is not None:
            ServiceCaseFactory(citizen=citizen, service=service, team=service.team)
            TimelineEntryFactory(
                citizen=citizen,
                service_code=service.code,
                summary="Carer assessment booked",
                occurred_at=NOW - datetime.timedelta(minutes=i, seconds=30),
            )


# --- Sections -----------------------------------------------------------------------------


class TestSections:
    def test_shows_every_section(self, officer, client, citizen):
        live = EmailContactPointFactory(
            citizen=citizen, value="bethan@example.org", verification_level="confirmed"
        )
        ContactPoint.objects.create(
            citizen=citizen,
            kind="phone",
            value="07700 900456",
            normalised="+447700900456",
            match_key="+447700900456",
            undeliverable_at=NOW,
        )
        ContactPoint.objects.create(
            citizen=citizen,
            kind="email",
            value="old@example.org",
            normalised="old@example.org",
            match_key="old@example.org",
            removed_at=NOW,
        )
        AddressFactory(
            citizen=citizen, postcode="NM2 7QT", uprn="100012345678", ward_code="W05001234"
        )
        open_case = ServiceCaseFactory(
            citizen=citizen,
            status=ServiceCase.Status.OPEN,
            title="Pothole outside number 4",
            due_on=timezone.localdate() - datetime.timedelta(days=2),
        )
        past_case = ServiceCaseFactory(
            citizen=citizen, status=ServiceCase.Status.CLOSED, title="Missed bin in May"
        )
        TimelineEntryFactory(
            citizen=citizen, summary="Asked about garden waste", department="Waste"
        )

        response = client.get(page_url(citizen))
        html = response.content.decode()
        assert response.status_code == 200
        assert "<h1" in html and "Bethan Rees" in html
        # Identities with kind, value, verification, primary and flags.
        assert live.value in html and "Confirmed by code or link" in html
        assert (
            "Undeliverable" in html and "Removed" in html and "<del>old@example.org</del>" in html
        )
        # Addresses with UPRN and ward.
        assert "NM2 7QT" in html and "100012345678" in html and "W05001234" in html
        # Cases, open and past, with links and the overdue tag.
        open_table = html.split('id="open-cases"')[1].split("</table>")[0]
        assert f'href="/staff/cases/{open_case.reference}/"' in open_table
        assert "Overdue" in open_table
        assert past_case.reference in html.split('id="past-cases"')[1]
        # Timeline, actions.
        assert "Asked about garden waste" in html
        assert f'href="/staff/cases/new/?citizen={citizen.public_id}"' in html
        assert "Open a case" in html

    def test_cases_are_ordered_and_bounded(self, officer, client, citizen):
        today = timezone.localdate()
        later = ServiceCaseFactory(
            citizen=citizen, status="open", due_on=today + datetime.timedelta(days=9)
        )
        sooner = ServiceCaseFactory(
            citizen=citizen, status="in_progress", due_on=today + datetime.timedelta(days=1)
        )
        past = [
            ServiceCaseFactory(
                citizen=citizen, status="closed", opened_at=NOW - datetime.timedelta(days=i)
            )
            for i in range(12)
        ]
        html = client.get(page_url(citizen)).content.decode()
        open_table = html.split('id="open-cases"')[1].split("</table>")[0]
        assert re.findall(r'data-reference="([^"]+)"', open_table) == [
            sooner.reference,
            later.reference,
        ]
        past_table = html.split('id="past-cases"')[1].split("</table>")[0]
        assert re.findall(r'data-reference="([^"]+)"', past_table) == [
            case.reference for case in past[:10]
        ]
        assert "Only the most recent past cases are shown." in html

    def test_empty_profile(self, officer, client, citizen):
        html = client.get(page_url(citizen)).content.decode()
        assert "No e-mail address, phone number or account is recorded." in html
        assert "No address is recorded." in html
        assert "No open cases." in html
        assert "Nothing has happened between this resident and the council yet." in html

    def test_duplicates_link_only_when_there_is_a_suggestion(self, officer, client, citizen):
        assert "Compare and decide" not in client.get(page_url(citizen)).content.decode()
        weak, strong = CitizenFactory(), CitizenFactory()
        for other, score in ((weak, 0.6), (strong, 0.9)):
            a, b = sorted([citizen, other], key=lambda c: c.pk)
            candidate = DuplicateCandidate.objects.create(
                citizen_a=a, citizen_b=b, score=score, method="test"
            )
        html = client.get(page_url(citizen)).content.decode()
        assert f'href="/staff/duplicates/{candidate.pk}/"' in html  # the strongest one

    def test_open_a_case_needs_the_permission(self, client, citizen):
        reader = StaffUserFactory()
        reader.user_permissions.add(Permission.objects.get(codename="view_citizen"))
        client.force_login(reader)
        html = client.get(page_url(citizen)).content.decode()
        assert "Open a case" not in html

    def test_panels_from_the_registry(self, officer, client, citizen, monkeypatch, settings):
        calls = []

        def provider(request, obj):
            calls.append(obj.pk)
            return panel_registry.Panel(
                key="test-panel", title="Test panel", template_name="tests/panel.html"
            )

        monkeypatch.setitem(panel_registry._citizen_panels, "test-panel", (99, provider))
        settings.TEMPLATES = _with_template(
            settings.TEMPLATES, "tests/panel.html", "<h2>{{ panel.title }}</h2><p>panel body</p>"
        )
        html = client.get(page_url(citizen)).content.decode()
        assert calls == [citizen.pk]
        assert 'data-panel="test-panel"' in html and "panel body" in html


def _with_template(templates: list[dict], name: str, source: str) -> list[dict]:
    """The TEMPLATES setting with one more template, as if another app had it."""
    engine = dict(templates[0])
    options = dict(engine.get("OPTIONS", {}))
    engine["APP_DIRS"] = False
    options["loaders"] = [
        ("django.template.loaders.locmem.Loader", {name: source}),
        "django.template.loaders.filesystem.Loader",
        "django.template.loaders.app_directories.Loader",
    ]
    engine["OPTIONS"] = options
    return [engine, *templates[1:]]


# --- Sensitive content --------------------------------------------------------------------


class TestRedaction:
    def test_outsider_sees_that_it_exists_not_what_it_says(
        self, officer, client, citizen, sensitive_service
    ):
        case = ServiceCaseFactory(
            citizen=citizen,
            service=sensitive_service,
            team=sensitive_service.team,
            title="Safeguarding concern",
        )
        TimelineEntryFactory(
            citizen=citizen,
            service_code=sensitive_service.code,
            department="Adult social care",
            summary="Referral from GP about self-neglect",
        )
        TimelineEntryFactory(citizen=citizen, summary="Reported a pothole")
        html = client.get(page_url(citizen)).content.decode()
        assert case.reference in html
        assert REDACTED_CASE in html
        assert "Safeguarding concern" not in html
        assert REDACTED_ENTRY in html
        assert "self-neglect" not in html
        assert "Reported a pothole" in html
        assert html.count('data-redacted="true"') == 2

    def test_team_member_sees_the_content(self, client, citizen, sensitive_service):
        member = StaffUserFactory()
        member.groups.add(ensure_staff_groups()["caseworker"])
        sensitive_service.team.members.add(member)
        client.force_login(member)
        ServiceCaseFactory(
            citizen=citizen,
            service=sensitive_service,
            team=sensitive_service.team,
            title="Safeguarding concern",
        )
        TimelineEntryFactory(
            citizen=citizen,
            service_code=sensitive_service.code,
            summary="Referral from GP about self-neglect",
        )
        html = client.get(page_url(citizen)).content.decode()
        assert "Safeguarding concern" in html
        assert "self-neglect" in html
        assert REDACTED_ENTRY not in html and REDACTED_CASE not in html

    def test_redacted_in_the_load_more_fragment_too(
        self, officer, client, citizen, sensitive_service
    ):
        for i in range(30):
            TimelineEntryFactory(
                citizen=citizen,
                service_code=sensitive_service.code,
                summary=f"Secret note {i}",
                occurred_at=NOW - datetime.timedelta(minutes=i),
            )
        first = client.get(page_url(citizen)).content.decode()
        fragment = client.get(older_link(first), HTTP_HX_REQUEST="true").content.decode()
        assert "Secret note" not in first + fragment
        assert fragment.count(REDACTED_ENTRY) == 5


# --- Timeline: filters and keyset paging ----------------------------------------------------


class TestTimeline:
    def test_newest_first_in_pages_of_25(self, officer, client, citizen):
        entries = [
            TimelineEntryFactory(citizen=citizen, occurred_at=NOW - datetime.timedelta(hours=i))
            for i in range(60)
        ]
        html = client.get(page_url(citizen)).content.decode()
        assert entry_ids(html) == [e.pk for e in entries[:25]]
        assert older_link(html)

    def test_paging_is_stable_while_entries_arrive(self, officer, client, citizen):
        # Same occurred_at for several entries: the id settles ties.
        entries = [
            TimelineEntryFactory(
                citizen=citizen, occurred_at=NOW - datetime.timedelta(minutes=i // 3)
            )
            for i in range(60)
        ]
        expected = [
            e.pk for e in sorted(entries, key=lambda e: (e.occurred_at, e.pk), reverse=True)
        ]
        seen: list[int] = []
        url = page_url(citizen)
        for round_ in range(5):
            html = client.get(url).content.decode()
            seen.extend(entry_ids(html))
            # New activity arrives between pages, newer than anything already shown.
            TimelineEntryFactory(
                citizen=citizen, occurred_at=timezone.now() + datetime.timedelta(seconds=round_)
            )
            url = older_link(html)
            if url is None:
                break
        assert seen == expected
        assert "This is the start of the timeline." in html
        assert "Back to the newest entries" in html

    def test_htmx_load_more_returns_rows_and_the_next_link(self, officer, client, citizen):
        for i in range(60):
            TimelineEntryFactory(citizen=citizen, occurred_at=NOW - datetime.timedelta(hours=i))
        first = client.get(page_url(citizen)).content.decode()
        link = older_link(first)
        assert f'hx-get="{link.replace("&", "&amp;")}"' in first or f'hx-get="{link}"' in first
        response = client.get(link, HTTP_HX_REQUEST="true")
        fragment = response.content.decode()
        assert response.status_code == 200
        assert "<html" not in fragment and "<tr" in fragment
        assert 'id="timeline-more" hx-swap-oob="true"' in fragment
        assert len(entry_ids(fragment)) == 25
        assert set(entry_ids(fragment)).isdisjoint(entry_ids(first))
        # Without the HTMX header the same link is a whole page (works without JavaScript).
        assert "<html" in client.get(link).content.decode()

    def test_filters_by_kind_channel_and_department(self, officer, client, citizen):
        call = TimelineEntryFactory(
            citizen=citizen, kind="call", channel="phone", department="Highways"
        )
        email = TimelineEntryFactory(
            citizen=citizen, kind="message_in", channel="email", department="Waste"
        )
        case = TimelineEntryFactory(citizen=citizen, kind="case", channel="", department="Waste")
        url = page_url(citizen)
        assert entry_ids(client.get(url, {"kind": "call"}).content.decode()) == [call.pk]
        assert set(entry_ids(client.get(url, {"kind": ["call", "case"]}).content.decode())) == {
            call.pk,
            case.pk,
        }
        assert entry_ids(client.get(url, {"channel": "email"}).content.decode()) == [email.pk]
        assert set(entry_ids(client.get(url, {"department": "Waste"}).content.decode())) == {
            email.pk,
            case.pk,
        }
        html = client.get(url, {"department": "Waste", "kind": "case"}).content.decode()
        assert entry_ids(html) == [case.pk]
        assert 'value="case" checked' in html
        assert '<option value="Waste" selected>' in html
        assert "Clear filters" in html
        assert (
            "No timeline entries match these filters."
            in client.get(url, {"channel": "facebook"}).content.decode()
        )

    def test_filters_are_kept_when_paging(self, officer, client, citizen):
        for i in range(80):
            TimelineEntryFactory(
                citizen=citizen,
                kind="call" if i % 2 else "note",
                occurred_at=NOW - datetime.timedelta(hours=i),
            )
        html = client.get(page_url(citizen), {"kind": "call"}).content.decode()
        link = older_link(html)
        assert parse_qs(urlsplit(link).query)["kind"] == ["call"]
        rest = client.get(link).content.decode()
        kinds = set(
            TimelineEntry.objects.filter(pk__in=entry_ids(html) + entry_ids(rest)).values_list(
                "kind", flat=True
            )
        )
        assert kinds == {"call"}
        assert len(entry_ids(html) + entry_ids(rest)) == 40

    @pytest.mark.parametrize(
        "params",
        [
            {"before": "not-a-cursor"},
            {"before": "W10"},  # valid base64 of a non-list
            {"before": "WyJ4IiwgMV0"},  # ["x", 1]
            {"before": "WyIyMDI2LTAxLTAxVDAwOjAwOjAwIiwgMV0"},  # naive datetime
            {"kind": "nonsense"},
            {"channel": "carrier-pigeon"},
            {"department": "d" * 101},
        ],
    )
    def test_bad_parameters_are_a_clear_400(self, officer, client, citizen, params):
        TimelineEntryFactory(citizen=citizen, summary="Still shown")
        response = client.get(page_url(citizen), params)
        html = response.content.decode()
        assert response.status_code == 400
        assert "There is a problem" in html
        assert "Still shown" in html

    def test_no_count_query_over_the_timeline(
        self, officer, client, citizen, django_assert_max_num_queries
    ):
        fill(citizen, 3)
        with django_assert_max_num_queries(40) as captured:
            client.get(page_url(citizen))
        for query in captured.captured_queries:
            sql = query["sql"].upper()
            assert not ("COUNT(" in sql and "CITIZENHUB_TIMELINEENTRY" in sql), sql


def test_timeline_cursor_round_trip(citizen):
    entry = TimelineEntryFactory(citizen=citizen)
    assert selectors.decode_timeline_cursor(selectors.encode_timeline_cursor(entry)) == (
        entry.occurred_at,
        entry.pk,
    )


# --- Audit ------------------------------------------------------------------------------------


class TestAudit:
    def test_purpose_travels_with_the_older_entries_link(self, officer, client, citizen):
        for i in range(30):
            TimelineEntryFactory(citizen=citizen, occurred_at=NOW - datetime.timedelta(hours=i))
        first = client.get(page_url(citizen), {"purpose": "Complaint call"}).content.decode()
        assert 'name="purpose" value="Complaint call"' in first  # kept by the filter form
        client.get(older_link(first), HTTP_HX_REQUEST="true")
        reasons = set(AuditEvent.objects.filter(citizen=citizen).values_list("reason", flat=True))
        assert reasons == {"Complaint call"}

    def test_every_view_leaves_an_audit_row(self, officer, client, citizen):
        for _ in range(3):
            client.get(page_url(citizen))
        events = AuditEvent.objects.filter(citizen=citizen, action=AuditEvent.Action.VIEW)
        assert events.count() == 3
        event = events.first()
        assert event.actor == officer
        assert event.target == citizen
        assert event.details["page"] == "citizen_360"

    def test_purpose_is_recorded_when_given(self, officer, client, citizen):
        client.get(page_url(citizen), {"purpose": "  Call  from resident about council tax "})
        event = AuditEvent.objects.get(citizen=citizen)
        assert event.reason == "Call from resident about council tax"
        assert event.details["purpose_given"] is True

    def test_load_more_is_audited_too(self, officer, client, citizen):
        for i in range(30):
            TimelineEntryFactory(citizen=citizen, occurred_at=NOW - datetime.timedelta(hours=i))
        first = client.get(page_url(citizen)).content.decode()
        client.get(older_link(first), HTTP_HX_REQUEST="true")
        parts = list(
            AuditEvent.objects.filter(citizen=citizen).values_list("details__part", flat=True)
        )
        assert sorted(parts) == ["page", "timeline_more"]

    def test_refusals_and_redirects_are_not_views(self, client, staff_user, citizen):
        client.force_login(staff_user)
        client.get(page_url(citizen))
        assert not AuditEvent.objects.filter(citizen=citizen).exists()


# --- Merged, missing, refused ------------------------------------------------------------------


def test_merged_profile_redirects_to_the_survivor_with_a_banner(officer, client):
    survivor = CitizenFactory(given_name="Catrin", family_name="Lloyd")
    middle = CitizenFactory(status=Citizen.Status.MERGED, merged_into=survivor)
    duplicate = CitizenFactory(
        given_name="Cat", family_name="Lloyd", status=Citizen.Status.MERGED, merged_into=middle
    )
    response = client.get(page_url(duplicate))
    assert response.status_code == 302
    assert response["Location"] == page_url(survivor)
    followed = client.get(response["Location"]).content.decode()
    assert "The profile you opened (Cat Lloyd) was merged into this one." in followed
    assert "govuk-notification-banner" in followed
    assert not AuditEvent.objects.filter(citizen=duplicate).exists()
    assert AuditEvent.objects.filter(citizen=survivor).count() == 1


def test_unknown_citizen_is_404(officer, client):
    assert client.get(f"/staff/citizens/{uuid.uuid4()}/").status_code == 404
    assert client.get("/staff/citizens/not-a-uuid/").status_code == 404


def test_citizens_root_goes_to_search(officer, client):
    response = client.get("/staff/citizens/")
    assert response.status_code == 302 and response["Location"] == "/staff/search/"


class TestPermissions:
    def test_anonymous_is_sent_to_sign_in(self, client, citizen):
        response = client.get(page_url(citizen))
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]

    def test_residents_are_refused(self, client, resident_user, citizen):
        client.force_login(resident_user)
        assert client.get(page_url(citizen)).status_code == 403

    def test_staff_without_view_citizen_are_refused(self, client, staff_user, citizen):
        client.force_login(staff_user)
        response = client.get(page_url(citizen))
        assert response.status_code == 403
        assert "Bethan" not in response.content.decode()

    def test_comms_officer_has_no_access(self, client, citizen):
        comms = StaffUserFactory()
        comms.groups.add(ensure_staff_groups()["comms officer"])
        client.force_login(comms)
        assert client.get(page_url(citizen)).status_code == 403

    def test_only_get(self, officer, client, citizen):
        assert client.post(page_url(citizen)).status_code == 405


# --- Query counts --------------------------------------------------------------------------


def test_query_count_is_the_same_for_1_and_30_of_everything(
    officer, client, sensitive_service, django_assert_max_num_queries
):
    small, big = CitizenFactory(), CitizenFactory()
    fill(small, 1, service=sensitive_service)
    fill(big, 30, service=sensitive_service)
    client.get(page_url(small))  # content types and permissions cached, as in production
    with django_assert_max_num_queries(30) as one:
        client.get(page_url(small))
    with django_assert_max_num_queries(len(one.captured_queries)):
        response = client.get(page_url(big))
    assert len(entry_ids(response.content.decode())) == 25


def test_load_more_query_count_is_constant(officer, client, citizen, django_assert_max_num_queries):
    for i in range(80):
        TimelineEntryFactory(citizen=citizen, occurred_at=NOW - datetime.timedelta(minutes=i))
    first = client.get(page_url(citizen)).content.decode()
    second_link = older_link(first)
    with django_assert_max_num_queries(10) as one:
        second = client.get(second_link, HTTP_HX_REQUEST="true").content.decode()
    with django_assert_max_num_queries(len(one.captured_queries)):
        client.get(older_link(second), HTTP_HX_REQUEST="true")


# --- In a browser: accessibility and HTMX "load more" ------------------------------------------

# The browser fixtures of tests/e2e (Debian's Chromium; skipped where it is missing).
browser = e2e.browser
page = e2e.page


def signed_in(page, live_server, user) -> None:
    """Give the browser a session for `user` (sign-in itself is tested in tests/e2e)."""
    from django.test import Client

    client = Client()
    client.force_login(user)
    page.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}]
    )


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_in_a_browser_accessible_and_load_more_appends(page, live_server, sensitive_service):
    officer = StaffUserFactory()
    officer.groups.add(ensure_staff_groups()["caseworker"])
    citizen = CitizenFactory(given_name="Bethan", family_name="Rees")
    fill(citizen, 30, service=sensitive_service)
    other = CitizenFactory()
    DuplicateCandidate.objects.create(citizen_a=citizen, citizen_b=other, score=0.9, method="t")
    signed_in(page, live_server, officer)

    page.goto(f"{live_server.url}{page_url(citizen)}")
    assert page.locator("h1").inner_text().startswith("Bethan Rees")
    violations = e2e.axe_violations(page)
    assert not violations, e2e.describe(violations)
    rows = page.locator("#timeline-rows tr")
    assert rows.count() == 25
    page.get_by_role("link", name="Older entries on the timeline").click()
    page.wait_for_function("document.querySelectorAll('#timeline-rows tr').length === 50")
    assert page.url.endswith(page_url(citizen))  # appended in place, no navigation
    page.get_by_role("link", name="Older entries on the timeline").click()
    page.wait_for_function("document.querySelectorAll('#timeline-rows tr').length === 60")
    assert page.get_by_text("This is the start of the timeline.").is_visible()
    violations = e2e.axe_violations(page)
    assert not violations, e2e.describe(violations)
    e2e.screenshot(page, "citizen-360")

    # The filters, opened, with an error (a damaged cursor).
    page.goto(f"{live_server.url}{page_url(citizen)}?kind=call&before=damaged")
    assert page.get_by_text("There is a problem").is_visible()
    violations = e2e.axe_violations(page)
    assert not violations, e2e.describe(violations)
