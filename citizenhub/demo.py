"""The demo-data registry: each app's `demo` module registers a seeder; `seed_demo` runs them.

The core never imports feature apps. An app contributes demo data by defining `<app>/demo.py`
with a function decorated by `register_demo_seeder`; `discover_demo_seeders` imports those
modules, and `run_demo_seeders` runs the seeders in order, each in its own transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.utils.module_loading import autodiscover_modules

from citizenhub.demo_casework import seed_casework
from citizenhub.demo_data import DEFAULT_RESIDENTS, seed_residents


@dataclass(frozen=True)
class DemoOptions:
    residents: int = DEFAULT_RESIDENTS
    # Where progress bars go; None shows none. Bars also hide themselves when it is no TTY.
    progress: TextIO | None = None


# What a seeder did, as {"residents created": 40, ...}, in the order to report it.
SeedCounts = dict[str, int]
SeederFunction = Callable[[DemoOptions], SeedCounts]


@dataclass(frozen=True)
class DemoSeeder:
    name: str
    order: int  # lower runs first: wards before the residents placed in them
    function: SeederFunction


_seeders: dict[str, DemoSeeder] = {}


def _qualified_name(function: SeederFunction) -> str:
    return f"{function.__module__}.{function.__qualname__}"


def register_demo_seeder(name: str, *, order: int) -> Callable[[SeederFunction], SeederFunction]:
    """Register the decorated function as the demo seeder called `name`."""

    def decorator(function: SeederFunction) -> SeederFunction:
        existing = _seeders.get(name)
        # Re-importing a module re-registers the same function; two apps sharing a name is a bug.
        if existing is not None and _qualified_name(existing.function) != _qualified_name(function):
            raise ImproperlyConfigured(
                f"Demo seeder {name!r} is registered by both "
                f"{_qualified_name(existing.function)} and {_qualified_name(function)}."
            )
        _seeders[name] = DemoSeeder(name=name, order=order, function=function)
        return function

    return decorator


def discover_demo_seeders() -> list[DemoSeeder]:
    """Import every installed app's `demo` module, and return the seeders in running order."""
    autodiscover_modules("demo")
    return sorted(_seeders.values(), key=lambda seeder: (seeder.order, seeder.name))


def run_demo_seeders(
    seeders: list[DemoSeeder], options: DemoOptions
) -> list[tuple[DemoSeeder, SeedCounts]]:
    """Run the seeders in the order given, each in its own transaction."""
    results = []
    for seeder in seeders:
        with transaction.atomic():
            results.append((seeder, seeder.function(options)))
    return results


@register_demo_seeder("residents", order=100)
def seed_demo_residents(options: DemoOptions) -> SeedCounts:
    return seed_residents(count=options.residents, progress=options.progress)


# After the residents (cases belong to them) and before the channels' history, so the
# channels app can link its conversations to cases that already exist.
@register_demo_seeder("casework", order=150)
def seed_demo_casework(options: DemoOptions) -> SeedCounts:
    return seed_casework(residents=options.residents, progress=options.progress)


# After the casework, so the portal's demo residents are people who already have cases.
@register_demo_seeder("portal accounts", order=170)
def seed_demo_portal_accounts(options: DemoOptions) -> SeedCounts:
    from citizenhub.demo_portal import ensure_demo_portal_accounts

    return {"portal accounts created": ensure_demo_portal_accounts()}
