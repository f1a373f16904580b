"""allauth's e-mails in our own words (templates/account/email/, templates/mfa/email/), in
the language the resident is using when the e-mail is sent, signed with the council's name."""

from __future__ import annotations

import re
from pathlib import Path

import allauth
import pytest
from allauth.account.adapter import get_adapter
from allauth.core import context as allauth_context
from django.conf import settings
from django.test import RequestFactory
from django.utils import timezone, translation

from citizenhub.models import Citizen

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-walk-by-the-river-9"
NEW_PASSWORD = "the-hills-above-the-town-4"
# allauth's rate limits count in the cache, which outlives a test: these tests use their own
# client address and mailboxes, so they neither meet nor use up other tests' allowance.
CLIENT_IP = "192.0.2.61"
WELSH = {"HTTP_ACCEPT_LANGUAGE": "cy", "REMOTE_ADDR": CLIENT_IP}
ENGLISH = {"HTTP_ACCEPT_LANGUAGE": "en", "REMOTE_ADDR": CLIENT_IP}
CONFIRM_LINK = re.compile(r"https?://[^/\s]+(/accounts/confirm-email/[^\s]+/)")
RESET_LINK = re.compile(r"https?://[^/\s]+(/accounts/password/reset/key/[^\s]+/)")
ALLAUTH_TEMPLATES = Path(allauth.__file__).parent / "templates"
OUR_TEMPLATES = Path(settings.BASE_DIR) / "templates"
# Words of allauth's own e-mails: none of them may reach a resident.
ALLAUTH_WORDING = ("Hello from", "Thank you for using", "You're receiving", "example.com")


def sign_up(client, email: str, **headers):
    return client.post(
        "/accounts/signup/",
        {"email": email, "password1": PASSWORD, "password2": PASSWORD},
        **headers,
    )


def assert_ours(message) -> None:
    text = f"{message.subject}\n{message.body}"
    for words in ALLAUTH_WORDING:
        assert words not in text
    assert message.subject.startswith(f"[{settings.COUNCIL_NAME}] ")
    assert message.body.rstrip().endswith(settings.COUNCIL_NAME)


# --- Sign-up ---------------------------------------------------------------------------------


def test_signing_up_in_welsh_sends_a_welsh_confirmation_with_a_working_link(client, mailoutbox):
    sign_up(client, "dafydd.emails@example.org", **WELSH)

    [message] = mailoutbox
    assert message.to == ["dafydd.emails@example.org"]
    assert_ours(message)
    assert "Cadarnhewch eich cyfeiriad e-bost i orffen creu eich cyfrif" in message.subject
    assert f"Diolch am greu cyfrif {settings.COUNCIL_NAME}" in message.body
    assert "Dewiswch y ddolen hon i'w gadarnhau:" in message.body
    assert "Confirm" not in message.body and "Thank you" not in message.body

    path = CONFIRM_LINK.search(message.body).group(1)
    page = client.get(path, **WELSH)
    assert page.status_code == 200
    assert client.post(path, **WELSH).status_code == 302
    assert Citizen.objects.get(user__email="dafydd.emails@example.org").preferred_language == "cy"


def test_signing_up_in_english_sends_an_english_confirmation(client, mailoutbox):
    sign_up(client, "sian.emails@example.org", **ENGLISH)

    [message] = mailoutbox
    assert_ours(message)
    assert message.subject.endswith("Confirm your email address to finish creating your account")
    assert f"Thank you for creating a {settings.COUNCIL_NAME} account." in message.body
    assert "Cadarnhewch" not in message.body
    path = CONFIRM_LINK.search(message.body).group(1)
    assert client.post(path).status_code == 302
    assert Citizen.objects.get(user__email="sian.emails@example.org").preferred_language == "en"


def test_the_language_cookie_chooses_the_language_of_the_email(client, mailoutbox):
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "cy"
    sign_up(client, "eleri.emails@example.org", **ENGLISH)

    assert "Diolch am greu cyfrif" in mailoutbox[-1].body


def test_signing_up_with_a_taken_address_tells_its_owner_in_their_language(
    client, resident, mailoutbox
):
    sign_up(client, resident.email, **WELSH)

    [message] = mailoutbox
    assert message.to == [resident.email]
    assert_ours(message)
    assert "Mae gennych gyfrif yn barod" in message.subject
    assert resident.email in message.body
    assert "/accounts/password/reset/" in message.body


# --- Password reset --------------------------------------------------------------------------


def test_password_reset_email_in_welsh_has_a_working_link(client, resident, mailoutbox):
    client.post("/accounts/password/reset/", {"email": resident.email}, **WELSH)

    [message] = mailoutbox
    assert_ours(message)
    assert message.subject.endswith("Ailosod eich cyfrinair")
    assert "Dewiswch y ddolen hon i ddewis cyfrinair newydd:" in message.body
    response = client.get(RESET_LINK.search(message.body).group(1), follow=True, **WELSH)
    response = client.post(
        response.redirect_chain[-1][0],
        {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
        **WELSH,
    )
    assert response.status_code == 302
    resident.refresh_from_db()
    assert resident.check_password(NEW_PASSWORD)


def test_password_reset_for_an_unknown_address_says_so_only_by_email(client, mailoutbox):
    client.post("/accounts/password/reset/", {"email": "nobody.emails@example.org"}, **ENGLISH)

    [message] = mailoutbox
    assert_ours(message)
    assert message.subject.endswith("There is no account with this email address")
    assert "nobody.emails@example.org" in message.body and "/accounts/signup/" in message.body


# --- Notifications of changes ----------------------------------------------------------------


def test_a_change_notification_is_in_the_residents_saved_language_and_says_where_from(
    client, resident, mailoutbox, settings
):
    settings.ACCOUNT_EMAIL_NOTIFICATIONS = True
    resident.set_password(PASSWORD)
    resident.save()
    resident.citizen.preferred_language = "cy"
    resident.citizen.save()
    client.force_login(resident)  # signing in brings the profile's language to the session

    response = client.post(
        "/accounts/password/change/",
        {"oldpassword": PASSWORD, "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
        HTTP_USER_AGENT="Firefox Test",
        **ENGLISH,
    )

    assert response.status_code == 302
    [message] = mailoutbox
    assert_ours(message)
    assert message.subject.endswith("Mae eich cyfrinair wedi newid")
    assert f"- o'r cyfeiriad IP {CLIENT_IP}" in message.body
    assert "- gan ddefnyddio Firefox Test" in message.body
    assert "/accounts/password/reset/" in message.body


# --- Every e-mail allauth can send is ours, in both languages -------------------------------


def allauth_email_templates() -> list[str]:
    names = []
    for folder in ("account/email", "mfa/email"):
        names += [f"{folder}/{path.name}" for path in (ALLAUTH_TEMPLATES / folder).glob("*.txt")]
    return sorted(names)


def test_every_allauth_email_template_has_our_version():
    missing = [name for name in allauth_email_templates() if not (OUR_TEMPLATES / name).exists()]
    assert allauth_email_templates() and not missing


SAMPLE_CONTEXT = {
    "activate_url": "https://portal.example/accounts/confirm-email/key/",
    "code": None,
    "password_reset_url": "https://portal.example/accounts/password/reset/key/1-set/",
    "signup_url": "https://portal.example/accounts/signup/",
    "from_email": "old@example.org",
    "to_email": "new@example.org",
    "deleted_email": "old@example.org",
    "ip": "192.0.2.10",
    "user_agent": "Test browser",
}


# Each e-mail is a _subject.txt and a _message.txt; base_message/base_notification are the
# layouts every other e-mail renders through.
@pytest.mark.parametrize(
    "prefix",
    sorted({name.rsplit("_", 1)[0] for name in allauth_email_templates()} - {"account/email/base"}),
)
def test_each_email_reads_differently_in_welsh_and_names_the_council(prefix, rf: RequestFactory):
    request = rf.get("/")
    adapter = get_adapter(request)
    context = {**SAMPLE_CONTEXT, "timestamp": timezone.now(), "email": "rhian@example.org"}
    rendered = {}
    with allauth_context.request_context(request):
        for language in ("en", "cy"):
            with translation.override(language):
                context_with_names = {"council_name": settings.COUNCIL_NAME, **context}
                rendered[language] = adapter.render_mail(
                    prefix, "rhian@example.org", context_with_names
                )
    english, welsh = rendered["en"], rendered["cy"]
    assert english.subject != welsh.subject and english.body != welsh.body
    for message in (english, welsh):
        assert "{%" not in message.body and "%(" not in message.body
        assert settings.COUNCIL_NAME in message.body
        for words in ALLAUTH_WORDING:
            assert words not in message.body
