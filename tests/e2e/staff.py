"""Making an officer who can sign in with a password and a TOTP code, and signing them in."""

from __future__ import annotations

from allauth.account.models import EmailAddress
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret

from tests.factories import StaffUserFactory

PASSWORD = "correct-horse-battery-staple"


def officer_with_totp(**fields):
    """A staff user with a verified e-mail address and an activated TOTP authenticator;
    returns (user, secret)."""
    user = StaffUserFactory(**fields)
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    secret = generate_totp_secret()
    TOTP.activate(user, secret)
    return user, secret


def sign_in(page, base_url: str, user, secret: str, next_path: str = "/staff/") -> None:
    """Sign in through the real pages: e-mail and password, then the authenticator code."""
    from tests.e2e.conftest import totp_code

    page.goto(f"{base_url}{next_path}")
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_label("Authenticator code").fill(totp_code(secret))
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base_url}{next_path}")
