"""UK working days and case deadlines.

Bank holidays are data, not code: `citizenhub/data/bank_holidays.json` has the shape of
GOV.UK's https://www.gov.uk/bank-holidays.json (divisions england-and-wales, scotland,
northern-ireland), and a council can point `BANK_HOLIDAYS_FILE` at a newer copy of that
file without a release. The council's division is `BANK_HOLIDAY_DIVISION`.
"""

from __future__ import annotations

import calendar
import datetime
import json
from functools import lru_cache
from pathlib import Path

from django.conf import settings

from citizenhub.models import ClockType

DIVISIONS = ("england-and-wales", "scotland", "northern-ireland")
SHIPPED_FILE = Path(__file__).resolve().parent / "data" / "bank_holidays.json"
FOI_WORKING_DAYS = 20


@lru_cache(maxsize=8)
def _load(path: str) -> dict[str, frozenset[datetime.date]]:
    with open(path, encoding="utf-8") as handle:
        raw = json.load(handle)
    return {
        division: frozenset(
            datetime.date.fromisoformat(event["date"]) for event in raw[division]["events"]
        )
        for division in DIVISIONS
        if division in raw
    }


def bank_holidays(division: str | None = None) -> frozenset[datetime.date]:
    division = division or getattr(settings, "BANK_HOLIDAY_DIVISION", "england-and-wales")
    if division not in DIVISIONS:
        raise ValueError(f"Unknown bank holiday division {division!r}; use one of {DIVISIONS}.")
    path = getattr(settings, "BANK_HOLIDAYS_FILE", "") or str(SHIPPED_FILE)
    return _load(path).get(division, frozenset())


def is_working_day(day: datetime.date, division: str | None = None) -> bool:
    return day.weekday() < 5 and day not in bank_holidays(division)


def next_working_day(day: datetime.date, division: str | None = None) -> datetime.date:
    """`day` itself when it is a working day, otherwise the first working day after it."""
    while not is_working_day(day, division):
        day += datetime.timedelta(days=1)
    return day


def add_working_days(start: datetime.date, days: int, division: str | None = None) -> datetime.date:
    """The `days`-th working day after `start`; `start` itself never counts (day one is the
    first working day after receipt, as the FOI Act and most council SLAs count)."""
    day = start
    remaining = days
    while remaining > 0:
        day += datetime.timedelta(days=1)
        if is_working_day(day, division):
            remaining -= 1
    return day


def working_days_between(
    start: datetime.date, end: datetime.date, division: str | None = None
) -> int:
    """Working days in [start, end): the days a clock stopped on `start` and restarted on
    `end` did not run."""
    count = 0
    day = start
    while day < end:
        if is_working_day(day, division):
            count += 1
        day += datetime.timedelta(days=1)
    return count


def add_calendar_month(start: datetime.date) -> datetime.date:
    """The corresponding date in the next month, or that month's last day when it has none
    (ICO guidance on subject access: received 31 August, due 30 September)."""
    year, month = (start.year + 1, 1) if start.month == 12 else (start.year, start.month + 1)
    last_day = calendar.monthrange(year, month)[1]
    return datetime.date(year, month, min(start.day, last_day))


def due_date(
    *, received: datetime.date, clock_type: str, sla_days: int, division: str | None = None
) -> datetime.date:
    """When a case received on `received` is due under its service's clock."""
    if clock_type == ClockType.WORKING_DAYS:
        return add_working_days(received, sla_days, division)
    if clock_type == ClockType.FOI:
        return add_working_days(received, FOI_WORKING_DAYS, division)
    if clock_type == ClockType.SUBJECT_ACCESS:
        # A deadline on a weekend or bank holiday moves to the next working day (ICO).
        return next_working_day(add_calendar_month(received), division)
    if clock_type == ClockType.CALENDAR_DAYS:
        return received + datetime.timedelta(days=sla_days)
    raise ValueError(f"Unknown clock type {clock_type!r}.")


def extend_for_stopped_clock(
    *,
    due_on: datetime.date,
    stopped: datetime.date,
    restarted: datetime.date,
    clock_type: str,
    division: str | None = None,
) -> datetime.date:
    """Move a deadline by the time its clock was stopped (waiting on the resident).

    Working-day clocks move by the working days that passed; calendar clocks, including
    the subject-access month, by the calendar days, landing on a working day for SARs.
    """
    if restarted <= stopped:
        return due_on
    if clock_type in (ClockType.WORKING_DAYS, ClockType.FOI):
        return add_working_days(
            due_on, working_days_between(stopped, restarted, division), division
        )
    moved = due_on + (restarted - stopped)
    if clock_type == ClockType.SUBJECT_ACCESS:
        return next_working_day(moved, division)
    return moved
