"""The portal's public pages: the home page with its slots, and the service pages."""

from __future__ import annotations

import pytest

from citizenhub.models import ClockType
from citizenhub.portal.views import public
from tests.factories import ServiceFactory, TeamFactory

pytestmark = pytest.mark.django_db


# --- Home -----------------------------------------------------------------------------------


def test_home_offers_report_a_problem_and_find_my_councillor(client):
    response = client.get("/")

    html = response.content.decode()
    assert response.status_code == 200
    assert 'class="govuk-button govuk-button--start"' in html
    assert 'href="/report/"' in html
    # The councillor finder is a plain GET form with a labelled postcode box.
    assert '<form method="get" action="/councillors/"' in html
    assert (
        'name="postcode"' in html
        and '<label class="govuk-label" for="councillor-postcode">' in html
    )
    assert 'href="/services/"' in html
    # No consultations or petitions yet: no empty "Have your say" heading.
    assert "Have your say" not in html
    assert "<title>Residents’ services – " in html


def test_public_pages_answer_head_requests(client, catalogue):
    # Uptime checks often use HEAD.
    for url in ("/", "/services/", "/services/missed-bin/"):
        assert client.head(url).status_code == 200


def test_the_have_your_say_slot_shows_what_its_providers_return(
    client, settings, tmp_path, monkeypatch
):
    (tmp_path / "petitions_slot.html").write_text("<p>Open petition: {{ slot.context.title }}</p>")
    settings.TEMPLATES = [
        {**settings.TEMPLATES[0], "DIRS": [*settings.TEMPLATES[0]["DIRS"], tmp_path]}
    ]
    monkeypatch.setattr(
        public,
        "HAVE_YOUR_SAY_PROVIDERS",
        [
            lambda request: public.HomeSlot(
                "petitions", "petitions_slot.html", {"title": "Save the library"}
            ),
            lambda request: None,  # a provider with nothing open shows nothing
        ],
    )

    html = client.get("/").content.decode()

    assert "Have your say" in html
    assert 'data-home-slot="petitions"' in html
    assert "Open petition: Save the library" in html


def test_home_keeps_the_language_toggle_and_speaks_welsh(client):
    english = client.get("/").content.decode()
    assert 'action="/language/"' in english and 'value="cy"' in english

    welsh = client.get("/", HTTP_ACCEPT_LANGUAGE="cy").content.decode()
    assert '<html lang="cy"' in welsh
    assert 'value="en"' in welsh


# --- The service pages ----------------------------------------------------------------------


@pytest.fixture
def catalogue():
    waste = TeamFactory(slug="waste", name="Waste", department="Environment")
    return {
        "bins": ServiceFactory(
            code="missed-bin",
            name="Missed bin collection",
            group="Bins and recycling",
            team=waste,
            description="Your bin was not emptied on collection day.",
            sla_days=2,
        ),
        "recycling": ServiceFactory(
            code="recycling-box",
            name="Request a recycling box",
            group="Bins and recycling",
            team=waste,
        ),
        "potholes": ServiceFactory(code="potholes", name="Potholes", group="Roads"),
        "ungrouped": ServiceFactory(code="general", name="General enquiry", group=""),
        "staff_only": ServiceFactory(code="internal-audit", name="Internal audit", is_public=False),
        "withdrawn": ServiceFactory(code="old-thing", name="Withdrawn service", is_active=False),
    }


def test_the_service_list_groups_public_active_services(
    client, catalogue, django_assert_max_num_queries
):
    with django_assert_max_num_queries(3):
        response = client.get("/services/")

    html = response.content.decode()
    assert response.status_code == 200
    assert "<title>Services – " in html
    # Groups A-Z, then the ungrouped ones under "Other services".
    positions = [html.index(text) for text in ("Bins and recycling", "Roads", "Other services")]
    assert positions == sorted(positions)
    assert html.index("Missed bin collection") < html.index("Request a recycling box")
    assert 'href="/services/missed-bin/"' in html
    assert "Internal audit" not in html and "Withdrawn service" not in html


def test_the_service_list_query_count_does_not_grow(
    client, catalogue, django_assert_max_num_queries
):
    for n in range(30):
        ServiceFactory(code=f"extra-{n}", group=f"Group {n % 5}")
    with django_assert_max_num_queries(3):
        assert client.get("/services/").status_code == 200


def test_a_service_page_says_what_and_how_long_and_links_to_report_it(client, catalogue):
    response = client.get("/services/missed-bin/")

    html = response.content.decode()
    assert response.status_code == 200
    assert '<h1 class="govuk-heading-xl">Missed bin collection</h1>' in html
    assert "Your bin was not emptied on collection day." in html
    assert "We aim to deal with it within 2 working days." in html
    assert 'href="/report/?service=missed-bin"' in html
    assert "Report this" in html


@pytest.mark.parametrize("code", ["internal-audit", "old-thing", "no-such-service"])
def test_staff_only_withdrawn_and_unknown_services_are_not_found(client, catalogue, code):
    assert client.get(f"/services/{code}/").status_code == 404


@pytest.mark.parametrize(
    ("clock_type", "sla_days", "expected"),
    [
        (ClockType.WORKING_DAYS, 1, "We aim to deal with it within 1 working day."),
        (ClockType.WORKING_DAYS, 10, "We aim to deal with it within 10 working days."),
        (ClockType.CALENDAR_DAYS, 28, "We aim to deal with it within 28 days."),
        (ClockType.FOI, 99, "We aim to deal with it within 20 working days."),
        (ClockType.SUBJECT_ACCESS, 99, "We aim to deal with it within one calendar month."),
    ],
)
def test_time_to_deal_with_in_words(clock_type, sla_days, expected):
    service = ServiceFactory.build(clock_type=clock_type, sla_days=sla_days)
    assert public.time_to_deal_with(service) == expected
