"""The login rate limit holds, counted in a real Redis cache as in production (allauth's
limits are off with a dummy cache and per-process with the local-memory one)."""

from __future__ import annotations

import os

import pytest
import redis
from django.core.cache import cache, caches

pytestmark = pytest.mark.django_db

PASSWORD = "correct-horse-battery-staple"


def redis_url() -> str:
    # Database 9 of the Redis the tests use: its own, cleared before and after.
    base = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/9"
    return base.rsplit("/", 1)[0] + "/9" if base.count("/") >= 3 else base + "/9"


@pytest.fixture
def redis_cache(settings):
    url = redis_url()
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": url,
            "KEY_PREFIX": "ratelimit-test",
        }
    }
    cache.clear()
    yield redis.Redis.from_url(url)
    cache.clear()


def login(client, email: str, password: str):
    return client.post("/accounts/login/", {"login": email, "password": password})


def test_five_wrong_passwords_lock_the_account_for_a_while(client, resident, redis_cache):
    assert caches["default"].__class__.__name__ == "RedisCache"
    for _ in range(5):
        response = login(client, resident.email, "wrong-password")
        assert "Enter a correct email address and password" in response.content.decode()

    response = login(client, resident.email, PASSWORD)  # even the right password, now

    html = response.content.decode()
    assert response.status_code == 200 and "<title>Error: " in html
    assert "You have tried to sign in too many times" in html
    assert "_auth_user_id" not in client.session
    assert any(b"allauth" in key for key in redis_cache.keys("ratelimit-test:*"))

    # Another account from the same browser is not locked by this one's failures.
    other = login(client, "nobody-else@example.org", "wrong-password").content.decode()
    assert "too many times" not in other


def test_the_right_password_before_the_limit_signs_in(client, resident, redis_cache):
    for _ in range(4):
        login(client, resident.email, "wrong-password")
    assert login(client, resident.email, PASSWORD)["Location"] == "/my/"


def test_too_many_sign_ups_get_a_clear_page_not_a_bare_429(client, redis_cache):
    for number in range(20):
        client.post(
            "/accounts/signup/",
            {"email": f"new{number}@example.org", "password1": "x", "password2": "y"},
        )

    response = client.post(
        "/accounts/signup/",
        {"email": "one-more@example.org", "password1": "x", "password2": "y"},
        HTTP_ACCEPT_LANGUAGE="en",
    )

    html = response.content.decode()
    assert response.status_code == 429
    assert "<title>Too many attempts" in html
    assert "govuk-header" in html and "try again" in html
