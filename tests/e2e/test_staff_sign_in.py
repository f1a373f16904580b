"""An officer signs in with a password and an authenticator code, in a real browser."""

import pytest

from tests.e2e.conftest import axe_violations, describe, screenshot
from tests.e2e.staff import officer_with_totp, sign_in

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.mfa_required]


@pytest.fixture(autouse=True)
def private_cache(settings):
    # allauth remembers used TOTP codes and counts rate limits in the cache; CI's Redis is
    # shared between runs, so each test gets its own.
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "e2e"}
    }


def test_officer_signs_in_with_mfa_and_the_pages_are_accessible(page, live_server):
    officer, secret = officer_with_totp(first_name="Priya", last_name="Shah")
    page.goto(f"{live_server.url}/staff/")
    assert "/accounts/login/" in page.url
    assert not axe_violations(page), describe(axe_violations(page))
    sign_in(page, live_server.url, officer, secret)
    assert page.locator("h1").first.is_visible()
    violations = axe_violations(page)
    assert not violations, describe(violations)
    screenshot(page, "staff-home")


def test_a_wrong_authenticator_code_is_refused(page, live_server):
    officer, _secret = officer_with_totp()
    page.goto(f"{live_server.url}/staff/")
    page.get_by_label("Email").fill(officer.email)
    page.get_by_label("Password").fill("correct-horse-battery-staple")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_label("Authenticator code").fill("000000")
    page.get_by_role("button", name="Sign in").click()
    assert "/accounts/2fa/authenticate/" in page.url
    assert (
        page.get_by_text("Incorrect code").count() or page.locator(".govuk-error-message").count()
    )
