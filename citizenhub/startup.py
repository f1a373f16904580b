"""Turning configuration errors into one clear line at process start-up."""

import sys
from collections.abc import Callable
from typing import TypeVar

from citizenhub.env import EnvironmentConfigError

T = TypeVar("T")


def run_or_explain(start: Callable[[], T]) -> T:
    """Run a process entry point; a bad environment variable ends it with a one-line message."""
    try:
        return start()
    except EnvironmentConfigError as exc:
        sys.stderr.write(f"CitizenHub cannot start: configuration error in {exc}\n")
        raise SystemExit(2) from None
