"""The staff search box: every kind of term, hostile input, sensitive cases, the page."""

from __future__ import annotations

import datetime
import re

import pytest
from django.db import connection
from django.utils import timezone

from citizenhub import search
from citizenhub.models import Citizen, ContactPoint, ServiceCase
from citizenhub.services import citizen_create
from tests.e2e import conftest as e2e
from tests.factories import (
    AddressFactory,
    CitizenFactory,
    ServiceCaseFactory,
    ServiceFactory,
    StaffUserFactory,
    TeamFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

SEARCH = "/staff/search/"
on_postgres = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="trigram similarity needs PostgreSQL"
)


def resident(given: str, family: str, **contact) -> Citizen:
    """A resident made through the service, so identities are normalised as in production."""
    points = [(kind, value) for kind, value in contact.items()]
    return citizen_create(given_name=given, family_name=family, contact_points=points)


def names(results: search.SearchResults) -> list[str]:
    return [c.display_name for c in results.citizens]


@pytest.fixture
def officer(caseworker, client):
    client.force_login(caseworker)
    return caseworker


@pytest.fixture
def sensitive_case(db):
    team = TeamFactory(slug="adult-social-care", name="Adult social care front door")
    service = ServiceFactory(
        code="asc-assessment", name="Care needs assessment", team=team, is_sensitive=True
    )
    return ServiceCaseFactory(
        reference="CH-2026-000777",
        service=service,
        title="Safeguarding concern about carer at Quarrywood",
        citizen=CitizenFactory(given_name="Mair", family_name="Pritchard"),
    )


# --- What the term looks like -----------------------------------------------------------


class TestKinds:
    def test_email_in_any_case(self, caseworker):
        jane = resident("Jane", "Smith", email="Jane.Smith@Example.org")
        resident("John", "Smith", email="john@example.org")
        results = search.search_staff(caseworker, "  jane.smith@EXAMPLE.org ")
        assert [c.pk for c in results.citizens] == [jane.pk]
        assert results.matched_by == ("email",)
        assert results.citizens[0].primary_email == "Jane.Smith@example.org"

    @pytest.mark.parametrize(
        "written",
        ["07700 900123", "+44 7700 900123", "0044 7700 900123", "(07700) 900-123", "447700900123"],
    )
    def test_phone_in_any_uk_form(self, caseworker, written):
        owner = resident("Rhys", "Evans", phone="07700900123")
        resident("Nia", "Evans", phone="07700900124")
        results = search.search_staff(caseworker, written)
        assert [c.pk for c in results.citizens] == [owner.pk]
        assert "phone" in results.matched_by
        assert results.citizens[0].primary_phone == "+447700900123"

    def test_removed_identity_is_not_found(self, caseworker):
        owner = resident("Old", "Address", email="gone@example.org")
        ContactPoint.objects.filter(citizen=owner).update(removed_at=timezone.now())
        assert search.search_staff(caseworker, "gone@example.org").citizens == []

    def test_x_handle(self, caseworker):
        owner = resident("Dai", "Hughes", x="@DaiHughes")
        assert [c.pk for c in search.search_staff(caseworker, "@daihughes").citizens] == [owner.pk]

    def test_postcode_in_any_spacing_and_case(self, caseworker):
        home = AddressFactory(postcode="NM1 4AB").citizen
        AddressFactory(postcode="NM1 4AD")
        results = search.search_staff(caseworker, "nm14ab")
        assert [c.pk for c in results.citizens] == [home.pk]
        assert results.matched_by == ("postcode",)
        assert results.citizens[0].postcode == "NM1 4AB"

    def test_outward_code_is_a_prefix_that_stops_at_the_district(self, caseworker):
        inside = {AddressFactory(postcode=p).citizen.pk for p in ("NM1 4AB", "NM1 9ZZ")}
        AddressFactory(postcode="NM10 1AA")  # a different district that starts the same
        AddressFactory(postcode="NM2 1AA")
        results = search.search_staff(caseworker, "nm1")
        assert {c.pk for c in results.citizens} == inside
        assert results.matched_by == ("postcode_district",)
        sector = search.search_staff(caseworker, "NM1 4")
        assert len(sector.citizens) == 1

    def test_uprn_exact(self, caseworker):
        home = AddressFactory(uprn="100023336956").citizen
        AddressFactory(uprn="1000233369560"[:12].replace("6", "7"))
        results = search.search_staff(caseworker, "100023336956")
        assert [c.pk for c in results.citizens] == [home.pk]
        assert "uprn" in results.matched_by
        assert search.search_staff(caseworker, "10002333695").citizens == []  # no prefixes

    def test_case_reference_exact_and_case_insensitive(self, caseworker):
        case = ServiceCaseFactory(reference="CH-2026-000123")
        ServiceCaseFactory(reference="CH-2026-001230")
        results = search.search_staff(caseworker, "ch-2026-000123")
        assert [c.pk for c in results.cases] == [case.pk]
        assert results.matched_by == ("reference",)
        assert search.search_staff(caseworker, "CH-2026-00012").cases == []

    def test_name_words_and_prefix(self, caseworker):
        jane = CitizenFactory(given_name="Jane", family_name="Smith")
        CitizenFactory(given_name="Jane", family_name="Jones")
        CitizenFactory(given_name="Peter", family_name="Smithson")
        assert names(search.search_staff(caseworker, "jane smith"))[0] == "Jane Smith"
        assert jane.pk in [c.pk for c in search.search_staff(caseworker, "Smi").citizens]
        assert set(names(search.search_staff(caseworker, "smith"))) >= {
            "Jane Smith",
            "Peter Smithson",
        }

    def test_merged_and_erased_profiles_are_not_results(self, caseworker):
        survivor = CitizenFactory(given_name="Gwen", family_name="Morgan")
        CitizenFactory(
            given_name="Gwen",
            family_name="Morgan",
            status=Citizen.Status.MERGED,
            merged_into=survivor,
        )
        CitizenFactory(given_name="Gwen", family_name="Morgan", status=Citizen.Status.ERASED)
        assert [c.pk for c in search.search_staff(caseworker, "Gwen Morgan").citizens] == [
            survivor.pk
        ]

    def test_results_are_bounded_and_say_there_are_more(self, caseworker):
        CitizenFactory.create_batch(30, given_name="Ann", family_name="Jones")
        results = search.search_staff(caseworker, "Ann Jones")
        assert len(results.citizens) == search.DEFAULT_LIMIT
        assert results.more_citizens
        assert len(search.search_staff(caseworker, "Ann Jones", limit=5).citizens) == 5


@on_postgres
class TestFuzzyNamesOnPostgres:
    def test_typos_find_the_person(self, caseworker):
        john = CitizenFactory(given_name="John", family_name="Smith")
        CitizenFactory(given_name="Mary", family_name="Brown")
        for typo in ("Jonh Smith", "John Smyth", "Jon Smith", "jhon smith"):
            results = search.search_staff(caseworker, typo)
            assert results.citizens and results.citizens[0].pk == john.pk, typo

    def test_ordered_by_similarity(self, caseworker):
        CitizenFactory(given_name="Joanna", family_name="Smithers")
        exact = CitizenFactory(given_name="Joan", family_name="Smith")
        results = search.search_staff(caseworker, "Joan Smith")
        assert results.citizens[0].pk == exact.pk
        assert names(results) == ["Joan Smith", "Joanna Smithers"]

    def test_lexicon_follows_renames_and_deletes(self, caseworker):
        person = CitizenFactory(given_name="Ffion", family_name="Bowen")
        with connection.cursor() as cursor:
            cursor.execute("SELECT name FROM citizenhub_name_lexicon WHERE name LIKE 'ffion%%'")
            assert cursor.fetchall() == [("ffion bowen",)]
            Citizen.objects.filter(pk=person.pk).update(given_name="", family_name="")
            cursor.execute("SELECT name FROM citizenhub_name_lexicon WHERE name LIKE 'ffion%%'")
            assert cursor.fetchall() == []  # an erased name does not linger
        assert search.search_staff(caseworker, "Ffion Bowen").citizens == []

    def test_search_uses_the_indexes(self, caseworker):
        CitizenFactory.create_batch(50)
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL enable_seqscan = off")
            sql = search._RANKED_SQL.format(
                branches=" UNION ALL ".join(
                    [
                        search._FULL_NAME_PREFIX_SQL,
                        search._FAMILY_NAME_PREFIX_SQL,
                        search._FUZZY_NAME_SQL,
                    ]
                )
            )
            params = {"term": "jane smith", "prefix": "jane smith%", "limit": 26, "names": 10}
            cursor.execute("EXPLAIN " + sql, params)
            plan = "\n".join(row[0] for row in cursor.fetchall())
        assert "citizen_full_name_prefix_idx" in plan
        assert "citizen_family_name_prefix_idx" in plan
        assert "Seq Scan on citizenhub_citizen" not in plan


# --- Hostile input ------------------------------------------------------------------------

HOSTILE = [
    "",
    "   ",
    "%",
    "%%",
    "_",
    "\\",
    "a%b_c\\d",
    "'",
    '"',
    "' OR '1'='1",
    "Robert'); DROP TABLE citizenhub_citizen;--",
    "1; SELECT pg_sleep(10)",
    "😀",
    "👩‍👩‍👧 Smith",
    "\u202eevil",
    "nul\x00byte",
    "@",
    "@@@",
    "CH-",
    "+",
    "0",
    "x" * 10_000,
    "Smith " * 2_000,
    "%" * 10_000,
]


@pytest.mark.parametrize("term", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_terms_give_bounded_results_and_never_an_error(officer, client, term):
    CitizenFactory.create_batch(3, family_name="Smith")
    response = client.get(SEARCH, {"q": term})
    assert response.status_code == 200
    html = response.content.decode()
    assert html.count("data-citizen=") <= search.DEFAULT_LIMIT
    results = search.search_staff(officer, term)
    assert len(results.citizens) <= search.DEFAULT_LIMIT
    assert len(results.term) <= search.TERM_LIMIT


def test_wildcards_match_themselves_not_everything(caseworker):
    CitizenFactory.create_batch(5)
    for term in ("%", "_", "%%", "\\", "_%"):
        assert search.search_staff(caseworker, term).citizens == [], term


def test_a_too_long_term_is_refused_with_a_message(officer, client):
    CitizenFactory(given_name="X" * 10, family_name="Smith")
    response = client.get(SEARCH, {"q": "x" * 10_000})
    html = response.content.decode()
    assert response.status_code == 200
    assert "There is a problem" in html
    assert "Search for 200 characters or fewer" in html
    assert "govuk-input--error" in html
    assert "x" * 201 not in html


def test_clean_term_collapses_and_bounds():
    assert search.clean_term("  Jane \t\n  Smith ") == ("Jane Smith", False)
    assert search.clean_term("a\x00b") == ("a b", False)
    assert search.clean_term("\ud800x") == ("?x", False)
    term, cut = search.clean_term("y" * 500)
    assert cut and len(term) == search.TERM_LIMIT
    assert search.clean_term(None) == ("", False)


# --- Sensitive cases ----------------------------------------------------------------------


class TestSensitiveCases:
    def test_outsider_cannot_find_it_by_its_title(self, officer, client, sensitive_case):
        for words in ("safeguarding", "Safeguarding concern", "Quarrywood carer"):
            assert search.search_staff(officer, words).cases == []
            html = client.get(SEARCH, {"q": words}).content.decode()
            assert sensitive_case.reference not in html
        assert search_cases_refs(officer, "safeguarding") == []

    def test_outsider_finds_it_by_reference_redacted(self, officer, client, sensitive_case):
        results = search.search_staff(officer, "ch-2026-000777")
        assert [c.pk for c in results.cases] == [sensitive_case.pk]
        assert results.cases[0].content_visible is False
        html = client.get(SEARCH, {"q": "CH-2026-000777"}).content.decode()
        assert 'data-redacted="true"' in html
        assert "Care needs assessment" in html  # the service may be known
        assert "Safeguarding" not in html
        assert "Quarrywood" not in html
        assert "Pritchard" not in html  # nor whose case it is

    def test_team_member_sees_and_finds_the_content(self, client, sensitive_case):
        member = StaffUserFactory()
        from citizenhub.staff.access import ensure_staff_groups

        member.groups.add(ensure_staff_groups()["caseworker"])
        sensitive_case.service.team.members.add(member)
        client.force_login(member)
        results = search.search_staff(member, "safeguarding quarrywood")
        assert [c.pk for c in results.cases] == [sensitive_case.pk]
        assert results.cases[0].content_visible is True
        html = client.get(SEARCH, {"q": "CH-2026-000777"}).content.decode()
        assert "Safeguarding concern about carer at Quarrywood" in html
        assert 'data-redacted="true"' not in html

    def test_ordinary_case_found_by_title_words(self, caseworker):
        case = ServiceCaseFactory(title="Fly-tipping behind the Co-op on Mill Lane")
        ServiceCaseFactory(title="Missed green bin")
        assert search_cases_refs(caseworker, "tipping mill") == [case.reference]
        assert search_cases_refs(caseworker, "ti") == []  # too short to search titles


def response_ok(html: str) -> bool:
    return "Search residents and cases" in html


def search_cases_refs(user, term: str) -> list[str]:
    return [case.reference for case in search.search_cases(user, term)]


def test_search_cases_for_people_who_are_not_staff(resident_user, sensitive_case):
    from django.contrib.auth.models import AnonymousUser

    assert list(search.search_cases(AnonymousUser(), "CH-2026-000777")) == []
    assert list(search.search_cases(resident_user, "CH-2026-000777")) == []


# --- The page -------------------------------------------------------------------------------


class TestPage:
    def test_empty_state(self, officer, client):
        response = client.get(SEARCH)
        html = response.content.decode()
        assert response.status_code == 200
        assert '<label class="govuk-label govuk-label--l" for="search-q">' in html
        assert 'id="search-q"' in html
        assert "No results" not in html

    def test_no_results_state(self, officer, client):
        html = client.get(SEARCH, {"q": "Zebedee Quixote"}).content.decode()
        assert "No results" in html
        assert 'value="Zebedee Quixote"' in html
        assert "(searched by name)" in html

    @pytest.mark.parametrize(
        ("term", "kind"),
        [("not@an@address", "e-mail address"), ("12.5", "phone number"), ("123", "UPRN")],
    )
    def test_says_how_it_searched(self, officer, client, term, kind):
        html = client.get(SEARCH, {"q": term}).content.decode()
        assert f"(searched by {kind}" in html

    def test_grouped_results_link_to_the_360_and_the_case(self, officer, client):
        jane = resident("Jane", "Halliwell", email="jane.h@example.org", phone="07700900777")
        AddressFactory(citizen=jane, postcode="NM3 2XY")
        case = ServiceCaseFactory(title="Halliwell garden waste", citizen=jane)
        html = client.get(SEARCH, {"q": "halliwell"}).content.decode()
        assert f'href="/staff/citizens/{jane.public_id}/"' in html
        assert "jane.h@example.org" in html and "+447700900777" in html and "NM3 2XY" in html
        assert f'href="/staff/cases/{case.reference}/"' in html
        assert "<caption" in html and 'scope="col"' in html
        assert html.index('id="resident-results"') < html.index('id="case-results"')

    def test_overdue_case_is_tagged(self, officer, client):
        ServiceCaseFactory(
            reference="CH-2026-000555",
            due_on=timezone.localdate() - datetime.timedelta(days=3),
            status=ServiceCase.Status.OPEN,
        )
        html = client.get(SEARCH, {"q": "CH-2026-000555"}).content.decode()
        assert "Overdue" in html

    def test_anonymous_is_sent_to_sign_in(self, client):
        response = client.get(SEARCH, {"q": "smith"})
        assert response.status_code == 302
        assert "/accounts/login/" in response["Location"]

    def test_residents_are_refused(self, client, resident_user):
        client.force_login(resident_user)
        assert client.get(SEARCH, {"q": "smith"}).status_code == 403

    def test_staff_without_the_permission_are_refused(self, client, staff_user):
        client.force_login(staff_user)
        response = client.get(SEARCH, {"q": "smith"})
        assert response.status_code == 403

    def test_only_get(self, officer, client):
        assert client.post(SEARCH, {"q": "smith"}).status_code == 405

    def test_cases_need_their_own_permission(self, client, sensitive_case):
        from django.contrib.auth.models import Permission

        reader = StaffUserFactory()
        reader.user_permissions.add(Permission.objects.get(codename="view_citizen"))
        client.force_login(reader)
        html = client.get(SEARCH, {"q": "CH-2026-000777"}).content.decode()
        assert response_ok(html)
        assert 'data-reference="CH-2026-000777"' not in html


@pytest.mark.parametrize("term", ["Smith", "NM1", "nm1 4ab", "CH-2026-900000", "p0@x.example"])
def test_query_count_does_not_grow_with_results(
    officer, client, django_assert_max_num_queries, term
):
    def make(start: int, n: int) -> None:
        for i in range(start, start + n):
            person = resident(f"Person{i}", "Smith", email=f"p{i}@x.example")
            AddressFactory(citizen=person, postcode="NM1 4AB")
            ServiceCaseFactory(citizen=person, title=f"Smith case {i}")

    make(0, 1)
    with django_assert_max_num_queries(20) as one:
        client.get(SEARCH, {"q": term})
    make(1, 30)
    with django_assert_max_num_queries(len(one.captured_queries)):
        response = client.get(SEARCH, {"q": term})
    assert response.status_code == 200


def test_search_itself_runs_a_constant_number_of_queries(caseworker, django_assert_max_num_queries):
    caseworker.has_perm("citizenhub.view_servicecase")  # permission cache warmed, as a page
    for term in ("Smith", "a@b.example", "NM1 4AB", "NM1", "100000001", "CH-2026-000001"):
        with django_assert_max_num_queries(3):
            search.search_staff(caseworker, term)


def test_not_a_user_with_perms_sees_no_cases(db):
    user = UserFactory()
    ServiceCaseFactory(reference="CH-2026-000999")
    assert search.search_staff(user, "CH-2026-000999").cases == []


def test_every_result_row_is_html_escaped(officer, client):
    CitizenFactory(given_name="<script>alert(1)</script>", family_name="Smith")
    html = client.get(SEARCH, {"q": "smith"}).content.decode()
    assert "<script>alert(1)</script>" not in html
    assert re.search(r"&lt;script&gt;alert\(1\)&lt;/script&gt;", html)


# --- In a browser: accessibility -------------------------------------------------------------

# The browser fixtures of tests/e2e (Debian's Chromium; skipped where it is missing).
browser = e2e.browser
page = e2e.page


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_in_a_browser_the_page_is_accessible(page, live_server, sensitive_case):
    from django.test import Client

    officer = StaffUserFactory()
    from citizenhub.staff.access import ensure_staff_groups

    officer.groups.add(ensure_staff_groups()["caseworker"])
    for i in range(3):
        person = resident(f"Gwen{i}", "Pritchard", email=f"gwen{i}@example.org")
        AddressFactory(citizen=person, postcode="NM1 4AB")
    client = Client()
    client.force_login(officer)
    page.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}]
    )
    page.goto(f"{live_server.url}{SEARCH}")
    page.get_by_label("Search residents and cases").fill("pritchard")
    page.get_by_role("button", name="Search").click()
    page.wait_for_url("**/staff/search/?q=pritchard")
    assert page.locator("#resident-results tbody tr").count() == 4
    e2e.screenshot(page, "staff-search")
    for url in (
        f"{SEARCH}?q=pritchard",
        f"{SEARCH}?q=CH-2026-000777",
        f"{SEARCH}?q=nobody+at+all",
        f"{SEARCH}?q={'x' * 300}",
    ):
        page.goto(f"{live_server.url}{url}")
        violations = e2e.axe_violations(page)
        assert not violations, f"{url}: {e2e.describe(violations)}"
