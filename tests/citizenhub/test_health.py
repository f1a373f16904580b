"""Liveness, readiness, and friendly failure when the database or Redis is down."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.django_db
def test_healthz_is_up_without_touching_anything(client, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_reports_each_dependency(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    checks = response.json()["checks"]
    assert checks["database"] == "ok"
    assert ("redis" in checks) == bool(settings.REDIS_URL)


@pytest.mark.django_db
def test_home_page(client):
    response = client.get("/")
    assert response.status_code == 200
    assert settings.COUNCIL_NAME.encode() in response.content


OUTAGE_PROBE = """
import json, django
django.setup()
from django.test import Client
client = Client(raise_request_exception=False)
# A returning visitor's session cookie makes the session middleware read the database.
client.cookies["sessionid"] = "returning-visitor-session"
out = {}
for path in ("/readyz", "/admin/", "/api/v1/citizens/"):
    response = client.get(path, HTTP_AUTHORIZATION="Token 0123456789abcdef")
    out[path] = [response.status_code, response.content.decode(), response.get("Retry-After")]
print(json.dumps(out))
"""


def test_database_and_redis_down_give_503_naming_them_and_a_friendly_page():
    env = {
        **os.environ,
        "DATABASE_URL": "postgresql://postgres@127.0.0.1:9/nowhere",
        "REDIS_URL": "redis://127.0.0.1:9/0",
        "DEBUG": "0",
        "ALLOWED_HOSTS": "testserver",
        "SECURE_SSL_REDIRECT": "0",
        "DJANGO_SETTINGS_MODULE": "citizenhub.settings",
    }
    result = subprocess.run(
        [sys.executable, "-c", OUTAGE_PROBE],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])

    status, body, _ = out["/readyz"]
    assert status == 503
    assert json.loads(body)["down"] == ["database", "redis"]

    status, body, retry_after = out["/admin/"]
    assert status == 503 and retry_after == "30"
    assert "Sorry, the service is unavailable" in body and "Traceback" not in body

    status, body, _ = out["/api/v1/citizens/"]
    assert status == 503
    assert json.loads(body)["error"]["code"] == "service_unavailable"
