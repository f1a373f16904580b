"""Working days, bank holidays of the three UK divisions, statutory clocks and clock stops."""

import datetime
import json

import pytest

from citizenhub import workdays
from citizenhub.models import ClockType

D = datetime.date


@pytest.mark.parametrize(
    ("division", "day", "holiday"),
    [
        ("england-and-wales", D(2026, 12, 28), True),  # Boxing Day falls on a Saturday
        ("england-and-wales", D(2026, 4, 6), True),  # Easter Monday
        ("scotland", D(2026, 4, 6), False),  # no Easter Monday in Scotland
        ("scotland", D(2026, 1, 2), True),  # 2nd January
        ("scotland", D(2026, 8, 3), True),  # first Monday in August
        ("england-and-wales", D(2026, 8, 3), False),
        ("scotland", D(2026, 11, 30), True),  # St Andrew's Day
        ("northern-ireland", D(2026, 3, 17), True),  # St Patrick's Day
        ("northern-ireland", D(2026, 7, 13), True),  # the Twelfth, substitute for a Sunday
        ("england-and-wales", D(2026, 7, 13), False),
    ],
)
def test_bank_holidays_differ_by_division(division, day, holiday):
    assert (day in workdays.bank_holidays(division)) is holiday
    assert workdays.is_working_day(day, division) is not holiday


def test_unknown_division_is_refused():
    with pytest.raises(ValueError, match="division"):
        workdays.bank_holidays("wessex")


def test_working_days_skip_weekends_and_easter():
    # Received Thursday 2 April 2026: Good Friday, the weekend and Easter Monday do not count.
    assert workdays.add_working_days(D(2026, 4, 2), 1, "england-and-wales") == D(2026, 4, 7)
    assert workdays.add_working_days(D(2026, 4, 2), 1, "scotland") == D(2026, 4, 6)


def test_christmas_week():
    # Wed 23 Dec 2026 + 3 working days: 24th, (25th, 26-27 weekend, 28th off), 29th, 30th.
    assert workdays.add_working_days(D(2026, 12, 23), 3) == D(2026, 12, 30)


def test_received_on_a_weekend_counts_from_the_next_working_day():
    assert workdays.add_working_days(D(2026, 11, 28), 1) == D(2026, 11, 30)


def test_foi_is_twenty_working_days_after_receipt():
    # Received Monday 7 December 2026; Christmas and Boxing Day (substitute 28th) excluded.
    assert workdays.due_date(received=D(2026, 12, 7), clock_type=ClockType.FOI, sla_days=0) == D(
        2027, 1, 7
    )


@pytest.mark.parametrize(
    ("received", "due"),
    [
        (D(2026, 9, 3), D(2026, 10, 5)),  # 3 October is a Saturday: next working day
        (D(2026, 8, 31), D(2026, 9, 30)),  # no 31 September: last day of the month
        (D(2027, 1, 30), D(2027, 3, 1)),  # 28 February 2027 is a Sunday
        (D(2026, 12, 15), D(2027, 1, 15)),
    ],
)
def test_subject_access_month_follows_ico_rules(received, due):
    assert (
        workdays.due_date(received=received, clock_type=ClockType.SUBJECT_ACCESS, sla_days=0) == due
    )


def test_subject_access_deadline_skips_a_bank_holiday_exactly():
    # Corresponding date 26 December 2026 is a Saturday; Monday 28th is the Boxing Day holiday.
    assert workdays.due_date(
        received=D(2026, 11, 26), clock_type=ClockType.SUBJECT_ACCESS, sla_days=0
    ) == D(2026, 12, 29)


def test_calendar_day_clock():
    assert workdays.due_date(
        received=D(2026, 12, 20), clock_type=ClockType.CALENDAR_DAYS, sla_days=14
    ) == D(2027, 1, 3)


def test_stopped_working_day_clock_moves_by_working_days_waited():
    # Stopped Friday 18 Dec 2026, restarted Tuesday 29 Dec: it did not run on 18, 21, 22,
    # 23, 24 (25 and 28 are bank holidays) -> five working days.
    assert workdays.working_days_between(D(2026, 12, 18), D(2026, 12, 29)) == 5
    moved = workdays.extend_for_stopped_clock(
        due_on=D(2027, 1, 4),
        stopped=D(2026, 12, 18),
        restarted=D(2026, 12, 29),
        clock_type=ClockType.WORKING_DAYS,
    )
    assert moved == D(2027, 1, 11)


def test_stopped_subject_access_clock_moves_by_calendar_days_to_a_working_day():
    moved = workdays.extend_for_stopped_clock(
        due_on=D(2026, 12, 15),
        stopped=D(2026, 12, 1),
        restarted=D(2026, 12, 11),
        clock_type=ClockType.SUBJECT_ACCESS,
    )
    # 15 Dec + 10 days = 25 Dec (Christmas); 26-27 weekend; 28th the substitute holiday.
    assert moved == D(2026, 12, 29)


def test_restarting_the_same_day_changes_nothing():
    assert workdays.extend_for_stopped_clock(
        due_on=D(2026, 12, 15),
        stopped=D(2026, 12, 1),
        restarted=D(2026, 12, 1),
        clock_type=ClockType.WORKING_DAYS,
    ) == D(2026, 12, 15)


def test_a_council_can_load_govuk_s_own_file(settings, tmp_path):
    path = tmp_path / "bank-holidays.json"
    path.write_text(
        json.dumps(
            {
                "england-and-wales": {
                    "division": "england-and-wales",
                    "events": [{"title": "Extra day", "date": "2026-11-27"}],
                }
            }
        )
    )
    settings.BANK_HOLIDAYS_FILE = str(path)
    assert not workdays.is_working_day(D(2026, 11, 27))
    assert workdays.is_working_day(D(2026, 12, 25))  # not in that file


@pytest.mark.parametrize(
    ("received", "due"),
    [
        (D(2026, 3, 31), D(2026, 4, 30)),  # no 31 April: the last day of April (a Thursday)
        (D(2028, 1, 31), D(2028, 2, 29)),  # a leap year: 29 February, a Tuesday
        (D(2027, 1, 29), D(2027, 3, 1)),  # 29 Feb 2027 does not exist: 28th, a Sunday
        (D(2026, 12, 31), D(2027, 2, 1)),  # across the year: 31 Jan 2027 is a Sunday
        (D(2026, 12, 25), D(2027, 1, 25)),  # received on a bank holiday: counted from that day
        (D(2026, 4, 4), D(2026, 5, 5)),  # 4 May 2026 is the early May bank holiday
    ],
)
def test_subject_access_month_edge_cases(received, due):
    assert (
        workdays.due_date(received=received, clock_type=ClockType.SUBJECT_ACCESS, sla_days=0) == due
    )
