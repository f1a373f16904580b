"""Creating profiles and adding contact points: valid input saved, invalid input saves nothing."""

import datetime

import pytest
from django.core.exceptions import ValidationError

from citizenhub.errors import ApplicationError
from citizenhub.models import AuditEvent, Citizen, ContactPoint
from citizenhub.services import (
    citizen_create,
    citizen_merge,
    contact_point_add,
    contact_point_verify,
)
from tests.factories import CitizenFactory

pytestmark = pytest.mark.django_db


def test_create_with_contact_points_normalises_and_marks_first_of_each_kind_primary():
    citizen = citizen_create(
        given_name=" Siân ",
        family_name="O'Neill",
        contact_points=[
            ("email", "Sian@Example.org"),
            ("email", "s.oneill@example.org"),
            ("phone", "07700 900124"),
        ],
    )
    points = {(cp.kind, cp.normalised): cp.is_primary for cp in citizen.contact_points.all()}
    assert points == {
        ("email", "Sian@example.org"): True,
        ("email", "s.oneill@example.org"): False,
        ("phone", "+447700900124"): True,
    }
    assert citizen.given_name == "Siân"
    assert AuditEvent.objects.filter(action="create", citizen=citizen).exists()


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("email", "not-an-email"),
        ("phone", "12"),
        ("x", "bad handle!"),
        ("mastodon", "@nobody"),
        ("postal", "NM1 4AB"),
    ],
)
def test_malformed_contact_point_names_the_field_and_saves_nothing(kind, value):
    with pytest.raises(ValidationError) as exc:
        citizen_create(
            given_name="Ann", contact_points=[("email", "ok@example.org"), (kind, value)]
        )
    assert "contact_points[1].value" in exc.value.message_dict
    assert Citizen.objects.count() == 0 and ContactPoint.objects.count() == 0


def test_identity_owned_by_another_profile_is_refused():
    citizen_create(given_name="Owner", contact_points=[("email", "taken@example.org")])
    with pytest.raises(ValidationError) as exc:
        citizen_create(given_name="Other", contact_points=[("email", "TAKEN@example.org")])
    assert exc.value.message_dict["contact_points[0].value"][0].endswith(
        "already belongs to another profile."
    )
    assert Citizen.objects.count() == 1


def test_future_date_of_birth_is_refused():
    with pytest.raises(ValidationError) as exc:
        citizen_create(
            given_name="Ann", date_of_birth=datetime.date.today() + datetime.timedelta(days=3)
        )
    assert "date_of_birth" in exc.value.message_dict


def test_contact_point_add_is_idempotent_and_moves_the_primary_flag():
    citizen = citizen_create(given_name="Ann", contact_points=[("email", "ann@example.org")])
    new = contact_point_add(
        citizen=citizen,
        kind="email",
        value="ann.b@example.org",
        is_primary=True,
        verification_level="confirmed",
    )
    again = contact_point_add(citizen=citizen, kind="email", value="Ann.B@example.org")
    assert again.pk == new.pk
    assert new.verified_at is not None
    primaries = citizen.contact_points.filter(kind="email", is_primary=True)
    assert list(primaries.values_list("normalised", flat=True)) == ["ann.b@example.org"]


def test_contact_point_add_refuses_someone_elses_identity_and_merged_profiles():
    citizen_create(given_name="Owner", contact_points=[("phone", "07700 900125")])
    other = CitizenFactory()
    with pytest.raises(ValidationError):
        contact_point_add(citizen=other, kind="phone", value="+447700900125")
    survivor = CitizenFactory()
    citizen_merge(survivor=survivor, duplicate=other, by=None, reason="same")
    other.refresh_from_db()
    with pytest.raises(ApplicationError):
        contact_point_add(citizen=other, kind="email", value="x@example.org")


def test_verifying_an_identity_of_a_provisional_profile_brings_its_history_along():
    from citizenhub.models import TimelineEntry
    from citizenhub.services import record_timeline_entry, resolve_identity

    texter = resolve_identity(kind="phone", value="447700900450").citizen  # an unknown texter
    record_timeline_entry(citizen=texter, kind="message_in", channel="sms", summary="Bin?")
    resident = citizen_create(given_name="Nia", contact_points=[("email", "nia@example.org")])
    record_timeline_entry(citizen=resident, kind="message_in", channel="email", summary="Hi")

    point = contact_point_verify(citizen=resident, kind="phone", value="07700 900450")

    assert point.citizen_id == resident.pk and point.verification_level == "confirmed"
    texter.refresh_from_db()
    assert texter.status == "merged" and texter.merged_into_id == resident.pk
    channels = set(TimelineEntry.objects.filter(citizen=resident).values_list("channel", flat=True))
    assert channels == {"sms", "email"}


def test_verifying_an_identity_of_another_confirmed_profile_needs_staff():
    owner = citizen_create(given_name="Owner", contact_points=[("phone", "07700 900451")])
    claimant = citizen_create(given_name="Claimant")
    with pytest.raises(ApplicationError) as exc:
        contact_point_verify(citizen=claimant, kind="phone", value="+447700900451")
    assert exc.value.code == "identity_on_another_profile"
    assert owner.contact_points.get().citizen_id == owner.pk


def test_verifying_a_new_or_own_identity_marks_it_confirmed():
    citizen = citizen_create(given_name="Ann", contact_points=[("email", "ann@example.org")])
    own = contact_point_verify(citizen=citizen, kind="email", value="ANN@example.org")
    new = contact_point_verify(citizen=citizen, kind="phone", value="07700 900452")
    assert own.verified_at and new.verified_at and new.citizen_id == citizen.pk
