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
