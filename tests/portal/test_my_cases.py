"""My cases: the resident's own cases, the history they may see, adding information and
reopening a resolved case within the allowed days."""

from __future__ import annotations

import datetime
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from citizenhub.models import CaseAttachment, CaseEvent, ServiceCase, TimelineEntry
from citizenhub.services.cases import (
    case_add_note,
    case_assign,
    case_record_message,
    case_resident_reopen,
    case_resident_update,
    case_transition,
    open_case,
)
from tests.factories import ServiceCaseFactory, ServiceFactory, StaffUserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def potholes():
    return ServiceFactory(code="pothole", name="Potholes")


@pytest.fixture
def case(resident, potholes):
    return open_case(
        service=potholes,
        title="Pothole on Mill Lane",
        description="A deep pothole by the bus stop.",
        location_text="Mill Lane, by the bus stop",
        postcode="NM1 4AB",
        citizen=resident.citizen,
        actor=resident,
        actor_label="resident",
        source_channel="web",
    )


def case_url(case: ServiceCase) -> str:
    return reverse("portal:my-case", args=[case.reference])


def resolve(case: ServiceCase, *, at: datetime.datetime | None = None) -> ServiceCase:
    return case_transition(
        case=case,
        to_status="resolved",
        expected_version=None,
        resolution="We filled the pothole on Tuesday.",
        at=at,
    )


def visible_text(response) -> str:
    return re.sub(r"\s+", " ", response.content.decode())


# --- The list -------------------------------------------------------------------------------


def test_my_cases_needs_a_signed_in_resident(client):
    response = client.get(reverse("portal:my-cases"))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_my_cases_lists_open_cases_first_with_plain_status_words(
    resident_client, resident, other_resident, potholes
):
    past = open_case(service=potholes, title="Old pothole", citizen=resident.citizen)
    resolve(past)
    waiting = open_case(service=potholes, title="Broken light", citizen=resident.citizen)
    case_transition(case=waiting, to_status="waiting", expected_version=None)
    theirs = open_case(service=potholes, title="Gareth's pothole", citizen=other_resident.citizen)

    response = resident_client.get(reverse("portal:my-cases"))

    assert response.status_code == 200
    page = visible_text(response)
    assert "My cases –" in page  # the page title
    assert page.index("Open cases") < page.index(waiting.reference) < page.index("Past cases")
    assert page.index("Past cases") < page.index(past.reference)
    assert 'govuk-tag govuk-tag--yellow">Waiting for your reply' in page
    assert 'govuk-tag govuk-tag--green">Resolved' in page
    assert theirs.reference not in page and "Gareth" not in page


def test_my_cases_pages_and_keeps_a_constant_query_count(
    resident_client, resident, potholes, django_assert_max_num_queries
):
    ServiceCaseFactory.create_batch(3, citizen=resident.citizen, service=potholes)
    with django_assert_max_num_queries(20) as few:
        assert resident_client.get(reverse("portal:my-cases")).status_code == 200
    ServiceCaseFactory.create_batch(40, citizen=resident.citizen, service=potholes)
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = resident_client.get(reverse("portal:my-cases"))
    assert response.content.decode().count('href="/my/cases/CH-') == 20
    assert 'rel="next"' in response.content.decode()
    second = resident_client.get(reverse("portal:my-cases") + "?page=2")
    assert second.content.decode().count('href="/my/cases/CH-') == 20
    # A page number that makes no sense shows a page, never an error.
    assert resident_client.get(reverse("portal:my-cases") + "?page=abc").status_code == 200


# --- One case -------------------------------------------------------------------------------


def test_the_case_page_shows_what_was_reported_and_only_the_residents_history(
    resident_client, case, potholes
):
    officer = StaffUserFactory(first_name="Olivia", last_name="Officerson")
    potholes.team.members.add(officer)
    case_assign(case=case, expected_version=None, assignee=officer, actor=officer)
    case_add_note(case=case, text="INTERNAL: resident is a councillor's cousin", actor=officer)
    case_record_message(
        case=case, kind="linked", text="Linked conversation CH-9", data={}, actor=officer
    )
    case_transition(
        case=case,
        to_status="in_progress",
        expected_version=None,
        actor=officer,
        reason="Crew booked, see job 77",
    )

    response = resident_client.get(case_url(case))

    assert response.status_code == 200
    page = visible_text(response)
    for shown in (
        "Pothole on Mill Lane",
        "A deep pothole by the bus stop.",
        "Mill Lane, by the bus stop, NM1 4AB",
        case.due_on.strftime("%-d %B %Y"),
        "You reported this",
        "Status changed to “In progress”",
    ):
        assert shown in page, shown
    for hidden in ("INTERNAL", "Olivia", "Officerson", "Linked conversation", "job 77"):
        assert hidden not in page, hidden


def test_details_written_for_the_resident_are_shown_and_officers_edits_are_not(
    resident_client, case
):
    from citizenhub.models import CaseEvent
    from citizenhub.services.cases import case_update_details

    case_update_details(case=case, expected_version=None, priority=1, uprn="100012345678")
    CaseEvent.objects.create(
        case=case,
        kind=CaseEvent.Kind.DETAILS,
        text="Erased: your newsletter consent. Kept: this case, until 2033.",
        visibility=CaseEvent.Visibility.RESIDENT,
    )

    page = visible_text(resident_client.get(case_url(case)))

    assert "Erased: your newsletter consent. Kept: this case, until 2033." in page
    assert page.count("Case updated") == 1


def test_another_residents_case_is_not_found_like_an_unknown_one(
    resident_client, other_resident, potholes
):
    theirs = open_case(service=potholes, title="Gareth's pothole", citizen=other_resident.citizen)
    assert resident_client.get(case_url(theirs)).status_code == 404
    assert resident_client.get("/my/cases/CH-2026-999999/").status_code == 404
    for action in ("portal:my-case-update", "portal:my-case-reopen"):
        url = reverse(action, args=[theirs.reference])
        assert resident_client.post(url, {"text": "x", "reason": "x"}).status_code == 404
    assert theirs.events.count() == 1


def test_a_sensitive_case_is_shown_in_full_to_its_own_resident(resident_client, resident):
    care = ServiceFactory(code="adult-care", name="Adult social care", is_sensitive=True)
    case = open_case(
        service=care, title="Help at home", description="Carer visits", citizen=resident.citizen
    )
    page = visible_text(resident_client.get(case_url(case)))
    assert "Help at home" in page and "Carer visits" in page


def test_the_residents_attachments_are_listed_with_links(resident_client, resident, case):
    mine = CaseAttachment.objects.create(
        case=case,
        citizen=resident.citizen,
        file=SimpleUploadedFile("x", b"jpeg"),
        original_name="pothole.jpg",
        content_type="image/jpeg",
        size=4,
        sha256="0" * 64,
    )
    staff_only = CaseAttachment.objects.create(
        case=case,
        citizen=None,
        file=SimpleUploadedFile("y", b"pdf"),
        original_name="crew-report.pdf",
        content_type="application/pdf",
        size=3,
        sha256="1" * 64,
    )
    page = visible_text(resident_client.get(case_url(case)))
    assert f'href="/attachments/{mine.public_id}/"' in page and "pothole.jpg" in page
    assert str(staff_only.public_id) not in page and "crew-report" not in page


def test_an_anonymised_case_shows_only_its_tombstone(resident_client, resident, potholes):
    case = ServiceCaseFactory(
        citizen=resident.citizen,
        service=potholes,
        title="[removed after the retention period]",
        description="",
        status="closed",
        anonymised_at=timezone.now(),
        closed_at=timezone.now(),
    )
    CaseEvent.objects.create(case=case, kind="created", text="", visibility="resident")
    response = resident_client.get(case_url(case))
    page = visible_text(response)
    assert response.status_code == 200
    assert case.reference in page and "were removed" in page
    assert "What has happened" not in page and '<form method="post" action="/my/cases' not in page


# --- Add information ------------------------------------------------------------------------


def update_url(case: ServiceCase) -> str:
    return reverse("portal:my-case-update", args=[case.reference])


def test_adding_information_records_it_for_staff_and_the_resident(resident_client, resident, case):
    case_transition(case=case, to_status="waiting", expected_version=None)

    response = resident_client.post(update_url(case), {"text": "  It is now 30cm wide.  "})

    assert response.status_code == 302 and response["Location"] == case_url(case)
    case.refresh_from_db()
    assert case.status == "in_progress"  # it was waiting on the resident
    update = case.events.get(kind="resident_update")
    assert update.text == "It is now 30cm wide." and update.visibility == "resident"
    assert update.actor == resident and update.data == {"source": "portal"}
    assert TimelineEntry.objects.filter(
        citizen=resident.citizen, summary__contains="Information added"
    ).exists()
    page = visible_text(resident_client.get(case_url(case)))
    assert "You added information" in page and "It is now 30cm wide." in page
    assert "has been added to case" in page  # the banner after the redirect


@pytest.mark.parametrize(
    ("text", "error"),
    [("   ", "Enter the information you want to add"), ("x" * 5001, "5000 characters or fewer")],
)
def test_bad_information_gets_a_clear_error_and_saves_nothing(resident_client, case, text, error):
    response = resident_client.post(update_url(case), {"text": text})

    assert response.status_code == 400
    page = visible_text(response)
    assert "<title>Error: Case" in page and "There is a problem" in page
    assert error in page and 'href="#id_text"' in page
    assert case.events.filter(kind="resident_update").count() == 0


def test_a_post_without_csrf_token_is_refused(resident, case):
    client = Client(enforce_csrf_checks=True)
    client.force_login(resident)
    response = client.post(update_url(case), {"text": "Sneaky"})
    assert response.status_code == 403
    assert case.events.filter(kind="resident_update").count() == 0


def test_information_cannot_be_added_to_a_resolved_case(resident_client, case):
    resolve(case)
    response = resident_client.post(update_url(case), {"text": "Thanks!"})
    assert response.status_code == 400
    assert "reopen the case or report it again" in visible_text(response)
    assert case.events.filter(kind="resident_update").count() == 0


def test_get_on_an_action_is_not_allowed(resident_client, case):
    assert resident_client.get(update_url(case)).status_code == 405


# --- Reopen ---------------------------------------------------------------------------------


def reopen_url(case: ServiceCase) -> str:
    return reverse("portal:my-case-reopen", args=[case.reference])


def test_a_recently_resolved_case_can_be_reopened_with_a_reason(resident_client, resident, case):
    resolve(case)
    page = visible_text(resident_client.get(case_url(case)))
    assert "How we resolved it" in page and "We filled the pothole on Tuesday." in page
    assert "Reopen this case" in page

    response = resident_client.post(reopen_url(case), {"reason": "It has opened up again."})

    assert response.status_code == 302
    case.refresh_from_db()
    assert case.status == "open" and case.resolved_at is None
    reopened = case.events.filter(kind="status", to_status="open").get()
    assert reopened.text == "It has opened up again." and reopened.actor == resident
    assert "You reopened the case" in visible_text(resident_client.get(case_url(case)))


def test_a_closed_case_resolved_recently_can_be_reopened(resident_client, case):
    resolve(case)
    case_transition(case=case, to_status="closed", expected_version=None)
    assert resident_client.post(reopen_url(case), {"reason": "Still there"}).status_code == 302
    case.refresh_from_db()
    assert case.status == "open"


def test_reopening_needs_a_reason(resident_client, case):
    resolve(case)
    response = resident_client.post(reopen_url(case), {"reason": ""})
    assert response.status_code == 400
    assert "Enter why the case needs to be reopened" in visible_text(response)
    case.refresh_from_db()
    assert case.status == "resolved"


def test_reopening_after_the_allowed_days_is_refused_with_a_hint(resident_client, case, settings):
    settings.PORTAL_REOPEN_DAYS = 28
    resolve(case, at=timezone.now() - datetime.timedelta(days=29))

    page = visible_text(resident_client.get(case_url(case)))
    assert "Reopen this case" not in page
    assert "can no longer be reopened" in page and 'href="/report/"' in page

    response = resident_client.post(reopen_url(case), {"reason": "Back again"})
    assert response.status_code == 400
    assert "more than 28 days ago" in visible_text(response)
    assert "report it again" in visible_text(response)
    case.refresh_from_db()
    assert case.status == "resolved"


def test_the_reopen_window_includes_its_last_day(case):
    resolve(case, at=timezone.now() - datetime.timedelta(days=28))
    reopened = case_resident_reopen(case=case, reason="Still broken", reopen_days=28)
    assert reopened.status == "open"


def test_a_case_closed_without_resolution_is_not_reopened_by_the_resident(
    resident_client, potholes, resident
):
    case = open_case(service=potholes, title="Duplicate", citizen=resident.citizen)
    case_transition(case=case, to_status="closed", expected_version=None, reason="Duplicate")
    assert "Reopen this case" not in visible_text(resident_client.get(case_url(case)))
    assert resident_client.post(reopen_url(case), {"reason": "Why?"}).status_code == 400
    case.refresh_from_db()
    assert case.status == "closed"


# --- The shared service ---------------------------------------------------------------------


def test_resident_updates_from_any_route_move_a_waiting_case_once(case):
    case_transition(case=case, to_status="waiting", expected_version=None)
    case_resident_update(case=case, text="First")
    case_resident_update(case=case, text="Second")
    case.refresh_from_db()
    assert case.status == "in_progress"
    assert case.events.filter(kind="status", to_status="in_progress").count() == 1
    assert case.events.filter(kind="resident_update").count() == 2


def test_a_resident_update_does_not_reopen_a_resolved_case(case):
    resolve(case)
    case_resident_update(case=case, text="Thank you")
    case.refresh_from_db()
    assert case.status == "resolved"


def test_a_reopened_case_is_back_in_its_teams_open_cases(case):
    """Staff notice a reopened case: it is back among the team's open cases."""
    resolve(case)
    case_resident_reopen(case=case, reason="Not fixed", reopen_days=28)
    team_open = ServiceCase.objects.filter(team=case.team, status__in=ServiceCase.OPEN_STATUSES)
    assert case in team_open


def test_the_reopen_window_defaults_to_28_days():
    from django.conf import settings

    assert settings.PORTAL_REOPEN_DAYS == 28
    assert settings.PORTAL_CASE_UPDATE_MAX_CHARS == 5000


def test_a_sensitive_case_an_officer_wrote_is_withheld_everywhere_alike(resident_client, resident):
    """Pages, API and export apply one rule: what an officer wrote in a sensitive service
    (often about other people) comes through a formal subject access request."""
    care = ServiceFactory(code="adult-care", name="Adult social care", is_sensitive=True)
    officer = StaffUserFactory()
    case = open_case(
        service=care,
        title="Concern raised by a neighbour about Rhian's father",
        description="The neighbour at number 6 says he is not eating.",
        citizen=resident.citizen,
        actor=officer,
    )
    secrets = ("Concern raised by a neighbour", "neighbour at number 6")

    pages = [
        visible_text(resident_client.get(case_url(case))),
        visible_text(resident_client.get("/my/cases/")),
        resident_client.get(f"/api/v1/me/cases/{case.reference}/").content.decode(),
        resident_client.get("/api/v1/me/cases/").content.decode(),
        resident_client.get("/my/data/export.json").content.decode(),
    ]

    for page in pages:
        for secret in secrets:
            assert secret not in page
    assert "Available through a formal subject access request" in pages[0]
    assert "Adult social care" in pages[0]


def test_adding_information_is_limited_per_hour(resident_client, case, settings):
    settings.PORTAL_CASE_UPDATES_PER_HOUR = 2
    url = reverse("portal:my-case-update", args=[case.reference])
    for number in range(2):
        assert resident_client.post(url, {"text": f"Update {number}"}).status_code == 302

    refused = resident_client.post(url, {"text": "One too many"})

    assert refused.status_code == 429
    assert "You have added a lot of information in the last hour" in refused.content.decode()
    assert case.events.filter(kind="resident_update").count() == 2
    # The resident API shares the same allowance.
    api = resident_client.post(
        f"/api/v1/me/cases/{case.reference}/updates/",
        {"text": "Via the API"},
        content_type="application/json",
    )
    assert api.status_code == 429
