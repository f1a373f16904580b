"""Every page of the residents' portal, in a real browser, in English and in Welsh.

The pages come from the URL configuration (tests/e2e/portal.py): a portal route added
later fails here until it is given an address or a reason to be left out. Each page, and
the states that matter (a form sent back with errors, the report confirmation, "page not
found", an expired form), is checked with axe-core (no serious or critical violations),
its <html lang> must match the language, and it is photographed as portal-<lang>-<slug>.

Then the same pages with JavaScript switched off: each loads and shows its heading, and a
resident signs in, switches language, reports a problem with a photo, adds information to
their case, gives and withdraws a consent, adds and confirms a phone number and signs out,
all with plain HTML forms.
"""

from __future__ import annotations

import re
from collections import Counter

import pytest
from django.conf import settings
from django.contrib.sessions.models import Session
from django.core import mail
from django.core.cache import cache

from citizenhub.models import CaseAttachment, CaseEvent, Citizen, ContactPoint, ServiceCase
from citizenhub.services import verification
from engagement.services import has_consent
from tests.e2e.conftest import axe_violations, describe, screenshot, totp_code
from tests.e2e.portal import (
    EXCLUDED,
    MFA_RESIDENT,
    PASSWORD,
    RESIDENT,
    ROUTES,
    SIGNED_OUT,
    build_world,
    jpeg_bytes,
    portal_pages,
    portal_routes,
)

pytestmark = pytest.mark.django_db(transaction=True)

LANGUAGES = ("en", "cy")
LOCALES = {"en": "en-GB", "cy": "cy-GB"}


@pytest.fixture(autouse=True)
def private_cache(settings):
    # allauth's rate limits and used TOTP codes live in the cache: a private one per test, so
    # neither CI's shared Redis nor an earlier test's sign-ins get in the way.
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "e2e-portal",
        }
    }
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def texted_codes(monkeypatch) -> list[str]:
    """The phone code sender, replaced by one that keeps the codes for the test to type."""
    codes: list[str] = []
    monkeypatch.setitem(
        verification._senders, "phone", lambda point, code, language: codes.append(code)
    )
    return codes


@pytest.fixture
def world(texted_codes):
    return build_world()


def test_every_portal_route_has_a_page_or_a_reason_to_have_none():
    routes = set(portal_routes())
    mapped, excluded = set(ROUTES), set(EXCLUDED)
    assert not routes - mapped - excluded, (
        "portal routes with no page in tests/e2e/portal.py ROUTES and no reason in EXCLUDED: "
        f"{sorted(routes - mapped - excluded)}"
    )
    assert not (mapped | excluded) - routes, (
        f"stale entries: {sorted((mapped | excluded) - routes)}"
    )
    assert not mapped & excluded, f"both mapped and excluded: {sorted(mapped & excluded)}"


# --- Browser helpers ------------------------------------------------------------------------


def new_tab(browser, base_url: str, language: str, *, javascript: bool = True):
    context = browser.new_context(
        viewport={"width": 1280, "height": 900},
        locale=LOCALES[language],
        java_script_enabled=javascript,
    )
    context.add_cookies([{"name": "django_language", "value": language, "url": base_url}])
    context.set_default_timeout(15_000)
    return context.new_page()


def submit(tab, button):
    """Click a submit button (the form's first) and return the response the browser lands
    on."""
    with tab.expect_navigation() as navigation:
        button.first.click()
    return navigation.value


def sign_in(tab, base_url: str, user, *, secret: str | None = None, at_second_step=None):
    """Sign in through the real form (and the authenticator code, if the user has one)."""
    tab.goto(f"{base_url}/accounts/login/")
    tab.fill("input[name=login]", user.email)
    tab.fill("input[name=password]", PASSWORD)
    submit(tab, tab.locator("main form:has(input[name=login]) button[type=submit]"))
    if secret is not None:
        assert "/accounts/2fa/authenticate/" in tab.url, tab.url
        if at_second_step:
            at_second_step(tab)
        tab.fill("input[name=code]", totp_code(secret))
        submit(tab, tab.locator("main form:has(input[name=code]) button[type=submit]"))
    assert "/accounts/" not in tab.url, f"sign-in did not complete: {tab.url}"


class Checker:
    """axe-core, <html lang> and a screenshot for each page; problems collected, not raised,
    so one run reports every page that fails."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.checked: Counter[str] = Counter()

    def check(self, tab, language: str, slug: str, *, has_errors: bool = False) -> None:
        name = f"portal-{language}-{slug}"
        lang = tab.evaluate("document.documentElement.lang")
        if lang.split("-")[0].lower() != language:
            self.problems.append(f"{name}: <html lang={lang!r}> ({tab.url})")
        # "<page> <en dash> <council>", with "Error: " in front when a form came back with errors
        # (checked in English: the Welsh catalogue words it differently).
        title = tab.title()
        if (
            not title.endswith(f" – {settings.COUNCIL_NAME}")
            or len(title) <= len(settings.COUNCIL_NAME) + 3
        ):
            self.problems.append(f"{name}: title {title!r} is not '<page> – <council>'")
        if language == "en" and title.startswith("Error:") != has_errors:
            self.problems.append(f"{name}: title {title!r} (errors shown: {has_errors})")
        if tab.locator("h1").count() != 1:
            self.problems.append(f"{name}: {tab.locator('h1').count()} h1 headings, not one")
        if has_errors:
            self.problems += [f"{name}: {problem}" for problem in error_summary_problems(tab)]
        violations = axe_violations(tab)
        if violations:
            self.problems.append(f"{name} ({tab.url}):\n{describe(violations)}")
        screenshot(tab, name)
        self.checked[language] += 1


def error_summary_problems(tab) -> list[str]:
    """An error summary must be there, and each of its links must lead to a field."""
    summary = tab.locator(".govuk-error-summary")
    if not summary.is_visible():
        return ["no error summary"]
    problems = []
    for href in summary.locator("a").evaluate_all(
        "links => links.map(a => a.getAttribute('href'))"
    ):
        if not href.startswith("#") or tab.locator(f"[id='{href[1:]}']").count() != 1:
            problems.append(f"error summary link {href!r} leads nowhere")
    return problems


def visit(tab, base_url: str, path: str, expected_status: int = 200):
    response = tab.goto(f"{base_url}{path}")
    assert response is not None and response.status == expected_status, (
        f"{path}: {response and response.status} at {tab.url}"
    )
    return response


# --- Accessibility, both languages ------------------------------------------------------------


def test_every_portal_page_passes_axe_in_english_and_welsh(browser, live_server, world):
    base = live_server.url
    pages = portal_pages(world)
    checker = Checker()
    for language in LANGUAGES:
        cache.clear()  # a TOTP code may be used once only: the second language signs in again
        tabs = {who: new_tab(browser, base, language) for who in (SIGNED_OUT, RESIDENT)}
        sign_in(tabs[RESIDENT], base, world.resident)
        tabs[MFA_RESIDENT] = new_tab(browser, base, language)
        sign_in(
            tabs[MFA_RESIDENT],
            base,
            world.mfa_resident,
            secret=world.mfa_secret,
            at_second_step=lambda tab, lang=language: checker.check(tab, lang, "mfa-authenticate"),
        )

        for page in pages:
            tab = tabs[page.who]
            visit(tab, base, page.path, page.status)
            checker.check(tab, language, page.slug)

        check_states(tabs, base, language, world, checker)
        for tab in tabs.values():
            tab.context.close()

    assert not checker.problems, "\n\n".join(checker.problems)
    # Every page, and the eight states (the second sign-in step and check_states), was seen
    # in both languages.
    assert checker.checked == {"en": len(pages) + 8, "cy": len(pages) + 8}


def check_states(tabs, base: str, language: str, world, checker: Checker) -> None:
    """The states of pages that matter beyond their first look."""
    signed_out, resident = tabs[SIGNED_OUT], tabs[RESIDENT]

    # Forms sent back with errors: the error summary is shown and passes too.
    signed_out.goto(f"{base}/accounts/login/")
    signed_out.fill("input[name=login]", world.resident.email)
    signed_out.fill("input[name=password]", "not-the-password")
    submit(signed_out, signed_out.locator("main form:has(input[name=login]) button[type=submit]"))
    checker.check(signed_out, language, "sign-in-error", has_errors=True)

    signed_out.goto(f"{base}/accounts/signup/")
    signed_out.fill("input[name=email]", "not an address")
    signed_out.fill("input[name=password1]", "short")
    submit(signed_out, signed_out.locator("main form:has(input[name=email]) button[type=submit]"))
    checker.check(signed_out, language, "sign-up-error", has_errors=True)

    code = world.report_service.code
    resident.goto(f"{base}/report/?service={code}")
    submit(resident, resident.locator("main form[enctype] button[type=submit]"))
    checker.check(resident, language, "report-error", has_errors=True)

    # A report that goes through, and its confirmation.
    resident.fill("textarea[name=description]", "A broken kerb stone by the school gate.")
    resident.fill("input[name=postcode]", "NM1 4AB")
    response = submit(resident, resident.locator("main form[enctype] button[type=submit]"))
    assert response.status == 200 and resident.url.endswith("/report/done/")
    checker.check(resident, language, "report-done")

    # Adding nothing to a case: the case page with the error.
    resident.goto(f"{base}/my/cases/{world.open_case.reference}/")
    submit(resident, resident.locator("main form:has(textarea[name=text]) button[type=submit]"))
    checker.check(resident, language, "case-update-error", has_errors=True)

    visit(signed_out, base, "/no-such-page/", 404)
    checker.check(signed_out, language, "not-found")

    # A form whose CSRF token no longer matches (an old page, say): the explanation page.
    signed_out.goto(f"{base}/accounts/password/reset/")
    signed_out.fill("input[name=email]", world.resident.email)
    signed_out.evaluate(
        "document.querySelectorAll('input[name=csrfmiddlewaretoken]')"
        ".forEach(input => { input.value = 'x'.repeat(64) })"
    )
    response = submit(signed_out, signed_out.locator("main form button[type=submit]"))
    assert response.status == 403
    checker.check(signed_out, language, "csrf-failure")


# --- Without JavaScript -------------------------------------------------------------------


def signed_in_sessions(user) -> list[Session]:
    return [
        session
        for session in Session.objects.all()
        if session.get_decoded().get("_auth_user_id") == str(user.pk)
    ]


def heading_shown(tab) -> bool:
    return tab.locator("main h1").first.is_visible()


def test_every_portal_page_and_the_key_journeys_work_without_javascript(
    browser, live_server, world, texted_codes
):
    base = live_server.url
    tabs = {who: new_tab(browser, base, "en", javascript=False) for who in (SIGNED_OUT, RESIDENT)}
    tabs[MFA_RESIDENT] = new_tab(browser, base, "en", javascript=False)
    resident = tabs[RESIDENT]
    # The page's own scripts do not run (GOV.UK Frontend's first one marks the body).
    resident.goto(f"{base}/")
    assert "js-enabled" not in (resident.get_attribute("body", "class") or "")

    # Journey: sign in (the second factor too, for the resident who has one).
    sign_in(resident, base, world.resident)
    world.resident.refresh_from_db()
    assert world.resident.last_login is not None
    sign_in(tabs[MFA_RESIDENT], base, world.mfa_resident, secret=world.mfa_secret)

    for page in portal_pages(world):
        tab = tabs[page.who]
        visit(tab, base, page.path, page.status)
        assert heading_shown(tab), f"{page.slug}: no heading at {tab.url}"
    visit(tabs[SIGNED_OUT], base, "/no-such-page/", 404)
    assert heading_shown(tabs[SIGNED_OUT])

    citizen = world.resident.citizen

    # Journey: switch to Welsh with the toggle (a form button), and back.
    resident.goto(f"{base}/my/")
    submit(resident, resident.locator("form.citizenhub-language-toggle button"))
    assert resident.evaluate("document.documentElement.lang") == "cy"
    assert resident.url == f"{base}/my/"
    assert Citizen.objects.get(pk=citizen.pk).preferred_language == "cy"
    submit(resident, resident.locator("form.citizenhub-language-toggle button"))
    assert resident.evaluate("document.documentElement.lang").startswith("en")
    assert Citizen.objects.get(pk=citizen.pk).preferred_language == "en"

    # Journey: report a problem with a photo, to the confirmation page.
    resident.goto(f"{base}/report/")
    resident.check(f"input[name=service][value={world.report_service.code}]")
    submit(resident, resident.locator("main form button[type=submit]"))
    assert f"service={world.report_service.code}" in resident.url
    resident.fill("textarea[name=description]", "Street light flickering outside number 9.")
    resident.fill("input[name=postcode]", "NM1 4AB")
    resident.set_input_files(
        "input[name=photos]",
        files=[{"name": "light.jpg", "mimeType": "image/jpeg", "buffer": jpeg_bytes((1, 2, 3))}],
    )
    response = submit(resident, resident.locator("main form[enctype] button[type=submit]"))
    assert response.status == 200 and resident.url.endswith("/report/done/")
    reported = ServiceCase.objects.get(description="Street light flickering outside number 9.")
    assert reported.citizen_id == citizen.pk
    assert reported.reference in resident.inner_text("main")
    assert CaseAttachment.objects.filter(case=reported, original_name="light.jpg").count() == 1

    # Journey: add information to a case.
    case = world.open_case
    resident.goto(f"{base}/my/cases/{case.reference}/")
    resident.fill("textarea[name=text]", "The hole is now twice as wide.")
    submit(resident, resident.locator("main form:has(textarea[name=text]) button[type=submit]"))
    assert resident.url == f"{base}/my/cases/{case.reference}/"
    assert CaseEvent.objects.filter(
        case=case, kind="resident_update", text__contains="twice as wide"
    ).exists()
    assert "twice as wide" in resident.inner_text("main")

    # Journey: subscribe (double opt-in: confirmed by the e-mailed link), then unsubscribe.
    research = "input[name=subscriptions][value='research-panel:email']"
    form = "main form:has(input[name=subscriptions]) button[type=submit]"
    resident.goto(f"{base}/my/preferences/")
    resident.check(research)
    submit(resident, resident.locator(form))
    assert not has_consent(citizen, "research-panel", "email")  # waiting for the link
    [link] = [
        re.search(r"(/subscriptions/confirm/[^\s/]+/)", m.body).group(1)
        for m in mail.outbox
        if "/subscriptions/confirm/" in m.body and citizen.user.email in m.to
    ][-1:]
    resident.goto(f"{base}{link}")
    submit(resident, resident.locator("main form button[type=submit]"))
    assert has_consent(citizen, "research-panel", "email")
    resident.goto(f"{base}/my/preferences/")
    resident.uncheck(research)
    submit(resident, resident.locator(form))
    assert not has_consent(citizen, "research-panel", "email")
    assert has_consent(citizen, "residents-newsletter", "email")  # untouched

    # Journey: add a mobile number and confirm it with the texted code.
    resident.goto(f"{base}/my/contact/phone/add/")
    resident.fill("input[name=phone]", "07700 900456")
    submit(resident, resident.locator("main form button[type=submit]"))
    assert resident.url.endswith("/verify/"), resident.url
    confirmed_phone = ContactPoint.objects.filter(
        citizen=citizen,
        kind="phone",
        normalised__endswith="900456",
        verification_level=ContactPoint.VerificationLevel.CONFIRMED,
        removed_at__isnull=True,
    )
    assert not confirmed_phone.exists()
    resident.fill("input[name=code]", texted_codes[-1])
    submit(resident, resident.locator("main form:has(input[name=code]) button[type=submit]"))
    assert resident.url == f"{base}/my/contact/"
    assert confirmed_phone.count() == 1

    # Journey: sign out (a form button in the navigation).
    assert len(signed_in_sessions(world.resident)) == 1
    submit(resident, resident.locator("nav form[action='/accounts/logout/'] button"))
    assert not signed_in_sessions(world.resident)
    resident.goto(f"{base}/my/")
    assert "/accounts/login/" in resident.url

    for tab in tabs.values():
        tab.context.close()
