"""Insight: the aggregate queries, the page (tables, charts, period form) and CSV downloads."""

import csv
import datetime
import io
import json
import re
from html.parser import HTMLParser
from zoneinfo import ZoneInfo

import pytest
from django.contrib.staticfiles import finders
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from citizenhub import insight
from citizenhub.insight import Period
from citizenhub.models import Address, ServiceCase, TimelineEntry
from citizenhub.ward_names import register_ward_name_lookup, unregister_ward_name_lookup
from democracy.models import Ward
from tests.factories import (
    AddressFactory,
    CitizenFactory,
    ServiceCaseFactory,
    ServiceFactory,
    TimelineEntryFactory,
    UserFactory,
)

LONDON = ZoneInfo("Europe/London")
Kind = TimelineEntry.Kind
Status = ServiceCase.Status
# A summer period, so British Summer Time (UTC+1) puts local midnight on the previous UTC day.
SUMMER = Period(datetime.date(2025, 6, 2), datetime.date(2025, 8, 31))
SUMMER_QUERY = {"from": "2025-06-02", "to": "2025-08-31"}


def local(day: datetime.date, hour: int = 12, minute: int = 0) -> datetime.datetime:
    return datetime.datetime.combine(day, datetime.time(hour, minute), tzinfo=LONDON)


def contact(day, *, kind=Kind.MESSAGE_IN, channel="email", hour=12, minute=0, citizen=None):
    extra = {"citizen": citizen} if citizen else {}
    return TimelineEntryFactory(
        occurred_at=local(day, hour, minute), kind=kind, channel=channel, **extra
    )


# --- Periods ------------------------------------------------------------------------------


def test_default_periods_end_today_and_start_on_a_monday_or_the_first():
    wednesday = datetime.date(2026, 2, 25)

    weekly = insight.default_weekly_period(wednesday)
    monthly = insight.default_monthly_period(wednesday)

    assert weekly == Period(datetime.date(2025, 12, 8), wednesday)
    assert len(weekly.weeks()) == 12
    assert monthly == Period(datetime.date(2025, 3, 1), wednesday)
    assert len(monthly.months()) == 12


def test_a_period_is_bounded():
    with pytest.raises(ValueError):
        Period(datetime.date(2026, 1, 2), datetime.date(2026, 1, 1))
    with pytest.raises(ValueError):
        Period(datetime.date(2024, 1, 1), datetime.date(2026, 1, 1))
    assert Period(datetime.date(2024, 1, 1), datetime.date(2025, 12, 31)).days == 731


def test_period_bounds_are_local_midnights():
    first, after = SUMMER.bounds()

    assert first == datetime.datetime(2025, 6, 1, 23, 0, tzinfo=datetime.UTC)
    assert after == datetime.datetime(2025, 8, 31, 23, 0, tzinfo=datetime.UTC)


# --- Contacts per channel per week --------------------------------------------------------


@pytest.mark.django_db
def test_contacts_by_channel_per_week_counts_resident_contacts_in_local_weeks():
    monday = datetime.date(2025, 6, 9)
    # 00:30 BST on Monday is still Sunday in UTC: it belongs to the week starting that Monday.
    contact(monday, hour=0, minute=30)
    contact(monday + datetime.timedelta(days=2))
    contact(monday, kind=Kind.CALL, channel="phone")
    contact(monday + datetime.timedelta(days=6), kind=Kind.VISIT, channel="in_person")
    contact(monday + datetime.timedelta(days=7), channel="sms")
    # Not contacts from residents, or outside the period.
    contact(monday, kind=Kind.MESSAGE_OUT)
    contact(monday, kind=Kind.NOTE, channel="")
    contact(datetime.date(2025, 6, 1), hour=23, minute=30)  # the Sunday before the period
    contact(datetime.date(2025, 9, 1), hour=0, minute=5)  # just after it

    rows = insight.contacts_by_channel_per_week(SUMMER)

    assert rows == [
        insight.WeeklyContacts(monday, "email", 2),
        insight.WeeklyContacts(monday, "in_person", 1),
        insight.WeeklyContacts(monday, "phone", 1),
        insight.WeeklyContacts(monday + datetime.timedelta(days=7), "sms", 1),
    ]
    assert rows[0].iso_week == "2025-W24"
    assert isinstance(rows[0].week_start, datetime.date)
    assert not isinstance(rows[0].week_start, datetime.datetime)


def test_iso_week_labels_use_the_iso_year():
    assert insight.iso_week_label(datetime.date(2024, 12, 30)) == "2025-W01"
    assert insight.iso_week_label(datetime.date(2027, 1, 1)) == "2026-W53"


# --- Cases by service and status ----------------------------------------------------------


@pytest.mark.django_db
def test_cases_by_service_and_status_counts_cases_opened_in_the_period():
    potholes = ServiceFactory(code="potholes", name="Potholes")
    bins = ServiceFactory(code="bins", name="Missed bins")
    ServiceFactory(code="quiet", name="Quiet service")
    ServiceFactory(code="retired", name="Retired", is_active=False)
    old = ServiceFactory(code="old-form", name="Old form", is_active=False)
    day = datetime.date(2025, 7, 1)
    for status in (Status.NEW, Status.NEW, Status.OPEN, Status.RESOLVED):
        ServiceCaseFactory(service=potholes, status=status, opened_at=local(day))
    ServiceCaseFactory(service=bins, status=Status.CLOSED, opened_at=local(day))
    ServiceCaseFactory(service=old, status=Status.WAITING, opened_at=local(day))
    # Opened at 23:30 BST the night before the period starts: outside it.
    ServiceCaseFactory(
        service=bins, status=Status.NEW, opened_at=local(datetime.date(2025, 6, 1), 23, 30)
    )

    rows = {row.service_code: row for row in insight.cases_by_service_and_status(SUMMER)}

    assert list(rows) == ["bins", "old-form", "potholes", "quiet"]  # by name; "retired" left out
    assert rows["potholes"].by_status == {
        "new": 2,
        "open": 1,
        "in_progress": 0,
        "waiting": 0,
        "resolved": 1,
        "closed": 0,
    }
    assert rows["potholes"].total == 4
    assert rows["bins"].by_status["closed"] == 1
    assert rows["bins"].total == 1
    assert rows["old-form"].by_status["waiting"] == 1
    assert rows["quiet"].total == 0


# --- SLA performance ----------------------------------------------------------------------


@pytest.mark.django_db
def test_sla_performance_compares_the_local_resolution_date_with_the_due_date():
    service = ServiceFactory(code="potholes", name="Potholes")
    ServiceFactory(code="quiet", name="Quiet service")
    due = datetime.date(2025, 7, 10)
    today = datetime.date(2025, 9, 15)

    def resolved(at: datetime.datetime, status=Status.RESOLVED):
        return ServiceCaseFactory(
            service=service,
            status=status,
            opened_at=local(datetime.date(2025, 7, 1)),
            due_on=due,
            resolved_at=at,
        )

    resolved(local(due - datetime.timedelta(days=3)))  # early
    resolved(local(due, 23, 30))  # 22:30 UTC on the due date: on time
    resolved(local(due, 9), status=Status.CLOSED)  # resolved then closed: still counts
    resolved(local(due + datetime.timedelta(days=1), 0, 30))  # 23:30 UTC on the due date: late
    resolved(local(due + datetime.timedelta(days=20)))  # late
    resolved(local(datetime.date(2025, 5, 30)))  # resolved before the period
    # Closed without a resolution: neither on time nor late.
    ServiceCaseFactory(service=service, status=Status.CLOSED, due_on=due)
    # Open now: overdue when the due date has passed, whatever the period.
    ServiceCaseFactory(service=service, status=Status.OPEN, due_on=datetime.date(2024, 1, 1))
    ServiceCaseFactory(service=service, status=Status.WAITING, due_on=today - datetime.timedelta(1))
    ServiceCaseFactory(service=service, status=Status.IN_PROGRESS, due_on=today)  # due today
    ServiceCaseFactory(service=service, status=Status.NEW, due_on=today + datetime.timedelta(1))

    rows = {row.service_code: row for row in insight.sla_performance(SUMMER, today=today)}

    potholes = rows["potholes"]
    assert (potholes.resolved_on_time, potholes.resolved_late, potholes.open_overdue) == (3, 2, 2)
    assert potholes.resolved == 5
    assert potholes.on_time_percent == 60.0
    assert rows["quiet"].on_time_percent is None
    assert rows["quiet"].open_overdue == 0


# --- Contacts by ward ---------------------------------------------------------------------


@pytest.mark.django_db
def test_contacts_by_ward_uses_the_residents_primary_address_and_registered_names():
    Ward.objects.create(gss_code="E05000001", name="Abbey")
    Ward.objects.create(gss_code="E05000002", name="Bridge")
    abbey = AddressFactory(ward_code="E05000001").citizen
    bridge = AddressFactory(ward_code="E05000002").citizen
    # Moved from Abbey to Bridge: the newer primary address counts, and only once.
    AddressFactory(citizen=bridge, ward_code="E05000001", is_primary=True)
    Address.objects.filter(citizen=bridge, ward_code="E05000001").update(
        created_at=local(datetime.date(2020, 1, 1))
    )
    unknown = AddressFactory(ward_code="+E05cmd").citizen  # a code no lookup knows
    secondary_only = AddressFactory(ward_code="E05000001", is_primary=False).citizen
    homeless = CitizenFactory()
    day = datetime.date(2025, 7, 1)
    for citizen, times in (
        (abbey, 3),
        (bridge, 2),
        (unknown, 1),
        (secondary_only, 1),
        (homeless, 1),
    ):
        for _ in range(times):
            contact(day, citizen=citizen)
    contact(day, kind=Kind.CALL, channel="phone", citizen=abbey)
    contact(day, kind=Kind.MESSAGE_OUT, citizen=abbey)  # not a contact

    rows = insight.contacts_by_ward(SUMMER)

    assert rows == [
        insight.WardContacts("E05000001", "Abbey", 4),
        insight.WardContacts("", "", 2),
        insight.WardContacts("E05000002", "Bridge", 2),
        insight.WardContacts("+E05cmd", "", 1),
    ]


@pytest.mark.django_db
def test_contacts_by_ward_shows_codes_when_no_app_knows_the_names():
    Ward.objects.create(gss_code="E05000001", name="Abbey")
    contact(datetime.date(2025, 7, 1), citizen=AddressFactory(ward_code="E05000001").citizen)
    unregister_ward_name_lookup("democracy")
    try:
        rows = insight.contacts_by_ward(SUMMER)
    finally:
        from democracy.apps import ward_names_for_codes

        register_ward_name_lookup("democracy", ward_names_for_codes)

    assert rows == [insight.WardContacts("E05000001", "", 1)]


# --- Channel shift ------------------------------------------------------------------------


@pytest.mark.django_db
def test_channel_shift_splits_digital_from_assisted_contacts_per_local_month():
    june, august = datetime.date(2025, 6, 10), datetime.date(2025, 8, 10)
    for channel in ("email", "web", "sms", "facebook"):
        contact(june, channel=channel)
    contact(june, kind=Kind.CALL, channel="phone")
    contact(june, kind=Kind.VISIT, channel="in_person")
    contact(june, channel="post")
    contact(june, channel="system")  # neither
    contact(june, channel="")  # neither
    contact(august, channel="x")
    # 00:30 BST on 1 August is 31 July in UTC: it belongs to August.
    contact(datetime.date(2025, 8, 1), kind=Kind.CALL, channel="phone", hour=0, minute=30)

    rows = insight.channel_shift(SUMMER)

    assert rows == [
        insight.ChannelShiftMonth(datetime.date(2025, 6, 1), 4, 3),
        insight.ChannelShiftMonth(datetime.date(2025, 7, 1), 0, 0),
        insight.ChannelShiftMonth(datetime.date(2025, 8, 1), 1, 1),
    ]
    assert [row.digital_percent for row in rows] == [57.1, None, 50.0]


# --- The page -----------------------------------------------------------------------------


class _Tables(HTMLParser):
    """Every <table> of a page as {caption: [header row, body rows...]}."""

    def __init__(self):
        super().__init__()
        self.tables, self._rows, self._row, self._cell, self._caption = {}, None, None, None, None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self._rows, self._caption = [], ""
        elif tag == "caption":
            self._cell = []
        elif tag == "tr" and self._rows is not None:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "caption":
            self._caption, self._cell = "".join(self._cell).strip(), None
        elif tag in ("td", "th") and self._row is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self._rows.append(self._row)
            self._row = None
        elif tag == "table":
            self.tables[self._caption] = self._rows
            self._rows = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def page_tables(response) -> dict[str, list[list[str]]]:
    parser = _Tables()
    parser.feed(response.content.decode())
    return {caption.split(",")[0]: rows for caption, rows in parser.tables.items()}


def csv_rows(response) -> list[list[str]]:
    body = b"".join(response.streaming_content).decode("utf-8").removeprefix("\ufeff")
    return list(csv.reader(io.StringIO(body, newline="")))


@pytest.fixture
def summer_data(db):
    """A little of everything in the summer period, including text that looks like formulas."""
    Ward.objects.create(gss_code="E05000001", name="Abbey")
    evil = ServiceFactory(code="evil", name='=HYPERLINK("https://evil.example","Click me")')
    care = ServiceFactory(code="care", name="Adult social care", is_sensitive=True)
    day = datetime.date(2025, 7, 1)
    ServiceCaseFactory(
        service=evil,
        status=Status.RESOLVED,
        opened_at=local(day),
        due_on=day,
        resolved_at=local(day),
    )
    ServiceCaseFactory(
        service=care,
        status=Status.OPEN,
        opened_at=local(day),
        due_on=datetime.date(2025, 7, 5),
        title="Confidential: safeguarding concern about Mrs Example",
    )
    abbey = AddressFactory(ward_code="E05000001").citizen
    plus = AddressFactory(ward_code="+cmd|'/C").citizen
    contact(day, citizen=abbey)
    contact(day, kind=Kind.CALL, channel="phone", citizen=abbey)
    contact(datetime.date(2025, 8, 4), channel="web", citizen=plus)
    return {"evil": evil, "care": care}


@pytest.mark.django_db
def test_the_page_shows_each_report_as_a_chart_and_a_table(client, caseworker, summer_data):
    client.force_login(caseworker)

    response = client.get(reverse("staff:insight"), SUMMER_QUERY)

    assert response.status_code == 200
    tables = page_tables(response)
    assert set(tables) == {
        "Contacts per week by channel",
        "Cases by service and status",
        "Deadline performance by service",
        "Contacts by ward",
        "Channel shift",
    }
    weekly = tables["Contacts per week by channel"]
    assert weekly[0] == [
        "ISO week",
        "Week beginning",
        "E-mail",
        "Phone call",
        "Web form or portal",
        "Total",
    ]
    assert len(weekly) == 1 + 13  # 2 June is a Monday, 31 August a Sunday: 13 whole weeks
    assert ["2025-W27", "2025-06-30", "1", "1", "0", "2"] in weekly
    assert ["2025-W32", "2025-08-04", "0", "0", "1", "1"] in weekly
    assert tables["Contacts by ward"] == [
        ["Ward", "Ward code", "Contacts"],
        ["Abbey", "E05000001", "2"],
        ["Ward name not known", "+cmd|'/C", "1"],
    ]
    sla = {row[1]: row for row in tables["Deadline performance by service"]}
    assert sla["evil"] == [
        '=HYPERLINK("https://evil.example","Click me")',
        "evil",
        "1",
        "0",
        "100.0",
        "0",
    ]
    assert sla["care"] == ["Adult social care", "care", "0", "0", "None resolved", "1"]
    shift = tables["Channel shift"]
    assert shift[1:] == [
        ["2025-06", "0", "0", "0", "No contacts"],
        ["2025-07", "1", "1", "2", "50.0"],
        ["2025-08", "1", "0", "1", "100.0"],
    ]
    html = response.content.decode()
    # Counts only: a sensitive case's title never reaches the page.
    assert "safeguarding" not in html
    # Each chart: a labelled image role, its data as JSON, hidden until the script draws it.
    assert html.count('role="img"') == 5
    assert (
        '<canvas id="contacts-by-ward-chart" role="img" aria-label="Bar chart of contacts by the '
        "ward the resident lives in: 3 contacts, most from Abbey (2). The table below gives the "
        'figures."'
    ) in html
    chart = json.loads(
        re.search(
            r'<script id="channel-shift-chart-data" type="application/json">(.*?)</script>', html
        ).group(1)
    )
    assert chart["labels"] == ["2025-06", "2025-07", "2025-08"]
    assert chart["datasets"][0]["data"] == [None, 50.0, 100.0]
    assert "vendor/chartjs/chart.umd.js" in html
    assert "citizenhub/insight.js" in html
    # The download links carry the period on screen.
    assert 'href="/staff/insight/sla.csv?from=2025-06-02&amp;to=2025-08-31"' in html


@pytest.mark.django_db
def test_the_page_defaults_to_recent_weeks_and_months(client, supervisor):
    client.force_login(supervisor)
    contact(datetime.date.today() - datetime.timedelta(days=1))

    response = client.get(reverse("staff:insight"))

    assert response.status_code == 200
    reports = {report.key: report for report in response.context["reports"]}
    assert len(reports["contacts-by-week"].rows) == 12
    assert len(reports["channel-shift"].rows) == 12
    assert reports["contacts-by-week"].period.end == reports["channel-shift"].period.end
    assert 'href="/staff/insight/sla.csv"' in response.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "report", ["contacts-by-week", "cases-by-service", "sla", "contacts-by-ward", "channel-shift"]
)
def test_each_csv_download_matches_its_table_with_formulas_escaped(
    client, caseworker, summer_data, report
):
    client.force_login(caseworker)
    tables = page_tables(client.get(reverse("staff:insight"), SUMMER_QUERY))

    response = client.get(reverse("staff:insight-csv", kwargs={"report": report}), SUMMER_QUERY)

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == (
        f'attachment; filename="{report}-2025-06-02-to-2025-08-31.csv"'
    )
    table = next(
        rows for caption, rows in tables.items() if rows and _report_key(caption) == report
    )

    def escaped(cell: str) -> str:
        return "'" + cell if cell[:1] in ("=", "+", "-", "@", "\t", "\r") else cell

    assert csv_rows(response) == [[escaped(cell) for cell in row] for row in table]


def _report_key(caption: str) -> str:
    return {
        "Contacts per week by channel": "contacts-by-week",
        "Cases by service and status": "cases-by-service",
        "Deadline performance by service": "sla",
        "Contacts by ward": "contacts-by-ward",
        "Channel shift": "channel-shift",
    }[caption]


@pytest.mark.django_db
def test_formula_cells_are_escaped_in_the_csv(client, caseworker, summer_data):
    client.force_login(caseworker)

    sla = csv_rows(client.get(reverse("staff:insight-csv", kwargs={"report": "sla"}), SUMMER_QUERY))
    wards = csv_rows(
        client.get(
            reverse("staff:insight-csv", kwargs={"report": "contacts-by-ward"}), SUMMER_QUERY
        )
    )

    assert [
        '\'=HYPERLINK("https://evil.example","Click me")',
        "evil",
        "1",
        "0",
        "100.0",
        "0",
    ] in sla
    assert ["Ward name not known", "'+cmd|'/C", "1"] in wards


@pytest.mark.django_db
def test_an_unknown_report_is_not_found(client, caseworker):
    client.force_login(caseworker)

    response = client.get("/staff/insight/secrets.csv")

    assert response.status_code == 404


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ({"from": "2025-13-45"}, "from", "The start date must be a real date"),
        ({"from": "yesterday"}, "from", "The start date must be a real date"),
        ({"from": "2025-01-01", "to": "31/13/2025"}, "to", "The end date must be a real date"),
        ({"from": "2025-01-01", "to": "01-31-2025"}, "to", "The end date must be a real date"),
        ({"from": "2025-02-01", "to": "2025-01-01"}, "from", "on or before the end date"),
        ({"from": "2022-01-01", "to": "2025-01-01"}, "from", "at most 2 years"),
        ({"from": "2000-01-01"}, "from", "at most 2 years"),
        ({"from": "2025-01-01", "to": "9999-12-31"}, "to", "today or in the past"),
        ({"from": "9999-12-31"}, "from", "on or before the end date"),
        ({"to": "2025-01-01"}, "from", "Enter a start date"),
    ],
)
def test_a_bad_period_is_a_form_error_not_a_crash(client, caseworker, query, field, message):
    client.force_login(caseworker)

    page = client.get(reverse("staff:insight"), query)
    download = client.get(reverse("staff:insight-csv", kwargs={"report": "sla"}), query)

    for response in (page, download):
        assert response.status_code == 400
        html = response.content.decode()
        assert "govuk-error-summary" in html
        assert message in html
        assert f'href="#id_{field}"' in html
        assert "<title>Error:" in html
        assert response.context["reports"] == []


@pytest.mark.django_db
def test_dates_can_be_written_day_first_and_links_carry_them_as_iso(client, caseworker):
    client.force_login(caseworker)

    response = client.get(reverse("staff:insight"), {"from": "2/6/2025", "to": "31/08/2025"})

    assert response.status_code == 200
    assert {report.period for report in response.context["reports"]} == {SUMMER}
    html = response.content.decode()
    assert 'value="2/6/2025"' in html  # the officer's own text stays in the box
    assert 'href="/staff/insight/channel-shift.csv?from=2025-06-02&amp;to=2025-08-31"' in html


@pytest.mark.django_db
def test_a_bad_date_is_shown_back_as_typed(client, caseworker):
    client.force_login(caseworker)

    response = client.get(reverse("staff:insight"), {"from": "30/2/2025"})

    assert response.status_code == 400
    assert 'value="30/2/2025"' in response.content.decode()


@pytest.mark.django_db
def test_dates_at_the_edge_of_the_calendar_are_answered_without_a_crash(client, caseworker):
    client.force_login(caseworker)
    ancient = {"from": "0001-01-01", "to": "0001-01-02"}
    csv_url = reverse("staff:insight-csv", kwargs={"report": "contacts-by-week"})

    assert client.get(reverse("staff:insight"), ancient).status_code == 200
    assert csv_rows(client.get(csv_url, ancient))[1][:2] == ["0001-W01", "0001-01-01"]
    assert client.get(reverse("staff:insight"), {"from": "31/12/9999"}).status_code == 400


@pytest.mark.django_db
def test_empty_dates_mean_the_default_period(client, caseworker):
    client.force_login(caseworker)

    response = client.get(reverse("staff:insight"), {"from": "", "to": ""})

    assert response.status_code == 200
    assert len(response.context["reports"]) == 5


@pytest.mark.django_db
def test_a_start_date_alone_runs_to_today(client, caseworker):
    client.force_login(caseworker)
    start = datetime.date.today() - datetime.timedelta(days=30)

    response = client.get(reverse("staff:insight"), {"from": start.isoformat()})

    assert response.status_code == 200
    periods = {report.period for report in response.context["reports"]}
    assert periods == {Period(start, datetime.date.today())}


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/staff/insight/", "/staff/insight/sla.csv"])
def test_staff_without_the_case_permission_are_refused(client, staff_user, url):
    client.force_login(staff_user)

    response = client.get(url)

    assert response.status_code == 403
    assert b"You do not have access" in response.content


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/staff/insight/", "/staff/insight/sla.csv"])
def test_residents_are_refused_and_visitors_sent_to_sign_in(client, url):
    assert client.get(url).status_code == 302
    client.force_login(UserFactory())
    assert client.get(url).status_code == 403


@pytest.mark.django_db
def test_the_page_only_answers_get(client, caseworker):
    client.force_login(caseworker)

    assert client.post(reverse("staff:insight")).status_code == 405


def _make_data(first: int, last: int) -> None:
    day = datetime.date(2025, 7, 1)
    for n in range(first, last):
        service = ServiceFactory()
        ward = f"E0500{n:04d}"
        Ward.objects.create(gss_code=ward, name=f"Ward {n}")
        citizen = AddressFactory(ward_code=ward).citizen
        for channel in ("email", "phone", "web", "sms"):
            contact(day + datetime.timedelta(days=n), channel=channel, citizen=citizen)
        ServiceCaseFactory(service=service, status=Status.OPEN, opened_at=local(day), due_on=day)
        ServiceCaseFactory(
            service=service,
            status=Status.RESOLVED,
            opened_at=local(day),
            due_on=day,
            resolved_at=local(day + datetime.timedelta(days=n)),
        )


@pytest.mark.django_db
def test_the_page_runs_the_same_number_of_queries_whatever_the_data(
    client, caseworker, django_assert_max_num_queries
):
    client.force_login(caseworker)
    url = reverse("staff:insight")
    _make_data(0, 1)
    client.get(url, SUMMER_QUERY)  # warm the session and content-type caches
    with CaptureQueriesContext(connection) as small:
        assert client.get(url, SUMMER_QUERY).status_code == 200

    _make_data(1, 9)
    with CaptureQueriesContext(connection) as larger:
        response = client.get(url, SUMMER_QUERY)
    assert response.status_code == 200
    assert len(page_tables(response)["Contacts by ward"]) == 1 + 9

    assert len(larger) == len(small)
    # One query per report and one for the ward names; the rest is the session, the user and
    # their permissions (headroom for the staff layout's own needs).
    report_tables = ("citizenhub_timelineentry", "citizenhub_service", "democracy_ward")
    report_queries = [
        q for q in larger.captured_queries if any(t in q["sql"] for t in report_tables)
    ]
    assert len(report_queries) == 6
    with django_assert_max_num_queries(12):
        client.get(url, SUMMER_QUERY)


@pytest.mark.django_db
def test_a_csv_download_runs_a_constant_number_of_queries(client, caseworker):
    client.force_login(caseworker)
    url = reverse("staff:insight-csv", kwargs={"report": "contacts-by-ward"})
    _make_data(0, 1)
    client.get(url, SUMMER_QUERY)
    with CaptureQueriesContext(connection) as small:
        csv_rows(client.get(url, SUMMER_QUERY))
    _make_data(1, 9)
    with CaptureQueriesContext(connection) as larger:
        rows = csv_rows(client.get(url, SUMMER_QUERY))

    assert len(rows) == 1 + 9
    assert len(larger) == len(small)


def test_chart_js_and_the_page_script_are_served_by_the_app():
    assert finders.find("vendor/chartjs/chart.umd.js")
    assert finders.find("citizenhub/insight.js")
