"""Shared plumbing for benchmarks: a dedicated PostgreSQL database, timing and result files."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = Path(__file__).resolve().parent / "results"
BENCH_DATABASE = "citizenhub_bench"
DEFAULT_SERVER_URL = "postgresql://postgres@127.0.0.1:5432/"
# Only ever used against the throwaway benchmark database, never deployed.
_BENCH_SECRET_KEY = "benchmark-only-secret-key-not-for-production-0123456789abcdef"  # noqa: S105


class BenchmarkError(RuntimeError):
    """A benchmark could not run or produced a result that cannot be trusted."""


def bench_scale() -> float:
    """BENCH_SCALE (default 1.0) shrinks or grows every benchmark's row counts."""
    raw = os.environ.get("BENCH_SCALE", "").strip()
    if not raw:
        return 1.0
    try:
        scale = float(raw)
    except ValueError:
        raise BenchmarkError(f"BENCH_SCALE must be a number, got {raw!r}") from None
    if not scale > 0:
        raise BenchmarkError(f"BENCH_SCALE must be greater than 0, got {raw!r}")
    return scale


def scaled(count: int) -> int:
    return max(1, round(count * bench_scale()))


def _server_url() -> str:
    """The PostgreSQL server to use: DATABASE_URL's host and user, or the local default."""
    raw = os.environ.get("DATABASE_URL", "").strip()
    if not raw:
        return DEFAULT_SERVER_URL
    parts = urlsplit(raw)
    if parts.scheme not in {"postgres", "postgresql", "pgsql"}:
        raise BenchmarkError(
            f"benchmarks need PostgreSQL; DATABASE_URL has scheme {parts.scheme!r}"
        )
    return raw


def _ensure_database(server_url: str, name: str) -> None:
    """Create the benchmark database on the server unless it already exists."""
    import psycopg2
    from psycopg2 import sql

    parts = urlsplit(server_url)
    connection = psycopg2.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 5432,
        user=unquote(parts.username) if parts.username else "postgres",
        password=unquote(parts.password) if parts.password else None,
        dbname="postgres",
        connect_timeout=5,
    )
    try:
        # CREATE DATABASE cannot run inside a transaction block.
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
            if cursor.fetchone() is None:
                cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    finally:
        connection.close()


def setup_django() -> None:
    """Point Django at the benchmark database (created if missing), start it, migrate."""
    server_url = _server_url()
    _ensure_database(server_url, BENCH_DATABASE)
    parts = urlsplit(server_url)
    os.environ["DATABASE_URL"] = urlunsplit(
        (parts.scheme, parts.netloc, f"/{BENCH_DATABASE}", "", "")
    )
    # As in production; with DEBUG on, Django would also keep every query in memory.
    os.environ["DEBUG"] = "0"
    os.environ["SECRET_KEY"] = os.environ.get("SECRET_KEY") or _BENCH_SECRET_KEY
    # Benchmarks measure database paths; keep a broker on the machine out of the picture.
    os.environ.pop("REDIS_URL", None)
    os.environ["DJANGO_SETTINGS_MODULE"] = "citizenhub.settings"
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))

    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", interactive=False, verbosity=0)


@dataclass
class Timer:
    seconds: float = 0.0

    def rate(self, count: int) -> float:
        return count / self.seconds if self.seconds > 0 else float("inf")


@contextmanager
def timed() -> Iterator[Timer]:
    """Wall-clock time of the block, read from the yielded Timer after it ends."""
    timer = Timer()
    start = time.perf_counter()
    try:
        yield timer
    finally:
        timer.seconds = time.perf_counter() - start


def git_commit() -> str | None:
    try:
        completed = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return completed.stdout.strip() or None


def cpu_count() -> int | None:
    """What `nproc` prints: the CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count()


def report(name: str, line: str, metrics: dict[str, Any]) -> None:
    """Print the result line and append it, with its context, to results/<name>.jsonl."""
    print(line, flush=True)
    record = {
        "benchmark": name,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "nproc": cpu_count(),
        "scale": bench_scale(),
        **metrics,
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    with (RESULTS_DIR / f"{name}.jsonl").open("a", encoding="utf-8") as results:
        results.write(json.dumps(record, sort_keys=True) + "\n")
