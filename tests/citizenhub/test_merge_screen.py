"""The duplicates pages: suggestions list, side-by-side comparison, merge with field choices,
"not the same person", and the merge record with unmerge."""

from __future__ import annotations

import datetime
import re
import uuid

import pytest
from django.urls import reverse

from citizenhub.models import Citizen, CitizenMerge, DuplicateCandidate, TimelineEntry
from citizenhub.services import citizen_create, citizen_merge
from tests.factories import (
    AddressFactory,
    CitizenFactory,
    ServiceCaseFactory,
    TimelineEntryFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

LIST_URL = "/staff/duplicates/"
COMPARE_URL = "/staff/duplicates/compare/"


def review_url(candidate: DuplicateCandidate) -> str:
    return f"/staff/duplicates/{candidate.pk}/"


def merge_url(merge: CitizenMerge) -> str:
    return f"/staff/duplicates/merges/{merge.pk}/"


def suggest(first: Citizen, second: Citizen, score: float = 0.97, **extra) -> DuplicateCandidate:
    a, b = sorted((first, second), key=lambda c: c.pk)
    return DuplicateCandidate.objects.create(
        citizen_a=a,
        citizen_b=b,
        score=score,
        method="fellegi-sunter-v1",
        reasons=[
            {"code": "date_of_birth_same", "weight": 13.2, "text": "Same date of birth"},
            {"code": "given_name_different", "weight": -7.6, "text": "Different given names"},
        ],
        **extra,
    )


@pytest.fixture
def pair():
    """Two profiles of one resident: A is the older, fuller one; B has a short name and a DOB."""
    a = citizen_create(
        given_name="Margaret",
        family_name="Hughes",
        preferred_language="cy",
        contact_points=[("email", "margaret.hughes@example.org"), ("phone", "07700 900301")],
    )
    b = citizen_create(
        given_name="Maggie",
        family_name="Hughes",
        date_of_birth=datetime.date(1948, 3, 9),
        accessibility_needs="Large print",
        contact_points=[("email", "maggie@example.net")],
    )
    AddressFactory(citizen=a, uprn="100090000111", postcode="NM2 3AB", line1="7 Ash Grove")
    AddressFactory(citizen=b, uprn="100090000111", postcode="NM2 3AB", line1="7 Ash Grove")
    TimelineEntryFactory.create_batch(3, citizen=a)
    TimelineEntryFactory(citizen=b)
    ServiceCaseFactory(citizen=b)
    return a, b


@pytest.fixture
def candidate(pair):
    return suggest(*pair)


def login(client, user):
    client.force_login(user)
    return client


def errors_in(response) -> str:
    match = re.search(
        r'class="govuk-error-summary".*?</div>\s*</div>\s*</div>', response.content.decode(), re.S
    )
    return match.group(0) if match else ""


# --- the list --------------------------------------------------------------------------------


def test_list_shows_open_suggestions_strongest_first(client, caseworker, pair):
    a, b = pair
    weak = suggest(
        CitizenFactory(given_name="Aled", family_name="Bowen"),
        CitizenFactory(given_name="Aled", family_name="Bowen"),
        score=0.6,
    )
    strong = suggest(a, b, score=0.999)
    dismissed = suggest(
        CitizenFactory(given_name="Dismissed"), CitizenFactory(), status="dismissed"
    )
    merged_away = CitizenFactory(given_name="Gone")
    Citizen.objects.filter(pk=merged_away.pk).update(status="erased")
    suggest(merged_away, CitizenFactory())
    response = login(client, caseworker).get(LIST_URL)
    assert response.status_code == 200
    html = response.content.decode()
    assert html.index(review_url(strong)) < html.index(review_url(weak))
    assert "Margaret Hughes" in html and "Maggie Hughes" in html
    assert "Same date of birth" in html and "Different given names" in html
    assert "over 99%" in html and "60%" in html
    assert review_url(dismissed) not in html
    assert "Gone" not in html
    assert "2 suggestions awaiting review" in html


def test_list_when_empty(client, caseworker):
    response = login(client, caseworker).get(LIST_URL)
    assert response.status_code == 200
    assert "No suggestions are waiting for review" in response.content.decode()


def test_list_pages(client, caseworker, monkeypatch):
    from citizenhub.staff.views import duplicates as views

    monkeypatch.setattr(views, "PAGE_SIZE", 2)
    for score in (0.9, 0.8, 0.7):
        suggest(CitizenFactory(), CitizenFactory(), score=score)
    first = login(client, caseworker).get(LIST_URL)
    assert 'href="/staff/duplicates/?page=2"' in first.content.decode()
    second = client.get(LIST_URL, {"page": "2"})
    assert "70%" in second.content.decode() and "90%" not in second.content.decode()
    # A page that does not exist, or is not a number, shows a page rather than an error.
    assert client.get(LIST_URL, {"page": "99"}).status_code == 200
    assert client.get(LIST_URL, {"page": "x"}).status_code == 200


def test_list_query_count_does_not_grow(client, caseworker, django_assert_max_num_queries):
    login(client, caseworker)
    suggest(CitizenFactory(), CitizenFactory())
    client.get(LIST_URL)  # warm caches (content types, permissions)
    with django_assert_max_num_queries(8) as few:
        client.get(LIST_URL)
    for _ in range(15):
        suggest(CitizenFactory(), CitizenFactory())
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = client.get(LIST_URL)
    assert response.content.decode().count("/staff/duplicates/") >= 16


def test_list_refuses_staff_without_profile_access_and_strangers(client, staff_user):
    assert login(client, staff_user).get(LIST_URL).status_code == 403
    client.logout()
    assert login(client, UserFactory()).get(LIST_URL).status_code == 403
    client.logout()
    response = client.get(LIST_URL)
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


# --- comparing --------------------------------------------------------------------------------


def test_review_page_shows_both_profiles_side_by_side(client, supervisor, pair, candidate):
    a, b = pair
    response = login(client, supervisor).get(review_url(candidate))
    assert response.status_code == 200
    html = response.content.decode()
    for text in (
        "Margaret Hughes",
        "Maggie Hughes",
        "margaret.hughes@example.org",
        "maggie@example.net",
        "+447700900301",
        "7 Ash Grove",
        "UPRN 100090000111",
        "Large print",
        "9 March 1948",
        "Welsh",
        str(a.public_id),
        str(b.public_id),
        "What the search found",
        "Same home (UPRN or address)",
    ):
        assert text in html, text
    # Counts: A has 3 timeline entries and no case; B has 1 and 1 open case.
    assert "0 (0 open)" in html and "1 (1 open)" in html
    # A radio per differing field; family name is the same on both, so it has none.
    assert 'name="merge-keep_given_name"' in html
    assert 'name="merge-keep_family_name"' not in html
    assert 'name="merge-survivor"' in html
    assert 'value="merge"' in html and 'value="dismiss"' in html
    # A (more history, older) is offered as the survivor, and fills its gaps from B.
    assert re.search(r'name="merge-survivor" type="radio" value="a" checked', html)
    assert re.search(r'name="merge-keep_date_of_birth" type="radio" value="b" checked', html)
    assert re.search(r'name="merge-keep_given_name" type="radio" value="a" checked', html)


def test_caseworker_sees_the_comparison_without_the_forms(client, caseworker, candidate):
    response = login(client, caseworker).get(review_url(candidate))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Maggie Hughes" in html
    assert "merge-survivor" not in html and 'value="dismiss"' not in html
    assert "Only supervisors can merge" in html


def test_review_of_unknown_suggestion_is_404(client, supervisor):
    assert login(client, supervisor).get("/staff/duplicates/999999/").status_code == 404


def test_compare_any_two_profiles(client, supervisor, pair):
    a, b = pair
    response = login(client, supervisor).get(
        COMPARE_URL, {"a": str(b.public_id), "b": str(a.public_id)}
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert html.index("Maggie Hughes") < html.index("Margaret Hughes")  # b is column A here
    assert "merge-survivor" in html


def test_compare_without_profiles_asks_for_them(client, supervisor):
    response = login(client, supervisor).get(COMPARE_URL)
    assert response.status_code == 200
    assert 'name="a"' in response.content.decode()


@pytest.mark.parametrize(
    ("params", "status", "message"),
    [
        ({"a": "not-a-uuid", "b": ""}, 400, "Enter a profile reference like"),
        ({"a": str(uuid.uuid4())}, 400, "Enter the reference of the second profile"),
        ({"a": str(uuid.uuid4()), "b": str(uuid.uuid4())}, 404, "No profile has this reference"),
    ],
)
def test_compare_bad_input(client, supervisor, params, status, message):
    response = login(client, supervisor).get(COMPARE_URL, params)
    assert response.status_code == status
    assert message in errors_in(response)
    assert "<title>Error:" in response.content.decode()


def test_compare_refuses_staff_without_profile_access(client, staff_user, pair):
    a, b = pair
    response = login(client, staff_user).get(
        COMPARE_URL, {"a": str(a.public_id), "b": str(b.public_id)}
    )
    assert response.status_code == 403


def test_review_query_count_does_not_grow(
    client, supervisor, pair, candidate, django_assert_max_num_queries
):
    a, b = pair
    login(client, supervisor).get(review_url(candidate))
    with django_assert_max_num_queries(14) as few:
        client.get(review_url(candidate))
    TimelineEntryFactory.create_batch(10, citizen=b)
    ServiceCaseFactory.create_batch(3, citizen=a)
    for n in range(4):
        AddressFactory(citizen=b, postcode="NM3 1AB")
        citizen_create(
            given_name="x", family_name="y", contact_points=[("email", f"x{n}@example.org")]
        )
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert client.get(review_url(candidate)).status_code == 200


# --- merging ----------------------------------------------------------------------------------


def merge_post(**fields):
    data = {"action": "merge", "merge-survivor": "a", "merge-reason": "Same home and phone"}
    data.update({f"merge-{key}": value for key, value in fields.items()})
    return data


def test_merge_with_field_choices(client, supervisor, pair, candidate):
    a, b = pair
    response = login(client, supervisor).post(
        review_url(candidate),
        merge_post(
            keep_given_name="b",
            keep_date_of_birth="b",
            keep_preferred_language="a",
            keep_accessibility_needs="a",
        ),
    )
    merge = CitizenMerge.objects.get()
    assert response.status_code == 302
    assert response["Location"] == merge_url(merge)
    a.refresh_from_db()
    b.refresh_from_db()
    assert (merge.survivor, merge.duplicate) == (a, b)
    assert a.given_name == "Maggie"  # chosen from B
    assert a.date_of_birth == datetime.date(1948, 3, 9)  # chosen from B
    assert a.preferred_language == "cy"  # kept A's
    assert a.accessibility_needs == ""  # kept A's (blank) although B had one
    assert b.status == Citizen.Status.MERGED and b.merged_into == a
    assert TimelineEntry.objects.filter(citizen=a).count() == 4
    assert merge.reason == "Same home and phone"
    assert merge.field_choices["given_name"] == "duplicate"
    assert merge.field_choices["preferred_language"] == "survivor"
    candidate.refresh_from_db()
    assert candidate.status == "merged" and candidate.reviewed_by == supervisor
    page = client.get(response["Location"])
    assert "Profiles merged: Maggie Hughes now has the records of both." in page.content.decode()


def test_merge_keeping_b_maps_choices_to_the_survivor(client, supervisor, pair, candidate):
    a, b = pair
    login(client, supervisor).post(
        review_url(candidate),
        merge_post(
            survivor="b",
            keep_given_name="a",
            keep_date_of_birth="b",
            keep_preferred_language="a",
            keep_accessibility_needs="b",
        ),
    )
    merge = CitizenMerge.objects.get()
    assert (merge.survivor, merge.duplicate) == (b, a)
    b.refresh_from_db()
    assert b.given_name == "Margaret"
    assert b.preferred_language == "cy"
    assert b.accessibility_needs == "Large print"
    assert merge.field_choices["given_name"] == "duplicate"
    assert merge.field_choices["accessibility_needs"] == "survivor"


def test_merge_from_the_compare_page(client, supervisor, pair):
    a, b = pair
    url = f"{COMPARE_URL}?a={a.public_id}&b={b.public_id}"
    response = login(client, supervisor).post(
        url,
        merge_post(
            keep_given_name="a",
            keep_date_of_birth="b",
            keep_preferred_language="a",
            keep_accessibility_needs="b",
        ),
    )
    assert response.status_code == 302
    merge = CitizenMerge.objects.get()
    assert merge.survivor == a


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"merge-survivor": "a"}, "Say why these profiles are the same person"),
        (
            {"merge-reason": "Same", "merge-keep_given_name": "a"},
            "Choose which profile should stay",
        ),
        ({"merge-survivor": "c", "merge-reason": "Same"}, "Select a valid choice"),
        ({"merge-survivor": "a", "merge-reason": "x" * 501}, "500 characters or fewer"),
        ({"merge-survivor": "a", "merge-reason": "Same"}, "Choose which value to keep"),
    ],
)
def test_merge_bad_input_shows_errors_and_changes_nothing(
    client, supervisor, candidate, data, message
):
    response = login(client, supervisor).post(review_url(candidate), {"action": "merge", **data})
    assert response.status_code == 400
    assert message in errors_in(response)
    assert not CitizenMerge.objects.exists()


def test_unknown_action_is_refused(client, supervisor, candidate):
    response = login(client, supervisor).post(review_url(candidate), {"action": "explode"})
    assert response.status_code == 400
    assert "Choose to merge the profiles" in errors_in(response)


def all_differing_choices() -> dict[str, str]:
    return {
        "keep_given_name": "a",
        "keep_date_of_birth": "b",
        "keep_preferred_language": "a",
        "keep_accessibility_needs": "b",
    }


def test_merging_a_profile_into_itself_is_refused(client, supervisor, pair):
    a, _b = pair
    url = f"{COMPARE_URL}?a={a.public_id}&b={a.public_id}"
    page = login(client, supervisor).get(url)
    assert "Both references are the same profile" in page.content.decode()
    response = client.post(url, merge_post())
    assert response.status_code == 400
    assert "A profile cannot be merged into itself." in errors_in(response)
    assert not CitizenMerge.objects.exists()
    a.refresh_from_db()
    assert a.status == Citizen.Status.ACTIVE


def test_merging_an_already_merged_profile_is_refused(client, supervisor, pair):
    a, b = pair
    c = citizen_create(given_name="Margaret", family_name="Hughes")
    citizen_merge(survivor=a, duplicate=c, by=supervisor, reason="Earlier merge")
    before = (Citizen.objects.get(pk=b.pk).status, CitizenMerge.objects.count())
    url = f"{COMPARE_URL}?a={b.public_id}&b={c.public_id}"
    page = login(client, supervisor).get(url)
    assert "Profile B is merged into another profile" in page.content.decode()
    response = client.post(url, merge_post(**all_differing_choices()))
    assert response.status_code == 400
    assert "already merged into profile" in errors_in(response)
    assert str(a.public_id) in errors_in(response)
    assert (Citizen.objects.get(pk=b.pk).status, CitizenMerge.objects.count()) == before


def test_merging_two_portal_accounts_is_refused(client, supervisor, pair, candidate):
    a, b = pair
    Citizen.objects.filter(pk=a.pk).update(user=UserFactory())
    Citizen.objects.filter(pk=b.pk).update(user=UserFactory())
    response = login(client, supervisor).post(
        review_url(candidate), merge_post(**all_differing_choices())
    )
    assert response.status_code == 400
    assert "Both profiles have their own portal account" in errors_in(response)
    assert not CitizenMerge.objects.exists()
    candidate.refresh_from_db()
    assert candidate.status == "open"


def test_caseworker_cannot_merge_or_dismiss(client, caseworker, pair, candidate):
    login(client, caseworker)
    response = client.post(review_url(candidate), merge_post(**all_differing_choices()))
    assert response.status_code == 403
    response = client.post(review_url(candidate), {"action": "dismiss", "dismiss-reason": "No"})
    assert response.status_code == 403
    assert not CitizenMerge.objects.exists()
    candidate.refresh_from_db()
    assert candidate.status == "open"


# --- not the same person ------------------------------------------------------------------------


def test_dismiss_a_suggestion(client, supervisor, candidate):
    response = login(client, supervisor).post(
        review_url(candidate), {"action": "dismiss", "dismiss-reason": "Mother and daughter"}
    )
    assert response.status_code == 302 and response["Location"] == LIST_URL
    candidate.refresh_from_db()
    assert candidate.status == "dismissed" and candidate.reviewed_by == supervisor
    listing = client.get(LIST_URL).content.decode()
    assert "are not the same person" in listing
    assert review_url(candidate) not in listing
    # The decided suggestion says so, and a second decision is refused with the reason.
    page = client.get(review_url(candidate)).content.decode()
    assert "they are not the same person" in page
    again = client.post(review_url(candidate), {"action": "dismiss", "dismiss-reason": "Again"})
    assert again.status_code == 400
    assert "already decided" in errors_in(again)


def test_dismiss_needs_a_reason(client, supervisor, candidate):
    response = login(client, supervisor).post(
        review_url(candidate), {"action": "dismiss", "dismiss-reason": " "}
    )
    assert response.status_code == 400
    assert "Say why these are not the same person" in errors_in(response)
    candidate.refresh_from_db()
    assert candidate.status == "open"


def test_dismiss_two_profiles_from_the_compare_page(client, supervisor, pair):
    a, b = pair
    url = f"{COMPARE_URL}?a={a.public_id}&b={b.public_id}"
    response = login(client, supervisor).post(
        url, {"action": "dismiss", "dismiss-reason": "Sisters"}
    )
    assert response.status_code == 302
    candidate = DuplicateCandidate.objects.get()
    assert candidate.status == "dismissed"


# --- the merge record and unmerge ---------------------------------------------------------------


@pytest.fixture
def merged(pair, supervisor):
    a, b = pair
    merge = citizen_merge(
        survivor=a,
        duplicate=b,
        by=supervisor,
        reason="Same home, resident confirmed",
        field_choices={"given_name": "duplicate"},
    )
    return a, b, merge


def test_merge_record_shows_who_when_why_and_choices(client, caseworker, merged):
    _a, _b, merge = merged
    response = login(client, caseworker).get(merge_url(merge))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Same home, resident confirmed" in html
    assert merge.merged_by.get_username() in html
    assert "Maggie" in html and "Margaret" in html  # given name: kept and not kept
    assert "Timeline entries: 1" in html
    assert "Undo this merge" not in html  # caseworkers cannot unmerge


def test_unmerge_restores_both_profiles(client, supervisor, merged):
    a, b, merge = merged
    response = login(client, supervisor).get(merge_url(merge))
    assert "Undo this merge" in response.content.decode()
    response = client.post(merge_url(merge), {"reason": "Two different people after all"})
    assert response.status_code == 302 and response["Location"] == merge_url(merge)
    a.refresh_from_db()
    b.refresh_from_db()
    assert (a.given_name, a.status) == ("Margaret", Citizen.Status.ACTIVE)
    assert (b.given_name, b.status, b.merged_into) == ("Maggie", Citizen.Status.ACTIVE, None)
    assert b.date_of_birth == datetime.date(1948, 3, 9)
    assert a.timeline.count() == 3 and b.timeline.count() == 1
    assert set(b.contact_points.values_list("match_key", flat=True)) == {"maggie@example.net"}
    merge.refresh_from_db()
    assert merge.unmerged_at is not None and merge.unmerged_by == supervisor
    page = client.get(merge_url(merge)).content.decode()
    assert "This merge was undone on" in page
    assert "Two different people after all" in page
    assert "Undo this merge</button>" not in page


def test_unmerging_twice_says_so(client, supervisor, merged):
    _a, _b, merge = merged
    login(client, supervisor).post(merge_url(merge), {"reason": "Wrong"})
    response = client.post(merge_url(merge), {"reason": "Wrong again"})
    assert response.status_code == 400
    assert "This merge has already been undone." in errors_in(response)


def test_unmerge_needs_a_reason(client, supervisor, merged):
    _a, b, merge = merged
    response = login(client, supervisor).post(merge_url(merge), {"reason": ""})
    assert response.status_code == 400
    assert "Say why this merge should be undone" in errors_in(response)
    b.refresh_from_db()
    assert b.status == Citizen.Status.MERGED


def test_caseworker_cannot_unmerge(client, caseworker, merged):
    _a, b, merge = merged
    response = login(client, caseworker).post(merge_url(merge), {"reason": "Let me"})
    assert response.status_code == 403
    b.refresh_from_db()
    assert b.status == Citizen.Status.MERGED


def test_merge_record_unknown_is_404_and_needs_profile_access(
    client, staff_user, supervisor, merged
):
    _a, _b, merge = merged
    assert login(client, staff_user).get(merge_url(merge)).status_code == 403
    client.logout()
    assert login(client, supervisor).get("/staff/duplicates/merges/999999/").status_code == 404


def test_merge_record_query_count(client, supervisor, merged, django_assert_max_num_queries):
    _a, _b, merge = merged
    login(client, supervisor).get(merge_url(merge))
    with django_assert_max_num_queries(8):
        client.get(merge_url(merge))


def test_url_names():
    assert reverse("staff:duplicates") == LIST_URL
    assert reverse("staff:duplicate-review", args=[5]) == "/staff/duplicates/5/"
    assert reverse("staff:duplicate-compare") == COMPARE_URL
    assert reverse("staff:merge-detail", kwargs={"merge_id": 7}) == "/staff/duplicates/merges/7/"
