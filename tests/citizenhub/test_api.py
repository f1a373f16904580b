"""The citizens API: search, create, contact points, timeline paging, errors, query counts."""

import datetime

import pytest
from django.urls import reverse
from django.utils import timezone
from rest_framework.authtoken.models import Token

from citizenhub.models import AuditEvent, Citizen, TimelineEntry
from citizenhub.services import citizen_create, record_timeline_entry
from tests.factories import (
    AddressFactory,
    CitizenFactory,
    EmailContactPointFactory,
    TimelineEntryFactory,
)

pytestmark = pytest.mark.django_db
CITIZENS = "/api/v1/citizens/"


def timeline_url(citizen: Citizen) -> str:
    return f"{CITIZENS}{citizen.public_id}/timeline/"


def all_pages(client, url: str) -> list[dict]:
    rows = []
    while url:
        response = client.get(url)
        assert response.status_code == 200, response.content
        rows.extend(response.json()["results"])
        url = response.json()["next"]
    return rows


class TestAccess:
    def test_anonymous_is_refused_with_the_error_shape(self, api_client):
        response = api_client.get(CITIZENS)
        assert response.status_code in (401, 403)
        assert response.json()["error"]["code"] == "not_authenticated"

    def test_non_staff_user_is_forbidden(self, api_client, resident_user):
        api_client.force_authenticate(resident_user)
        assert api_client.get(CITIZENS).status_code == 403

    def test_token_authentication(self, api_client, staff_user):
        token = Token.objects.create(user=staff_user)
        response = api_client.get(CITIZENS, HTTP_AUTHORIZATION=f"Token {token.key}")
        assert response.status_code == 200

    def test_session_authentication(self, client, staff_user):
        client.force_login(staff_user)
        assert client.get(CITIZENS, HTTP_ACCEPT="application/json").status_code == 200


class TestCitizenList:
    def test_search_by_email_phone_name_and_postcode(self, staff_api):
        jane = citizen_create(
            given_name="Jane",
            family_name="Price",
            contact_points=[("email", "Jane.Price@example.org"), ("phone", "07700 900301")],
        )
        citizen_create(given_name="John", family_name="Pryce")
        AddressFactory(citizen=jane, postcode="NM2 5QT")

        def ids(**params):
            response = staff_api.get(CITIZENS, params)
            assert response.status_code == 200, response.content
            return [row["id"] for row in response.json()["results"]]

        expected = [str(jane.public_id)]
        assert ids(q="jane.price@EXAMPLE.org") == expected
        assert ids(q="+44 7700 900301") == expected
        assert ids(q="price jane") == expected
        assert ids(email="JANE.PRICE@example.org") == expected
        assert ids(phone="447700900301") == expected
        assert ids(postcode="nm25qt") == expected
        assert len(ids(q="J")) == 2

    @pytest.mark.parametrize("term", ["%", "_", "' OR 1=1 --", "🦔", "x" * 10_000])
    def test_hostile_search_terms_are_harmless(self, staff_api, term):
        CitizenFactory(given_name="Ann")
        response = staff_api.get(CITIZENS, {"q": term})
        assert response.status_code in (200, 400)
        if response.status_code == 200:
            assert response.json()["results"] == []

    @pytest.mark.parametrize(
        ("params", "field"),
        [
            ({"email": "nope"}, "email"),
            ({"phone": "abc"}, "phone"),
            ({"postcode": "XX"}, "postcode"),
            ({"status": "deceased"}, "status"),
            ({"page_size": "lots"}, "page_size"),
            ({"cursor": "!!"}, "cursor"),
        ],
    )
    def test_bad_filters_get_400_naming_the_parameter(self, staff_api, params, field):
        response = staff_api.get(CITIZENS, params)
        assert response.status_code == 400
        assert field in response.json()["error"]["fields"]

    def test_list_query_count_does_not_grow_with_rows(
        self, staff_api, django_assert_max_num_queries
    ):
        for _ in range(3):
            EmailContactPointFactory()
        with django_assert_max_num_queries(3) as small:
            assert len(staff_api.get(CITIZENS).json()["results"]) == 3
        for _ in range(40):
            EmailContactPointFactory()
        with django_assert_max_num_queries(len(small.captured_queries)):
            assert len(staff_api.get(CITIZENS).json()["results"]) == 43

    def test_page_size_is_capped(self, staff_api):
        for _ in range(3):
            CitizenFactory()
        body = staff_api.get(CITIZENS, {"page_size": 2}).json()
        assert len(body["results"]) == 2 and body["next"]
        assert len(all_pages(staff_api, CITIZENS + "?page_size=100000")) == 3


class TestCitizenCreate:
    def test_create(self, staff_api, staff_user):
        response = staff_api.post(
            CITIZENS,
            {
                "given_name": "Owain",
                "family_name": "Glyn",
                "preferred_language": "cy",
                "contact_points": [{"kind": "phone", "value": "0044 7700 900302"}],
            },
            format="json",
        )
        assert response.status_code == 201, response.content
        body = response.json()
        assert body["contact_points"][0]["normalised"] == "+447700900302"
        assert body["status"] == "active"
        event = AuditEvent.objects.get(action="create")
        assert event.actor == staff_user

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"given_name": ["a", "list"]}, "given_name"),
            ({"given_name": "A", "favourite_colour": "blue"}, "favourite_colour"),
            ({"given_name": "A", "date_of_birth": "yesterday"}, "date_of_birth"),
            ({"given_name": "A", "preferred_language": "klingon"}, "preferred_language"),
            ({"contact_points": [{"kind": "email", "value": "nope"}]}, "contact_points[0].value"),
            ({"contact_points": [{"kind": "fax", "value": "0113"}]}, "contact_points[0].kind"),
            (
                {"contact_points": [{"kind": "email", "value": "a@b.org", "extra": 1}]},
                "contact_points[0].extra",
            ),
            ({"contact_points": "a@b.org"}, "contact_points"),
            ({}, "non_field_errors"),
        ],
    )
    def test_bad_bodies_get_400_naming_the_field_and_save_nothing(self, staff_api, body, field):
        response = staff_api.post(CITIZENS, body, format="json")
        assert response.status_code == 400, response.content
        assert field in response.json()["error"]["fields"], response.json()
        assert Citizen.objects.count() == 0

    def test_malformed_json_is_a_400(self, staff_api):
        response = staff_api.generic("POST", CITIZENS, "{not json", content_type="application/json")
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "parse_error"


class TestDetailAndContactPoints:
    def test_retrieve_writes_an_audit_event(self, staff_api, staff_user):
        citizen = CitizenFactory()
        response = staff_api.get(f"{CITIZENS}{citizen.public_id}/")
        assert response.status_code == 200
        assert response.json()["id"] == str(citizen.public_id)
        assert AuditEvent.objects.filter(action="view", citizen=citizen, actor=staff_user).exists()

    def test_unknown_and_malformed_ids_are_404(self, staff_api):
        assert staff_api.get(f"{CITIZENS}00000000-0000-0000-0000-000000000000/").status_code == 404
        assert staff_api.get(f"{CITIZENS}123/").status_code == 404

    def test_add_and_list_contact_points(self, staff_api):
        citizen = CitizenFactory()
        url = f"{CITIZENS}{citizen.public_id}/contact-points/"
        first = staff_api.post(url, {"kind": "x", "value": "@NorthmoorFan"}, format="json")
        again = staff_api.post(url, {"kind": "x", "value": "northmoorfan"}, format="json")
        assert (first.status_code, again.status_code) == (201, 200)
        assert [p["normalised"] for p in staff_api.get(url).json()] == ["@NorthmoorFan"]
        bad = staff_api.post(url, {"kind": "x", "value": "no spaces allowed"}, format="json")
        assert bad.status_code == 400 and "value" in bad.json()["error"]["fields"]


class TestTimeline:
    def test_newest_first_with_source_and_filters(self, staff_api):
        citizen = CitizenFactory()
        TimelineEntryFactory(
            citizen=citizen,
            kind="call",
            channel="phone",
            occurred_at=timezone.now() - datetime.timedelta(days=2),
        )
        newest = record_timeline_entry(
            citizen=citizen, kind="note", summary="latest", source=AddressFactory(citizen=citizen)
        )
        rows = staff_api.get(timeline_url(citizen)).json()["results"]
        assert rows[0]["id"] == newest.pk
        assert rows[0]["source"]["type"] == "citizenhub.address"
        calls = staff_api.get(timeline_url(citizen), {"kind": "call"}).json()["results"]
        assert [r["kind"] for r in calls] == ["call"]
        assert staff_api.get(timeline_url(citizen), {"kind": "gossip"}).status_code == 400

    def test_paging_is_stable_while_entries_are_inserted(self, staff_api):
        citizen = CitizenFactory()
        base = timezone.now() - datetime.timedelta(days=1)
        # Several entries share a timestamp, so the id must break ties.
        original = [
            TimelineEntryFactory(
                citizen=citizen, occurred_at=base - datetime.timedelta(minutes=n // 3)
            ).pk
            for n in range(25)
        ]
        seen, url, page_number = [], timeline_url(citizen) + "?page_size=4", 0
        while url:
            body = staff_api.get(url).json()
            seen.extend(row["id"] for row in body["results"])
            url = body["next"]
            page_number += 1
            # New contact arrives while an officer is paging: newer, and at the same instant
            # as rows not yet read.
            TimelineEntryFactory(citizen=citizen, occurred_at=timezone.now())
            TimelineEntryFactory(
                citizen=citizen, occurred_at=base - datetime.timedelta(minutes=page_number % 8)
            )
        seen_original = [pk for pk in seen if pk in set(original)]
        assert sorted(seen_original) == sorted(original)
        assert len(seen) == len(set(seen))  # nothing repeated
        ordered = list(
            TimelineEntry.objects.filter(pk__in=seen)
            .order_by("-occurred_at", "-id")
            .values_list("pk", flat=True)
        )
        assert seen == ordered

    def test_timeline_query_count_does_not_grow_with_rows(
        self, staff_api, django_assert_max_num_queries
    ):
        citizen = CitizenFactory()
        source = AddressFactory(citizen=citizen)
        TimelineEntryFactory.create_batch(3, citizen=citizen)
        record_timeline_entry(citizen=citizen, kind="note", summary="s", source=source)
        with django_assert_max_num_queries(3) as small:
            staff_api.get(timeline_url(citizen))
        TimelineEntryFactory.create_batch(60, citizen=citizen)
        with django_assert_max_num_queries(len(small.captured_queries)):
            assert len(staff_api.get(timeline_url(citizen)).json()["results"]) == 50


def test_schema_and_docs_are_served_without_a_cdn(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert "/api/v1/citizens/{id}/timeline/" in paths
    docs = client.get(reverse("api-docs"))
    assert docs.status_code == 200
    assert b"cdn." not in docs.content and b"jsdelivr" not in docs.content


def test_openapi_schema_is_valid_and_generates_without_warnings(tmp_path):
    from django.core.management import call_command

    target = tmp_path / "schema.yaml"
    call_command("spectacular", "--fail-on-warn", "--validate", "--file", str(target))
    assert "/api/v1/citizens/{id}/contact-points/" in target.read_text()
