"""The demo council's portal residents: signed-up accounts linked to demo residents with
cases, one reading Welsh, created once, able to sign in with the printed password."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from citizenhub.demo_casework import DEMO_PASSWORD
from citizenhub.demo_portal import DEMO_PORTAL_ACCOUNTS, ensure_demo_portal_accounts
from citizenhub.models import Citizen, ContactPoint

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def demo_mode(settings):
    settings.DEBUG = True


def test_demo_residents_can_sign_in_and_own_their_cases(client):
    call_command("seed_demo", residents=100, quiet=True)  # enough for casework

    citizens = {
        c.user.username: c
        for c in Citizen.objects.filter(
            user__username__in=[a.username for a in DEMO_PORTAL_ACCOUNTS]
        ).select_related("user")
    }
    assert set(citizens) == {a.username for a in DEMO_PORTAL_ACCOUNTS}
    assert citizens["demo.preswylydd"].preferred_language == "cy"
    for citizen in citizens.values():
        assert citizen.cases.count() >= 2
        assert citizen.contact_points.filter(
            kind=ContactPoint.Kind.EMAIL,
            normalised__iexact=citizen.user.email,
            verification_level=ContactPoint.VerificationLevel.CONFIRMED,
        ).exists()

    resident = citizens["demo.resident"].user
    response = client.post("/accounts/login/", {"login": resident.email, "password": DEMO_PASSWORD})
    assert response.status_code == 302
    assert client.get("/my/").status_code == 200

    assert ensure_demo_portal_accounts() == 0


def test_demo_staff_prints_the_resident_logins():
    call_command("seed_demo", residents=40, quiet=True)
    out = io.StringIO()
    call_command("demo_staff", stdout=out)

    resident = Citizen.objects.get(user__username="demo.resident").user
    assert "Residents' portal logins" in out.getvalue()
    assert resident.email in out.getvalue()
