"""The staff dashboard shell: GOV.UK assets and layout, staff access, roles, and staff MFA."""

from __future__ import annotations

import re
import time
from urllib.parse import urljoin, urlsplit

import pytest
from allauth.account.models import EmailAddress
from allauth.mfa import app_settings as mfa_settings
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import (
    TOTP,
    format_hotp_value,
    generate_totp_secret,
    hotp_value,
)
from django.contrib.auth.models import Group
from django.contrib.staticfiles import finders
from django.http import HttpResponse
from django.template.loader import render_to_string
from django.test import Client, RequestFactory
from django.urls import resolve
from django.views import View
from rest_framework.authtoken.models import Token

from citizenhub.apps import check_frontend_packages
from citizenhub.staff import access
from tests.factories import StaffUserFactory

PASSWORD = "correct-horse-battery-staple"  # tests.factories.UserFactory's
STAFF_HOME = "/staff/"
CITIZENS_API = "/api/v1/citizens/"
TOTP_ACTIVATE = "/accounts/2fa/totp/activate/"
GOVUK_CSS = "govuk/govuk-frontend.citizenhub.min.css"


# --- TOTP helpers: allauth's own code, so tests sign in exactly as an officer's app would ---


def activate_totp(user) -> str:
    """Give `user` an authenticator app (allauth's TOTP); returns the secret."""
    secret = generate_totp_secret()
    TOTP.activate(user, secret)
    return secret


def totp_code(secret: str) -> str:
    """The code an authenticator app shows now for `secret`."""
    return format_hotp_value(hotp_value(secret, int(time.time()) // mfa_settings.TOTP_PERIOD))


def officer_with_login(**extra):
    """A staff user who can sign in at /accounts/login/ (verified e-mail, known password)."""
    user = StaffUserFactory(**extra)
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    return user


@pytest.fixture(autouse=True)
def private_cache(settings):
    # allauth keeps used TOTP codes and rate limits in the cache: never share them with
    # another test run (CI points the cache at a shared Redis).
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "test-staff-shell",
        }
    }


# --- Front-end assets ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        GOVUK_CSS,
        "govuk/govuk-frontend.min.js",
        "govuk/assets/fonts/bold-b542beb274-v2.woff2",
        "govuk/assets/fonts/light-94a07e06a1-v2.woff2",
        "govuk/assets/images/govuk-crest.svg",
        "vendor/htmx/htmx.min.js",
        "vendor/chartjs/chart.umd.min.js",
    ],
)
def test_front_end_packages_are_found_by_the_static_finders(path):
    assert finders.find(path), f"{path} not found: run `make install` (npm ci)"


def test_govuk_css_refers_to_its_fonts_and_images_relatively_and_they_exist():
    css = open(finders.find(GOVUK_CSS), encoding="utf-8").read()  # noqa: SIM115
    urls = re.findall(r"url\(\s*['\"]?([^'\")]+)", css)
    assert len(urls) >= 5
    for url in urls:
        assert not url.startswith("/"), f"{url} would miss STATIC_URL"
        assert finders.find(urljoin("govuk/", url)), url


def test_fonts_and_crest_are_served_under_static_url(settings):
    settings.WHITENOISE_USE_FINDERS = True
    settings.WHITENOISE_AUTOREFRESH = True
    client = Client()  # middleware is set up with the client, after the settings above
    css_url = f"{settings.STATIC_URL}{GOVUK_CSS}"
    response = client.get(css_url)
    assert response.status_code == 200
    css = b"".join(response.streaming_content).decode()
    urls = set(re.findall(r"url\(\s*['\"]?([^'\")]+)", css))
    assert any(".woff2" in url for url in urls) and any("crest" in url for url in urls)
    for url in urls:
        absolute = urljoin(css_url, url)
        assert absolute.startswith(f"{settings.STATIC_URL}govuk/assets/")
        assert client.get(urlsplit(absolute).path).status_code == 200, absolute


def test_missing_node_modules_is_a_warning_not_a_crash(settings, tmp_path):
    settings.FRONTEND_PACKAGE_DIRS = [("govuk", tmp_path / "missing")]
    [warning] = check_frontend_packages()
    assert warning.id == "citizenhub.W001" and "make install" in warning.hint
    settings.FRONTEND_PACKAGE_DIRS = [("govuk", tmp_path)]
    assert check_frontend_packages() == []


# --- Layout -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_public_pages_use_the_govuk_template(client, settings):
    html = client.get("/").content.decode()
    assert '<html lang="en" class="govuk-template">' in html
    assert 'class="govuk-template__body' in html
    assert '<a href="#main-content" class="govuk-skip-link"' in html
    assert 'id="main-content"' in html and "govuk-main-wrapper" in html
    assert "govuk-header" in html and "govuk-footer" in html and "govuk-phase-banner" in html
    assert settings.COUNCIL_NAME in html
    assert f"{settings.STATIC_URL}{GOVUK_CSS}" in html
    assert "govuk-frontend-supported" in html
    assert 'import { initAll } from "/static/govuk/govuk-frontend.min.js"' in html
    # Not a GOV.UK service: no crown logo or GOV.UK name in the header.
    assert "GOV.UK" not in html


@pytest.mark.django_db
def test_messages_are_shown_as_notification_banners(client):
    officer = officer_with_login()
    response = client.post(
        "/accounts/login/", {"login": officer.email, "password": PASSWORD}, follow=True
    )
    html = response.content.decode()
    assert "govuk-notification-banner govuk-notification-banner--success" in html
    assert 'role="alert"' in html and "Successfully signed in" in html


@pytest.mark.django_db
def test_channel_health_page_still_renders_inside_the_new_layout(client):
    client.force_login(StaffUserFactory())
    assert resolve("/staff/channels/").view_name == "channels:channel-health"
    response = client.get("/staff/channels/")
    assert response.status_code == 200
    assert "govuk-template" in response.content.decode()


# --- Staff access -------------------------------------------------------------------------


@pytest.mark.django_db
def test_staff_home_sends_anonymous_visitors_to_sign_in(client):
    response = client.get(STAFF_HOME)
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/staff/"


@pytest.mark.django_db
def test_staff_home_is_forbidden_to_residents(client, resident_user):
    client.force_login(resident_user)
    response = client.get(STAFF_HOME)
    assert response.status_code == 403
    assert "You do not have access to this page" in response.content.decode()


@pytest.mark.django_db
@pytest.mark.mfa_required
def test_staff_home_for_an_officer_with_totp(client):
    officer = StaffUserFactory(first_name="Alex")
    activate_totp(officer)
    client.force_login(officer)
    response = client.get(STAFF_HOME)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Welcome, Alex" in html
    for path in ("/staff/inbox/", "/staff/cases/", "/staff/search/", "/staff/duplicates/"):
        assert f'class="govuk-service-navigation__link" href="{path}"' in html
    assert 'href="/staff/insight/"' in html
    token = re.search(r"hx-headers='\{\"X-CSRFToken\": \"([^\"]+)\"\}'", html)
    assert token and len(token.group(1)) >= 32
    assert "/static/vendor/htmx/htmx.min.js" in html
    assert '<form method="post" action="/accounts/logout/">' in html and "Sign out" in html


def test_staff_navigation_marks_the_current_section():
    request = RequestFactory().get("/staff/cases/CH-2026-000001/")
    html = render_to_string(
        "staff/partials/navigation_item.html",
        {"href": "/staff/cases/", "label": "Cases", "request": request},
    )
    assert "govuk-service-navigation__item--active" in html and 'aria-current="true"' in html
    html = render_to_string(
        "staff/partials/navigation_item.html",
        {"href": "/staff/inbox/", "label": "Inbox", "request": request},
    )
    assert "--active" not in html and "aria-current" not in html


@pytest.mark.django_db
def test_staff_required_mixin(rf, resident_user, staff_user):
    class Page(access.StaffRequiredMixin, View):
        def get(self, request):
            return HttpResponse("ok")

    def call(user):
        request = rf.get("/staff/somewhere/")
        request.user = user
        return Page.as_view()(request)

    from django.contrib.auth.models import AnonymousUser

    assert call(AnonymousUser())["Location"] == "/accounts/login/?next=/staff/somewhere/"
    assert call(resident_user).status_code == 403
    assert call(staff_user).content == b"ok"


@pytest.mark.django_db
def test_user_in_group(staff_user):
    from django.contrib.auth.models import AnonymousUser

    assert not access.user_in_group(staff_user, access.CASEWORKER)
    staff_user.groups.add(Group.objects.get(name=access.CASEWORKER))
    assert access.user_in_group(staff_user, access.CASEWORKER)
    assert not access.user_in_group(staff_user, access.SUPERVISOR)
    assert not access.user_in_group(AnonymousUser(), access.CASEWORKER)


# --- Roles --------------------------------------------------------------------------------


def permissions_of(name: str) -> set[str]:
    group = Group.objects.get(name=name)
    return {
        f"{app}.{codename}"
        for app, codename in group.permissions.values_list("content_type__app_label", "codename")
    }


@pytest.mark.django_db
def test_migrate_creates_the_staff_groups_with_their_permissions():
    names = set(Group.objects.values_list("name", flat=True))
    assert set(access.STAFF_GROUPS) <= names
    assert set(access.STAFF_GROUPS) == {
        "caseworker",
        "comms officer",
        "democracy officer",
        "supervisor",
        "administrator",
    }

    administrator = permissions_of(access.ADMINISTRATOR)
    assert {"citizenhub.delete_citizen", "channels.delete_channel"} <= administrator

    supervisor = permissions_of(access.SUPERVISOR)
    assert {"citizenhub.view_citizen", "citizenhub.change_citizen"} <= supervisor
    assert {"channels.view_thread", "channels.change_thread"} <= supervisor
    assert not any(".delete_" in p for p in supervisor)

    caseworker = permissions_of(access.CASEWORKER)
    assert {"citizenhub.view_citizen", "channels.view_thread"} <= caseworker
    assert "citizenhub.change_citizen" not in caseworker
    assert not any(".delete_" in p for p in caseworker)
    if "citizenhub.view_servicecase" in caseworker:  # once service cases exist
        assert {"citizenhub.add_servicecase", "citizenhub.change_servicecase"} <= caseworker


@pytest.mark.django_db
def test_ensure_staff_groups_is_idempotent():
    before = {name: permissions_of(name) for name in access.STAFF_GROUPS}
    groups = access.ensure_staff_groups()
    access.ensure_staff_groups()
    assert set(groups) == set(access.STAFF_GROUPS)
    assert Group.objects.filter(name__in=access.STAFF_GROUPS).count() == 5
    assert {name: permissions_of(name) for name in access.STAFF_GROUPS} == before


# --- Staff MFA ----------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.mfa_required
def test_officer_without_totp_is_sent_to_set_it_up(client, staff_user):
    client.force_login(staff_user)
    response = client.get(STAFF_HOME)
    assert response.status_code == 302
    assert response["Location"] == f"{TOTP_ACTIVATE}?next=%2Fstaff%2F"
    # HTMX requests are told to navigate there, not to swap the page into a fragment.
    response = client.get(STAFF_HOME, HTTP_HX_REQUEST="true")
    assert response.status_code == 204
    assert response["HX-Redirect"] == f"{TOTP_ACTIVATE}?next=%2Fstaff%2F"


@pytest.mark.django_db
def test_officer_without_totp_gets_in_when_mfa_is_not_required(client, staff_user, settings):
    assert settings.STAFF_MFA_REQUIRED is False  # tests/conftest.py, without the marker
    client.force_login(staff_user)
    assert client.get(STAFF_HOME).status_code == 200


@pytest.mark.django_db
@pytest.mark.mfa_required
def test_api_session_without_totp_is_refused_but_tokens_still_work(client, staff_user, api_client):
    client.force_login(staff_user)
    response = client.get(CITIZENS_API, HTTP_ACCEPT="application/json")
    assert response.status_code == 403
    assert response.json() == {
        "error": {
            "code": "mfa_required",
            "message": response.json()["error"]["message"],
            "fields": {},
        }
    }
    assert "two-factor" in response.json()["error"]["message"]

    # Integration accounts authenticate with a token and no session: not affected.
    token = Token.objects.create(user=staff_user)
    response = Client().get(CITIZENS_API, HTTP_AUTHORIZATION=f"Token {token.key}")
    assert response.status_code == 200
    # DRF's force_authenticate never reaches the session either.
    api_client.force_authenticate(staff_user)
    assert api_client.get(CITIZENS_API).status_code == 200

    activate_totp(staff_user)
    assert client.get(CITIZENS_API, HTTP_ACCEPT="application/json").status_code == 200


@pytest.mark.django_db
@pytest.mark.mfa_required
def test_residents_and_public_pages_are_not_affected(client, resident_user):
    client.force_login(resident_user)
    assert client.get("/").status_code == 200
    assert client.get(STAFF_HOME).status_code == 403  # not a redirect to set up MFA


@pytest.mark.django_db
@pytest.mark.mfa_required
def test_officer_sets_up_totp_after_signing_in_then_reaches_the_dashboard(client):
    officer = officer_with_login()
    response = client.post(
        f"/accounts/login/?next={STAFF_HOME}", {"login": officer.email, "password": PASSWORD}
    )
    assert response["Location"] == STAFF_HOME
    response = client.get(STAFF_HOME)
    assert response["Location"].startswith(TOTP_ACTIVATE)

    # allauth asks for the password again before adding an authenticator.
    response = client.get(response["Location"], follow=True)
    assert response.redirect_chain[-1][0].startswith("/accounts/reauthenticate/")
    html = response.content.decode()
    assert '<label class="govuk-label" for="id_password">' in html
    response = client.post(response.redirect_chain[-1][0], {"password": PASSWORD}, follow=True)
    assert response.request["PATH_INFO"] == TOTP_ACTIVATE
    html = response.content.decode()
    assert "govuk-heading-l" in html and '<label class="govuk-label" for="id_code">' in html
    assert 'autocomplete="one-time-code"' in html and 'inputmode="numeric"' in html

    # A wrong code is a GOV.UK error, on the summary and on the field.
    response = client.post(TOTP_ACTIVATE, {"code": "000000"})
    html = response.content.decode()
    assert response.status_code == 200 and "<title>Error: " in html
    assert 'class="govuk-error-summary"' in html and 'href="#id_code"' in html
    assert 'id="id_code-error" class="govuk-error-message"' in html
    assert 'aria-describedby="id_code-error"' in html

    secret = client.session["mfa.totp.secret"]
    response = client.post(TOTP_ACTIVATE, {"code": totp_code(secret)}, follow=True)
    assert response.status_code == 200
    assert Authenticator.objects.filter(user=officer, type=Authenticator.Type.TOTP).exists()
    assert "Continue to the staff dashboard" in response.content.decode()
    assert client.get(STAFF_HOME).status_code == 200


@pytest.mark.django_db
@pytest.mark.mfa_required
def test_officer_with_totp_signs_in_with_a_code(client):
    officer = officer_with_login()
    secret = activate_totp(officer)
    response = client.post(
        f"/accounts/login/?next={STAFF_HOME}", {"login": officer.email, "password": PASSWORD}
    )
    assert response["Location"] == "/accounts/2fa/authenticate/"
    html = client.get("/accounts/2fa/authenticate/").content.decode()
    assert '<label class="govuk-label" for="id_code">Authenticator code</label>' in html
    assert 'aria-describedby="id_code-hint"' in html and "recovery codes" in html
    response = client.post("/accounts/2fa/authenticate/", {"code": "000000"})
    assert 'class="govuk-error-summary"' in response.content.decode()
    response = client.post("/accounts/2fa/authenticate/", {"code": totp_code(secret)})
    assert response["Location"] == STAFF_HOME
    assert client.get(STAFF_HOME).status_code == 200


# --- allauth pages in GOV.UK style --------------------------------------------------------


@pytest.mark.django_db
def test_login_page_is_a_govuk_form_with_labels(client):
    html = client.get("/accounts/login/").content.decode()
    assert re.search(r"<title>\s*Sign In\s*– ", html)
    assert '<h1 class="govuk-heading-l">' in html
    assert '<label class="govuk-label" for="id_login">' in html
    assert '<label class="govuk-label" for="id_password">' in html
    assert 'class="govuk-input' in html and 'type="password"' in html
    assert 'class="govuk-checkboxes__input" type="checkbox"' in html  # remember me
    assert 'class="govuk-button"' in html


@pytest.mark.django_db
def test_login_errors_follow_the_govuk_pattern_and_never_echo_the_password(client):
    officer = officer_with_login()
    response = client.post("/accounts/login/", {"login": officer.email, "password": "wrong-pw"})
    html = response.content.decode()
    assert re.search(r"<title>Error:\s+Sign In\s", html)
    assert 'class="govuk-error-summary"' in html and 'href="#id_login"' in html
    assert "wrong-pw" not in html


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url", ["/accounts/password/reset/", "/accounts/logout/", "/accounts/2fa/"]
)
def test_other_account_pages_render_in_govuk_style(client, url):
    client.force_login(officer_with_login())
    response = client.get(url)
    assert response.status_code == 200
    html = response.content.decode()
    assert "govuk-template" in html and '<h1 class="govuk-heading-l">' in html


# --- Partials -----------------------------------------------------------------------------


def test_pagination_partial_links_previous_and_next():
    html = render_to_string(
        "staff/partials/pagination.html", {"previous_url": "?before=abc", "next_url": "?after=x"}
    )
    assert 'class="govuk-pagination govuk-pagination--block"' in html
    assert 'href="?before=abc" rel="prev"' in html and 'href="?after=x" rel="next"' in html
    assert render_to_string("staff/partials/pagination.html", {}).strip() == ""


def test_error_summary_partial_links_each_error_to_its_field():
    from django import forms

    class CaseForm(forms.Form):
        title = forms.CharField()
        due_on = forms.DateField()

        def clean(self):
            raise forms.ValidationError("The case could not be saved")

    form = CaseForm(data={"due_on": "not a date"})
    assert not form.is_valid()
    html = render_to_string("staff/partials/error_summary.html", {"form": form})
    assert 'class="govuk-error-summary"' in html and "There is a problem" in html
    assert '<a href="#id_title">This field is required.</a>' in html
    assert 'href="#id_due_on"' in html
    assert '<a href="#id_title">The case could not be saved</a>' in html
    assert not render_to_string("staff/partials/error_summary.html", {"form": CaseForm()}).strip()
