"""The page-not-found page: in the portal's layout and language, status 404."""

import pytest

pytestmark = pytest.mark.django_db


def test_not_found_is_a_portal_page_in_english(client):
    response = client.get("/no-such-page/")

    assert response.status_code == 404
    body = response.content.decode()
    assert "Page not found" in body
    assert "govuk-header" in body


def test_not_found_follows_the_language(client):
    response = client.get("/no-such-page/", HTTP_ACCEPT_LANGUAGE="cy")

    assert response.status_code == 404
    assert '<html lang="cy"' in response.content.decode()
