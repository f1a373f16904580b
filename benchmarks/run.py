"""Run the benchmarks in order: `make bench`, or `.venv/bin/python benchmarks/run.py [name ...]`."""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback
from pathlib import Path

# Run as a script, Python puts benchmarks/ itself on the path; the modules import each other
# as the `benchmarks` package, which needs the repository root there.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import BenchmarkError, bench_scale, setup_django

# Module names under benchmarks/, run in this order. Each has `run() -> None`, which prints
# and records its result and raises if the benchmark fails.
# staff_pages needs the scale database from `make bench-data`, and skips without it.
BENCHMARKS: tuple[str, ...] = (
    "timeline_insert",
    "ingest_email",
    "staff_pages",
    "campaign_fanout",  # engagement: its own database, citizenhub_bench_fanout
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "names", nargs="*", metavar="name", help=f"run only these (of: {', '.join(BENCHMARKS)})"
    )
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    selected = [name for name in BENCHMARKS if not args.names or name in args.names]

    try:
        print(f"benchmarks: scale {bench_scale():g}, setting up database", flush=True)
        setup_django()
    except Exception as exc:
        print(f"benchmarks: set-up failed: {exc}", file=sys.stderr)
        return 2

    failed: list[str] = []
    for name in selected:
        # Imported only now: the modules use Django models, which need django.setup() first.
        try:
            importlib.import_module(f"benchmarks.{name}").run()
        except BenchmarkError as exc:
            print(f"{name}: FAILED: {exc}", file=sys.stderr)
            failed.append(name)
        except Exception:
            print(f"{name}: FAILED with an error:", file=sys.stderr)
            traceback.print_exc()
            failed.append(name)

    if failed:
        print(f"benchmarks: {len(failed)} of {len(selected)} failed: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
