"""Aggregate figures for the staff Insight page: contacts, cases and deadlines, by period.

Everything here counts rows of the core's own tables (TimelineEntry, ServiceCase, Service,
Address); the feature apps are not imported. Each report is one query (the ward report
adds one for ward names) whatever the amount of data, and works the same on SQLite and
PostgreSQL: TruncWeek/TruncMonth/__date convert to the current time zone (Europe/London) in
the database on both, so a message at 00:30 BST on a Monday counts in that Monday's week.

Counts only: no titles, descriptions or message text leave this module, so sensitive
services (adult social care, bereavement) are counted like any other.

Decisions:
- A "contact" is a TimelineEntry of kind message_in, call or visit: something a resident
  started. Every contact report uses that same definition (the ward report too), so the
  totals on one page agree with each other.
- Channel shift: digital = e-mail, web form, SMS, X, Facebook, Mastodon; assisted = phone,
  in person and post (letters need the same manual handling as calls). "System" and
  unrecorded channels are neither and are left out of that report.
- Periods are whole local days, both ends included, at most MAX_PERIOD_DAYS long.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from django.db.models import Count, DateField, F, OuterRef, Q, Subquery, Value
from django.db.models.functions import Coalesce, TruncMonth, TruncWeek
from django.utils import timezone

from citizenhub.models import Address, ChannelKind, Service, ServiceCase, TimelineEntry
from citizenhub.ward_names import ward_names

# Two years and a leap day: enough to compare a month with the same month last year.
MAX_PERIOD_DAYS = 731
DEFAULT_WEEKS = 12
DEFAULT_MONTHS = 12

CONTACT_KINDS = (
    TimelineEntry.Kind.MESSAGE_IN,
    TimelineEntry.Kind.CALL,
    TimelineEntry.Kind.VISIT,
)
DIGITAL_CHANNELS = (
    ChannelKind.EMAIL,
    ChannelKind.WEB,
    ChannelKind.SMS,
    ChannelKind.X,
    ChannelKind.FACEBOOK,
    ChannelKind.MASTODON,
)
ASSISTED_CHANNELS = (ChannelKind.PHONE, ChannelKind.IN_PERSON, ChannelKind.POST)
CASE_STATUSES = tuple(ServiceCase.Status.values)


@dataclass(frozen=True)
class Period:
    """Whole local days from `start` to `end`, both included."""

    start: datetime.date
    end: datetime.date

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError("A period cannot end before it starts.")
        if self.days > MAX_PERIOD_DAYS:
            raise ValueError(f"A period can be at most {MAX_PERIOD_DAYS} days.")

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def bounds(self) -> tuple[datetime.datetime, datetime.datetime]:
        """[first instant, instant after the last day) in the current time zone."""
        first = timezone.make_aware(datetime.datetime.combine(self.start, datetime.time.min))
        after = timezone.make_aware(
            datetime.datetime.combine(self.end + datetime.timedelta(days=1), datetime.time.min)
        )
        return first, after

    def weeks(self) -> list[datetime.date]:
        """The Monday of every ISO week the period touches, oldest first."""
        monday = self.start - datetime.timedelta(days=self.start.weekday())
        weeks = []
        while monday <= self.end:
            weeks.append(monday)
            monday += datetime.timedelta(days=7)
        return weeks

    def months(self) -> list[datetime.date]:
        """The first day of every month the period touches, oldest first."""
        month = self.start.replace(day=1)
        months = []
        while month <= self.end:
            months.append(month)
            month = _add_months(month, 1)
        return months


def _add_months(first_of_month: datetime.date, months: int) -> datetime.date:
    index = first_of_month.year * 12 + first_of_month.month - 1 + months
    return datetime.date(index // 12, index % 12 + 1, 1)


def default_weekly_period(today: datetime.date | None = None) -> Period:
    """This ISO week and the DEFAULT_WEEKS - 1 before it (the current week runs to today)."""
    today = today or timezone.localdate()
    this_monday = today - datetime.timedelta(days=today.weekday())
    return Period(this_monday - datetime.timedelta(weeks=DEFAULT_WEEKS - 1), today)


def default_monthly_period(today: datetime.date | None = None) -> Period:
    """This month and the DEFAULT_MONTHS - 1 before it (the current month runs to today)."""
    today = today or timezone.localdate()
    return Period(_add_months(today.replace(day=1), -(DEFAULT_MONTHS - 1)), today)


def channel_label(channel: str) -> str:
    if not channel:
        return "Not recorded"
    if channel in ChannelKind.values:
        return str(ChannelKind(channel).label)
    return channel


def _contacts(period: Period):
    first, after = period.bounds()
    return TimelineEntry.objects.filter(
        kind__in=CONTACT_KINDS, occurred_at__gte=first, occurred_at__lt=after
    )


# --- Contacts per channel per ISO week ----------------------------------------------------


@dataclass(frozen=True)
class WeeklyContacts:
    week_start: datetime.date  # the Monday
    channel: str
    contacts: int

    @property
    def iso_week(self) -> str:
        return iso_week_label(self.week_start)


def iso_week_label(day: datetime.date) -> str:
    """ "2026-W07": the ISO 8601 week a day falls in (its year can differ from the date's)."""
    year, week, _ = day.isocalendar()
    return f"{year:04d}-W{week:02d}"


def contacts_by_channel_per_week(period: Period) -> list[WeeklyContacts]:
    """Contacts per (week, channel) with at least one contact, by week then channel; 1 query."""
    rows = (
        _contacts(period)
        .annotate(week=TruncWeek("occurred_at", output_field=DateField()))
        .values("week", "channel")
        .annotate(contacts=Count("id"))
        .order_by("week", "channel")
    )
    return [WeeklyContacts(row["week"], row["channel"], row["contacts"]) for row in rows]


# --- Cases by service and status ----------------------------------------------------------


@dataclass(frozen=True)
class ServiceStatusCounts:
    service_code: str
    service_name: str
    by_status: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.by_status.values())


def cases_by_service_and_status(period: Period) -> list[ServiceStatusCounts]:
    """Cases opened in the period, per service and by their status now; 1 query.

    Active services appear even with no cases (a zero is information); retired ones only
    when they had cases in the period.
    """
    first, after = period.bounds()
    opened = Q(cases__opened_at__gte=first, cases__opened_at__lt=after)
    per_status = {
        f"status_{status}": Count("cases", filter=opened & Q(cases__status=status))
        for status in CASE_STATUSES
    }
    rows = (
        Service.objects.annotate(**per_status, opened_total=Count("cases", filter=opened))
        .filter(Q(is_active=True) | Q(opened_total__gt=0))
        .order_by("name", "code")
        .values("code", "name", *per_status)
    )
    return [
        ServiceStatusCounts(
            service_code=row["code"],
            service_name=row["name"],
            by_status={status: row[f"status_{status}"] for status in CASE_STATUSES},
        )
        for row in rows
    ]


# --- SLA performance per service ----------------------------------------------------------


@dataclass(frozen=True)
class SlaPerformance:
    service_code: str
    service_name: str
    resolved_on_time: int
    resolved_late: int
    open_overdue: int

    @property
    def resolved(self) -> int:
        return self.resolved_on_time + self.resolved_late

    @property
    def on_time_percent(self) -> float | None:
        """Share of resolved cases resolved on time, one decimal; None when none resolved."""
        if not self.resolved:
            return None
        return round(100 * self.resolved_on_time / self.resolved, 1)


def sla_performance(period: Period, today: datetime.date | None = None) -> list[SlaPerformance]:
    """Per service: cases resolved in the period on time or late, and open cases overdue now.

    On time means resolved on or before the due date (local dates), the rule
    case_transition uses for `breached`; cases closed without being resolved are neither.
    "Open overdue" is a snapshot of today, whatever the period. 1 query.
    """
    today = today or timezone.localdate()
    first, after = period.bounds()
    resolved = Q(cases__resolved_at__gte=first, cases__resolved_at__lt=after)
    rows = (
        Service.objects.annotate(
            on_time=Count(
                "cases", filter=resolved & Q(cases__resolved_at__date__lte=F("cases__due_on"))
            ),
            late=Count(
                "cases", filter=resolved & Q(cases__resolved_at__date__gt=F("cases__due_on"))
            ),
            overdue=Count(
                "cases",
                filter=Q(cases__status__in=ServiceCase.OPEN_STATUSES, cases__due_on__lt=today),
            ),
        )
        .filter(Q(is_active=True) | Q(on_time__gt=0) | Q(late__gt=0) | Q(overdue__gt=0))
        .order_by("name", "code")
        .values("code", "name", "on_time", "late", "overdue")
    )
    return [
        SlaPerformance(
            service_code=row["code"],
            service_name=row["name"],
            resolved_on_time=row["on_time"],
            resolved_late=row["late"],
            open_overdue=row["overdue"],
        )
        for row in rows
    ]


# --- Contacts by ward ---------------------------------------------------------------------


@dataclass(frozen=True)
class WardContacts:
    ward_code: str  # "" when the resident has no primary address with a ward
    ward_name: str  # "" when no registered lookup knows the code
    contacts: int


def contacts_by_ward(period: Period) -> list[WardContacts]:
    """Contacts by the ward of the resident's primary address, most first; 2 queries.

    The ward is where the resident lives now (their primary address), not where the problem
    was. Names come from the ward-name lookups apps register (citizenhub/ward_names.py).
    """
    primary_ward = (
        Address.objects.filter(citizen=OuterRef("citizen_id"), is_primary=True)
        .order_by("-created_at", "-id")
        .values("ward_code")[:1]
    )
    rows = list(
        _contacts(period)
        .annotate(ward=Coalesce(Subquery(primary_ward), Value("")))
        .values("ward")
        .annotate(contacts=Count("id"))
        .order_by("-contacts", "ward")
    )
    names = ward_names([row["ward"] for row in rows])
    return [WardContacts(row["ward"], names.get(row["ward"], ""), row["contacts"]) for row in rows]


# --- Channel shift ------------------------------------------------------------------------


@dataclass(frozen=True)
class ChannelShiftMonth:
    month: datetime.date  # the first of the month
    digital: int
    assisted: int

    @property
    def total(self) -> int:
        return self.digital + self.assisted

    @property
    def digital_percent(self) -> float | None:
        if not self.total:
            return None
        return round(100 * self.digital / self.total, 1)


def channel_shift(period: Period) -> list[ChannelShiftMonth]:
    """Digital and assisted contacts per month, every month of the period (zeros too); 1 query."""
    rows = (
        _contacts(period)
        .filter(channel__in=DIGITAL_CHANNELS + ASSISTED_CHANNELS)
        .annotate(month=TruncMonth("occurred_at", output_field=DateField()))
        .values("month")
        .annotate(
            digital=Count("id", filter=Q(channel__in=DIGITAL_CHANNELS)),
            assisted=Count("id", filter=Q(channel__in=ASSISTED_CHANNELS)),
        )
        .order_by("month")
    )
    counted = {row["month"]: (row["digital"], row["assisted"]) for row in rows}
    return [ChannelShiftMonth(month, *counted.get(month, (0, 0))) for month in period.months()]
