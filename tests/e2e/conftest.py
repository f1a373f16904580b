"""Browser tests: Debian's headless Chromium, driven by Playwright, against a live server.

Playwright never downloads a browser here: it starts /usr/bin/chromium (`apt-get install
chromium`; .ci/run installs it). Without it the tests are skipped on a developer machine and
fail under CI, like the Dovecot tests. Accessibility is checked with axe-core from npm
(node_modules/axe-core, installed by `make install`), injected into the page.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
AXE_SCRIPT = ROOT / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
# PITFALLS.md: without these Chromium keeps calling out to Google's hosts, which this closed
# network refuses, many connections at a time.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
SERIOUS = {"serious", "critical"}


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).is_relative_to(here):
            item.add_marker(pytest.mark.e2e)


def _missing_part() -> str | None:
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (apt-get install chromium)"
    if not AXE_SCRIPT.exists():
        return f"{AXE_SCRIPT} is missing (make install runs npm ci)"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator:
    """One Chromium per test module.

    Playwright's sync API runs an event loop in the test's thread, and Django refuses ORM
    calls from a thread with a running loop unless told it is deliberate. The permission is
    set only while a module of browser tests runs: set for the whole session it would leak
    into other tests' subprocesses (the deploy check refuses it).
    """
    missing = _missing_part()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"Browser tests must run in CI: {missing}")
        pytest.skip(missing)
    from playwright.sync_api import sync_playwright

    patch = pytest.MonkeyPatch()
    patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    try:
        # Playwright gives every launch a fresh, empty profile directory of its own.
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(
                executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
            )
            try:
                yield chromium
            finally:
                chromium.close()
    finally:
        patch.undo()


@pytest.fixture
def page(browser):
    # axe-core's checks need a page from a context of its own (PITFALLS.md), and each test
    # gets fresh cookies.
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB")
    context.set_default_timeout(15_000)
    page = context.new_page()
    yield page
    context.close()


def screenshot(page, name: str) -> Path:
    """Save a full-page screenshot under test-artifacts/screenshots/ and return its path."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def axe_violations(page) -> list[dict]:
    """Run axe-core on the page as it is now; return serious and critical violations."""
    page.add_script_tag(path=str(AXE_SCRIPT))
    results = page.evaluate(
        """async () => await axe.run(document, {
            runOnly: {
                type: 'tag',
                values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice'],
            },
            resultTypes: ['violations'],
        })"""
    )
    return [v for v in results["violations"] if v.get("impact") in SERIOUS]


def describe(violations: list[dict]) -> str:
    return "\n".join(
        f"{v['id']} ({v['impact']}): {v['help']} -> "
        + ", ".join(str(node["target"]) for node in v["nodes"][:3])
        for v in violations
    )


def totp_code(secret: str) -> str:
    """The current code for a TOTP secret, computed by allauth's own functions."""
    from allauth.mfa.totp.internal.auth import format_hotp_value, hotp_value

    counter = int(time.time()) // 30
    return format_hotp_value(hotp_value(secret, counter))
