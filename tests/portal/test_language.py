"""English and Welsh: chosen by Accept-Language or the toggle, shown in <html lang>, and the
signed-in resident's choice saved on their profile (messages to them use it)."""

from __future__ import annotations

import re

import pytest
from django.conf import settings

from citizenhub.models import AuditEvent

pytestmark = pytest.mark.django_db


def html_lang(response) -> str:
    match = re.search(r'<html lang="([^"]+)"', response.content.decode())
    assert match, "the page has no <html lang>"
    return match.group(1)


def test_accept_language_welsh_gives_a_welsh_page(client):
    response = client.get("/", HTTP_ACCEPT_LANGUAGE="cy-GB,cy;q=0.9,en;q=0.5")

    assert response.status_code == 200
    assert html_lang(response) == "cy"
    # The toggle offers the other language, labelled in that language.
    assert 'lang="en"' in response.content.decode()
    assert ">English</button>" in response.content.decode()


def test_english_is_the_default(client):
    response = client.get("/", HTTP_ACCEPT_LANGUAGE="fr-FR")

    assert html_lang(response) in ("en", "en-gb")
    assert ">Cymraeg</button>" in response.content.decode()


def test_the_toggle_switches_language_and_returns_to_the_page(client):
    response = client.post("/language/", {"language": "cy", "next": "/report/"})

    assert response.status_code == 302
    assert response["Location"] == "/report/"
    assert response.cookies[settings.LANGUAGE_COOKIE_NAME].value == "cy"
    assert html_lang(client.get("/")) == "cy"


def test_the_toggle_refuses_an_offsite_next(client):
    response = client.post("/language/", {"language": "cy", "next": "https://evil.example/"})

    assert response.status_code == 302
    assert not response["Location"].startswith("https://evil.example")


def test_a_signed_in_residents_choice_is_saved_on_their_profile(resident_client, resident):
    resident_client.post("/language/", {"language": "cy", "next": "/"})

    resident.citizen.refresh_from_db()
    assert resident.citizen.preferred_language == "cy"
    assert AuditEvent.objects.filter(
        citizen=resident.citizen, details__preferred_language=["en", "cy"]
    ).exists()


def test_an_unknown_language_changes_nothing(resident_client, resident):
    response = resident_client.post("/language/", {"language": "xx", "next": "/"})

    assert response.status_code == 302
    resident.citizen.refresh_from_db()
    assert resident.citizen.preferred_language == "en"


def test_the_toggle_needs_post(client):
    assert client.get("/language/?language=cy").status_code == 405


def test_a_residents_saved_language_applies_when_they_sign_in(client, resident):
    resident.citizen.preferred_language = "cy"
    resident.citizen.save()

    client.post(
        "/accounts/login/", {"login": resident.email, "password": "correct-horse-battery-staple"}
    )
    response = client.get("/", HTTP_ACCEPT_LANGUAGE="en-GB")

    assert html_lang(response) == "cy"


def test_the_toggle_on_this_browser_wins_over_the_saved_language(client, resident):
    resident.citizen.preferred_language = "cy"
    resident.citizen.save()
    client.post(
        "/accounts/login/", {"login": resident.email, "password": "correct-horse-battery-staple"}
    )

    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    response = client.get("/")

    assert html_lang(response) in ("en", "en-gb")
