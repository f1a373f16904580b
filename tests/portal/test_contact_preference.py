"""How the council contacts a resident about their requests: e-mail or text message, chosen
on /my/contact/preference/; a text message needs a confirmed mobile number."""

from __future__ import annotations

import pytest

from citizenhub.models import AuditEvent, ContactPoint
from citizenhub.normalise import normalise_identity

pytestmark = pytest.mark.django_db

URL = "/my/contact/preference/"


def add_phone(citizen, level: str) -> ContactPoint:
    identity = normalise_identity("phone", "07700 900123", field="phone")
    return ContactPoint.objects.create(
        citizen=citizen,
        kind="phone",
        value="07700 900123",
        normalised=identity.normalised,
        match_key=identity.match_key,
        verification_level=level,
        source="portal",
    )


def test_the_contact_page_says_how_we_contact_you(resident_client):
    body = resident_client.get("/my/contact/").content.decode()

    assert "How we contact you" in body
    assert URL in body


def test_choosing_text_messages_with_a_confirmed_phone(resident_client, resident):
    add_phone(resident.citizen, ContactPoint.VerificationLevel.CONFIRMED)

    response = resident_client.post(URL, {"preferred_channel": "sms"})

    assert response.status_code == 302 and response["Location"] == "/my/contact/"
    resident.citizen.refresh_from_db()
    assert resident.citizen.preferred_channel == "sms"
    assert AuditEvent.objects.filter(
        citizen=resident.citizen, details__preferred_channel=["", "sms"]
    ).exists()


def test_text_messages_need_a_confirmed_phone(resident_client, resident):
    add_phone(resident.citizen, ContactPoint.VerificationLevel.UNVERIFIED)

    response = resident_client.post(URL, {"preferred_channel": "sms"})

    body = response.content.decode()
    assert response.status_code == 200
    assert "<title>Error: " in body
    assert "Add and confirm a mobile phone number first" in body
    resident.citizen.refresh_from_db()
    assert resident.citizen.preferred_channel == ""


@pytest.mark.parametrize("value", ["", "pigeon"])
def test_a_missing_or_unknown_choice_is_a_form_error(resident_client, resident, value):
    response = resident_client.post(URL, {"preferred_channel": value})

    assert response.status_code == 200
    assert "govuk-error-summary" in response.content.decode()
    resident.citizen.refresh_from_db()
    assert resident.citizen.preferred_channel == ""


def test_signed_out_visitors_are_sent_to_sign_in(client):
    response = client.get(URL)

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
