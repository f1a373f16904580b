"""Resolving identities to citizens, including two workers resolving the same one at once."""

import threading

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection

from citizenhub.errors import ApplicationError
from citizenhub.models import Citizen, ContactPoint
from citizenhub.services import citizen_create, citizen_merge, resolve_identity
from tests.factories import CitizenFactory

pytestmark = pytest.mark.django_db


def test_unknown_sender_gets_one_provisional_profile():
    first = resolve_identity(kind="email", value="New.Person@Example.org", display_name="Ann Lee")
    again = resolve_identity(kind="email", value="new.person@example.ORG")
    assert first.created and not again.created
    assert first.citizen.pk == again.citizen.pk
    assert first.citizen.status == Citizen.Status.PROVISIONAL
    assert (first.citizen.given_name, first.citizen.family_name) == ("Ann", "Lee")
    assert Citizen.objects.count() == 1


def test_phone_in_any_format_resolves_to_the_same_citizen():
    owner = citizen_create(given_name="Rhys", contact_points=[("phone", "07700 900123")])
    for written in ("+44 7700 900123", "0044 7700 900123", "447700900123"):
        result = resolve_identity(kind="phone", value=written)
        assert result.citizen.pk == owner.pk and not result.created


def test_identity_on_a_merged_profile_resolves_to_the_survivor():
    survivor = CitizenFactory()
    duplicate = citizen_create(given_name="Dup", contact_points=[("email", "dup@example.org")])
    citizen_merge(survivor=survivor, duplicate=duplicate, by=None, reason="same person")
    assert resolve_identity(kind="email", value="dup@example.org").citizen.pk == survivor.pk


def test_malformed_identity_saves_nothing():
    with pytest.raises(ValidationError) as exc:
        resolve_identity(kind="phone", value="not a number")
    assert "value" in exc.value.message_dict
    assert Citizen.objects.count() == 0 and ContactPoint.objects.count() == 0


def test_postal_addresses_do_not_identify_a_person():
    with pytest.raises(ApplicationError):
        resolve_identity(kind="postal", value="12 Mill Lane, NM1 4AB")


@pytest.mark.skipif(not settings.IS_POSTGRES, reason="row-level concurrency needs PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_two_threads_resolving_one_new_address_make_one_citizen():
    rounds = 8
    for round_number in range(rounds):
        address = f"race-{round_number}@example.org"
        barrier = threading.Barrier(2)
        results, errors = [], []

        def resolve(address=address, barrier=barrier, results=results, errors=errors):
            try:
                barrier.wait(timeout=10)
                results.append(resolve_identity(kind="email", value=address).citizen.pk)
            except Exception as exc:  # surfaced by the assertion below
                errors.append(exc)
            finally:
                connection.close()

        threads = [threading.Thread(target=resolve) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert errors == []
        assert len(results) == 2 and results[0] == results[1]
        assert ContactPoint.objects.filter(match_key=address).count() == 1
    assert Citizen.objects.count() == rounds
