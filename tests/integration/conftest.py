"""Fixtures that start real processes: a Celery worker against Redis and the test database."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from citizenhub.celery import app as celery_app

ROOT = Path(__file__).resolve().parents[2]
CELERY = Path(sys.executable).with_name("celery")

needs_broker_and_postgres = pytest.mark.skipif(
    not (settings.REDIS_URL and settings.IS_POSTGRES),
    reason="integration tests need REDIS_URL and a PostgreSQL DATABASE_URL (CI sets both)",
)


def test_database_url() -> str:
    """The URL of the database pytest-django created, for processes outside this one."""
    db = connection.settings_dict
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    return f"postgresql://{user}{password}@{host}:{port}/{db['NAME']}"


class WorkerProcess:
    """A `celery worker` in its own process group: the main process and its pool children.

    `env` adds to or overrides the environment the worker's settings are read from;
    `config` overrides Celery settings that no environment variable reaches (by their
    lower-case Celery names, e.g. {"broker_transport_options": {...}}).
    """

    def __init__(
        self,
        queues: str,
        log_path: Path,
        concurrency: int = 1,
        env: dict[str, str] | None = None,
        config: dict[str, object] | None = None,
    ) -> None:
        self.name = f"test-{uuid.uuid4().hex[:8]}@localhost"
        self.queues = queues
        self.log_path = log_path
        self.concurrency = concurrency
        self.env = env or {}
        self.config = config or {}
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        env = {
            **os.environ,
            "DATABASE_URL": test_database_url(),
            "REDIS_URL": settings.REDIS_URL,
            "DEBUG": "0",
            "DJANGO_SETTINGS_MODULE": "citizenhub.settings",
            **self.env,
        }
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                str(CELERY),
                "-A",
                "citizenhub",
                "worker",
                "-Q",
                self.queues,
                "-n",
                self.name,
                "--concurrency",
                str(self.concurrency),
                "--pool",
                "prefork",
                "--loglevel",
                "INFO",
                "--without-gossip",
                "--without-mingle",
                # Celery reads trailing name=value arguments as settings.
                *(f"{name}=(json){json.dumps(value)}" for name, value in self.config.items()),
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            # Its own process group, so that kill() reaches the pool children as well.
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited early:\n{self.log_path.read_text()}")
            if celery_app.control.ping(destination=[self.name], timeout=0.5):
                return
        raise RuntimeError(f"worker did not answer ping:\n{self.log_path.read_text()}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self._kill_group()
                self.process.wait(timeout=10)

    def kill(self) -> None:
        """SIGKILL the main process and every pool child at once, as the OOM killer or a
        lost machine would: nothing acknowledges, requeues or rolls back on the way out."""
        assert self.process is not None, "worker not started"
        # Signalled while the main process is alive (or at least not yet reaped), so the
        # group id cannot have been reused by anything else.
        self._kill_group()
        deadline = time.monotonic() + 10
        while self._live_members() and time.monotonic() < deadline:
            time.sleep(0.02)
        self.process.wait(timeout=10)

    def _kill_group(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)

    def _live_members(self) -> list[int]:
        """Processes of the worker's group that have not finished dying (zombies have:
        their connections are closed). Linux /proc; elsewhere, assume none."""
        members = []
        with contextlib.suppress(OSError):
            for entry in os.scandir("/proc"):
                if not entry.name.isdigit():
                    continue
                try:
                    stat = Path(entry.path, "stat").read_text()
                except OSError:
                    continue
                # After the command name in parentheses: state, parent pid, group id, ...
                state, _parent, group = stat.rsplit(")", 1)[1].split()[:3]
                if int(group) == self.process.pid and state != "Z":
                    members.append(int(entry.name))
        return members

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def celery_worker_process(transactional_db, tmp_path) -> Iterator[WorkerProcess]:
    celery_app.control.purge()
    worker = WorkerProcess("default", tmp_path / "worker.log")
    worker.start()
    yield worker
    worker.stop()
