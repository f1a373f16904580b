"""Shared plumbing for benchmarks: a dedicated PostgreSQL database, timing and result files."""

from __future__ import annotations

import datetime
import json
import math
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


def connect_server(dbname: str = "postgres"):  # -> psycopg2 connection
    """A plain psycopg2 connection to `dbname` on the benchmark server (DATABASE_URL's host,
    port, user and password, or the local default)."""
    import psycopg2

    parts = urlsplit(_server_url())
    return psycopg2.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 5432,
        user=unquote(parts.username) if parts.username else "postgres",
        password=unquote(parts.password) if parts.password else None,
        dbname=dbname,
        connect_timeout=5,
    )


def database_exists(name: str) -> bool:
    connection = connect_server()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
            return cursor.fetchone() is not None
    finally:
        connection.close()


def drop_database(name: str) -> None:
    """Drop a benchmark database, ending its sessions first (PostgreSQL >= 13)."""
    from psycopg2 import sql

    if not name.startswith(BENCH_DATABASE):
        raise BenchmarkError(f"refusing to drop {name!r}: not a benchmark database")
    connection = connect_server()
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
    finally:
        connection.close()


def _ensure_database(name: str) -> None:
    """Create the benchmark database on the server unless it already exists."""
    from psycopg2 import sql

    connection = connect_server()
    try:
        # CREATE DATABASE cannot run inside a transaction block.
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
            if cursor.fetchone() is None:
                cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    finally:
        connection.close()


def setup_django(database: str = BENCH_DATABASE) -> None:
    """Point Django at a benchmark database (created if missing), start it, migrate."""
    _ensure_database(database)
    parts = urlsplit(_server_url())
    os.environ["DATABASE_URL"] = urlunsplit((parts.scheme, parts.netloc, f"/{database}", "", ""))
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
        # Other work on the machine moves every figure: keep the 1/5/15-minute load with it.
        "loadavg": [round(load, 2) for load in os.getloadavg()],
        "scale": bench_scale(),
        **metrics,
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    with (RESULTS_DIR / f"{name}.jsonl").open("a", encoding="utf-8") as results:
        results.write(json.dumps(record, sort_keys=True) + "\n")


@contextmanager
def use_database(name: str) -> Iterator[None]:
    """Point Django's default connection at another benchmark database for the block, as
    Django's test runner does for its test database; back to the first one afterwards."""
    from django.contrib.contenttypes.models import ContentType
    from django.db import connection

    previous = connection.settings_dict["NAME"]
    connection.close()
    connection.settings_dict["NAME"] = name
    # Content type ids belong to a database; the cache must not carry them across.
    ContentType.objects.clear_cache()
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict["NAME"] = previous
        ContentType.objects.clear_cache()


def percentile(values: list[float], fraction: float) -> float:
    """The value below which `fraction` of the values fall (nearest rank); 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]
