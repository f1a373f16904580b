"""Configuration from the environment: clear errors, production checks, Celery settings."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from citizenhub.celery import app as celery_app
from citizenhub.env import (
    EnvironmentConfigError,
    database_from_env,
    env_bool,
    env_int,
    redis_url_from_env,
)

ROOT = Path(__file__).resolve().parents[2]


def run_manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "REDIS_URL", "DEBUG", "SECRET_KEY", "SECURE_SSL_REDIRECT"}
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        env={**base, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DATABASE_URL", "mysql://root@localhost/db"),
        ("DATABASE_URL", "not a url"),
        ("DATABASE_URL", "postgresql://u@host:99999/db"),
        ("DATABASE_URL", "postgresql://u@host/"),
        ("REDIS_URL", "http://localhost:6379"),
        ("REDIS_URL", "redis://localhost:port/0"),
        ("REDIS_URL", "redis:///0"),
        ("REDIS_URL", "redis://localhost/abc"),
        ("DEBUG", "maybe"),
    ],
)
def test_malformed_variables_stop_start_up_with_one_clear_line(variable, value):
    result = run_manage("check", **{"SECRET_KEY": "k" * 50, variable: value})
    assert result.returncode == 2
    assert variable in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("CitizenHub cannot start: configuration error in")


def test_missing_secret_key_in_production_is_named():
    result = run_manage("check", DEBUG="0")
    assert result.returncode == 2
    assert "SECRET_KEY" in result.stderr and "Traceback" not in result.stderr


def test_deploy_check_passes_with_production_environment():
    result = run_manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        DEBUG="0",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="hub.northmoor.gov.uk",
        DATABASE_URL="postgresql://citizenhub@db.internal:5432/citizenhub",
        REDIS_URL="redis://redis.internal:6379/0",
    )
    assert result.returncode == 0, result.stderr + result.stdout
    assert "no issues" in result.stdout


def test_env_helpers(monkeypatch):
    monkeypatch.setenv("FLAG", "Yes")
    assert env_bool("FLAG", default=False) is True
    monkeypatch.setenv("COUNT", "-1")
    with pytest.raises(EnvironmentConfigError, match="COUNT"):
        env_int("COUNT", 5, minimum=0)
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/hub")
    config = database_from_env("DATABASE_URL", "sqlite:///x")
    assert config["ENGINE"] == "django.db.backends.postgresql" and config["NAME"] == "hub"
    monkeypatch.delenv("REDIS_URL", raising=False)
    assert redis_url_from_env("REDIS_URL") is None


def test_celery_configuration_reads_back_from_the_configured_app():
    celery_app.loader.import_default_modules()  # what a worker does at start-up
    conf = celery_app.conf
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.accept_content == ["json"]
    assert conf.task_serializer == "json" and conf.result_serializer == "json"
    assert {q.name for q in conf.task_queues} == {"ingest", "outbound", "bulk", "default"}
    assert conf.task_default_queue == "default"
    assert conf.broker_transport_options["visibility_timeout"] == 900
    # Redelivery must not overtake a task that is still legitimately running.
    assert conf.broker_transport_options["visibility_timeout"] > conf.task_time_limit
    assert conf.task_soft_time_limit < conf.task_time_limit
    route = celery_app.amqp.router.route({}, "citizenhub.record_timeline_entry")
    assert route["queue"].name == "default"
    assert "worker-heartbeat" in conf.beat_schedule
    # Every scheduled task exists: a typo in a beat entry would silently never run.
    unknown = {
        name: entry["task"]
        for name, entry in conf.beat_schedule.items()
        if entry["task"] not in celery_app.tasks
    }
    assert unknown == {}
    assert {"engagement-start-due-campaigns", "engagement-release-held-deliveries"} <= set(
        conf.beat_schedule
    )


def test_deploy_check_refuses_a_missing_site_url(settings):
    from citizenhub.apps import check_site_url

    settings.SITE_URL = ""
    [error] = check_site_url()
    assert error.id == "citizenhub.E002"
    settings.SITE_URL = "https://citizenhub.example.gov.uk"
    assert check_site_url() == []
