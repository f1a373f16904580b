"""/my/contact/: the resident's e-mail addresses and phone numbers, adding a mobile number
and confirming it with a texted code, removing one; nothing of another resident's reachable."""

from __future__ import annotations

import pytest

from citizenhub.models import Citizen, ContactPoint, ContactVerification
from citizenhub.services import verification
from citizenhub.services.citizens import contact_point_add
from tests.factories import CitizenFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent_codes(monkeypatch) -> list[tuple[int, str, str]]:
    codes: list[tuple[int, str, str]] = []
    monkeypatch.setitem(
        verification._senders,
        "phone",
        lambda point, code, language: codes.append((point.pk, code, language)),
    )
    return codes


def add_phone(citizen: Citizen, value: str = "07700 900123", **fields) -> ContactPoint:
    return contact_point_add(citizen=citizen, kind="phone", value=value, source="portal", **fields)


def test_contact_details_list_addresses_and_numbers_with_their_status(
    resident_client, resident, django_assert_max_num_queries
):
    add_phone(resident.citizen)
    add_phone(resident.citizen, "07700 900456", verification_level="confirmed")
    with django_assert_max_num_queries(10):
        response = resident_client.get("/my/contact/")
    html = response.content.decode()
    assert response.status_code == 200 and "<title>Contact details – " in html
    assert '<caption class="govuk-table__caption govuk-table__caption--m">Email addresses' in html
    assert resident.email in html and "You sign in with this address" in html
    assert "+447700900123" in html and "+447700900456" in html
    assert html.count("Not confirmed") == 1 and html.count(">Confirmed<") == 2
    # The address the account signs in with has no Remove link here.
    login_point = resident.citizen.contact_points.get(kind="email")
    assert f"/my/contact/{login_point.pk}/remove/" not in html


def test_adding_a_number_sends_a_code_and_the_code_confirms_it(
    resident_client, resident, sent_codes
):
    response = resident_client.post("/my/contact/phone/add/", {"phone": "+44 7700 900 123"})
    point = resident.citizen.contact_points.get(kind="phone")
    assert point.verification_level == "asserted" and point.source == "portal"
    assert response["Location"] == f"/my/contact/{point.pk}/verify/"
    page = resident_client.get(response["Location"]).content.decode()
    assert "We have sent a code to +447700900123" in page
    assert '<label class="govuk-label govuk-label--s" for="id_code">Code</label>' in page

    wrong = resident_client.post(response["Location"], {"code": "abc"})
    html = wrong.content.decode()
    assert "<title>Error: Enter the code we texted you" in html and 'href="#id_code"' in html

    code = sent_codes[-1][1]
    done = resident_client.post(response["Location"], {"code": code})
    assert done["Location"] == "/my/contact/"
    point.refresh_from_db()
    assert point.verification_level == "confirmed"


def test_a_bad_number_is_a_form_error_and_saves_nothing(resident_client, resident, sent_codes):
    response = resident_client.post("/my/contact/phone/add/", {"phone": "12"})
    html = response.content.decode()
    assert response.status_code == 200 and "<title>Error: Add a mobile phone number" in html
    assert "Enter a phone number in the correct format" in html and 'href="#id_phone"' in html
    assert not resident.citizen.contact_points.filter(kind="phone").exists()
    assert sent_codes == []


def test_without_a_text_channel_the_number_is_kept_and_the_resident_told(resident_client, resident):
    response = resident_client.post(
        "/my/contact/phone/add/", {"phone": "07700 900123"}, follow=True
    )
    html = response.content.decode()
    assert "cannot send text messages at the moment" in html
    assert resident.citizen.contact_points.filter(kind="phone", removed_at__isnull=True).exists()
    assert not ContactVerification.objects.filter(used_at__isnull=True).exists()


def test_a_number_on_another_residents_profile_cannot_be_added(
    resident_client, resident, other_resident, sent_codes
):
    add_phone(other_resident.citizen, verification_level="confirmed")
    response = resident_client.post("/my/contact/phone/add/", {"phone": "07700900123"})
    assert "This number cannot be added online" in response.content.decode()
    assert not resident.citizen.contact_points.filter(kind="phone").exists()
    assert sent_codes == []


def test_a_number_that_texted_us_before_is_merged_in_once_confirmed(
    resident_client, resident, sent_codes
):
    provisional = CitizenFactory(status=Citizen.Status.PROVISIONAL)
    point = add_phone(provisional)
    response = resident_client.post("/my/contact/phone/add/", {"phone": "07700 900123"})
    assert response["Location"] == f"/my/contact/{point.pk}/verify/"
    resident_client.post(response["Location"], {"code": sent_codes[-1][1]})
    provisional.refresh_from_db()
    assert provisional.status == "merged" and provisional.merged_into == resident.citizen
    point.refresh_from_db()
    assert point.citizen == resident.citizen and point.verification_level == "confirmed"


def test_removing_a_number_is_soft_and_asks_first(resident_client, resident):
    point = add_phone(resident.citizen)
    page = resident_client.get(f"/my/contact/{point.pk}/remove/").content.decode()
    assert "Remove +447700900123?" in page
    response = resident_client.post(f"/my/contact/{point.pk}/remove/")
    assert response["Location"] == "/my/contact/"
    point.refresh_from_db()
    assert point.removed_at is not None
    html = resident_client.get("/my/contact/").content.decode()
    assert "+447700900123 has been removed." in html  # the banner; the table lists none
    assert f"/my/contact/{point.pk}/" not in html and "You have no phone numbers" in html


def test_the_sign_in_address_cannot_be_removed_here(resident_client, resident):
    login_point = resident.citizen.contact_points.get(kind="email")
    page = resident_client.get(f"/my/contact/{login_point.pk}/remove/").content.decode()
    assert "cannot be removed here" in page and 'href="/accounts/email/"' in page
    response = resident_client.post(f"/my/contact/{login_point.pk}/remove/")
    assert response.status_code == 400
    assert "Change it on the email address page" in response.content.decode()
    login_point.refresh_from_db()
    assert login_point.removed_at is None


@pytest.mark.parametrize("action", ["verify", "remove", "send-code"])
def test_another_residents_contact_points_are_not_found(
    resident_client, other_resident, action, sent_codes
):
    theirs = add_phone(other_resident.citizen)
    missing = ContactPoint.objects.order_by("-pk").first().pk + 100
    for pk in (theirs.pk, missing):
        assert resident_client.get(f"/my/contact/{pk}/{action}/").status_code in (404, 405)
        assert resident_client.post(f"/my/contact/{pk}/{action}/").status_code == 404
    theirs.refresh_from_db()
    assert theirs.removed_at is None and sent_codes == []


def test_forms_need_the_csrf_token(resident, sent_codes):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(resident)
    response = client.post("/my/contact/phone/add/", {"phone": "07700 900123"})
    assert response.status_code == 403
    assert not resident.citizen.contact_points.filter(kind="phone").exists()


def test_contact_pages_need_a_signed_in_resident(client):
    assert client.get("/my/contact/")["Location"] == "/accounts/login/?next=/my/contact/"
