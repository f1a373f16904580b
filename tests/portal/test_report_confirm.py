"""Following an anonymous report by e-mail: the link's page changes nothing until its button
is pressed; confirming gives the case to the profile owning the address (proving it), once;
bad, tampered and expired links get a clear page, never an error."""

from __future__ import annotations

import re
import time
from unittest import mock

import pytest
from django.core import signing
from django.test import Client

from citizenhub.models import (
    AuditEvent,
    CaseEvent,
    Citizen,
    ContactPoint,
    ServiceCase,
    TimelineEntry,
)
from citizenhub.services.report_followers import (
    FOLLOW_TOKEN_SALT,
    case_set_citizen,
    follow_request_from_token,
)
from tests.factories import ServiceFactory
from tests.portal.test_attachments import upload
from tests.portal.test_report import report_url, valid_answers

pytestmark = pytest.mark.django_db

LINK = re.compile(r"http://testserver(/report/confirm/[^/\s]+/)")


@pytest.fixture
def fly_tipping():
    return ServiceFactory(
        code="fly-tipping", name="Fly-tipping", group="Rubbish", allows_anonymous=True
    )


def report_anonymously(service, email, mailoutbox, **answers) -> tuple[ServiceCase, str]:
    """An anonymous report with an e-mail address; returns the case and the link's path."""
    response = Client().post(report_url(service), valid_answers(email=email, **answers))
    assert response.status_code == 302
    return ServiceCase.objects.latest("id"), LINK.search(mailoutbox[-1].body).group(1)


def test_opening_the_link_changes_nothing(client, fly_tipping, resident, mailoutbox):
    case, link = report_anonymously(fly_tipping, resident.email, mailoutbox)

    for _ in range(2):  # a mail scanner, then the resident
        response = client.get(link)
        html = response.content.decode()
        assert response.status_code == 200
        assert f"Get updates about report {case.reference}" in html
        assert 'method="post"' in html and 'name="csrfmiddlewaretoken"' in html
        assert "Fly-tipping" in html
        # Only what the e-mail said: not the report's own words.
        assert "Deep pothole" not in html
    case.refresh_from_db()
    assert case.citizen is None
    assert not TimelineEntry.objects.exists()


def test_confirming_puts_the_case_in_the_residents_account(
    client, fly_tipping, resident, mailoutbox
):
    case, link = report_anonymously(
        fly_tipping, resident.email.upper(), mailoutbox, photos=[upload()]
    )

    response = client.post(link)

    assert response.status_code == 200
    assert "You will get updates about your report" in response.content.decode()
    case.refresh_from_db()
    assert case.citizen == resident.citizen
    assert case.version == 2
    assert case.attachments.get().citizen == resident.citizen
    assert Citizen.objects.count() == 1
    linked = case.events.get(kind=CaseEvent.Kind.DETAILS)
    assert linked.visibility == CaseEvent.Visibility.STAFF
    entry = TimelineEntry.objects.get(citizen=resident.citizen)
    assert case.reference in entry.summary
    assert entry.visibility == TimelineEntry.Visibility.RESIDENT
    assert AuditEvent.objects.filter(
        target_id=str(case.pk), action=AuditEvent.Action.UPDATE, citizen=resident.citizen
    ).exists()
    # Now in their "My cases".
    owner = Client()
    owner.force_login(resident)
    assert case.reference in owner.get("/my/cases/").content.decode()


def test_a_signed_in_resident_confirming_is_pointed_to_their_cases(
    resident_client, fly_tipping, resident, mailoutbox
):
    _case, link = report_anonymously(fly_tipping, resident.email, mailoutbox)
    html = resident_client.post(link).content.decode()
    assert 'href="/my/cases/"' in html


def test_confirming_a_new_address_makes_a_provisional_profile_with_it_proven(
    client, fly_tipping, mailoutbox
):
    case, link = report_anonymously(fly_tipping, " Sam.Jones@Example.ORG ", mailoutbox)

    client.post(link)

    case.refresh_from_db()
    assert case.citizen.status == Citizen.Status.PROVISIONAL
    point = case.citizen.contact_points.get()
    assert point.kind == "email" and point.normalised == "Sam.Jones@example.org"
    assert point.verification_level == ContactPoint.VerificationLevel.CONFIRMED
    assert point.verified_at is not None
    assert point.source == ContactPoint.Source.PORTAL


def test_confirming_raises_an_unverified_address_and_never_lowers_a_staff_check(
    client, fly_tipping, mailoutbox
):
    from citizenhub.services.identity import resolve_identity

    unverified = resolve_identity(kind="email", value="pat@example.org").contact_point
    checked = resolve_identity(kind="email", value="kim@example.org").contact_point
    checked.verification_level = ContactPoint.VerificationLevel.STAFF_CHECKED
    checked.save()

    for point in (unverified, checked):
        case, link = report_anonymously(fly_tipping, point.normalised, mailoutbox)
        client.post(link)
        case.refresh_from_db()
        assert case.citizen_id == point.citizen_id
    unverified.refresh_from_db()
    checked.refresh_from_db()
    assert unverified.verification_level == ContactPoint.VerificationLevel.CONFIRMED
    assert checked.verification_level == ContactPoint.VerificationLevel.STAFF_CHECKED
    assert Citizen.objects.count() == 2  # nothing merged, nothing new


def test_confirming_twice_is_fine(client, fly_tipping, resident, mailoutbox):
    case, link = report_anonymously(fly_tipping, resident.email, mailoutbox)
    client.post(link)

    for response in (client.post(link), client.get(link)):
        assert response.status_code == 200
        assert f"Updates about report {case.reference} are already set up" in (
            response.content.decode()
        )
    assert case.events.filter(kind=CaseEvent.Kind.DETAILS).count() == 1
    assert TimelineEntry.objects.count() == 1


def test_a_case_already_linked_to_someone_else_is_never_moved(
    client, fly_tipping, resident, other_resident, mailoutbox
):
    case, link = report_anonymously(fly_tipping, resident.email, mailoutbox)
    case_set_citizen(case=case, citizen=other_resident.citizen, reason="an officer linked it")

    html = client.post(link).content.decode()

    case.refresh_from_db()
    assert case.citizen == other_resident.citizen
    assert "already set up" in html
    assert other_resident.citizen.display_name not in html


def test_each_report_has_its_own_link(client, fly_tipping, resident, mailoutbox):
    first, first_link = report_anonymously(fly_tipping, resident.email, mailoutbox)
    second, _second_link = report_anonymously(fly_tipping, resident.email, mailoutbox)

    client.post(first_link)

    first.refresh_from_db()
    second.refresh_from_db()
    assert first.citizen == resident.citizen
    assert second.citizen is None


def test_confirming_needs_the_csrf_token(fly_tipping, resident, mailoutbox):
    case, link = report_anonymously(fly_tipping, resident.email, mailoutbox)
    response = Client(enforce_csrf_checks=True).post(link)
    assert response.status_code == 403
    case.refresh_from_db()
    assert case.citizen is None


def bad_link_page(client, path):
    for response in (client.get(path), client.post(path)):
        html = response.content.decode()
        assert response.status_code == 404
        assert "This link has expired or is not valid" in html
        assert 'class="govuk-heading-l"' in html
    return html


def test_a_tampered_link_is_a_clear_404(client, fly_tipping, resident, mailoutbox):
    case, link = report_anonymously(fly_tipping, resident.email, mailoutbox)
    token = link.split("/")[-2]
    payload, _, _signature = token.rpartition(":")
    forged = signing.dumps({"case": case.pk, "note": 1}, salt="another.salt")

    for bad in (token[:-2] + "xx", f"{payload}:AAAA", "nonsense", forged, "%00", "a" * 500):
        bad_link_page(client, f"/report/confirm/{bad}/")
    case.refresh_from_db()
    assert case.citizen is None


@pytest.mark.parametrize(
    "payload",
    [
        [1, 2],
        {"case": "1", "note": "x"},
        {"case": 999_999, "note": 999_999},
        {"note": 1},
    ],
)
def test_a_signed_link_for_nothing_is_a_clear_404(client, payload):
    token = signing.dumps(payload, salt=FOLLOW_TOKEN_SALT)
    bad_link_page(client, f"/report/confirm/{token}/")


def test_a_link_naming_another_cases_note_is_refused(client, fly_tipping, resident, mailoutbox):
    first, _ = report_anonymously(fly_tipping, resident.email, mailoutbox)
    second, _ = report_anonymously(fly_tipping, "someone@example.org", mailoutbox)
    # A real note of a real case, but paired with the wrong case (or a non-follow note).
    note = second.events.get(kind=CaseEvent.Kind.NOTE)
    created = first.events.get(kind=CaseEvent.Kind.CREATED)
    for payload in ({"case": first.pk, "note": note.pk}, {"case": first.pk, "note": created.pk}):
        token = signing.dumps(payload, salt=FOLLOW_TOKEN_SALT)
        bad_link_page(client, f"/report/confirm/{token}/")


def test_an_expired_link_says_so(client, fly_tipping, resident, mailoutbox, settings):
    case, link = report_anonymously(fly_tipping, resident.email, mailoutbox)

    with mock.patch("django.core.signing.time.time", return_value=time.time() + 8 * 24 * 3600):
        html = bad_link_page(client, link)

    assert "work for 7 days" in html
    case.refresh_from_db()
    assert case.citizen is None


def test_the_link_age_is_a_setting(client, fly_tipping, resident, mailoutbox, settings):
    settings.PORTAL_REPORT_FOLLOW_LINK_MAX_AGE = 24 * 3600
    _case, link = report_anonymously(fly_tipping, resident.email, mailoutbox)
    assert "The link works for 1 day." in mailoutbox[-1].body
    with mock.patch("django.core.signing.time.time", return_value=time.time() + 2 * 24 * 3600):
        bad_link_page(client, link)


def test_an_anonymised_case_link_no_longer_works(client, fly_tipping, resident, mailoutbox):
    from django.utils import timezone

    case, link = report_anonymously(fly_tipping, resident.email, mailoutbox)
    ServiceCase.objects.filter(pk=case.pk).update(anonymised_at=timezone.now())
    bad_link_page(client, link)


def test_the_link_does_not_carry_the_address(fly_tipping, mailoutbox):
    _case, link = report_anonymously(fly_tipping, "sam.jones@example.org", mailoutbox)
    token = link.split("/")[-2]
    decoded = signing.b64_decode(token.split(":")[0].encode()).decode(errors="replace")
    assert "sam" not in decoded.lower()
    assert follow_request_from_token(token).email == "sam.jones@example.org"


def test_the_email_and_pages_are_in_the_reporters_language(fly_tipping, mailoutbox, settings):
    browser = Client()
    browser.cookies[settings.LANGUAGE_COOKIE_NAME] = "cy"
    browser.post(report_url(fly_tipping), valid_answers(email="sam@example.org"))
    link = LINK.search(mailoutbox[-1].body).group(1)
    html = browser.get(link).content.decode()
    assert '<html lang="cy"' in html
    invalid = browser.get("/report/confirm/nonsense/")
    assert invalid.status_code == 404 and '<html lang="cy"' in invalid.content.decode()
