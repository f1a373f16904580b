"""Shared fixtures: API clients, staff users, and Celery run in-process for unit tests."""

import pytest
from rest_framework.test import APIClient

from citizenhub.celery import app as celery_app
from tests.factories import StaffUserFactory, UserFactory


@pytest.fixture(autouse=True)
def celery_in_process(request):
    """Unit tests run tasks eagerly; integration tests talk to a real worker instead."""
    if request.node.get_closest_marker("integration"):
        yield
        return
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    # PBKDF2's deliberate slowness protects real passwords; test users need none of it.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def uncollected_static_files(settings):
    # Production serves collected, hashed files; tests have not run collectstatic.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture(autouse=True)
def staff_mfa_relaxed(request, settings):
    """Staff need TOTP in production; tests that are not about it sign staff in without it.

    Mark a test `@pytest.mark.mfa_required` to run it with the requirement on.
    """
    settings.STAFF_MFA_REQUIRED = bool(request.node.get_closest_marker("mfa_required"))


@pytest.fixture
def staff_user(db):
    return StaffUserFactory()


@pytest.fixture
def resident_user(db):
    return UserFactory()


@pytest.fixture
def api_client():
    return APIClient()


@pytest.fixture
def staff_api(api_client, staff_user):
    api_client.force_authenticate(staff_user)
    return api_client


def _officer_in(group_name: str):
    from citizenhub.staff.access import ensure_staff_groups

    groups = ensure_staff_groups()
    user = StaffUserFactory()
    user.groups.add(groups[group_name])
    return user


@pytest.fixture
def caseworker(db):
    """An officer in the caseworker group (no team: add them to one to see sensitive work)."""
    return _officer_in("caseworker")


@pytest.fixture
def supervisor(db):
    return _officer_in("supervisor")


@pytest.fixture(autouse=True)
def fresh_catalogue_summary():
    # The catalogue summary is cached (Redis in CI) and each test rolls back its services:
    # start every test from the database, not from another test's catalogue.
    from citizenhub.case_selectors import forget_catalogue_summary

    forget_catalogue_summary()
    yield
    forget_catalogue_summary()


@pytest.fixture(autouse=True)
def private_media_in_tmp(settings, tmp_path_factory):
    # Uploaded files go to a throwaway directory, never into the checkout's var/media.
    settings.MEDIA_ROOT = tmp_path_factory.mktemp("media")


def make_resident(email: str | None = None, **citizen_fields):
    """A signed-up resident: an account with a verified e-mail address, linked to an active
    Citizen profile that owns that address (confirmed). Returns the user; the profile is
    user.citizen."""
    from allauth.account.models import EmailAddress

    from citizenhub.models import Citizen, ContactPoint
    from citizenhub.normalise import normalise_identity

    user = UserFactory(**({"email": email} if email else {}))
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    citizen = Citizen.objects.create(
        user=user,
        given_name=citizen_fields.pop("given_name", "Rhian"),
        family_name=citizen_fields.pop("family_name", "Evans"),
        **citizen_fields,
    )
    identity = normalise_identity("email", user.email, field="email")
    ContactPoint.objects.create(
        citizen=citizen,
        kind="email",
        value=user.email,
        normalised=identity.normalised,
        match_key=identity.match_key,
        is_primary=True,
        verification_level=ContactPoint.VerificationLevel.CONFIRMED,
        source=ContactPoint.Source.PORTAL,
    )
    return user


@pytest.fixture
def resident(db):
    """A signed-up resident (see make_resident); their profile is resident.citizen."""
    return make_resident()


@pytest.fixture
def other_resident(db):
    """A second resident, for isolation tests: nothing of theirs may reach `resident`."""
    return make_resident(given_name="Gareth", family_name="Jones")


@pytest.fixture
def resident_client(client, resident):
    client.force_login(resident)
    return client


@pytest.fixture(autouse=True)
def english_to_start_with():
    # Django keeps the language a request activated on the thread; services called directly
    # by the next test would speak Welsh after a Welsh page. Every test starts in English.
    from django.utils import translation

    translation.activate("en-gb")
    yield
    translation.deactivate()
