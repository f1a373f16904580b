"""Staff pages at scale: the citizen 360 and the search page on the scale database.

Imported by run.py after Django is set up; runs only when `make bench-data` has built the
scale database (benchmarks/scale_data.py), and otherwise says so and skips.

For 200 sampled citizens (light, medium and heavy timelines) it requests
`/staff/citizens/<public_id>/`, and for 200 search terms (names with and without typos,
family names, name prefixes, e-mails, phones, postcodes, UPRNs, case references, hostile
strings) `/staff/search/?q=...`, through Django's test Client in this process, signed in
as a caseworker (MFA not required for the run). Per request it records:

- first view: server time of the first request for that URL (the time around
  `client.get`), which is the headline compared with the targets;
- repeat view: the same URL again at once (PostgreSQL's buffers now hold its pages);
- SQL: the statements the first request ran (django.test.utils.CaptureQueriesContext),
  replayed exactly on a plain psycopg2 connection, executed and fetched, in a transaction
  that is rolled back (so audit rows a page writes are not written twice);
- ratio: repeat view / SQL, i.e. what Django, the view and the template add to the
  database's own time;
- CPU: this process's CPU time for the first request (Django, the view, the template),
  which other work on a shared machine inflates far less than wall-clock time.

It prints p50/p95/max per page and per kind of citizen or search term, where the replayed
SQL time goes (statements grouped by shape), server errors (one line per distinct error),
and for a page that misses its target the EXPLAIN (ANALYZE, BUFFERS) of the slowest
statement of its slowest request.

Targets (issue 5): citizen 360 p95 < 50 ms, search p95 < 50 ms.
"""

from __future__ import annotations

import logging
import os
import random
import re
import statistics
import sys
import time
import warnings
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

if __name__ == "__main__":  # run directly: the package needs the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import (
    BenchmarkError,
    connect_server,
    percentile,
    report,
    use_database,
)
from benchmarks.scale_data import SCALE_DATABASE, read_manifest

NAME = "staff_pages"
CITIZEN_SAMPLES = 200
SEARCH_SAMPLES = 200
WARMUP = 10  # requests of each page before measuring: imports, template compilation
TARGET_P95_MS = {"citizen_360": 50.0, "search": 50.0}
SEED = 20_261_127
BENCH_USERNAME = "bench-caseworker"
# How the 200 sampled citizens split by timeline size, and the search terms by kind.
CITIZEN_MIX = {"light": 120, "medium": 50, "heavy": 30}  # <100, 100-999, >=1000 entries
SEARCH_MIX = {
    "name": 25,
    "name_typo": 25,
    "family_name": 15,
    "name_prefix": 10,
    "email": 25,
    "phone": 25,
    "postcode": 20,
    "postcode_outward": 5,
    "uprn": 15,
    "case_reference": 20,
    "hostile": 15,
}
HOSTILE_TERMS = (
    "'; DROP TABLE citizenhub_citizen; --",
    "%",
    "_",
    "\\",
    "%%__%%",
    "<script>alert('x')</script>",
    "Robert'); DELETE FROM citizenhub_timelineentry; --",
    "a" * 1_000,
    "Jones " * 60,
    "💩🏴󠁧󠁢󠁷󠁬󠁳󠁿",
    "\x00",
    "   ",
    "@",
    "+44",
    "*",
)


@dataclass
class Sample:
    page: str  # "citizen_360" or "search"
    category: str
    url: str
    detail: str = ""  # the term, or the citizen's timeline size


@dataclass
class Measurement:
    sample: Sample
    status: int
    first_ms: float
    cpu_ms: float  # this process's CPU time for the first request: Django, view, template
    repeat_ms: float
    sql_ms: float | None  # None if the replay failed
    queries: int
    statements: list[tuple[float, str]] = field(default_factory=list)  # (ms, sql), replayed

    @property
    def ratio(self) -> float | None:
        if not self.sql_ms:
            return None
        return self.repeat_ms / self.sql_ms


# --- settings and user ------------------------------------------------------------------


@contextmanager
def _bench_settings() -> Iterator[None]:
    """Production settings (DEBUG off) with what an in-process client needs: its host name,
    static files without a collected manifest, and staff MFA off (the user has no TOTP)."""
    from django.test.utils import override_settings

    with override_settings(
        STAFF_MFA_REQUIRED=False,
        ALLOWED_HOSTS=["testserver"],
        STORAGES={
            "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
            "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
        },
    ):
        yield


def _bench_user() -> Any:
    """A caseworker in the waste team, outside adult social care and bereavement: the
    sensitive-service rules are on the path, as for most officers."""
    from django.contrib.auth import get_user_model

    from citizenhub.models import Team
    from citizenhub.staff.access import CASEWORKER, ensure_staff_groups

    groups = ensure_staff_groups()
    user, created = get_user_model().objects.get_or_create(
        username=BENCH_USERNAME,
        defaults={"email": "bench-caseworker@northmoor.gov.example", "is_staff": True},
    )
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    user.groups.add(groups[CASEWORKER])
    waste = Team.objects.filter(slug="waste").first()
    if waste is not None:
        waste.members.add(user)
    return user


# --- samples ------------------------------------------------------------------------------


def _citizen_samples(cursor: Any, rng: random.Random, count_scale: float) -> list[Sample]:
    """Citizens by timeline size: most light, as most profiles are, plus the medium and
    heavy ones whose pages are the hard case."""
    cursor.execute(
        "SELECT citizen_id, count(*) FROM citizenhub_timelineentry "
        "GROUP BY citizen_id HAVING count(*) >= 100"
    )
    sizes = dict(cursor.fetchall())
    heavy = sorted(cid for cid, n in sizes.items() if n >= 1_000)
    medium = sorted(cid for cid, n in sizes.items() if n < 1_000)
    cursor.execute("SELECT max(id) FROM citizenhub_citizen")
    top = cursor.fetchone()[0]
    wanted = {name: max(1, round(n * count_scale)) for name, n in CITIZEN_MIX.items()}
    chosen: dict[int, str] = {}
    for cid in rng.sample(heavy, min(len(heavy), wanted["heavy"])):
        chosen[cid] = "heavy"
    for cid in rng.sample(medium, min(len(medium), wanted["medium"])):
        chosen[cid] = "medium"
    light_ids = [rng.randint(1, top) for _ in range(wanted["light"] * 3)]
    cursor.execute(
        "SELECT id FROM citizenhub_citizen WHERE id = ANY(%s) AND status IN "
        "('active', 'provisional') ORDER BY id",
        [light_ids],
    )
    live = [row[0] for row in cursor.fetchall() if row[0] not in sizes]
    for cid in rng.sample(live, min(len(live), wanted["light"])):
        chosen[cid] = "light"
    cursor.execute(
        "SELECT c.id, c.public_id, (SELECT count(*) FROM citizenhub_timelineentry t "
        "WHERE t.citizen_id = c.id) FROM citizenhub_citizen c WHERE c.id = ANY(%s)",
        [list(chosen)],
    )
    samples = [
        Sample("citizen_360", chosen[cid], f"/staff/citizens/{public_id}/", f"{entries} entries")
        for cid, public_id, entries in cursor.fetchall()
    ]
    rng.shuffle(samples)
    return samples


def _typo(rng: random.Random, text: str) -> str:
    """One slip of the keyboard: swapped, dropped, doubled or wrong letter."""
    positions = [i for i, ch in enumerate(text) if ch.isalpha()]
    if len(positions) < 3:
        return text + "e"
    i = rng.choice(positions[1:-1])
    kind = rng.randrange(4)
    if kind == 0 and i + 1 < len(text) and text[i + 1].isalpha():
        return text[:i] + text[i + 1] + text[i] + text[i + 2 :]
    if kind == 1:
        return text[:i] + text[i + 1 :]
    if kind == 2:
        return text[:i] + text[i] + text[i:]
    return text[:i] + rng.choice("aeiounrst") + text[i + 1 :]


def _search_samples(cursor: Any, rng: random.Random, count_scale: float) -> list[Sample]:
    """Terms a council officer types: taken from the data, so exact ones have an answer."""
    wanted = {name: max(1, round(n * count_scale)) for name, n in SEARCH_MIX.items()}
    cursor.execute("SELECT max(id) FROM citizenhub_citizen")
    top = cursor.fetchone()[0]
    ids = [rng.randint(1, top) for _ in range(600)]
    cursor.execute(
        "SELECT c.id, c.given_name, c.family_name, a.postcode, a.uprn "
        "FROM citizenhub_citizen c JOIN citizenhub_address a ON a.citizen_id = c.id "
        "WHERE c.id = ANY(%s) AND c.status = 'active' ORDER BY c.id",
        [ids],
    )
    people = cursor.fetchall()
    cursor.execute(
        "SELECT kind, value FROM citizenhub_contactpoint WHERE citizen_id = ANY(%s) "
        "AND kind IN ('email', 'phone') ORDER BY id",
        [ids],
    )
    contacts = cursor.fetchall()
    emails = [value for kind, value in contacts if kind == "email"]
    phones = [value for kind, value in contacts if kind == "phone"]
    cursor.execute("SELECT max(id) FROM citizenhub_servicecase")
    top_case = cursor.fetchone()[0] or 0
    cursor.execute(
        "SELECT reference FROM citizenhub_servicecase WHERE id = ANY(%s) ORDER BY id",
        [[rng.randint(1, top_case) for _ in range(wanted["case_reference"] * 2)]],
    )
    references = [row[0] for row in cursor.fetchall()]

    def some(values: Sequence[Any], n: int) -> list[Any]:
        return rng.sample(list(values), min(n, len(values)))

    terms: list[tuple[str, str]] = []
    for _cid, given, family, _pc, _uprn in some(people, wanted["name"]):
        terms.append(("name", f"{given} {family}"))
    for _cid, given, family, _pc, _uprn in some(people, wanted["name_typo"]):
        terms.append(("name_typo", _typo(rng, f"{given} {family}")))
    for _cid, _given, family, _pc, _uprn in some(people, wanted["family_name"]):
        terms.append(("family_name", family if rng.random() < 0.7 else family.lower()))
    for _cid, given, family, _pc, _uprn in some(people, wanted["name_prefix"]):
        terms.append(("name_prefix", f"{given.lower()} {family[:2].lower()}"))
    for value in some(emails, wanted["email"]):
        terms.append(("email", value.upper() if rng.random() < 0.2 else value))
    for value in some(phones, wanted["phone"]):
        digits = "".join(ch for ch in value if ch.isdigit())
        national = digits[2:] if digits.startswith("44") else digits.lstrip("0")
        form = rng.randrange(4)
        term = (value, f"0{national}", f"+44{national}", f"+44 {national[:4]} {national[4:]}")[form]
        terms.append(("phone", term))
    for _cid, _given, _family, postcode, _uprn in some(people, wanted["postcode"]):
        terms.append(("postcode", postcode if rng.random() < 0.6 else postcode.replace(" ", "")))
    for _cid, _given, _family, postcode, _uprn in some(people, wanted["postcode_outward"]):
        terms.append(("postcode_outward", postcode.split(" ")[0]))
    for _cid, _given, _family, _postcode, uprn in some(people, wanted["uprn"]):
        terms.append(("uprn", uprn))
    for reference in some(references, wanted["case_reference"]):
        terms.append(("case_reference", reference if rng.random() < 0.7 else reference.lower()))
    for term in HOSTILE_TERMS[: wanted["hostile"]]:
        terms.append(("hostile", term))
    samples = [
        Sample("search", category, f"/staff/search/?{urlencode({'q': term})}", term)
        for category, term in terms
    ]
    rng.shuffle(samples)
    return samples


# --- measuring ---------------------------------------------------------------------------


def _replay(cursor: Any, queries: Sequence[dict[str, str]]) -> tuple[float, list]:
    """Run the captured statements again on a plain connection; total and per-statement ms.
    Rolled back: a page that writes (an audit row) must not write twice."""
    statements: list[tuple[float, str]] = []
    try:
        for query in queries:
            sql = query["sql"]
            started = time.perf_counter()
            cursor.execute(sql)
            if cursor.description is not None:
                cursor.fetchall()
            statements.append(((time.perf_counter() - started) * 1000, sql))
    finally:
        cursor.connection.rollback()
    return sum(ms for ms, _sql in statements), statements


def _measure(client: Any, replay_cursor: Any, sample: Sample) -> Measurement:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        cpu_started = time.process_time()
        started = time.perf_counter()
        response = client.get(sample.url, secure=True)
        first = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
    # Copied now: the next request's request_started signal empties the connection's log.
    queries = captured.captured_queries
    started = time.perf_counter()
    client.get(sample.url, secure=True)
    repeat = time.perf_counter() - started
    sql_ms: float | None
    try:
        sql_ms, statements = _replay(replay_cursor, queries)
    except Exception as exc:  # report and go on: the page timing still counts
        print(f"  replay failed for {sample.url[:80]}: {exc}", file=sys.stderr)
        sql_ms, statements = None, []
    return Measurement(
        sample=sample,
        status=response.status_code,
        first_ms=first * 1000,
        cpu_ms=cpu * 1000,
        repeat_ms=repeat * 1000,
        sql_ms=sql_ms,
        queries=len(queries),
        statements=statements,
    )


def _stats(values: list[float]) -> dict[str, float]:
    return {
        "p50": round(percentile(values, 0.5), 2),
        "p95": round(percentile(values, 0.95), 2),
        "max": round(max(values), 2) if values else 0.0,
    }


def _summarise(page: str, measurements: list[Measurement]) -> dict[str, Any]:
    done = [m for m in measurements if m.sample.page == page]
    replayed = [m for m in done if m.sql_ms is not None]
    ratios = [m.ratio for m in replayed if m.ratio is not None]
    first = _stats([m.first_ms for m in done])
    summary = {
        "requests": len(done),
        "statuses": dict(Counter(m.status for m in done)),
        "first_ms": first,
        "repeat_ms": _stats([m.repeat_ms for m in done]),
        "cpu_ms": _stats([m.cpu_ms for m in done]),
        "sql_ms": _stats([m.sql_ms for m in replayed]),
        "ratio_median": round(statistics.median(ratios), 2) if ratios else None,
        "queries": {
            "min": min((m.queries for m in done), default=0),
            "median": statistics.median([m.queries for m in done]) if done else 0,
            "max": max((m.queries for m in done), default=0),
        },
        "target_p95_ms": TARGET_P95_MS[page],
        "pass": first["p95"] < TARGET_P95_MS[page] and all(m.status == 200 for m in done),
        "categories": {},
    }
    for category in sorted({m.sample.category for m in done}):
        group = [m for m in done if m.sample.category == category]
        summary["categories"][category] = {
            "requests": len(group),
            "first_ms": _stats([m.first_ms for m in group]),
            "sql_ms": _stats([m.sql_ms for m in group if m.sql_ms is not None]),
            "queries_max": max(m.queries for m in group),
            "statuses": dict(Counter(m.status for m in group)),
        }
    summary["statements"] = _statement_shapes(replayed)
    slowest = sorted(done, key=lambda m: m.first_ms, reverse=True)[:5]
    summary["slowest"] = [
        {
            "url": m.sample.url[:200],
            "category": m.sample.category,
            "detail": m.sample.detail[:100],
            "first_ms": round(m.first_ms, 2),
            "sql_ms": round(m.sql_ms, 2) if m.sql_ms is not None else None,
            "queries": m.queries,
            "slowest_statement": _slowest_statement(m),
        }
        for m in slowest
    ]
    return summary


_LITERAL = re.compile(r"'(?:[^']|'')*'|\b\d+(?:\.\d+)?\b")
_LIST = re.compile(r"\(\?(?:, \?)+\)")


def _shape(sql: str) -> str:
    """A statement with its literals replaced by ?, to group the same query across pages."""
    shape = " ".join(_LITERAL.sub("?", sql).split())
    return _LIST.sub("(?, ...)", shape)  # IN lists of any length are one shape


def _brief(sql: str, width: int = 150) -> str:
    """A statement for one line of the table: the select list is left out, it says little.
    The statement's own FROM is the first one outside parentheses (subqueries have theirs)."""
    if not sql.startswith("SELECT "):
        return sql[:width]
    depth = 0
    for position, char in enumerate(sql):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif depth == 0 and sql.startswith(" FROM ", position):
            return ("SELECT ... FROM " + sql[position + 6 :])[:width]
    return sql[:width]


def _statement_shapes(measurements: list[Measurement], top: int = 6) -> list[dict[str, Any]]:
    """Where a page's SQL time goes: replayed statements grouped by shape, most time first."""
    times: dict[str, list[float]] = {}
    for m in measurements:
        for ms, sql in m.statements:
            times.setdefault(_shape(sql), []).append(ms)
    ranked = sorted(times.items(), key=lambda item: sum(item[1]), reverse=True)[:top]
    return [
        {
            "calls": len(values),
            "total_ms": round(sum(values), 1),
            "p50_ms": round(percentile(values, 0.5), 2),
            "p95_ms": round(percentile(values, 0.95), 2),
            "max_ms": round(max(values), 2),
            "brief": _brief(shape),
            "shape": shape[:3_000],
        }
        for shape, values in ranked
    ]


def _slowest_statement(m: Measurement) -> dict[str, Any] | None:
    if not m.statements:
        return None
    ms, sql = max(m.statements, key=lambda item: item[0])
    return {"ms": round(ms, 2), "sql": sql}


def _explain(cursor: Any, sql: str) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) of a statement, rolled back; for diagnosing a miss."""
    if not sql.lstrip().upper().startswith(("SELECT", "WITH")):
        return "(not a query)"
    try:
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}")
        return "\n".join(row[0] for row in cursor.fetchall())
    except Exception as exc:  # diagnostics only
        return f"(EXPLAIN failed: {exc})"
    finally:
        cursor.connection.rollback()


def _print_table(summaries: dict[str, dict[str, Any]]) -> None:
    header = (
        f"{'page':<12} {'n':>4} {'first p50':>9} {'p95':>7} {'max':>7} {'repeat p50':>10} "
        f"{'p95':>7} {'SQL p50':>8} {'p95':>7} {'ratio':>6} {'CPU p50':>8} {'p95':>6} "
        f"{'queries':>9} {'target':>7}"
    )
    print(header)
    for page, s in summaries.items():
        q = s["queries"]
        ratio = f"{s['ratio_median']:.1f}" if s["ratio_median"] is not None else "-"
        verdict = "PASS" if s["pass"] else "MISS"
        print(
            f"{page:<12} {s['requests']:>4} {s['first_ms']['p50']:>9.1f} "
            f"{s['first_ms']['p95']:>7.1f} {s['first_ms']['max']:>7.1f} "
            f"{s['repeat_ms']['p50']:>10.1f} {s['repeat_ms']['p95']:>7.1f} "
            f"{s['sql_ms']['p50']:>8.1f} {s['sql_ms']['p95']:>7.1f} {ratio:>6} "
            f"{s['cpu_ms']['p50']:>8.1f} {s['cpu_ms']['p95']:>6.1f} "
            f"{q['min']:>3}-{q['max']:<5} {'<' + str(int(s['target_p95_ms'])):>7} {verdict}"
        )
    print(
        "(milliseconds. first: the first request for that URL, the figure the target is for; "
        "SQL: its statements replayed on a plain connection; ratio: repeat / SQL; CPU: this "
        "process's CPU time for the first request, which other load on the machine moves "
        "far less than wall-clock time)"
    )
    for page, s in summaries.items():
        print(f"{page}: where the SQL time goes (replayed statements by shape, most time first)")
        for shape in s["statements"]:
            print(
                f"  {shape['calls']:>5} calls {shape['total_ms']:>9.1f} ms total, "
                f"p50 {shape['p50_ms']:.2f} p95 {shape['p95_ms']:.2f} max {shape['max_ms']:.1f}: "
                f"{shape['brief']}"
            )
    for page, s in summaries.items():
        print(f"{page} by kind (first view p50 / p95 / max ms, SQL p95, most queries, statuses):")
        for category, c in s["categories"].items():
            f = c["first_ms"]
            print(
                f"  {category:<18} {c['requests']:>4}  {f['p50']:>7.1f} {f['p95']:>7.1f} "
                f"{f['max']:>7.1f}   SQL {c['sql_ms']['p95']:>7.1f}  q {c['queries_max']:>3}  "
                f"{c['statuses']}"
            )


@contextmanager
def _collect_errors(errors: list[str]) -> Iterator[None]:
    """Server errors as one line each instead of a logged traceback per request: a broken
    page must not bury the table under thousands of lines."""
    from django.core.signals import got_request_exception

    def collect(sender: Any, request: Any = None, **kwargs: Any) -> None:
        exc = sys.exc_info()[1]
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        path = getattr(request, "get_full_path", lambda: "?")()
        errors.append(f"{type(exc).__name__}: {first_line[:160]} (e.g. {path[:80]})")

    request_logger = logging.getLogger("django.request")
    level = request_logger.level
    request_logger.setLevel(logging.CRITICAL)
    got_request_exception.connect(collect)
    try:
        with warnings.catch_warnings():
            # WhiteNoise's note that nothing was collected: static files are not measured.
            warnings.filterwarnings("ignore", message="No directory at")
            yield
    finally:
        got_request_exception.disconnect(collect)
        request_logger.setLevel(level)


def _measure_all(samples: list[Sample], warmups: list[Sample]) -> list[Measurement]:
    from django.test import Client

    client = Client(raise_request_exception=False)
    client.force_login(_bench_user())
    replay = connect_server(SCALE_DATABASE)
    try:
        with replay.cursor() as cursor:
            for sample in warmups:
                _measure(client, cursor, sample)
            results = []
            for number, sample in enumerate(samples, start=1):
                results.append(_measure(client, cursor, sample))
                if number % 50 == 0:
                    print(f"  {number} of {len(samples)} requests measured", flush=True)
    finally:
        replay.close()
    return results


def _check_pages_exist(results: list[Measurement]) -> None:
    for page in ("citizen_360", "search"):
        statuses = Counter(m.status for m in results if m.sample.page == page)
        if statuses and statuses.get(404, 0) == sum(statuses.values()):
            raise BenchmarkError(
                f"every {page} request answered 404: is the page built and routed?"
            )


def run() -> None:
    manifest = read_manifest()
    if manifest is None:
        print(
            f"{NAME}: SKIPPED: there is no complete scale database ({SCALE_DATABASE}). "
            "Run `make bench-data` first (it builds 1,000,000 citizens and 10,000,000 "
            "timeline entries, about 15-30 minutes), then `make bench` again.",
            flush=True,
        )
        return
    from django.core.management import call_command

    counts = manifest["counts"]
    print(
        f"{NAME}: on {SCALE_DATABASE} ({counts['citizens']:,} citizens, "
        f"{counts['timeline_entries']:,} timeline entries, built {manifest['built_at']})",
        flush=True,
    )
    with use_database(SCALE_DATABASE), _bench_settings():
        call_command("migrate", interactive=False, verbosity=0)
        rng = random.Random(SEED)
        sampler = connect_server(SCALE_DATABASE)
        try:
            with sampler.cursor() as cursor:
                # A few more than measured: the first ones (shuffled) are the warm-up, other
                # citizens and terms than the measured ones, so no sample starts warm.
                citizens = _citizen_samples(cursor, rng, 1 + WARMUP / CITIZEN_SAMPLES)
                searches = _search_samples(cursor, rng, 1 + WARMUP / SEARCH_SAMPLES)
        finally:
            sampler.close()
        warmups = citizens[:WARMUP] + searches[:WARMUP]
        citizens, searches = citizens[WARMUP:], searches[WARMUP:]
        # Alternate the two pages, so both see the same machine load.
        samples = [s for pair in zip(citizens, searches, strict=False) for s in pair]
        samples += citizens[len(searches) :] + searches[len(citizens) :]
        print(
            f"{NAME}: {len(citizens)} citizen pages, {len(searches)} searches, "
            f"{len(warmups)} warm-up requests",
            flush=True,
        )
        server_errors: list[str] = []
        with _collect_errors(server_errors):
            results = _measure_all(samples, warmups)
        _check_pages_exist(results)
        summaries = {page: _summarise(page, results) for page in ("citizen_360", "search")}
        diagnosis: dict[str, str] = {}
        replay = connect_server(SCALE_DATABASE)
        try:
            with replay.cursor() as cursor:
                for page, summary in summaries.items():
                    if summary["pass"] or not summary["slowest"]:
                        continue
                    statement = summary["slowest"][0]["slowest_statement"]
                    if statement:
                        diagnosis[page] = _explain(cursor, statement["sql"])
        finally:
            replay.close()

    _print_table(summaries)
    print(
        f"load average (1, 5, 15 min) at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )
    failed = [m for m in results if m.status >= 500]
    if failed:
        print(f"{len(failed)} measured requests answered 5xx; distinct errors (warm-up included):")
        # One line per distinct error, counted by its type and message's first line.
        kinds = Counter(error.rsplit(" (e.g. ", 1)[0] for error in server_errors)
        examples = {error.rsplit(" (e.g. ", 1)[0]: error for error in server_errors}
        for kind, times in kinds.most_common(10):
            print(f"  {times} x {examples[kind]}")
        for m in failed[:20]:
            print(f"  {m.status} for {m.sample.category} {m.sample.detail[:60]!r}", flush=True)
    for page, plan in diagnosis.items():
        slow = summaries[page]["slowest"][0]
        print(f"\n{page} MISS: slowest request {slow['url'][:120]} ({slow['first_ms']} ms, "
              f"{slow['queries']} queries); its slowest statement "
              f"({slow['slowest_statement']['ms']} ms):\n{slow['slowest_statement']['sql'][:1500]}"
              f"\n{plan}")  # fmt: skip
    line = "; ".join(
        f"{page} p95 {s['first_ms']['p95']:.1f} ms (target < {s['target_p95_ms']:.0f}) "
        f"{'PASS' if s['pass'] else 'MISS'}, page/SQL {s['ratio_median']}"
        for page, s in summaries.items()
    )
    report(
        NAME,
        f"{NAME}: {line}",
        {
            "database": SCALE_DATABASE,
            "counts": counts,
            "summaries": summaries,
            "diagnosis": diagnosis,
            "server_errors": dict(Counter(server_errors).most_common(20)),
            "requests": [
                {
                    "page": m.sample.page,
                    "category": m.sample.category,
                    "detail": m.sample.detail[:100],
                    "status": m.status,
                    "first_ms": round(m.first_ms, 3),
                    "repeat_ms": round(m.repeat_ms, 3),
                    "cpu_ms": round(m.cpu_ms, 3),
                    "sql_ms": None if m.sql_ms is None else round(m.sql_ms, 3),
                    "queries": m.queries,
                }
                for m in results
            ],
        },
    )


if __name__ == "__main__":
    from benchmarks.common import setup_django

    setup_django()
    run()
