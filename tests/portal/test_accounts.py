"""Residents' accounts: sign-up with a verified e-mail address that links the account to
the resident's profile, no user enumeration, changing the address, the allauth pages in the
portal's GOV.UK layout, and /my/."""

from __future__ import annotations

import re
import threading
import time

import pytest
from allauth.account import app_settings as account_settings
from allauth.account.models import EmailAddress
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import close_old_connections, connection
from django.db.models import Q
from django.utils import translation
from django.utils.translation import gettext

from citizenhub.models import AuditEvent, Citizen, ContactPoint, DuplicateCandidate, TimelineEntry
from citizenhub.normalise import normalise_identity
from citizenhub.portal.registry import _my_sections, register_my_section
from citizenhub.services.accounts import (
    SIGNED_UP_SUMMARY,
    account_email_confirmed,
    link_account_to_citizen,
)
from tests.factories import CitizenFactory, StaffUserFactory, UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "correct-horse-battery-staple"
NEW_PASSWORD = "a-long-walk-by-the-river-9"
LINK = re.compile(r"https?://[^/\s]+(/accounts/confirm-email/[^\s]+/)")


def email_point(citizen: Citizen, address: str, **fields) -> ContactPoint:
    identity = normalise_identity("email", address, field="email")
    return ContactPoint.objects.create(
        citizen=citizen,
        kind="email",
        value=address,
        normalised=identity.normalised,
        match_key=identity.match_key,
        **fields,
    )


def sign_up(client, email: str, **headers):
    return client.post(
        "/accounts/signup/",
        {"email": email, "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
        **headers,
    )


def confirm_from_mail(client, message, **headers):
    path = LINK.search(message.body).group(1)
    page = client.get(path, **headers)
    heading = re.search(r"<h1[^>]*>\s*(.*?)\s*</h1>", page.content.decode(), re.S).group(1)
    assert page.status_code == 200
    with translation.override(page["Content-Language"]):
        assert heading == gettext("Confirm your email address")
    return client.post(path, **headers)


# --- Settings that matter, read back from the running configuration ----------------------


def test_account_settings_are_the_ones_we_rely_on():
    assert account_settings.EMAIL_VERIFICATION == "mandatory"
    assert account_settings.PREVENT_ENUMERATION is True
    assert account_settings.CHANGE_EMAIL is True
    assert settings.ACCOUNT_ADAPTER == "citizenhub.portal.accounts.ResidentAccountAdapter"
    limits = account_settings.RATE_LIMITS
    assert limits["login_failed"] == "10/m/ip,5/300s/key"
    assert limits["signup"] and limits["reset_password"] and limits["confirm_email"]
    assert "webauthn" in settings.MFA_SUPPORTED_TYPES


# --- Sign-up -------------------------------------------------------------------------------


def test_sign_up_page_is_a_labelled_govuk_form(client):
    html = client.get("/accounts/signup/").content.decode()
    assert re.search(r"<title>Create an account – ", html)
    assert '<label class="govuk-label" for="id_email">Email address</label>' in html
    assert '<label class="govuk-label" for="id_password1">Create a password</label>' in html
    assert 'aria-describedby="id_password1-hint"' in html
    assert "govuk-service-navigation" in html  # the portal layout


def test_sign_up_errors_are_summarised_and_save_nothing(client):
    response = client.post(
        "/accounts/signup/", {"email": "not-an-address", "password1": "x", "password2": "y"}
    )
    html = response.content.decode()
    assert response.status_code == 200 and "<title>Error: Create an account" in html
    assert 'class="govuk-error-summary"' in html and 'href="#id_email"' in html
    assert "Enter an email address in the correct format" in html
    assert not get_user_model().objects.exists()


def test_signing_up_and_confirming_the_address_makes_a_profile(client, mailoutbox):
    response = sign_up(client, "Sian.Morgan@Example.org")
    assert response.status_code == 302
    assert "Check your email" in client.get(response["Location"]).content.decode()
    user = get_user_model().objects.get(email__iexact="sian.morgan@example.org")
    assert not Citizen.objects.filter(user=user).exists()  # nothing before the proof
    assert client.get("/my/")["Location"].startswith("/accounts/login/")

    response = confirm_from_mail(client, mailoutbox[-1])
    assert response.status_code == 302

    citizen = Citizen.objects.get(user=user)
    assert citizen.status == Citizen.Status.ACTIVE and citizen.preferred_language == "en"
    [point] = citizen.contact_points.all()
    assert point.normalised == "sian.morgan@example.org" and point.is_primary
    assert point.verification_level == ContactPoint.VerificationLevel.CONFIRMED
    assert point.source == ContactPoint.Source.PORTAL
    entry = TimelineEntry.objects.get(citizen=citizen, kind="profile")
    assert entry.summary == SIGNED_UP_SUMMARY and entry.visibility == "resident"
    assert AuditEvent.objects.filter(
        citizen=citizen, action="create", reason="signed up to the residents' portal"
    ).exists()
    client.force_login(user)
    assert client.get("/my/").status_code == 200


def test_a_resident_signing_up_in_welsh_gets_a_welsh_profile(client, mailoutbox):
    welsh = {"HTTP_ACCEPT_LANGUAGE": "cy"}
    sign_up(client, "dafydd@example.org", **welsh)
    confirm_from_mail(client, mailoutbox[-1], **welsh)
    assert Citizen.objects.get(user__email="dafydd@example.org").preferred_language == "cy"


def test_sign_up_with_a_taken_address_looks_the_same_as_a_new_one(client, resident, mailoutbox):
    new = sign_up(client, "someone-new@example.org")
    client.logout()
    taken = sign_up(client, resident.email)

    assert new.status_code == taken.status_code == 302
    assert new["Location"] == taken["Location"]
    new_page = client.get(new["Location"]).content.decode()
    taken_page = client.get(taken["Location"]).content.decode()
    assert _main(new_page) == _main(taken_page)
    assert get_user_model().objects.filter(email__iexact=resident.email).count() == 1
    # The owner of the address is told, by e-mail only.
    assert mailoutbox[-1].to == [resident.email]


def _main(html: str) -> str:
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", html.split("<main", 1)[1])


def test_password_reset_says_the_same_for_known_and_unknown_addresses(client, resident):
    known = client.post("/accounts/password/reset/", {"email": resident.email})
    unknown = client.post("/accounts/password/reset/", {"email": "nobody@example.org"})
    assert known.status_code == unknown.status_code == 302
    assert known["Location"] == unknown["Location"]
    done = client.get(known["Location"]).content.decode()
    assert "If that address has an account" in done


def test_password_reset_link_lets_the_resident_choose_a_new_password(client, resident, mailoutbox):
    client.post("/accounts/password/reset/", {"email": resident.email})
    path = re.search(r"https?://[^/\s]+(/accounts/password/reset/key/[^\s]+/)", mailoutbox[-1].body)
    response = client.get(path.group(1), follow=True)
    html = response.content.decode()
    assert "Choose a new password" in html and 'for="id_password1">New password<' in html
    response = client.post(
        response.redirect_chain[-1][0], {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD}
    )
    assert response.status_code == 302
    resident.refresh_from_db()
    assert resident.check_password(NEW_PASSWORD)


# --- Linking an account to the profile that owns the address ------------------------------


def test_an_existing_profile_that_proved_the_address_is_linked_not_duplicated():
    citizen = CitizenFactory()
    point = email_point(citizen, "rhian@example.org", verification_level="confirmed")
    user = UserFactory(email="rhian@example.org")

    link = link_account_to_citizen(user=user, email="Rhian@example.org", language="cy")

    assert link.citizen == citizen and link.outcome == "existing"
    citizen.refresh_from_db()
    point.refresh_from_db()
    assert citizen.user == user and citizen.preferred_language == "en"  # theirs is kept
    assert point.verification_level == "confirmed"
    assert Citizen.objects.count() == 1


@pytest.mark.parametrize("level", ["unverified", "asserted"])
def test_a_profile_with_an_unproven_address_is_not_handed_over(level):
    """Staff typed the address (or it was only ever claimed): whoever holds that mailbox now
    may not be the person whose cases and history the profile holds."""
    citizen = CitizenFactory(given_name="Mary")
    email_point(citizen, "mary.x@example.org", verification_level=level)
    user = UserFactory(email="mary.x@example.org")

    link = link_account_to_citizen(user=user, email="mary.x@example.org")

    assert link.outcome == "separate" and link.citizen != citizen
    citizen.refresh_from_db()
    assert citizen.user is None
    assert DuplicateCandidate.objects.filter(
        Q(citizen_a=citizen, citizen_b=link.citizen) | Q(citizen_a=link.citizen, citizen_b=citizen)
    ).exists()


def test_a_staff_checked_address_is_not_downgraded():
    citizen = CitizenFactory()
    point = email_point(citizen, "rhian@example.org", verification_level="staff_checked")
    link_account_to_citizen(user=UserFactory(email="rhian@example.org"), email="rhian@example.org")
    point.refresh_from_db()
    assert point.verification_level == "staff_checked"


def test_a_provisional_profile_becomes_active_when_its_owner_signs_up():
    provisional = CitizenFactory(status=Citizen.Status.PROVISIONAL)
    email_point(provisional, "texter@example.org")
    user = UserFactory(email="texter@example.org")

    link = link_account_to_citizen(user=user, email="texter@example.org")

    provisional.refresh_from_db()
    assert link.outcome == "provisional" and provisional.status == "active"
    assert provisional.user == user


def test_an_address_on_another_accounts_profile_is_not_taken_over():
    owner = UserFactory(email="old@example.org")
    theirs = CitizenFactory(user=owner)
    theirs_point = email_point(theirs, "shared@example.org", verification_level="confirmed")
    newcomer = UserFactory(email="shared@example.org")

    link = link_account_to_citizen(user=newcomer, email="shared@example.org")

    assert link.outcome == "separate" and link.citizen != theirs
    assert link.citizen.user == newcomer and not link.citizen.contact_points.exists()
    theirs_point.refresh_from_db()
    assert theirs_point.citizen == theirs and theirs_point.removed_at is None
    candidate = DuplicateCandidate.objects.get()
    assert {candidate.citizen_a, candidate.citizen_b} == {theirs, link.citizen}
    assert candidate.status == "open"


def test_linking_is_idempotent():
    user = UserFactory(email="twice@example.org")
    first = link_account_to_citizen(user=user, email="twice@example.org")
    second = link_account_to_citizen(user=user, email="twice@example.org")
    assert first.citizen == second.citizen and second.outcome == "already"
    assert Citizen.objects.count() == 1
    assert TimelineEntry.objects.filter(kind="profile").count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_confirmations_at_once_make_one_profile():
    if connection.vendor != "postgresql":
        pytest.skip("row locks and concurrent transactions need PostgreSQL")
    user = UserFactory(email="racer@example.org")
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def confirm() -> None:
        try:
            barrier.wait(timeout=10)
            link_account_to_citizen(user=user, email="racer@example.org")
        except BaseException as exc:
            errors.append(exc)
        finally:
            close_old_connections()

    threads = [threading.Thread(target=confirm) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert Citizen.objects.filter(user=user).count() == 1
    assert ContactPoint.objects.filter(match_key="racer@example.org").count() == 1
    assert TimelineEntry.objects.filter(kind="profile").count() == 1


def test_staff_accounts_get_no_resident_profile(client, mailoutbox):
    officer = StaffUserFactory(email="officer@northmoor.example")
    address = EmailAddress.objects.create(user=officer, email=officer.email, primary=True)
    from allauth.account.models import EmailConfirmationHMAC

    client.force_login(officer)
    key = EmailConfirmationHMAC(address).key
    client.post(f"/accounts/confirm-email/{key}/")
    assert EmailAddress.objects.get(pk=address.pk).verified
    assert not Citizen.objects.filter(user=officer).exists()


# --- Changing the e-mail address -----------------------------------------------------------


def signed_in(client, user):
    """Signed in through the login form, and the password given again on allauth's "confirm
    it is you" page (asked before anything about how the account signs in changes)."""
    response = client.post("/accounts/login/", {"login": user.email, "password": PASSWORD})
    assert response.status_code == 302, response.content.decode()[:2000]
    page = client.get("/accounts/reauthenticate/?next=/my/")
    assert '<h1 class="govuk-heading-l">Confirm it is you</h1>' in page.content.decode()
    response = client.post("/accounts/reauthenticate/?next=/my/", {"password": PASSWORD})
    assert response["Location"] == "/my/"
    return client


def test_changing_the_address_adds_it_to_the_profile_once_confirmed(client, resident, mailoutbox):
    signed_in(client, resident)
    page = client.get("/accounts/email/").content.decode()
    assert "Your email address" in page and resident.email in page
    response = client.post(
        "/accounts/email/", {"action_add": "", "email": "new-address@example.org"}
    )
    assert response.status_code == 302
    assert not resident.citizen.contact_points.filter(normalised="new-address@example.org").exists()

    confirm_from_mail(client, mailoutbox[-1])

    resident.refresh_from_db()
    assert resident.email == "new-address@example.org"
    citizen = resident.citizen
    new = citizen.contact_points.get(normalised="new-address@example.org")
    assert new.verification_level == "confirmed" and new.is_primary
    old = citizen.contact_points.exclude(pk=new.pk).get(kind="email")
    assert old.removed_at is None and not old.is_primary


def test_a_confirmed_address_of_a_provisional_profile_merges_it_in(resident):
    provisional = CitizenFactory(status=Citizen.Status.PROVISIONAL)
    email_point(provisional, "second@example.org")

    account_email_confirmed(user=resident, email="second@example.org")

    provisional.refresh_from_db()
    assert provisional.status == Citizen.Status.MERGED
    assert provisional.merged_into == resident.citizen
    assert resident.citizen.contact_points.get(normalised="second@example.org").is_primary


# --- allauth pages in the portal layout -----------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "/accounts/login/",
        "/accounts/signup/",
        "/accounts/password/reset/",
        "/accounts/password/reset/done/",
        "/accounts/confirm-email/",
    ],
)
def test_public_account_pages_use_the_portal_layout(client, url):
    response = client.get(url)
    assert response.status_code == 200
    html = response.content.decode()
    assert "govuk-service-navigation" in html and '<h1 class="govuk-heading-l">' in html
    assert re.search(r"<title>[^<]+ – ", html)


@pytest.mark.parametrize(
    "url,heading",
    [
        ("/accounts/email/", "Your email address"),
        ("/accounts/password/change/", "Change your password"),
        ("/accounts/logout/", "Sign out"),
        ("/accounts/2fa/", "Two-factor authentication"),
        ("/accounts/2fa/totp/activate/", "Set up an authenticator app"),
        ("/accounts/2fa/webauthn/add/", "Add a passkey or security key"),
    ],
)
def test_account_pages_of_a_signed_in_resident(client, resident, url, heading):
    signed_in(client, resident)
    response = client.get(url)
    assert response.status_code == 200
    html = response.content.decode()
    assert f'<h1 class="govuk-heading-l">{heading}</h1>' in html
    assert "Back to sign-in and security" in html
    assert 'class="govuk-label"' in html or url in ("/accounts/2fa/", "/accounts/logout/")


def test_the_add_passkey_page_offers_webauthn_and_says_it_needs_javascript(client, resident):
    signed_in(client, resident)
    html = client.get("/accounts/2fa/webauthn/add/").content.decode()
    assert '<label class="govuk-label" for="id_name">' in html
    assert 'id="js_data"' in html and "creation_options" in html
    assert "<noscript>" in html and "Passkeys need JavaScript" in html


def test_a_resident_can_turn_on_totp(client, resident):
    from allauth.mfa.models import Authenticator
    from allauth.mfa.totp.internal.auth import format_hotp_value, hotp_value

    signed_in(client, resident)
    client.get("/accounts/2fa/totp/activate/")
    secret = client.session["mfa.totp.secret"]
    code = format_hotp_value(hotp_value(secret, int(time.time()) // 30))
    response = client.post("/accounts/2fa/totp/activate/", {"code": code})
    assert response.status_code == 302
    assert Authenticator.objects.filter(user=resident, type="totp").exists()
    assert client.get("/accounts/2fa/recovery-codes/").status_code == 200
    download = client.get("/accounts/2fa/recovery-codes/download/")
    assert download.status_code == 200 and len(download.content.split()) == 10


def test_residents_land_on_my_account_after_signing_in(client, resident):
    response = client.post("/accounts/login/", {"login": resident.email, "password": PASSWORD})
    assert response["Location"] == "/my/"


# --- /my/ -------------------------------------------------------------------------------------


def test_my_account_greets_the_resident_and_lists_the_sections(resident_client, resident):
    register_my_section(
        "test-extra",
        order=60,
        title="Test section",
        description="Added by a test app",
        url_name="portal:my-contact",
    )
    register_my_section(
        "test-missing", order=61, title="Gone", description="", url_name="nowhere:at-all"
    )
    try:
        response = resident_client.get("/my/")
    finally:
        _my_sections.pop("test-extra")
        _my_sections.pop("test-missing")
    html = response.content.decode()
    assert response.status_code == 200
    assert "<title>Your account – " in html and "Hello, Rhian" in html
    for href, title in [
        ("/my/cases/", "My cases"),
        ("/my/contact/", "Contact details"),
        ("/my/data/", "My data"),
        ("/my/security/", "Sign-in and security"),
        ("/my/contact/", "Test section"),
    ]:
        assert f'<a class="govuk-link" href="{href}">{title}</a>' in html
    assert "Gone" not in html
    assert html.index("My cases") < html.index("Contact details") < html.index("Test section")
    assert html.index("Test section") < html.index("My data")


def test_sign_in_and_security_links_to_the_account_pages(resident_client):
    html = resident_client.get("/my/security/").content.decode()
    for url in ("/accounts/email/", "/accounts/password/change/", "/accounts/2fa/"):
        assert f'href="{url}"' in html


def test_my_account_needs_a_signed_in_resident(client):
    assert client.get("/my/")["Location"] == "/accounts/login/?next=/my/"
