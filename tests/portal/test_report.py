"""Report a problem: choosing the service, the details form, anonymous reports, the
confirmation page, and bad input that must save nothing (no case, no file on disk)."""

from __future__ import annotations

import re
from decimal import Decimal
from unittest import mock
from urllib.parse import quote

import pytest
from django.test import Client

from citizenhub.models import (
    CaseAttachment,
    CaseEvent,
    Citizen,
    ContactPoint,
    ServiceCase,
    TimelineEntry,
)
from citizenhub.services import attachments as attachment_services
from tests.factories import ServiceFactory, TeamFactory, UserFactory
from tests.portal.test_attachments import EXE_BYTES, files_under, photo_bytes, upload

pytestmark = pytest.mark.django_db


@pytest.fixture
def potholes():
    team = TeamFactory(slug="highways", name="Highways", department="Environment")
    return ServiceFactory(
        code="potholes", name="Potholes", group="Roads and pavements", team=team, sla_days=5
    )


@pytest.fixture
def fly_tipping():
    return ServiceFactory(
        code="fly-tipping", name="Fly-tipping", group="Rubbish", allows_anonymous=True
    )


def report_url(service) -> str:
    return f"/report/?service={service.code}"


def valid_answers(**overrides):
    answers = {
        "title": "",
        "description": "Deep pothole outside number 12.\nA cyclist nearly fell.",
        "postcode": "sw1a1aa",
        "location_text": "Outside 12 Mill Lane",
        "latitude": "",
        "longitude": "",
    }
    answers.update(overrides)
    return answers


def assert_nothing_saved(settings):
    assert not ServiceCase.objects.exists()
    assert not CaseAttachment.objects.exists()
    assert files_under(settings.MEDIA_ROOT) == []


# --- Choosing the service -------------------------------------------------------------------


def test_the_first_page_offers_public_services_grouped(client, potholes, fly_tipping):
    ServiceFactory(code="internal-audit", name="Internal audit", is_public=False)
    ServiceFactory(code="old-service", name="Withdrawn service", is_active=False)

    html = client.get("/report/").content.decode()

    assert '<form method="get" action="/report/"' in html
    assert "Roads and pavements" in html and "Rubbish" in html
    assert 'value="potholes"' in html and 'value="fly-tipping"' in html
    assert "Internal audit" not in html and "Withdrawn service" not in html


def test_the_choice_page_query_count_does_not_grow(client, django_assert_max_num_queries):
    for n in range(40):
        ServiceFactory(code=f"service-x{n}", group=f"Group {n % 6}")
    with django_assert_max_num_queries(3):
        assert client.get("/report/").status_code == 200


def test_the_report_pages_work_in_welsh(resident_client, potholes, settings):
    resident_client.cookies[settings.LANGUAGE_COOKIE_NAME] = "cy"  # as the toggle sets it
    for url in ("/report/", report_url(potholes)):
        response = resident_client.get(url)
        assert response.status_code == 200
        assert '<html lang="cy"' in response.content.decode()


@pytest.mark.parametrize("code", ["no-such-service", "internal-audit", "old-service"])
def test_an_unknown_staff_only_or_withdrawn_service_asks_to_choose_again(client, potholes, code):
    ServiceFactory(code="internal-audit", name="Internal audit", is_public=False)
    ServiceFactory(code="old-service", name="Withdrawn service", is_active=False)

    response = client.get(f"/report/?service={code}")

    html = response.content.decode()
    assert response.status_code == 200
    assert "govuk-error-summary" in html
    assert "Select what you want to report from the list" in html
    assert html.count("<title>Error: ") == 1
    assert "Internal audit" not in html


@pytest.mark.parametrize(
    ("code", "target"),
    [
        ("subject-access", "/my/data/requests/subject-access/"),
        ("erasure-request", "/my/data/requests/erasure/"),
    ],
)
def test_data_requests_go_to_their_own_pages_not_the_report_form(
    resident_client, code, target, settings
):
    ServiceFactory(code=code, name=f"Service {code}", group="Your data", allows_anonymous=True)

    assert code not in resident_client.get("/report/").content.decode()
    for response in (
        resident_client.get(f"/report/?service={code}"),
        resident_client.post(f"/report/?service={code}", valid_answers()),
    ):
        assert response.status_code == 302 and response["Location"] == target
    assert_nothing_saved(settings)
    # Not signed in: the same page, which asks them to sign in first.
    anonymous = Client().get(f"/report/?service={code}", follow=True)
    assert anonymous.redirect_chain[0] == (target, 302)
    assert "/accounts/login/" in anonymous.redirect_chain[-1][0]


def test_choosing_nothing_is_a_clear_error(client, potholes):
    html = client.get("/report/?service=").content.decode()
    assert "Select what you want to report" in html
    assert 'href="#service-potholes"' in html  # the summary links to the first radio


# --- A signed-in resident's report ----------------------------------------------------------


def test_the_details_form_works_without_javascript(resident_client, potholes):
    html = resident_client.get(report_url(potholes)).content.decode()
    assert 'method="post"' in html and 'enctype="multipart/form-data"' in html
    assert 'name="csrfmiddlewaretoken"' in html
    assert 'type="file"' in html and "multiple" in html
    assert 'name="email"' not in html  # updates go to their account
    assert "Potholes" in html


def test_a_resident_reports_a_problem_with_a_photo(resident_client, resident, potholes, settings):
    answers = valid_answers(latitude="51.5010091234", longitude="-0.141588")
    answers["photos"] = [upload("pothole.jpg", photo_bytes())]

    response = resident_client.post(report_url(potholes), answers)

    assert response.status_code == 302 and response["Location"] == "/report/done/"
    case = ServiceCase.objects.get()
    assert case.citizen == resident.citizen
    assert case.service == potholes
    assert case.source_channel == "web"
    assert case.postcode == "SW1A 1AA"
    assert case.location_text == "Outside 12 Mill Lane"
    assert case.latitude == Decimal("51.501009") and case.longitude == Decimal("-0.141588")
    assert case.title == "Deep pothole outside number 12."  # from the description
    assert case.created_by == resident
    attachment = case.attachments.get()
    assert attachment.citizen == resident.citizen and attachment.uploaded_by == resident
    assert len(files_under(settings.MEDIA_ROOT)) == 1

    done = resident_client.get("/report/done/")
    html = done.content.decode()
    assert "govuk-panel--confirmation" in html
    assert case.reference in html
    assert "/my/cases/" in html


def test_the_summary_becomes_the_title(resident_client, potholes):
    resident_client.post(report_url(potholes), valid_answers(title="  Pothole on Mill Lane "))
    assert ServiceCase.objects.get().title == "Pothole on Mill Lane"


def test_a_long_first_line_is_shortened_for_the_title(resident_client, potholes):
    resident_client.post(report_url(potholes), valid_answers(description="x" * 500))
    case = ServiceCase.objects.get()
    assert len(case.title) == 80 and case.title.endswith("…")
    assert case.description == "x" * 500


def test_three_photos_are_accepted(resident_client, potholes):
    answers = valid_answers(photos=[upload(f"p{n}.jpg") for n in range(3)])
    assert resident_client.post(report_url(potholes), answers).status_code == 302
    assert CaseAttachment.objects.count() == 3


def test_a_photo_spooled_to_a_temporary_file_is_stored_too(resident_client, potholes, settings):
    # Django keeps small uploads in memory and writes bigger ones to a temporary file.
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 100
    answers = valid_answers(photos=[upload("big.jpg", photo_bytes(size=(300, 200)))])
    assert resident_client.post(report_url(potholes), answers).status_code == 302
    assert CaseAttachment.objects.get().content_type == "image/jpeg"


def test_a_location_without_a_postcode_is_enough(resident_client, potholes):
    answers = valid_answers(postcode="", location_text="The car park behind the library")
    assert resident_client.post(report_url(potholes), answers).status_code == 302


def test_coordinates_alone_are_enough(resident_client, potholes):
    answers = valid_answers(postcode="", location_text="", latitude="53.4", longitude="-2.99")
    assert resident_client.post(report_url(potholes), answers).status_code == 302


# --- Bad input: a clear error, and nothing saved ---------------------------------------------


def post_and_expect_error(client, service, answers, message):
    response = client.post(report_url(service), answers)
    html = response.content.decode()
    assert response.status_code == 200
    assert "govuk-error-summary" in html
    assert "<title>Error: " in html
    assert message in html, html
    return html


def test_a_too_long_description_is_refused(resident_client, potholes, settings):
    html = post_and_expect_error(
        resident_client,
        potholes,
        valid_answers(description="x" * 20_001),
        "The description must be 20000 characters or fewer (it has 20001)",
    )
    assert 'href="#id_description"' in html
    assert_nothing_saved(settings)


def test_a_missing_description_is_refused(resident_client, potholes, settings):
    post_and_expect_error(
        resident_client, potholes, valid_answers(description="   "), "Describe the problem"
    )
    assert_nothing_saved(settings)


def test_a_bad_postcode_is_refused(resident_client, potholes, settings):
    html = post_and_expect_error(
        resident_client,
        potholes,
        valid_answers(postcode="NOT A POSTCODE", photos=[upload()]),
        "Enter a real postcode, like SW1A 1AA",
    )
    assert 'href="#id_postcode"' in html
    assert "Choose your photos again" in html  # browsers cannot refill a file input
    assert_nothing_saved(settings)


def test_no_location_at_all_is_refused(resident_client, potholes, settings):
    post_and_expect_error(
        resident_client,
        potholes,
        valid_answers(postcode="", location_text=""),
        "Enter the postcode of the problem, or describe where it is",
    )
    assert_nothing_saved(settings)


@pytest.mark.parametrize(
    ("latitude", "longitude", "message"),
    [
        ("91", "0", "Latitude must be between -90 and 90"),
        ("51.5", "-181", "Longitude must be between -180 and 180"),
        ("north", "0", "Latitude must be a number, like 51.501009"),
        ("NaN", "0", "Latitude must be a number, like 51.501009"),
        ("51.5", "", "Enter the longitude as well as the latitude"),
        ("", "-0.1", "Enter the latitude as well as the longitude"),
    ],
)
def test_bad_coordinates_are_refused(
    resident_client, potholes, settings, latitude, longitude, message
):
    answers = valid_answers(latitude=latitude, longitude=longitude)
    post_and_expect_error(resident_client, potholes, answers, message)
    assert_nothing_saved(settings)


def test_a_program_renamed_jpg_is_refused(resident_client, potholes, settings):
    answers = valid_answers(photos=[upload("pothole.jpg"), upload("cat.jpg", EXE_BYTES)])
    html = post_and_expect_error(
        resident_client, potholes, answers, "“cat.jpg” must be a JPG, PNG or WebP image."
    )
    assert 'href="#id_photos"' in html
    assert_nothing_saved(settings)


def test_an_oversize_photo_is_refused(resident_client, potholes, settings):
    settings.PORTAL_UPLOAD_MAX_BYTES = 1024
    big = photo_bytes(size=(400, 400), color=None) + b"\x00" * 2048
    answers = valid_answers(photos=[upload("big.jpg", big)])
    post_and_expect_error(
        resident_client, potholes, answers, "“big.jpg” must be smaller than 1.0\xa0KB."
    )
    assert_nothing_saved(settings)


def test_more_than_three_photos_are_refused(resident_client, potholes, settings):
    answers = valid_answers(photos=[upload(f"p{n}.jpg") for n in range(4)])
    post_and_expect_error(resident_client, potholes, answers, "Choose at most 3 photos.")
    assert_nothing_saved(settings)


def test_a_post_without_the_csrf_token_gets_a_clear_403_and_saves_nothing(
    resident, potholes, settings
):
    client = Client(enforce_csrf_checks=True)
    client.force_login(resident)

    response = client.post(report_url(potholes), valid_answers(photos=[upload()]))

    html = response.content.decode()
    assert response.status_code == 403
    assert "Your form could not be sent" in html
    assert "nothing you entered has been saved" in html
    assert 'class="govuk-heading-l"' in html
    assert_nothing_saved(settings)


def test_a_failure_after_storing_photos_leaves_no_file_and_no_case(
    resident_client, potholes, settings, monkeypatch
):
    real_attach = attachment_services.attach_file
    calls = []

    def attach_then_fail(**kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return real_attach(**kwargs)

    monkeypatch.setattr("citizenhub.portal.views.report.attach_file", attach_then_fail)
    with pytest.raises(RuntimeError):
        resident_client.post(report_url(potholes), valid_answers(photos=[upload(), upload()]))
    assert_nothing_saved(settings)


def test_a_service_withdrawn_while_the_form_was_open_is_a_form_error(
    resident_client, potholes, settings, monkeypatch
):
    from citizenhub.errors import ApplicationError

    def refuse(**kwargs):
        raise ApplicationError("The service “Potholes” is no longer offered.", code="inactive")

    monkeypatch.setattr("citizenhub.portal.views.report.open_case", refuse)
    html = post_and_expect_error(
        resident_client, potholes, valid_answers(), "“Potholes” is no longer offered online"
    )
    assert "The service “Potholes” is no longer offered." not in html  # the service's words
    assert_nothing_saved(settings)


def test_the_case_services_field_errors_are_shown_in_our_words(
    resident_client, potholes, settings, monkeypatch
):
    from django.core.exceptions import ValidationError

    def refuse(**kwargs):
        raise ValidationError({"description": "Must be at most 20,000 characters (it has 20,001)."})

    monkeypatch.setattr("citizenhub.portal.views.report.open_case", refuse)
    html = post_and_expect_error(
        resident_client,
        potholes,
        valid_answers(),
        "The description must be 20000 characters or fewer",
    )
    assert "Must be at most" not in html
    assert 'href="#id_description"' in html
    assert_nothing_saved(settings)


def test_the_case_services_other_errors_are_a_general_message_in_our_words(
    resident_client, potholes, settings, monkeypatch
):
    from django.core.exceptions import ValidationError

    def refuse(**kwargs):
        raise ValidationError({"priority": "7 is not a priority."})

    monkeypatch.setattr("citizenhub.portal.views.report.open_case", refuse)
    html = post_and_expect_error(
        resident_client,
        potholes,
        valid_answers(),
        "We could not send your report. Check your answers and try again.",
    )
    assert "is not a priority" not in html
    assert_nothing_saved(settings)


# --- Not signed in --------------------------------------------------------------------------


def test_a_service_without_anonymous_reports_asks_to_sign_in(client, potholes, settings):
    for response in (
        client.get(report_url(potholes)),
        client.post(report_url(potholes), valid_answers()),
    ):
        html = response.content.decode()
        assert response.status_code == 200
        assert "Sign in to report this" in html
        assert f"/accounts/login/?next={quote('/report/?service=potholes', safe='')}" in html
    assert_nothing_saved(settings)


def test_an_account_without_a_verified_email_is_sent_to_verify_it(client, potholes):
    client.force_login(UserFactory())
    response = client.get(report_url(potholes))
    assert response.status_code == 302 and response["Location"] == "/accounts/email/"


def test_an_anonymous_report_without_an_email(client, fly_tipping, settings):
    html = client.get(report_url(fly_tipping)).content.decode()
    assert 'name="email"' in html

    response = client.post(report_url(fly_tipping), valid_answers(photos=[upload()]))

    assert response.status_code == 302
    case = ServiceCase.objects.get()
    assert case.citizen is None and case.created_by is None
    attachment = case.attachments.get()
    assert attachment.citizen is None and attachment.uploaded_by is None
    done = client.get("/report/done/").content.decode()
    assert case.reference in done
    assert "Keep your reference" in done


def test_an_anonymous_report_with_an_email_attaches_to_nobody_and_sends_one_link(
    client, fly_tipping, mailoutbox
):
    response = client.post(report_url(fly_tipping), valid_answers(email=" Sam.Jones@Example.ORG "))

    assert response.status_code == 302
    case = ServiceCase.objects.get()
    assert case.citizen is None
    assert not Citizen.objects.exists() and not ContactPoint.objects.exists()
    # Officers see the address the reporter gave, residents never do.
    note = case.events.get(kind=CaseEvent.Kind.NOTE)
    assert note.visibility == CaseEvent.Visibility.STAFF
    assert "Sam.Jones@example.org" in note.text
    assert len(mailoutbox) == 1
    message = mailoutbox[0]
    assert message.to == ["Sam.Jones@example.org"]
    assert message.subject == f"Confirm this is your report to get updates about {case.reference}"
    assert "\n" not in message.subject
    assert "http://testserver/report/confirm/" in message.body
    done = client.get("/report/done/").content.decode()
    assert "We have sent an email to the address you gave" in done


def anonymous_report_page_and_mail(client, service, email, mailoutbox):
    client.post(report_url(service), valid_answers(email=email))
    done = client.get("/report/done/").content.decode()
    done = done.replace(ServiceCase.objects.latest("id").reference, "REF")
    done = re.sub(r'name="csrfmiddlewaretoken" value="[^"]*"', "", done)
    body = mailoutbox[-1].body
    return done, body


def test_an_anonymous_report_with_a_residents_email_is_not_put_in_their_account(
    client, fly_tipping, resident, mailoutbox
):
    """Typing someone's address proves nothing: the case stays out of their "My cases"
    and record, and neither the page nor the e-mail says the address has an account."""
    known_page, known_mail = anonymous_report_page_and_mail(
        client, fly_tipping, resident.email.upper(), mailoutbox
    )
    unknown_page, unknown_mail = anonymous_report_page_and_mail(
        Client(), fly_tipping, "nobody-here@example.net", mailoutbox
    )

    assert not ServiceCase.objects.filter(citizen__isnull=False).exists()
    assert Citizen.objects.count() == 1  # the resident's own; nothing made for the stranger
    assert not TimelineEntry.objects.filter(citizen=resident.citizen).exists()
    assert known_page == unknown_page

    def without_link_and_reference(body):
        return "\n".join(
            line
            for line in body.splitlines()
            if "/report/confirm/" not in line and "CH-" not in line
        )

    assert without_link_and_reference(known_mail) == without_link_and_reference(unknown_mail)
    assert "account" not in known_mail.lower()


def test_each_anonymous_report_from_one_address_gets_its_own_link(client, fly_tipping, mailoutbox):
    for _ in range(2):
        client.post(report_url(fly_tipping), valid_answers(email="sam@example.org"))
    links = [
        line for message in mailoutbox for line in message.body.splitlines() if "/confirm/" in line
    ]
    assert len(links) == 2 and links[0] != links[1]


def test_a_mail_server_failure_still_saves_the_report_and_says_the_same(
    client, fly_tipping, monkeypatch
):
    def refuse(self, *args, **kwargs):
        raise OSError("connection refused")

    monkeypatch.setattr("django.core.mail.EmailMultiAlternatives.send", refuse)
    response = client.post(report_url(fly_tipping), valid_answers(email="sam@example.org"))

    assert response.status_code == 302
    assert ServiceCase.objects.exists()
    done = client.get("/report/done/").content.decode()
    assert "We have sent an email to the address you gave" in done


def test_a_bad_email_is_refused_and_creates_no_profile(client, fly_tipping, settings):
    post_and_expect_error(
        client,
        fly_tipping,
        valid_answers(email="not-an-email"),
        "Enter an email address in the correct format, like name@example.com",
    )
    assert not Citizen.objects.exists()
    assert_nothing_saved(settings)


# --- The confirmation page ----------------------------------------------------------------


def test_the_confirmation_needs_a_report_from_this_session(
    resident_client, other_resident, potholes
):
    resident_client.post(report_url(potholes), valid_answers())
    reference = ServiceCase.objects.get().reference

    # Another browser, signed in or not, sees no confirmation and no reference.
    stranger, neighbour = Client(), Client()
    neighbour.force_login(other_resident)
    for browser in (stranger, neighbour):
        response = browser.get("/report/done/")
        assert response.status_code == 302 and response["Location"] == "/report/"
        assert reference not in browser.get("/report/done/", follow=True).content.decode()


def test_the_confirmation_works_in_welsh_too(resident_client, potholes, settings):
    resident_client.post(report_url(potholes), valid_answers())
    resident_client.cookies[settings.LANGUAGE_COOKIE_NAME] = "cy"
    html = resident_client.get("/report/done/").content.decode()
    assert 'lang="cy"' in html
    assert ServiceCase.objects.get().reference in html


# --- Rate limits ------------------------------------------------------------------------------


def test_anonymous_reports_from_one_address_are_limited_per_hour(client, fly_tipping, settings):
    settings.PORTAL_ANONYMOUS_REPORTS_PER_HOUR = 2
    for _ in range(2):
        assert client.post(report_url(fly_tipping), valid_answers()).status_code == 302

    refused = client.post(report_url(fly_tipping), valid_answers(photos=[upload()]))

    assert refused.status_code == 429
    assert "You have sent a lot of reports in the last hour" in refused.content.decode()
    assert "minute" in refused.content.decode()
    assert ServiceCase.objects.count() == 2
    assert CaseAttachment.objects.count() == 0
    # Another address is not held back by this one.
    other = client.post(report_url(fly_tipping), valid_answers(), REMOTE_ADDR="203.0.113.7")
    assert other.status_code == 302


def test_a_signed_in_residents_reports_are_limited_per_profile(resident_client, potholes, settings):
    settings.PORTAL_REPORTS_PER_HOUR = 1
    assert resident_client.post(report_url(potholes), valid_answers()).status_code == 302

    refused = resident_client.post(report_url(potholes), valid_answers())

    assert refused.status_code == 429
    assert ServiceCase.objects.count() == 1


def test_invalid_reports_do_not_count_towards_the_limit(client, fly_tipping, settings):
    settings.PORTAL_ANONYMOUS_REPORTS_PER_HOUR = 1
    for _ in range(3):
        client.post(report_url(fly_tipping), valid_answers(postcode="NOT A POSTCODE"))

    assert client.post(report_url(fly_tipping), valid_answers()).status_code == 302


def test_the_wait_is_counted_in_minutes_singular_and_plural(client, fly_tipping, settings):
    import time as time_module

    settings.PORTAL_ANONYMOUS_REPORTS_PER_HOUR = 1
    client.post(report_url(fly_tipping), valid_answers())
    window = 60 * 60
    hour_start = (time_module.time() // window) * window
    for seconds_into_hour, expected in (
        (window - 30, "Wait 1 minute and"),
        (window - 150, "Wait 3 minutes and"),
    ):
        with mock.patch(
            "citizenhub.ratelimit.time.time", return_value=hour_start + seconds_into_hour
        ):
            html = client.post(report_url(fly_tipping), valid_answers()).content.decode()
        assert expected in html, expected


def test_the_limit_is_counted_before_saving_so_parallel_reports_cannot_all_pass(
    client, fly_tipping, settings, monkeypatch
):
    """Every post has passed the first check before any has saved (as when they arrive at
    once): only as many as the limit are saved, the others are refused."""
    from citizenhub.portal.views import report as report_view

    settings.PORTAL_ANONYMOUS_REPORTS_PER_HOUR = 2
    monkeypatch.setattr(report_view.HourlyLimit, "retry_after", lambda self, key: None)
    statuses = [client.post(report_url(fly_tipping), valid_answers()).status_code for _ in range(4)]

    assert statuses == [302, 302, 429, 429]
    assert ServiceCase.objects.count() == 2
