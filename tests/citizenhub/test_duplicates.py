"""Suggesting duplicate profiles: the fellegi-sunter-v1 scoring, blocking, the finder and the
officers' decisions (dismiss, merge from a suggestion)."""

from __future__ import annotations

import datetime
import io

import pytest
from django.contrib.contenttypes.models import ContentType
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from citizenhub import duplicates
from citizenhub.demo_data import NICKNAMES, plan_residents, seed_residents
from citizenhub.duplicates import (
    PRIOR_WEIGHT,
    STRONG_THRESHOLD,
    SUGGEST_THRESHOLD,
    are_nicknames,
    email_mailbox_key,
    find_duplicate_candidates,
    jaro,
    jaro_winkler,
    probability,
    profile_facts,
    score_pair,
)
from citizenhub.errors import ApplicationError
from citizenhub.models import AuditEvent, Citizen, DuplicateCandidate
from citizenhub.services import citizen_create, citizen_merge
from citizenhub.services.duplicates import (
    duplicate_dismiss,
    duplicate_dismiss_pair,
    duplicate_merge,
)
from citizenhub.services.merge import linked_relations
from citizenhub.tasks import find_duplicate_candidates_task
from tests.factories import AddressFactory, CitizenFactory, StaffUserFactory

BIRTHDAY = datetime.date(1980, 5, 17)


# --- Jaro-Winkler ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [
        # The values published by Winkler (1990) and repeated in every textbook since.
        ("MARTHA", "MARHTA", 0.961),
        ("DWAYNE", "DUANE", 0.840),
        ("DIXON", "DICKSONX", 0.813),
        ("JELLYFISH", "SMELLYFISH", 0.896),
    ],
)
def test_jaro_winkler_known_values(first, second, expected):
    assert jaro_winkler(first, second) == pytest.approx(expected, abs=0.0005)
    assert jaro_winkler(second, first) == pytest.approx(expected, abs=0.0005)


def test_jaro_edge_cases():
    assert jaro("MARTHA", "MARHTA") == pytest.approx(0.944, abs=0.0005)
    assert jaro_winkler("same", "same") == 1.0
    assert jaro_winkler("", "") == 0.0
    assert jaro_winkler("abc", "") == 0.0
    assert jaro_winkler("abc", "xyz") == 0.0
    # No prefix boost below Jaro 0.7: unrelated names that share a first letter stay apart.
    assert jaro_winkler("ab", "ac") == pytest.approx(jaro("ab", "ac"))


def test_nicknames_cover_the_demo_short_forms_and_stay_apart_otherwise():
    for given, short in NICKNAMES.items():
        assert are_nicknames(duplicates.fold(given), duplicates.fold(short)), (given, short)
    assert are_nicknames("bill", "william")
    assert are_nicknames("tomos", "thomas")  # Welsh and English forms of one name
    assert not are_nicknames("jack", "james")
    assert not are_nicknames("bill", "robert")


@pytest.mark.parametrize(
    ("match_key", "mailbox"),
    [
        ("jo.smith@gmail.com", "josmith@gmail.com"),
        ("j.o.smith+council@googlemail.com", "josmith@gmail.com"),
        ("jo.smith+council@outlook.example", "jo.smith@outlook.example"),
        ("jo.smith@outlook.example", "jo.smith@outlook.example"),  # dots matter elsewhere
    ],
)
def test_email_mailbox_key(match_key, mailbox):
    assert email_mailbox_key(match_key) == mailbox


# --- scoring --------------------------------------------------------------------------------


def facts(citizen_id=1, *, given="Megan", family="Jones", born=None, addresses=(), contacts=()):
    return profile_facts(
        citizen_id=citizen_id,
        given_name=given,
        family_name=family,
        date_of_birth=born,
        addresses=addresses,
        contact_points=contacts,
    )


HOME = ("100090000001", "NM1 4AB", "12 Mill Lane", "")
NEIGHBOUR = ("100090000002", "NM1 4AB", "14 Mill Lane", "")
ELSEWHERE = ("100090000003", "NM9 9ZZ", "3 Castle Hill", "")


def evidence_codes(a, b) -> list[str]:
    return [level.code for level in score_pair(a, b).evidence]


def test_score_is_the_logistic_of_prior_plus_weights():
    a, b = facts(1), facts(2)
    result = score_pair(a, b)
    expected = PRIOR_WEIGHT + sum(level.weight for level in result.evidence)
    assert result.weight == pytest.approx(expected)
    assert result.score == pytest.approx(1 / (1 + 2 ** (-expected)))
    assert probability(0) == 0.5
    assert probability(-1000) == 0.0


def test_a_name_alone_is_not_enough():
    result = score_pair(facts(1), facts(2))
    assert evidence_codes(facts(1), facts(2)) == ["given_name_same", "family_name_same"]
    assert result.score < 0.01


EMAIL = ("email", "megan@example.org", "megan@example.org")
PHONE = ("phone", "+447700900123", "+447700900123")
MASTODON = ("mastodon", "meg@social.example", "@meg@social.example")


@pytest.mark.parametrize(
    ("a_change", "b_change", "code"),
    [
        ({"born": BIRTHDAY}, {"born": BIRTHDAY}, "date_of_birth_same"),
        ({"addresses": [HOME]}, {"addresses": [HOME]}, "same_home"),
        ({"addresses": [HOME]}, {"addresses": [NEIGHBOUR]}, "same_postcode"),
        # A live identity has one owner, so a shared one was removed from one of the two.
        ({"contacts": [(*EMAIL, True)]}, {"contacts": [(*EMAIL, False)]}, "shared_email"),
        ({"contacts": [(*PHONE, True)]}, {"contacts": [(*PHONE, False)]}, "shared_phone"),
        ({"contacts": [(*MASTODON, True)]}, {"contacts": [(*MASTODON, False)]}, "shared_social"),
    ],
)
def test_each_agreement_raises_the_score_by_its_weight(a_change, b_change, code):
    """Adding one agreeing field to a name-only pair adds exactly that level's weight. (The
    given names are a short form and its name: a shared given name would weigh less within
    one household, which is tested below.)"""
    base = score_pair(facts(1, given="William"), facts(2, given="Bill"))
    result = score_pair(facts(1, given="William", **a_change), facts(2, given="Bill", **b_change))
    level = next(level for level in result.evidence if level.code == code)
    assert level.weight > 0
    assert result.weight == pytest.approx(base.weight + level.weight)
    assert result.score > base.score


def test_shared_mailbox_counts_when_addresses_differ_only_by_plus_or_dots():
    a = facts(1, contacts=[("email", "megan.jones@gmail.com", "megan.jones@gmail.com", False)])
    b = facts(2, contacts=[("email", "meganjones+council@gmail.com", "x", False)])
    assert "same_mailbox" in evidence_codes(a, b)


@pytest.mark.parametrize(
    ("a_kwargs", "b_kwargs", "code"),
    [
        ({"born": BIRTHDAY}, {"born": datetime.date(1962, 11, 2)}, "date_of_birth_different"),
        ({"given": "Megan"}, {"given": "Rhiannon"}, "given_name_different"),
        ({"family": "Jones"}, {"family": "Okafor"}, "family_name_different"),
        ({"addresses": [HOME]}, {"addresses": [ELSEWHERE]}, "different_address"),
    ],
)
def test_each_disagreement_lowers_the_score(a_kwargs, b_kwargs, code):
    base = score_pair(facts(1), facts(2))
    result = score_pair(facts(1, **a_kwargs), facts(2, **b_kwargs))
    level = next(level for level in result.evidence if level.code == code)
    assert level.weight < 0
    assert result.score < base.score


@pytest.mark.parametrize(
    ("a_kwargs", "b_kwargs", "code"),
    [
        ({"given": "William"}, {"given": "Bill"}, "given_name_nickname"),
        ({"given": "Siân"}, {"given": "Sian"}, "given_name_same"),  # accents folded
        ({"given": "Catherine"}, {"given": "Catherene"}, "given_name_similar"),
        ({"given": "J."}, {"given": "Jane"}, "given_name_initial"),
        ({"given": "Dafydd Huw"}, {"given": "Huw"}, "given_name_middle"),
        ({"family": "O'Neill"}, {"family": "ONeill"}, "family_name_same"),
        ({"family": "Pritchard"}, {"family": "Prichard"}, "family_name_similar"),
        ({"family": "Smith-Jones"}, {"family": "Jones"}, "family_name_similar"),
        (
            {"born": datetime.date(1980, 5, 7)},
            {"born": datetime.date(1980, 7, 5)},
            "date_of_birth_near",
        ),
        ({"born": BIRTHDAY}, {"born": datetime.date(1980, 5, 18)}, "date_of_birth_near"),
        ({"born": BIRTHDAY}, {"born": datetime.date(1986, 5, 17)}, "date_of_birth_near"),
        ({"born": BIRTHDAY}, {"born": datetime.date(1954, 5, 17)}, "date_of_birth_different"),
    ],
)
def test_partial_agreement_levels(a_kwargs, b_kwargs, code):
    assert code in evidence_codes(facts(1, **a_kwargs), facts(2, **b_kwargs))


def test_missing_data_weighs_nothing():
    with_date = score_pair(facts(1, born=BIRTHDAY), facts(2))
    without = score_pair(facts(1), facts(2))
    assert with_date.weight == without.weight
    assert not any(
        code.startswith("date_of_birth")
        for code in evidence_codes(facts(1, born=BIRTHDAY), facts(2))
    )


def test_one_person_at_one_home_is_suggested_and_household_members_are_not():
    same_person = score_pair(
        facts(1, given="William", addresses=[HOME], born=BIRTHDAY),
        facts(2, given="Bill", addresses=[HOME]),
    )
    assert same_person.score >= STRONG_THRESHOLD
    spouse = score_pair(
        facts(1, given="Megan", addresses=[HOME], born=BIRTHDAY),
        facts(2, given="Gareth", addresses=[HOME], born=datetime.date(1978, 2, 3)),
    )
    assert spouse.score < 0.001
    twins = score_pair(
        facts(1, given="Megan", addresses=[HOME], born=BIRTHDAY),
        facts(2, given="Ffion", addresses=[HOME], born=BIRTHDAY),
    )
    assert "date_of_birth_same_household" in [level.code for level in twins.evidence]
    assert twins.score < SUGGEST_THRESHOLD
    father_and_son = score_pair(
        facts(1, given="Robert", addresses=[HOME], born=datetime.date(1951, 11, 7)),
        facts(2, given="Robert", addresses=[HOME], born=datetime.date(1979, 1, 6)),
    )
    assert father_and_son.score < SUGGEST_THRESHOLD


def test_same_name_and_birthday_after_a_move_is_suggested():
    result = score_pair(
        facts(1, addresses=[HOME], born=BIRTHDAY), facts(2, addresses=[ELSEWHERE], born=BIRTHDAY)
    )
    assert result.score >= SUGGEST_THRESHOLD


def test_reasons_hold_no_personal_data():
    a = facts(1, given="Zofia", family="Kowalska", born=BIRTHDAY, addresses=[HOME])
    b = facts(2, given="Zofia", family="Kowalska", born=BIRTHDAY, addresses=[HOME])
    reasons = score_pair(a, b).reasons()
    assert {"code", "weight", "text"} == set(reasons[0])
    text = repr(reasons)
    for personal in ("Zofia", "Kowalska", "1980", "NM1", "Mill"):
        assert personal not in text


def test_thresholds_are_ordered():
    assert 0 < SUGGEST_THRESHOLD < STRONG_THRESHOLD < 1


# --- the finder -----------------------------------------------------------------------------


def person(given="Megan", family="Jones", born=None, **address):
    citizen = CitizenFactory(given_name=given, family_name=family, date_of_birth=born)
    if address:
        AddressFactory(citizen=citizen, **address)
    return citizen


def open_pairs() -> set[tuple[int, int]]:
    return set(
        DuplicateCandidate.objects.filter(status="open").values_list("citizen_a", "citizen_b")
    )


def pair_of(first, second) -> tuple[int, int]:
    return tuple(sorted((first.pk, second.pk)))


@pytest.mark.django_db
def test_finds_a_pair_over_the_threshold_and_not_one_under_it():
    megan = person(born=BIRTHDAY, uprn="100", postcode="NM1 4AB", line1="12 Mill Lane")
    megan_again = person(born=BIRTHDAY)
    namesake = person(
        born=datetime.date(1990, 1, 2), uprn="200", postcode="NM1 4AB", line1="1 Mill Lane"
    )
    counts = find_duplicate_candidates()
    assert open_pairs() == {pair_of(megan, megan_again)}
    candidate = DuplicateCandidate.objects.get()
    assert candidate.method == duplicates.METHOD
    assert candidate.score >= STRONG_THRESHOLD
    assert "date_of_birth_same" in [reason["code"] for reason in candidate.reasons]
    assert counts["candidates_created"] == 1
    # Megan and her namesake share the postcode-and-initial block, so they were compared.
    assert counts["pairs_compared"] >= 2
    assert pair_of(megan, namesake) not in open_pairs()


@pytest.mark.django_db
def test_blocking_never_compares_profiles_that_share_no_block(monkeypatch):
    a = person(born=BIRTHDAY)
    b = person(born=BIRTHDAY)
    # Same name, but no date of birth, address or contact point in common with a or b.
    c = person(born=datetime.date(1971, 3, 4), uprn="300", postcode="NM7 1AA", line1="1 High St")
    compared = []
    real = duplicates.score_pair

    def spy(first, second):
        compared.append(tuple(sorted((first.citizen_id, second.citizen_id))))
        return real(first, second)

    monkeypatch.setattr(duplicates, "score_pair", spy)
    counts = find_duplicate_candidates()
    assert compared == [pair_of(a, b)]
    assert counts["pairs_compared"] == 1
    assert pair_of(a, c) not in compared and pair_of(b, c) not in compared


@pytest.mark.django_db
def test_a_pair_in_several_blocks_is_scored_once(monkeypatch):
    a = person(born=BIRTHDAY, uprn="100", postcode="NM1 4AB", line1="12 Mill Lane")
    b = person(born=BIRTHDAY, uprn="100", postcode="NM1 4AB", line1="12 Mill Lane")
    counts = find_duplicate_candidates()
    assert counts["blocks"] == 3  # date of birth, UPRN, postcode and initial
    assert counts["pairs_compared"] == 1
    assert open_pairs() == {pair_of(a, b)}


@pytest.mark.django_db
def test_oversized_blocks_are_skipped(monkeypatch):
    monkeypatch.setattr(duplicates, "MAX_BLOCK_SIZE", 2)
    for _ in range(3):
        person(born=BIRTHDAY)
    counts = find_duplicate_candidates()
    assert counts["blocks_too_large"] == 1
    assert counts["pairs_compared"] == 0
    assert not DuplicateCandidate.objects.exists()


@pytest.mark.django_db
def test_blocks_are_read_a_page_at_a_time(monkeypatch):
    monkeypatch.setattr(duplicates, "BLOCK_PAGE_SIZE", 2)
    pairs = set()
    for day in range(1, 6):
        born = datetime.date(1980, 1, day)
        pairs.add(pair_of(person(born=born), person(born=born)))
    counts = find_duplicate_candidates()
    assert counts["blocks"] == 5
    assert open_pairs() == pairs


@pytest.mark.django_db
def test_limit_blocks_stops_early():
    for day in range(1, 4):
        born = datetime.date(1980, 1, day)
        person(born=born), person(born=born)
    counts = find_duplicate_candidates(limit_blocks=2)
    assert counts["blocks"] == 2
    assert len(open_pairs()) == 2


@pytest.mark.django_db
def test_merged_and_erased_profiles_are_not_compared():
    a = person(born=BIRTHDAY)
    b = person(born=BIRTHDAY)
    Citizen.objects.filter(pk=b.pk).update(status=Citizen.Status.ERASED)
    assert find_duplicate_candidates()["pairs_compared"] == 0
    assert not DuplicateCandidate.objects.filter(citizen_a=min(a.pk, b.pk)).exists()


@pytest.mark.django_db
def test_a_removed_identity_that_matches_another_profile_is_found():
    first = citizen_create(
        given_name="Rhys", family_name="Parry", contact_points=[("email", "rhys@example.org")]
    )
    first.contact_points.update(removed_at=timezone.now())
    second = citizen_create(
        given_name="Rhys", family_name="Parry", contact_points=[("email", "Rhys@Example.org")]
    )
    find_duplicate_candidates()
    candidate = DuplicateCandidate.objects.get()
    assert (candidate.citizen_a_id, candidate.citizen_b_id) == pair_of(first, second)
    assert "shared_email" in [reason["code"] for reason in candidate.reasons]


@pytest.mark.django_db
def test_addresses_reaching_one_mailbox_are_found():
    first = citizen_create(
        given_name="Nia", family_name="Rees", contact_points=[("email", "nia.rees@gmail.com")]
    )
    second = citizen_create(
        given_name="Nia",
        family_name="Rees",
        contact_points=[("email", "niarees+council@gmail.com")],
    )
    third = citizen_create(
        given_name="Nia",
        family_name="Rees",
        contact_points=[("email", "nia.rees+bins@outlook.example")],
    )
    fourth = citizen_create(
        given_name="Nia", family_name="Rees", contact_points=[("email", "nia.rees@outlook.example")]
    )
    find_duplicate_candidates()
    assert open_pairs() == {pair_of(first, second), pair_of(third, fourth)}


@pytest.mark.django_db
def test_finding_again_changes_nothing_and_keeps_decisions():
    officer = StaffUserFactory()
    megan, megan_again = person(born=BIRTHDAY), person(born=BIRTHDAY)
    bill = person(given="William", family="Evans", born=datetime.date(1950, 1, 1))
    bill_again = person(given="Bill", family="Evans", born=datetime.date(1950, 1, 1))
    first = find_duplicate_candidates()
    assert first["candidates_created"] == 2
    rows_before = list(DuplicateCandidate.objects.order_by("pk").values())

    again = find_duplicate_candidates()
    assert again["candidates_created"] == 0
    assert again["candidates_updated"] == 0
    assert list(DuplicateCandidate.objects.order_by("pk").values()) == rows_before

    dismissed = DuplicateCandidate.objects.get(citizen_a=min(megan.pk, megan_again.pk))
    duplicate_dismiss(candidate=dismissed, by=officer, reason="Mother and daughter")
    DuplicateCandidate.objects.filter(pk=dismissed.pk).update(score=0.123)  # tell-tale
    third = find_duplicate_candidates()
    dismissed.refresh_from_db()
    assert dismissed.status == "dismissed"
    assert dismissed.score == 0.123  # never rescored, never reopened
    assert third["decisions_kept"] == 1
    assert third["candidates_created"] == 0
    assert open_pairs() == {pair_of(bill, bill_again)}


@pytest.mark.django_db
def test_an_open_suggestion_that_no_longer_scores_is_withdrawn():
    a, b = person(born=BIRTHDAY), person(born=BIRTHDAY)
    find_duplicate_candidates()
    assert open_pairs() == {pair_of(a, b)}
    Citizen.objects.filter(pk=b.pk).update(given_name="Gwenllian")  # corrected: another person
    counts = find_duplicate_candidates()
    assert counts["candidates_withdrawn"] == 1
    assert not DuplicateCandidate.objects.exists()


@pytest.mark.django_db
def test_an_open_suggestion_is_rescored_when_evidence_changes():
    a = person(born=BIRTHDAY)
    b = person(born=BIRTHDAY)
    find_duplicate_candidates()
    before = DuplicateCandidate.objects.get().score
    AddressFactory(citizen=a, uprn="555", postcode="NM1 4AB")
    AddressFactory(citizen=b, uprn="555", postcode="NM1 4AB")
    counts = find_duplicate_candidates()
    assert counts["candidates_updated"] == 1
    assert DuplicateCandidate.objects.get().score > before


@pytest.fixture
def demo_mode(settings):
    settings.DEBUG = True


@pytest.mark.django_db
def test_demo_data_planted_duplicates_are_found(demo_mode):
    """The demo plants a second profile every 33 residents, in turn: the same name at the same
    home, a provisional profile from a new e-mail address (name only), and a short form of the
    name at the same home. Every one with more than a name in common must be suggested; the
    name-only provisional ones are not evidence enough for the method (see the module doc)."""
    count = 120
    seed_residents(count=count)
    by_index = {
        Citizen.objects.get(public_id=plan.public_id).pk: plan for plan in plan_residents(count)
    }
    planted = {
        tuple(sorted((pk, pk_of(by_index, plan.duplicate_of)))): plan
        for pk, plan in by_index.items()
        if plan.duplicate_of is not None
    }
    counts = find_duplicate_candidates()
    found = open_pairs()
    with_evidence = {pair for pair, plan in planted.items() if not plan.provisional}
    assert len(with_evidence) >= 3
    assert with_evidence <= found
    # Household members (same home and family name, a different given name) are never offered.
    for a, b in found - set(planted):
        first, second = by_index[a], by_index[b]
        assert duplicates.fold(first.given_name) == duplicates.fold(second.given_name) or (
            are_nicknames(duplicates.fold(first.given_name), duplicates.fold(second.given_name))
        ), (first, second)
    # Blocking: far fewer pairs than all of them.
    assert counts["pairs_compared"] < count * (count - 1) / 2 / 20


def pk_of(by_index, index):
    return next(pk for pk, plan in by_index.items() if plan.index == index)


# --- officers' decisions --------------------------------------------------------------------


@pytest.fixture
def suggested():
    officer = StaffUserFactory()
    a = person(born=BIRTHDAY)
    b = person(given="Meg", born=BIRTHDAY)
    find_duplicate_candidates()
    return officer, a, b, DuplicateCandidate.objects.get()


@pytest.mark.django_db
def test_dismiss_records_the_decision_and_audits_both_profiles(suggested):
    officer, a, b, candidate = suggested
    duplicate_dismiss(candidate=candidate, by=officer, reason="  Sisters  ")
    candidate.refresh_from_db()
    assert candidate.status == "dismissed"
    assert candidate.reviewed_by == officer
    assert candidate.reviewed_at is not None
    events = AuditEvent.objects.filter(
        target_type=ContentType.objects.get_for_model(DuplicateCandidate),
        target_id=str(candidate.pk),
    )
    assert {event.citizen_id for event in events} == {a.pk, b.pk}
    assert {event.reason for event in events} == {"Sisters"}
    with pytest.raises(ApplicationError, match="already decided"):
        duplicate_dismiss(candidate=candidate, by=officer, reason="again")


@pytest.mark.django_db
def test_dismiss_needs_a_reason(suggested):
    officer, _a, _b, candidate = suggested
    with pytest.raises(ApplicationError) as refusal:
        duplicate_dismiss(candidate=candidate, by=officer, reason=" ")
    assert refusal.value.code == "no_reason"
    candidate.refresh_from_db()
    assert candidate.status == "open"


@pytest.mark.django_db
def test_dismissing_an_unsuggested_pair_stops_it_being_suggested():
    officer = StaffUserFactory()
    a, b = person(born=BIRTHDAY), person(born=BIRTHDAY)
    candidate = duplicate_dismiss_pair(first=b, second=a, by=officer, reason="Twins, checked")
    assert (candidate.citizen_a_id, candidate.citizen_b_id) == pair_of(a, b)
    assert candidate.status == "dismissed"
    assert candidate.method == "officer-review"
    find_duplicate_candidates()
    assert not open_pairs()
    with pytest.raises(ApplicationError, match="one profile"):
        duplicate_dismiss_pair(first=a, second=a, by=officer, reason="x")


@pytest.mark.django_db
def test_merge_from_a_suggestion(suggested):
    officer, a, b, candidate = suggested
    other = person(given="Megan", born=BIRTHDAY)  # a third profile suggested with b
    DuplicateCandidate.objects.create(
        citizen_a=min(b, other, key=lambda c: c.pk),
        citizen_b=max(b, other, key=lambda c: c.pk),
        score=0.9,
        method="test",
    )
    kept_by_third = DuplicateCandidate.objects.create(
        citizen_a=min(a, other, key=lambda c: c.pk),
        citizen_b=max(a, other, key=lambda c: c.pk),
        score=0.9,
        method="test",
    )
    merge = duplicate_merge(
        candidate=candidate,
        survivor=a,
        by=officer,
        reason="Same birthday and e-mail",
        field_choices={"given_name": "duplicate"},
    )
    a.refresh_from_db()
    b.refresh_from_db()
    assert a.given_name == "Meg"
    assert b.status == Citizen.Status.MERGED and b.merged_into == a
    candidate.refresh_from_db()
    assert candidate.status == "merged" and candidate.reviewed_by == officer
    # Suggestions are not moved onto the survivor: b's other suggestion is closed instead.
    assert DuplicateCandidate.objects.filter(status="open").get() == kept_by_third
    assert not DuplicateCandidate.objects.filter(citizen_a=b, status="open").exists()
    assert not DuplicateCandidate.objects.filter(citizen_b=b, status="open").exists()
    assert AuditEvent.objects.filter(
        action="merge",
        target_type=ContentType.objects.get_for_model(DuplicateCandidate),
        target_id=str(candidate.pk),
        details__merge_id=merge.pk,
    ).exists()


def test_suggestions_never_move_with_a_merge():
    moved = {(model, name) for model, name in linked_relations()}
    assert (DuplicateCandidate, "citizen_a") not in moved
    assert (DuplicateCandidate, "citizen_b") not in moved


@pytest.mark.django_db
def test_merge_from_a_suggestion_refusals_change_nothing(suggested):
    officer, a, b, candidate = suggested
    stranger = person(given="Owain", born=datetime.date(1999, 9, 9))
    with pytest.raises(ApplicationError) as refusal:
        duplicate_merge(candidate=candidate, survivor=stranger, by=officer, reason="x")
    assert refusal.value.code == "survivor_not_in_pair"
    with pytest.raises(ApplicationError) as refusal:
        duplicate_merge(candidate=candidate, survivor=a, by=officer, reason="  ")
    assert refusal.value.code == "no_reason"
    candidate.refresh_from_db()
    b.refresh_from_db()
    assert candidate.status == "open"
    assert b.status == Citizen.Status.ACTIVE
    duplicate_dismiss(candidate=candidate, by=officer, reason="Sisters")
    with pytest.raises(ApplicationError, match="already decided"):
        duplicate_merge(candidate=candidate, survivor=a, by=officer, reason="x")


@pytest.mark.django_db
def test_merging_directly_closes_the_pairs_suggestion_even_if_dismissed(suggested):
    officer, a, b, candidate = suggested
    duplicate_dismiss(candidate=candidate, by=officer, reason="Looked different")
    citizen_merge(survivor=a, duplicate=b, by=officer, reason="The resident phoned: same person")
    candidate.refresh_from_db()
    assert candidate.status == "merged"


# --- the task and the command -------------------------------------------------------------


@pytest.mark.django_db
def test_task_runs_the_finder():
    a, b = person(born=BIRTHDAY), person(born=BIRTHDAY)
    find_duplicate_candidates_task.delay()
    assert open_pairs() == {pair_of(a, b)}
    assert find_duplicate_candidates_task.name == "citizenhub.find_duplicate_candidates"


@pytest.mark.django_db
def test_command_reports_counts():
    person(born=BIRTHDAY), person(born=BIRTHDAY)
    out = io.StringIO()
    call_command("find_duplicates", stdout=out)
    assert "candidates created: 1" in out.getvalue()
    out = io.StringIO()
    call_command("find_duplicates", "--limit-blocks", "1", stdout=out)
    assert "blocks: 1" in out.getvalue()
    with pytest.raises(CommandError, match="at least 1"):
        call_command("find_duplicates", "--limit-blocks", "0")


@pytest.mark.django_db
def test_finder_queries_do_not_grow_with_pairs(django_assert_max_num_queries):
    """Queries grow with pages of blocks, not with profiles or pairs."""
    for day in range(1, 31):
        born = datetime.date(1980, 1, day)
        person(born=born), person(born=born)
    # Per block kind: a page of keys, its members and the empty next page; the mailbox pass;
    # per page of pairs: facts (3), existing rows (1), writes (a savepoint and up to 3).
    with django_assert_max_num_queries(30):
        counts = find_duplicate_candidates()
    assert counts["candidates_created"] == 30
    assert connection.vendor in ("postgresql", "sqlite")
