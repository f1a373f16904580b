"""Merging duplicate profiles and undoing merges exactly."""

import datetime

import pytest
from django.contrib.contenttypes.models import ContentType

from citizenhub.errors import ApplicationError
from citizenhub.models import AuditEvent, Citizen, CitizenMerge, ContactPoint, TimelineEntry
from citizenhub.services import (
    citizen_create,
    citizen_merge,
    citizen_unmerge,
    record_timeline_entry,
)
from citizenhub.services.merge import linked_relations
from tests.factories import AddressFactory, StaffUserFactory, UserFactory

pytestmark = pytest.mark.django_db


def snapshot(citizen: Citizen) -> dict:
    """Everything that belongs to a profile, in comparable form."""
    citizen.refresh_from_db()
    fields = {
        f.attname: getattr(citizen, f.attname)
        for f in Citizen._meta.concrete_fields
        if f.attname != "updated_at"
    }
    return {
        "fields": fields,
        "contact_points": sorted(
            citizen.contact_points.values_list("pk", "kind", "match_key", "is_primary")
        ),
        "addresses": sorted(citizen.addresses.values_list("pk", "postcode", "is_primary")),
        "timeline": sorted(citizen.timeline.values_list("pk", "summary")),
    }


@pytest.fixture
def pair():
    officer = StaffUserFactory()
    survivor = citizen_create(
        given_name="Megan",
        family_name="Jones",
        preferred_language="cy",
        contact_points=[("email", "megan@example.org"), ("phone", "07700 900201")],
    )
    duplicate = citizen_create(
        given_name="Meg",
        family_name="Jones",
        date_of_birth=datetime.date(1980, 5, 17),
        accessibility_needs="Large print",
        preferred_channel="sms",
        contact_points=[("email", "megjones@example.net"), ("mastodon", "@meg@mastodon.social")],
    )
    duplicate.do_not_contact = True
    duplicate.save()
    AddressFactory(citizen=survivor, postcode="NM1 4AB")
    AddressFactory(citizen=duplicate, postcode="NM1 4AB")
    for n in range(3):
        record_timeline_entry(citizen=survivor, kind="call", summary=f"Survivor call {n}")
        record_timeline_entry(
            citizen=duplicate, kind="message_in", channel="email", summary=f"Duplicate e-mail {n}"
        )
    return officer, survivor, duplicate


def test_merge_moves_everything_and_keeps_the_duplicate_as_a_pointer(pair):
    officer, survivor, duplicate = pair
    merge = citizen_merge(
        survivor=survivor,
        duplicate=duplicate,
        by=officer,
        reason="Same DOB and address",
        field_choices={"given_name": "survivor"},
    )
    survivor.refresh_from_db()
    duplicate.refresh_from_db()
    assert duplicate.status == Citizen.Status.MERGED and duplicate.merged_into == survivor
    assert survivor.contact_points.count() == 4 and duplicate.contact_points.count() == 0
    assert survivor.timeline.count() == 6 and duplicate.timeline.count() == 0
    assert survivor.addresses.count() == 2
    # gaps filled from the duplicate, the chosen name kept
    assert survivor.given_name == "Megan"
    assert survivor.date_of_birth == datetime.date(1980, 5, 17)
    assert survivor.accessibility_needs == "Large print"
    assert merge.field_choices["date_of_birth"] == "duplicate"
    # one primary e-mail only; the duplicate's primary mastodon stays primary (no clash)
    primaries = set(survivor.contact_points.filter(is_primary=True).values_list("kind", flat=True))
    assert sorted(
        survivor.contact_points.filter(is_primary=True, kind="email").values_list(
            "match_key", flat=True
        )
    ) == ["megan@example.org"]
    assert primaries == {"email", "phone", "mastodon"}
    assert AuditEvent.objects.filter(action="merge").count() == 2


def test_merge_never_turns_an_opt_out_into_consent(pair):
    officer, survivor, duplicate = pair
    citizen_merge(
        survivor=survivor,
        duplicate=duplicate,
        by=officer,
        reason="same",
        field_choices={name: "survivor" for name in ("given_name", "family_name")},
    )
    survivor.refresh_from_db()
    assert survivor.do_not_contact is True


def test_merge_then_unmerge_restores_both_profiles_exactly(pair):
    officer, survivor, duplicate = pair
    before = (snapshot(survivor), snapshot(duplicate))
    merge = citizen_merge(
        survivor=survivor,
        duplicate=duplicate,
        by=officer,
        reason="same",
        field_choices={"given_name": "duplicate", "preferred_channel": "duplicate"},
    )
    assert snapshot(survivor) != before[0]
    citizen_unmerge(merge=merge, by=officer, reason="Different people after all")
    assert (snapshot(survivor), snapshot(duplicate)) == before
    merge.refresh_from_db()
    assert merge.unmerged_at is not None and merge.unmerged_by == officer


def test_unmerge_keeps_what_happened_after_the_merge_on_the_survivor(pair):
    officer, survivor, duplicate = pair
    merge = citizen_merge(survivor=survivor, duplicate=duplicate, by=officer, reason="same")
    later = record_timeline_entry(citizen=survivor, kind="note", summary="After merge")
    survivor.refresh_from_db()
    survivor.family_name = "Jones-Price"
    survivor.save()
    citizen_unmerge(merge=merge, by=officer)
    survivor.refresh_from_db()
    assert (
        later.citizen_id == survivor.pk
        and TimelineEntry.objects.get(pk=later.pk).citizen_id == survivor.pk
    )
    assert survivor.family_name == "Jones-Price"  # a later edit is not undone


def test_portal_account_follows_the_merge_and_comes_back():
    user = UserFactory()
    survivor = citizen_create(given_name="A")
    duplicate = citizen_create(given_name="B")
    duplicate.user = user
    duplicate.save()
    merge = citizen_merge(survivor=survivor, duplicate=duplicate, by=None, reason="same")
    survivor.refresh_from_db()
    assert survivor.user == user
    citizen_unmerge(merge=merge, by=None)
    duplicate.refresh_from_db()
    survivor.refresh_from_db()
    assert duplicate.user == user and survivor.user is None


@pytest.mark.parametrize(
    "case", ["self", "already_merged", "into_merged", "no_reason", "two_accounts"]
)
def test_refused_merges_say_why_and_change_nothing(case):
    a, b, c = (citizen_create(given_name=n) for n in "ABC")
    survivor, duplicate, reason = a, b, "same person"
    if case == "self":
        duplicate = a
    elif case == "already_merged":
        citizen_merge(survivor=c, duplicate=b, by=None, reason="x")
    elif case == "into_merged":
        citizen_merge(survivor=c, duplicate=a, by=None, reason="x")
    elif case == "no_reason":
        reason = "  "
    elif case == "two_accounts":
        a.user, b.user = UserFactory(), UserFactory()
        a.save()
        b.save()
    merges_before = CitizenMerge.objects.count()
    with pytest.raises(ApplicationError) as exc:
        citizen_merge(
            survivor=Citizen.objects.get(pk=survivor.pk),
            duplicate=Citizen.objects.get(pk=duplicate.pk),
            by=None,
            reason=reason,
        )
    assert exc.value.message
    assert CitizenMerge.objects.count() == merges_before


def test_unmerge_twice_is_refused(pair):
    officer, survivor, duplicate = pair
    merge = citizen_merge(survivor=survivor, duplicate=duplicate, by=officer, reason="same")
    citizen_unmerge(merge=merge, by=officer)
    with pytest.raises(ApplicationError):
        citizen_unmerge(merge=merge, by=officer)


def test_chained_merges_repoint_and_unmerge_in_reverse_order():
    a, b, c = (citizen_create(given_name=n) for n in "ABC")
    first = citizen_merge(survivor=b, duplicate=a, by=None, reason="a is b")
    second = citizen_merge(survivor=c, duplicate=b, by=None, reason="b is c")
    a.refresh_from_db()
    assert a.merged_into == c
    with pytest.raises(ApplicationError):
        citizen_unmerge(merge=first, by=None)  # b is merged: undo the later merge first
    citizen_unmerge(merge=second, by=None)
    a.refresh_from_db()
    assert a.merged_into_id == b.pk
    citizen_unmerge(merge=first, by=None)
    assert Citizen.objects.filter(status="active").count() == 3


def test_every_relation_to_citizen_is_moved_except_profile_links_and_audit():
    moved = {(m._meta.label, f) for m, f in linked_relations()}
    assert {
        ("citizenhub.ContactPoint", "citizen"),
        ("citizenhub.Address", "citizen"),
        ("citizenhub.TimelineEntry", "citizen"),
    } <= moved
    assert ("citizenhub.AuditEvent", "citizen") not in moved
    assert ContentType.objects.get_for_model(ContactPoint)  # content types are installed
