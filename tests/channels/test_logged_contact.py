"""Staff-logged contact: phone calls and visits through the API, onto the timeline."""

import datetime

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from channels.models import Channel, LoggedContact, Thread
from channels.services.contacts import contact_log, format_duration
from citizenhub.models import Citizen, TimelineEntry
from tests.factories import CitizenFactory, StaffUserFactory

pytestmark = pytest.mark.django_db
CONTACTS = "/api/v1/contacts/"


def an_hour_ago() -> str:
    return (timezone.now() - datetime.timedelta(hours=1)).isoformat()


def call(citizen, **changes) -> dict:
    return {
        "citizen": str(citizen.public_id),
        "kind": "call",
        "direction": "inbound",
        "occurred_at": an_hour_ago(),
        "duration_seconds": 750,
        "outcome": "callback_needed",
        "notes": "Asked about garden waste; call back on Friday.",
        "department": "Waste",
        **changes,
    }


def thread_of(citizen) -> Thread:
    channel, _ = Channel.objects.get_or_create(
        slug="contact", defaults={"kind": "email-smtp", "name": "Contact centre"}
    )
    return Thread.objects.create(channel=channel, citizen=citizen, subject="Bins")


def test_logging_a_call_is_201_and_puts_it_on_the_timeline(staff_api, staff_user):
    citizen = CitizenFactory()
    response = staff_api.post(CONTACTS, call(citizen), format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["citizen"]["id"] == str(citizen.public_id)
    assert (body["kind"], body["outcome"], body["duration_seconds"]) == (
        "call",
        "callback_needed",
        750,
    )
    assert body["logged_by"] == staff_user.get_username() and body["thread"] is None

    contact = LoggedContact.objects.get()
    entry = TimelineEntry.objects.get(citizen=citizen)
    assert (entry.kind, entry.channel, entry.visibility) == ("call", "phone", "staff")
    assert entry.occurred_at == contact.occurred_at and entry.department == "Waste"
    assert entry.summary == (
        "Phone call from the resident (12 min 30 s), outcome: Callback needed, Waste. "
        "Asked about garden waste; call back on Friday."
    )
    assert entry.source == contact


def test_a_visit_with_a_thread_goes_on_the_timeline_as_in_person(staff_api):
    citizen = CitizenFactory()
    thread = thread_of(citizen)
    payload = call(
        citizen,
        kind="visit",
        direction="outbound",
        outcome="no_access",
        thread=thread.pk,
        notes="",
        department="",
    )
    del payload["duration_seconds"]
    response = staff_api.post(CONTACTS, payload, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["thread"] == thread.pk
    entry = TimelineEntry.objects.get(citizen=citizen)
    assert (entry.kind, entry.channel) == ("visit", "in_person")
    assert entry.summary == "Visit to the resident, outcome: No access (nobody in)."


def test_a_contact_logged_on_a_merged_profile_lands_on_the_survivor(staff_user):
    survivor = CitizenFactory()
    merged = CitizenFactory(status=Citizen.Status.MERGED, merged_into=survivor)
    contact = contact_log(
        citizen=merged,
        kind="call",
        direction="outbound",
        occurred_at=timezone.now(),
        duration_seconds=None,
        outcome="no_answer",
        notes="",
        department="",
        by=staff_user,
    )
    assert contact.citizen == survivor
    assert TimelineEntry.objects.get().citizen == survivor


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"citizen": "00000000-0000-0000-0000-000000000000"}, "citizen"),
        ({"citizen": "not-a-uuid"}, "citizen"),
        ({"duration_seconds": -1}, "duration_seconds"),
        ({"duration_seconds": 24 * 3600 + 1}, "duration_seconds"),
        ({"occurred_at": "2999-01-01T09:00:00Z"}, "occurred_at"),
        ({"kind": "fax"}, "kind"),
        ({"direction": "sideways"}, "direction"),
        ({"outcome": "abducted by aliens"}, "outcome"),
        ({"notes": "x" * 10_001}, "notes"),
        ({"thread": 999_999}, "thread"),
        ({"caller_mood": "cross"}, "caller_mood"),
    ],
)
def test_bad_requests_are_400_naming_the_field_and_store_nothing(staff_api, changes, field):
    citizen = CitizenFactory()
    response = staff_api.post(CONTACTS, {**call(citizen), **changes}, format="json")
    assert response.status_code == 400, response.content
    assert list(response.json()["error"]["fields"]) == [field]
    assert LoggedContact.objects.count() == 0 and TimelineEntry.objects.count() == 0


def test_a_thread_of_another_resident_is_refused(staff_api):
    citizen = CitizenFactory()
    someone_elses = thread_of(CitizenFactory())
    response = staff_api.post(CONTACTS, call(citizen, thread=someone_elses.pk), format="json")
    assert response.status_code == 400
    assert "another resident" in response.json()["error"]["fields"]["thread"][0]
    assert LoggedContact.objects.count() == 0


def test_a_slightly_fast_clock_is_not_the_future(staff_api):
    citizen = CitizenFactory()
    soon = (timezone.now() + datetime.timedelta(seconds=30)).isoformat()
    assert (
        staff_api.post(CONTACTS, call(citizen, occurred_at=soon), format="json").status_code == 201
    )


def test_the_service_refuses_an_erased_profile(staff_user):
    erased = CitizenFactory(status=Citizen.Status.ERASED)
    with pytest.raises(ValidationError) as caught:
        contact_log(
            citizen=erased,
            kind="call",
            direction="inbound",
            occurred_at=timezone.now(),
            duration_seconds=60,
            outcome="resolved",
            notes="",
            department="",
            by=staff_user,
        )
    assert "citizen" in caught.value.message_dict


def test_residents_and_anonymous_callers_cannot_log_or_list(api_client, resident_user):
    citizen = CitizenFactory()
    assert api_client.post(CONTACTS, call(citizen), format="json").status_code in (401, 403)
    api_client.force_authenticate(resident_user)
    assert api_client.post(CONTACTS, call(citizen), format="json").status_code == 403
    assert api_client.get(CONTACTS).status_code == 403
    assert LoggedContact.objects.count() == 0


def log_calls(citizen, count, by):
    for n in range(count):
        contact_log(
            citizen=citizen,
            kind="call",
            direction="inbound",
            occurred_at=timezone.now() - datetime.timedelta(minutes=n + 1),
            duration_seconds=60 * n,
            outcome="resolved",
            notes=f"call {n}",
            department="Housing",
            by=StaffUserFactory() if by is None else by,
        )


def test_list_by_citizen_is_newest_first_paged_and_in_constant_queries(
    staff_api, staff_user, django_assert_max_num_queries
):
    citizen, other = CitizenFactory(), CitizenFactory()
    log_calls(citizen, 2, None)
    log_calls(other, 1, staff_user)
    with django_assert_max_num_queries(3) as small:
        body = staff_api.get(CONTACTS, {"citizen": str(citizen.public_id)}).json()
    assert [c["notes"] for c in body["results"]] == ["call 0", "call 1"]
    assert body["results"][0]["citizen"]["display_name"] == citizen.display_name

    log_calls(citizen, 30, None)  # each by a different officer
    with django_assert_max_num_queries(len(small.captured_queries)):
        body = staff_api.get(CONTACTS, {"citizen": str(citizen.public_id), "page_size": 20}).json()
    assert len(body["results"]) == 20 and body["next"]
    rest = staff_api.get(body["next"]).json()
    assert len(rest["results"]) == 12 and rest["next"] is None
    assert {c["citizen"]["id"] for c in body["results"] + rest["results"]} == {
        str(citizen.public_id)
    }


def test_list_filters_and_refuses_a_bad_citizen_id(staff_api, staff_user):
    citizen = CitizenFactory()
    log_calls(citizen, 2, staff_user)
    assert staff_api.get(CONTACTS, {"citizen": str(CitizenFactory().public_id)}).json() == {
        "next": None,
        "results": [],
    }
    assert (
        len(staff_api.get(CONTACTS, {"outcome": "resolved", "kind": "call"}).json()["results"]) == 2
    )
    assert staff_api.get(CONTACTS, {"outcome": "no_answer"}).json()["results"] == []
    bad = staff_api.get(CONTACTS, {"citizen": "nope"})
    assert bad.status_code == 400 and "citizen" in bad.json()["error"]["fields"]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0 s"), (45, "45 s"), (600, "10 min"), (3720, "1 h 2 min"), (7200, "2 h")],
)
def test_durations_read_naturally(seconds, text):
    assert format_duration(seconds) == text
