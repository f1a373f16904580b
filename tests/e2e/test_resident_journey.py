"""A resident's journey, end to end in a real browser: sign up, confirm the e-mail address
from the link in the mail, add and confirm a mobile number by the code texted to it (GOV.UK
Notify, here the local fake), choose texts for updates, give a consent, report a pothole
with a photo, and see the case. An officer resolves it; the resident sees the resolution on
the case page and gets it by text, the channel they chose. Last, they download their data
and find the case, the messages and the consent history in it."""

from __future__ import annotations

import io
import json
import re

import pytest
from django.core import mail
from PIL import Image

from channels.models import OutboundMessage
from citizenhub.catalogue import load_service_catalogue
from citizenhub.models import Citizen, ServiceCase
from citizenhub.services.cases import case_assign, case_transition
from engagement.models import ConsentRecord
from engagement.purposes import ensure_standard_topics
from tests.channels import test_sms
from tests.e2e.conftest import axe_violations, describe, screenshot
from tests.factories import StaffUserFactory

pytestmark = pytest.mark.django_db(transaction=True)

fake_notify = test_sms.fake_notify
notify_channel = test_sms.notify_channel

EMAIL = "ffion.resident@example.org"
PASSWORD = "a-long-and-unusual-passphrase-2026"
MOBILE = "07700 900481"


@pytest.fixture(autouse=True)
def private_cache(settings):
    # allauth's rate-limit counters and sessions stay inside this test.
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "e2e"}
    }


@pytest.fixture(autouse=True)
def mail_outbox(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    mail.outbox = []


def accessible(page, name: str) -> None:
    violations = axe_violations(page)
    assert not violations, f"{name}:\n{describe(violations)}"
    screenshot(page, name)


def photo_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (640, 480), (90, 90, 95)).save(buffer, format="JPEG")
    return buffer.getvalue()


def test_resident_reports_a_problem_and_follows_it_to_resolution(
    page, live_server, notify_channel, fake_notify, tmp_path
):
    load_service_catalogue()
    ensure_standard_topics()
    base = live_server.url

    # Sign up, and confirm the address from the link in the e-mail.
    page.goto(f"{base}/accounts/signup/")
    page.get_by_label("Email address").fill(EMAIL)
    page.get_by_label("Create a password").fill(PASSWORD)
    page.get_by_label("Confirm your password").fill(PASSWORD)
    accessible(page, "resident-01-signup")
    page.get_by_role("button", name="Create account").click()
    page.wait_for_load_state()
    accessible(page, "resident-02-check-your-email")
    [message] = [m for m in mail.outbox if EMAIL in m.to]
    link = re.search(r"https?://\S+/accounts/confirm-email/\S+/", message.body).group(0)
    page.goto(link.replace("http://testserver", base))
    accessible(page, "resident-03-confirm-email")
    page.get_by_role("button", name="Confirm").click()
    page.wait_for_load_state()
    citizen = Citizen.objects.get(user__email=EMAIL)
    assert citizen.contact_points.filter(kind="email", verification_level="confirmed").exists()

    # Sign in if confirming did not, then add a mobile number and confirm it by code.
    if "/accounts/login/" in page.url:
        page.get_by_label("Email address").fill(EMAIL)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_load_state()
    page.goto(f"{base}/my/contact/phone/add/")
    page.get_by_label("Add a mobile phone number").fill(MOBILE)
    page.get_by_role("button", name="Send me a code").click()
    page.wait_for_load_state()
    [text] = fake_notify.sent
    code = re.search(r"\b(\d{6})\b", text.body).group(1)
    page.get_by_label("Code").fill(code)
    accessible(page, "resident-04-confirm-phone")
    page.get_by_role("button", name="Confirm number").click()
    page.wait_for_load_state()
    assert citizen.contact_points.filter(kind="phone", verification_level="confirmed").exists()

    # Updates by text message, and yes to the newsletter.
    page.goto(f"{base}/my/contact/preference/")
    page.get_by_label("Text message").check()
    accessible(page, "resident-05-contact-preference")
    page.get_by_role("button", name="Save").click()
    page.wait_for_load_state()
    citizen.refresh_from_db()
    assert citizen.preferred_channel == "sms"
    page.goto(f"{base}/my/preferences/")
    page.locator("input[name=subscriptions][value='residents-newsletter:email']").check()
    accessible(page, "resident-06-preferences")
    page.get_by_role("button", name="Save my choices").click()
    page.wait_for_load_state()
    # Double opt-in: nothing is consented until the link in the e-mail is followed.
    assert not ConsentRecord.objects.filter(citizen=citizen).exists()
    confirm_mail = [m for m in mail.outbox if "/subscriptions/confirm/" in m.body][-1]
    confirm = re.search(r"(/subscriptions/confirm/[^\s/]+/)", confirm_mail.body).group(1)
    page.goto(f"{base}{confirm}")
    accessible(page, "resident-06b-confirm-subscription")
    page.get_by_role("button", name="Confirm").click()
    page.wait_for_load_state()
    assert ConsentRecord.objects.filter(citizen=citizen, action="given").count() == 1

    # Report a pothole with a photo.
    page.goto(f"{base}/report/")
    accessible(page, "resident-07-report-choose")
    page.get_by_label("Pothole", exact=False).first.check()
    page.get_by_role("button", name="Continue").click()
    page.wait_for_load_state()
    page.get_by_label("Describe the problem").fill(
        "A deep pothole outside the school gates on Mill Lane; cyclists swerve round it."
    )
    page.get_by_label("Postcode", exact=False).fill("nm1 4ab")
    photo = tmp_path / "pothole.jpg"
    photo.write_bytes(photo_bytes())
    page.get_by_label("Photos", exact=False).set_input_files(str(photo))
    accessible(page, "resident-08-report-describe")
    page.get_by_role("button", name="Send report").click()
    page.wait_for_load_state()
    reference = page.locator("#case-reference").inner_text().strip()
    accessible(page, "resident-09-report-sent")
    case = ServiceCase.objects.get(reference=reference)
    assert case.citizen_id == citizen.pk and case.attachments.count() == 1

    # The resident sees the case and their photo.
    page.goto(f"{base}/my/cases/")
    accessible(page, "resident-10-my-cases")
    page.get_by_role("link", name=re.compile(reference)).first.click()
    page.wait_for_load_state()
    assert "Mill Lane" in page.content()
    accessible(page, "resident-11-my-case")
    photo_link = page.locator("a[href^='/attachments/']").first
    photo_response = page.request.get(f"{base}{photo_link.get_attribute('href')}")
    assert photo_response.status == 200
    assert photo_response.headers["content-type"] == "image/jpeg"

    # An officer of the highways team resolves it.
    officer = StaffUserFactory()
    case.team.members.add(officer)
    case = case_assign(case=case, assignee=officer, expected_version=case.version, actor=officer)
    case_transition(
        case=case,
        to_status="resolved",
        expected_version=case.version,
        resolution="We filled the pothole on 27 November.",
        actor=officer,
    )

    # The resident sees the resolution, and it came to them by text.
    page.reload()
    assert "We filled the pothole on 27 November." in page.content()
    accessible(page, "resident-12-my-case-resolved")
    sms = OutboundMessage.objects.get(citizen=citizen, thread__case=case)
    assert sms.channel == notify_channel and sms.to_value == "+447700900481"
    texts = [t.body for t in fake_notify.sent]
    assert any("We filled the pothole on 27 November." in body for body in texts)

    # Their data: the case, the messages and the consent history.
    page.goto(f"{base}/my/data/")
    accessible(page, "resident-13-my-data")
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download as JSON").click()
    exported = json.loads((download_info.value.path()).read_text())
    sections = exported["sections"]
    assert {"cases", "messages", "consents"} <= set(sections)
    assert reference in json.dumps(sections["cases"])
    assert "We filled the pothole on 27 November." in json.dumps(sections["messages"])
    history = [
        row for rows in sections["consents"]["data"].values() for row in rows
    ]  # the current state and the ledger
    assert any(
        row["wording"] == "Send me the monthly residents’ newsletter by e-mail"
        and row["action"] == "Given"
        and row["source"] == "Residents' portal"
        for row in history
    ), history
    page.goto(f"{base}/my/data/export/")
    assert reference in page.content()
    accessible(page, "resident-14-my-data-page")
