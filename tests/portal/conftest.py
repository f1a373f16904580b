"""Portal tests: each starts with an empty cache, so rate-limit counters (allauth's and the
portal's own, counted per address and all from 127.0.0.1 here) never carry over."""

import pytest


@pytest.fixture(autouse=True)
def empty_cache():
    from django.core.cache import cache

    cache.clear()
    yield
