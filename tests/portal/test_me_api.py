"""The resident's own API (/api/v1/me/): profile, cases, one case's resident-visible history,
adding information; session or token; another resident's reference is 404."""

from __future__ import annotations

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from citizenhub.services.cases import case_add_note, case_transition, open_case
from tests.factories import ServiceFactory, UserFactory

pytestmark = pytest.mark.django_db

ME = "/api/v1/me/"
CASES = "/api/v1/me/cases/"


@pytest.fixture
def me_api(resident):
    client = APIClient()
    client.force_login(resident)
    return client


@pytest.fixture
def potholes():
    return ServiceFactory(code="pothole", name="Potholes")


@pytest.fixture
def case(resident, potholes):
    return open_case(
        service=potholes,
        title="Pothole on Mill Lane",
        description="By the bus stop",
        citizen=resident.citizen,
        actor=resident,
    )


def test_me_returns_the_residents_profile_and_contact_details(me_api, resident):
    citizen = resident.citizen
    citizen.preferred_language = "cy"
    citizen.preferred_channel = "sms"
    citizen.save()

    response = me_api.get(ME)

    assert response.status_code == 200
    body = response.json()
    assert body["given_name"] == "Rhian" and body["display_name"] == "Rhian Evans"
    assert (body["preferred_language"], body["preferred_channel"]) == ("cy", "sms")
    [point] = body["contact_points"]
    assert point["kind"] == "email" and point["value"] == resident.email
    assert point["verification_level"] == "confirmed"


@pytest.mark.parametrize("path", [ME, CASES, CASES + "CH-2026-000001/"])
def test_the_api_needs_a_resident_with_a_profile(path):
    anonymous = APIClient()
    assert anonymous.get(path).status_code in (401, 403)
    no_profile = APIClient()
    no_profile.force_login(UserFactory())
    response = no_profile.get(path)
    assert response.status_code == 403
    assert "verified" in response.json()["error"]["message"]


def test_token_authentication_works(resident, case):
    token = Token.objects.create(user=resident)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    assert client.get(CASES).json()["results"][0]["reference"] == case.reference


def test_my_cases_lists_only_the_residents_cases(me_api, case, other_resident, potholes):
    open_case(service=potholes, title="Gareth's pothole", citizen=other_resident.citizen)
    response = me_api.get(CASES)
    assert response.status_code == 200
    [row] = response.json()["results"]
    assert row["reference"] == case.reference and row["title"] == "Pothole on Mill Lane"
    assert row["service"] == {"code": "pothole", "name": "Potholes"}
    assert row["status"] == "new" and row["status_label"] == "Received"


def test_my_cases_pages_with_a_cursor(me_api, resident, potholes):
    for n in range(5):
        open_case(service=potholes, title=f"Case {n}", citizen=resident.citizen)
    first = me_api.get(CASES, {"page_size": 2}).json()
    assert len(first["results"]) == 2 and first["next"]
    second = me_api.get(first["next"]).json()
    seen = [r["reference"] for r in first["results"] + second["results"]]
    assert len(set(seen)) == 4


def test_one_case_has_only_the_resident_visible_history(me_api, case, staff_user):
    case_add_note(case=case, text="INTERNAL note", actor=staff_user)
    case_transition(case=case, to_status="resolved", expected_version=None, resolution="Filled it.")
    response = me_api.get(f"{CASES}{case.reference}/")
    assert response.status_code == 200
    body = response.json()
    assert body["description"] == "By the bus stop" and body["resolution"] == "Filled it."
    titles = [line["title"] for line in body["history"]]
    assert titles == ["You reported this", "Resolved"]
    assert "INTERNAL" not in response.content.decode()
    assert staff_user.username not in response.content.decode()


def test_another_residents_reference_is_404_like_an_unknown_one(me_api, other_resident, potholes):
    theirs = open_case(service=potholes, title="Gareth's", citizen=other_resident.citizen)
    for method in ("get", "post"):
        for suffix in ("", "updates/"):
            response = getattr(me_api, method)(f"{CASES}{theirs.reference}/{suffix}", {"text": "x"})
            unknown = getattr(me_api, method)(f"{CASES}CH-2026-999999/{suffix}", {"text": "x"})
            assert response.status_code == unknown.status_code == 404
            assert response.json() == unknown.json()
    assert theirs.events.count() == 1


def test_adding_information_through_the_api(me_api, resident, case):
    case_transition(case=case, to_status="waiting", expected_version=None)
    response = me_api.post(
        f"{CASES}{case.reference}/updates/", {"text": "It got bigger."}, format="json"
    )
    assert response.status_code == 201
    assert response.json()["title"] == "You added information"
    assert response.json()["by_resident"] is True
    case.refresh_from_db()
    assert case.status == "in_progress"
    event = case.events.get(kind="resident_update")
    assert event.text == "It got bigger." and event.actor == resident


@pytest.mark.parametrize(
    ("payload", "field"),
    [({"text": ""}, "text"), ({"text": "x" * 5001}, "text"), ({"text": "ok", "extra": 1}, "extra")],
)
def test_bad_updates_are_refused_and_save_nothing(me_api, case, payload, field):
    response = me_api.post(f"{CASES}{case.reference}/updates/", payload, format="json")
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]
    assert case.events.filter(kind="resident_update").count() == 0


def test_updates_to_a_resolved_case_are_refused(me_api, case):
    case_transition(case=case, to_status="resolved", expected_version=None, resolution="Done.")
    response = me_api.post(f"{CASES}{case.reference}/updates/", {"text": "Hm"}, format="json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "case_closed"
    assert case.events.filter(kind="resident_update").count() == 0


def test_the_resident_api_is_in_the_schema(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    for path in ("/api/v1/me/", "/api/v1/me/cases/", "/api/v1/me/cases/{reference}/updates/"):
        assert path in schema["paths"]
