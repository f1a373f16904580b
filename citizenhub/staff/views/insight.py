"""The Insight page: contact and case figures as charts, tables and CSV downloads.

Each report is built once into a ReportTable (heading, table header and rows, chart data,
a one-sentence summary); the page renders the table (the accessible version of the chart)
and the chart data for citizenhub/static/citizenhub/insight.js, and the CSV download
writes the very same header and rows, so the file always matches what is on screen.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET

from citizenhub import insight
from citizenhub.csv_export import csv_response
from citizenhub.insight import Period
from citizenhub.models import ChannelKind, ServiceCase
from citizenhub.staff.access import staff_required

PERMISSION = "citizenhub.view_servicecase"


# --- The period form ----------------------------------------------------------------------


# Day/month/year as people in the UK write it; ISO as the download links carry it.
DATE_FORMATS = ["%d/%m/%Y", "%Y-%m-%d"]


class InsightPeriodForm(forms.Form):
    """?from=…&to=…; both empty means each report's default period."""

    def __init__(self, *args: Any, today: datetime.date | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.today = today or timezone.localdate()
        # "from" is a Python keyword, so these fields cannot be declared as class attributes.
        # Text inputs, not type="date": a native picker cannot show back a date it could not
        # parse, so the officer would lose what they typed (GOV.UK also advises against it).
        self.fields["from"] = forms.DateField(
            label="From",
            required=False,
            input_formats=DATE_FORMATS,
            help_text="For example, 1/9/2026",
            error_messages={"invalid": "The start date must be a real date, like 1/9/2026"},
        )
        self.fields["to"] = forms.DateField(
            label="To",
            required=False,
            input_formats=DATE_FORMATS,
            help_text="For example, 30/11/2026. Leave empty for today",
            error_messages={"invalid": "The end date must be a real date, like 30/11/2026"},
        )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        start, end = cleaned.get("from"), cleaned.get("to")
        if self.errors:
            return cleaned
        if start is None and end is not None:
            self.add_error("from", "Enter a start date, or leave both dates empty")
            return cleaned
        if start is None:
            return cleaned
        end = end or self.today
        if end > self.today:
            self.add_error("to", "The end date must be today or in the past")
        elif start > end:
            self.add_error("from", "The start date must be on or before the end date")
        elif (end - start).days + 1 > insight.MAX_PERIOD_DAYS:
            self.add_error("from", "The period can be at most 2 years: choose a later start date")
        else:
            cleaned["to"] = end
        return cleaned

    def chosen_period(self) -> Period | None:
        """The officer's period, or None for each report's default. Call after is_valid()."""
        start = self.cleaned_data.get("from")
        return Period(start, self.cleaned_data["to"]) if start else None


# --- Reports ------------------------------------------------------------------------------


@dataclass
class ReportTable:
    key: str
    title: str
    description: str
    period: Period
    header: list[str]
    rows: list[list[Any]]
    # Columns from this index on hold numbers (right-aligned); the first cell is the row's header.
    numeric_from: int
    chart: dict[str, Any]
    summary: str
    csv_query: str = ""

    @property
    def heading_id(self) -> str:
        return f"{self.key}-heading"

    @property
    def chart_id(self) -> str:
        return f"{self.key}-chart"

    @property
    def chart_data_id(self) -> str:
        return f"{self.key}-chart-data"

    @property
    def csv_filename(self) -> str:
        return f"{self.key}-{self.period.start:%Y-%m-%d}-to-{self.period.end:%Y-%m-%d}.csv"

    @property
    def csv_url(self) -> str:
        url = reverse("staff:insight-csv", kwargs={"report": self.key})
        return f"{url}?{self.csv_query}" if self.csv_query else url

    @property
    def caption(self) -> str:
        return f"{self.title}, {_period_text(self.period)}"


def _period_text(period: Period) -> str:
    return f"{_day(period.start)} to {_day(period.end)}"


def _day(day: datetime.date) -> str:
    return f"{day.day} {day:%B %Y}"


def _percent(value: float | None, *, when_none: str) -> float | str:
    # Words, not a dash or a blank, where there is nothing to divide: a screen reader says
    # them, and the CSV holds the same text as the table.
    return when_none if value is None else value


def _plural(count: int, word: str) -> str:
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def contacts_by_week_report(period: Period) -> ReportTable:
    counts = insight.contacts_by_channel_per_week(period)
    present = {row.channel for row in counts}
    # Channels in the catalogue's order, then anything unexpected, then "not recorded".
    channels = [c for c in ChannelKind.values if c in present]
    channels += sorted(present - set(channels) - {""}) + ([""] if "" in present else [])
    by_cell = {(row.week_start, row.channel): row.contacts for row in counts}
    weeks = period.weeks()
    rows = []
    for week in weeks:
        cells = [by_cell.get((week, channel), 0) for channel in channels]
        rows.append([insight.iso_week_label(week), week.isoformat(), *cells, sum(cells)])
    total = sum(row.contacts for row in counts)
    channel_totals = {c: sum(n for (_, ch), n in by_cell.items() if ch == c) for c in channels}
    if total:
        top = max(channels, key=lambda c: channel_totals[c])
        summary = (
            f"Stacked bar chart of contacts per week by channel: {_plural(total, 'contact')} "
            f"over {_plural(len(weeks), 'week')}, most by {insight.channel_label(top).lower()} "
            f"({channel_totals[top]:,})."
        )
    else:
        summary = f"Bar chart of contacts per week: no contacts in these {len(weeks)} weeks."
    return ReportTable(
        key="contacts-by-week",
        title="Contacts per week by channel",
        description=(
            "Messages received, phone calls and visits, by the channel they came through. "
            "Weeks are ISO weeks, Monday to Sunday; the first and last may be partial."
        ),
        period=period,
        header=[
            "ISO week",
            "Week beginning",
            *(insight.channel_label(c) for c in channels),
            "Total",
        ],
        rows=rows,
        numeric_from=2,
        chart={
            "type": "bar",
            "stacked": True,
            "labels": [row[0] for row in rows],
            "datasets": [
                {"label": insight.channel_label(c), "data": [row[2 + i] for row in rows]}
                for i, c in enumerate(channels)
            ],
            "valueTitle": "Contacts",
        },
        summary=summary,
    )


def cases_by_service_report(period: Period) -> ReportTable:
    services = insight.cases_by_service_and_status(period)
    statuses = insight.CASE_STATUSES
    labels = [str(ServiceCase.Status(s).label) for s in statuses]
    rows = [
        [s.service_name, s.service_code, *(s.by_status[st] for st in statuses), s.total]
        for s in services
    ]
    total = sum(s.total for s in services)
    open_now = sum(s.by_status[st] for s in services for st in ServiceCase.OPEN_STATUSES)
    if total:
        busiest = max(services, key=lambda s: s.total)
        summary = (
            f"Stacked bar chart of cases opened per service by status: {_plural(total, 'case')}, "
            f"{open_now:,} still open; most for {busiest.service_name} ({busiest.total:,})."
        )
    else:
        summary = "Bar chart of cases per service: no cases opened in this period."
    return ReportTable(
        key="cases-by-service",
        title="Cases by service and status",
        description="Cases opened in the period, by service and by where they are now.",
        period=period,
        header=["Service", "Service code", *labels, "Total"],
        rows=rows,
        numeric_from=2,
        chart={
            "type": "bar",
            "stacked": True,
            "horizontal": True,
            "labels": [s.service_name for s in services],
            "datasets": [
                {"label": label, "data": [s.by_status[st] for s in services]}
                for st, label in zip(statuses, labels, strict=True)
            ],
            "valueTitle": "Cases",
        },
        summary=summary,
    )


def sla_report(period: Period, today: datetime.date) -> ReportTable:
    services = insight.sla_performance(period, today=today)
    rows = [
        [
            s.service_name,
            s.service_code,
            s.resolved_on_time,
            s.resolved_late,
            _percent(s.on_time_percent, when_none="None resolved"),
            s.open_overdue,
        ]
        for s in services
    ]
    on_time = sum(s.resolved_on_time for s in services)
    resolved = sum(s.resolved for s in services)
    overdue = sum(s.open_overdue for s in services)
    if resolved:
        share = round(100 * on_time / resolved, 1)
        summary = (
            f"Bar chart of cases resolved on time and late, and open cases overdue, per service: "
            f"{on_time:,} of {_plural(resolved, 'resolved case')} on time ({share}%); "
            f"{overdue:,} open and overdue today."
        )
    else:
        summary = (
            f"Bar chart of deadline performance per service: no cases resolved in this period; "
            f"{overdue:,} open and overdue today."
        )
    return ReportTable(
        key="sla",
        title="Deadline performance by service",
        description=(
            "Cases resolved in the period on or before their due date, and after it. "
            f"Overdue open cases are those past their due date today ({_day(today)}), "
            "whatever the period."
        ),
        period=period,
        header=[
            "Service",
            "Service code",
            "Resolved on time",
            "Resolved late",
            "On time (%)",
            "Open and overdue",
        ],
        rows=rows,
        numeric_from=2,
        chart={
            "type": "bar",
            "stacked": False,
            "horizontal": True,
            "labels": [s.service_name for s in services],
            "datasets": [
                {"label": "Resolved on time", "data": [s.resolved_on_time for s in services]},
                {"label": "Resolved late", "data": [s.resolved_late for s in services]},
                {"label": "Open and overdue", "data": [s.open_overdue for s in services]},
            ],
            "valueTitle": "Cases",
        },
        summary=summary,
    )


def contacts_by_ward_report(period: Period) -> ReportTable:
    wards = insight.contacts_by_ward(period)

    def ward_label(ward: insight.WardContacts) -> str:
        if not ward.ward_code:
            return "No ward recorded"
        return ward.ward_name or "Ward name not known"

    rows = [[ward_label(w), w.ward_code, w.contacts] for w in wards]
    total = sum(w.contacts for w in wards)
    if total:
        top = wards[0]
        top_label = top.ward_name or top.ward_code or "residents with no ward recorded"
        summary = (
            "Bar chart of contacts by the ward the resident lives in: "
            f"{_plural(total, 'contact')}, most from {top_label} ({top.contacts:,})."
        )
    else:
        summary = "Bar chart of contacts by ward: no contacts in this period."
    return ReportTable(
        key="contacts-by-ward",
        title="Contacts by ward",
        description=(
            "Messages, calls and visits by the electoral ward of the resident's primary address "
            "(where they live now, not where a problem was)."
        ),
        period=period,
        header=["Ward", "Ward code", "Contacts"],
        rows=rows,
        numeric_from=2,
        chart={
            "type": "bar",
            "stacked": False,
            "horizontal": True,
            # Wards without a known name are charted by their code: two unnamed wards must
            # not share one label.
            "labels": [w.ward_name or w.ward_code or ward_label(w) for w in wards],
            "datasets": [{"label": "Contacts", "data": [w.contacts for w in wards]}],
            "valueTitle": "Contacts",
        },
        summary=summary,
    )


def channel_shift_report(period: Period) -> ReportTable:
    months = insight.channel_shift(period)
    rows = [
        [
            f"{m.month:%Y-%m}",
            m.digital,
            m.assisted,
            m.total,
            _percent(m.digital_percent, when_none="No contacts"),
        ]
        for m in months
    ]
    counted = [m for m in months if m.total]
    if counted:
        first, last = counted[0], counted[-1]
        summary = (
            f"Line chart of the digital share of contacts per month: {first.digital_percent}% in "
            f"{first.month:%B %Y}, {last.digital_percent}% in {last.month:%B %Y}."
        )
    else:
        summary = "Line chart of the digital share of contacts: no contacts in this period."
    return ReportTable(
        key="channel-shift",
        title="Channel shift",
        description=(
            "Share of contacts made through digital channels (e-mail, web forms, text messages "
            "and social media) rather than assisted ones (phone, in person and post), per month."
        ),
        period=period,
        header=["Month", "Digital", "Assisted", "Total", "Digital share (%)"],
        rows=rows,
        numeric_from=1,
        chart={
            "type": "line",
            "stacked": False,
            "labels": [row[0] for row in rows],
            "datasets": [
                {"label": "Digital share (%)", "data": [m.digital_percent for m in months]}
            ],
            "valueTitle": "Digital share (%)",
            "valueMax": 100,
        },
        summary=summary,
    )


@dataclass(frozen=True)
class ReportSpec:
    build: Callable[[Period, datetime.date], ReportTable]
    # The period when the officer chose none.
    default_period: Callable[[datetime.date], Period]


REPORTS: dict[str, ReportSpec] = {
    "contacts-by-week": ReportSpec(
        lambda period, today: contacts_by_week_report(period), insight.default_weekly_period
    ),
    "cases-by-service": ReportSpec(
        lambda period, today: cases_by_service_report(period), insight.default_weekly_period
    ),
    "sla": ReportSpec(sla_report, insight.default_weekly_period),
    "contacts-by-ward": ReportSpec(
        lambda period, today: contacts_by_ward_report(period), insight.default_weekly_period
    ),
    "channel-shift": ReportSpec(
        lambda period, today: channel_shift_report(period), insight.default_monthly_period
    ),
}


def build_report(
    key: str, *, period: Period | None, today: datetime.date, csv_query: str = ""
) -> ReportTable:
    spec = REPORTS[key]
    report = spec.build(period or spec.default_period(today), today)
    report.csv_query = csv_query
    return report


# --- Views --------------------------------------------------------------------------------


def _refuse(request: HttpRequest) -> HttpResponse:
    return render(request, "staff/forbidden.html", status=403)


def _form_page(request: HttpRequest, form: InsightPeriodForm, reports: list[ReportTable]):
    return render(
        request,
        "staff/insight/index.html",
        {"staff_section": "insight", "form": form, "reports": reports},
        status=400 if form.errors else 200,
    )


@require_GET
@staff_required
def insight_page(request: HttpRequest) -> HttpResponse:
    if not request.user.has_perm(PERMISSION):
        return _refuse(request)
    today = timezone.localdate()
    form = InsightPeriodForm(request.GET or None, today=today)
    if request.GET and not form.is_valid():
        # The officer asked for a period we cannot show: say why, show no misleading figures.
        return _form_page(request, form, [])
    period = form.chosen_period() if request.GET else None
    # The download links carry the period on screen, normalised (to= filled in).
    csv_query = urlencode({"from": period.start, "to": period.end}) if period else ""
    reports = [
        build_report(key, period=period, today=today, csv_query=csv_query) for key in REPORTS
    ]
    return _form_page(request, form, reports)


@require_GET
@staff_required
def insight_csv(request: HttpRequest, report: str) -> HttpResponse:
    if not request.user.has_perm(PERMISSION):
        return _refuse(request)
    if report not in REPORTS:
        raise Http404("No such report.")
    today = timezone.localdate()
    form = InsightPeriodForm(request.GET or None, today=today)
    if request.GET and not form.is_valid():
        return _form_page(request, form, [])
    period = form.chosen_period() if request.GET else None
    # Rows are built here, inside the request, and only then streamed.
    table = build_report(report, period=period, today=today)
    return csv_response(filename=table.csv_filename, header=table.header, rows=table.rows)
