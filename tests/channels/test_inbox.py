"""The unified inbox pages at /staff/inbox/: the list, its polled rows, one conversation with
its reply/assign/case actions, the panels on the case and citizen pages, and who may see
what of sensitive conversations."""

import itertools
import re

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.template.loader import render_to_string
from django.test.utils import CaptureQueriesContext

from channels import selectors
from channels.models import Channel, InboundMessage, OutboundMessage, Thread
from channels.services.ingest import store_raw_messages
from channels.staff.panels import case_messages_panel, citizen_conversations_panel
from citizenhub.models import CaseEvent, ServiceCase
from citizenhub.services.cases import open_case
from tests.channels.conftest import eml, raw_email
from tests.channels.sink import smtp_sink
from tests.factories import CitizenFactory, ServiceFactory, StaffUserFactory, TeamFactory

pytestmark = pytest.mark.django_db

INBOX = "/staff/inbox/"
ROWS = "/staff/inbox/rows/"
_numbers = itertools.count(1)


def grant(user, *names):
    for name in names:
        app, codename = name.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app, codename=codename)
        )
    # Django caches permissions on the instance: a fresh one sees the new grants.
    return type(user).objects.get(pk=user.pk)


@pytest.fixture
def officer(caseworker):
    """A caseworker who may also reply to and assign conversations."""
    return grant(caseworker, "channels.add_outboundmessage", "channels.change_thread")


@pytest.fixture
def officer_client(client, officer):
    client.force_login(officer)
    return client


@pytest.fixture
def sink(email_channel):
    with smtp_sink() as (handler, port):
        email_channel.settings = {**email_channel.settings, "smtp_port": port}
        email_channel.save()
        yield handler


@pytest.fixture
def ingested(email_channel, django_capture_on_commit_callbacks):
    """A real conversation: Jane's e-mail about her bin, through the pipeline."""
    with django_capture_on_commit_callbacks(execute=True):
        store_raw_messages(channel=email_channel, raws=[raw_email(eml("simple.eml"))])
    return Thread.objects.select_related("citizen").get()


def make_thread(channel, *, subject="Pothole on Mill Lane", text="A deep pothole.", **fields):
    """A thread with one processed message, written directly (fast, for lists)."""
    citizen = fields.pop("citizen", None) or CitizenFactory()
    thread = Thread.objects.create(channel=channel, citizen=citizen, subject=subject, **fields)
    InboundMessage.objects.create(
        channel=channel,
        external_id=f"made-{next(_numbers)}",
        raw=b"",
        status="processed",
        classification="message",
        sender_kind="email",
        sender_value="resident@example.org",
        subject=subject,
        summary_text=text,
        body_text=text,
        thread=thread,
        citizen=citizen,
        received_at=thread.last_message_at,
    )
    return thread


@pytest.fixture
def sensitive():
    """Adult social care: a sensitive service run by its own team, with one member."""
    team = TeamFactory(slug="adult-social-care", name="Adult social care")
    member = StaffUserFactory()
    team.members.add(member)
    service = ServiceFactory(
        code="asc-referral", name="Adult social care referral", team=team, is_sensitive=True
    )
    return service, member


# --- The list ------------------------------------------------------------------------------


def test_inbox_lists_threads_from_every_channel_newest_first(officer_client, email_channel):
    sms = Channel.objects.create(kind="sms-notify", slug="sms", name="Council SMS")
    older = make_thread(email_channel, subject="Older e-mail")
    newer = make_thread(sms, subject="Newer text message", text="Bin missed again")
    team = TeamFactory(name="Waste services")
    case = open_case(service=ServiceFactory(), title="Bin", citizen=newer.citizen)
    Thread.objects.filter(pk=newer.pk).update(team=team, case=case)

    response = officer_client.get(INBOX)
    assert response.status_code == 200
    html = response.content.decode()
    assert html.index("Newer text message") < html.index("Older e-mail")
    assert "Text message" in html and "Council SMS" in html
    assert f"/staff/citizens/{newer.citizen.public_id}/" in html
    assert "Bin missed again" in html  # the latest message's preview
    assert "Waste services" in html and case.reference in html
    assert f'href="/staff/inbox/{older.pk}/"' in html
    assert '<caption class="govuk-table__caption' in html


def test_inbox_filters(officer_client, officer, email_channel):
    sms = Channel.objects.create(kind="sms-notify", slug="sms", name="Council SMS")
    team = TeamFactory(slug="waste", name="Waste")
    on_sms = make_thread(sms, subject="On SMS")
    in_team = make_thread(email_channel, subject="For the waste team", team=team)
    done = make_thread(email_channel, subject="Already done", status="done")
    mine = make_thread(email_channel, subject="Mine to answer", assigned_to=officer)
    someone_elses = make_thread(
        email_channel, subject="Someone else's", assigned_to=StaffUserFactory()
    )

    def subjects(**params):
        response = officer_client.get(INBOX, params)
        assert response.status_code == 200
        return {row.subject for row in response.context["rows"]}

    everything_open = {t.subject for t in (on_sms, in_team, mine, someone_elses)}
    assert subjects() == everything_open  # open and waiting by default
    assert subjects(channel="sms") == {"On SMS"}
    assert subjects(team="waste") == {"For the waste team"}
    assert subjects(status="done") == {done.subject}
    assert subjects(status=["open", "waiting", "done"]) == everything_open | {done.subject}
    assert subjects(assigned="mine") == {"Mine to answer"}
    assert subjects(assigned="unassigned") == {"On SMS", "For the waste team"}


def test_bad_filters_are_a_400_with_an_error_summary(officer_client, email_channel):
    make_thread(email_channel)
    for params in ({"channel": "nope"}, {"status": "lost"}, {"after": "not-a-cursor"}):
        response = officer_client.get(INBOX, params)
        assert response.status_code == 400, params
        html = response.content.decode()
        assert "There is a problem" in html and "<title>Error:" in html


def test_keyset_pages_follow_on_without_repeating(officer_client, email_channel, monkeypatch):
    monkeypatch.setattr(selectors, "INBOX_PAGE_SIZE", 2)
    threads = [make_thread(email_channel, subject=f"Thread {n}") for n in range(5)]
    seen = []
    url = INBOX
    while url:
        response = officer_client.get(url)
        assert response.status_code == 200
        seen += [row.thread.pk for row in response.context["rows"]]
        next_url = response.context["next_url"]
        url = INBOX + next_url if next_url else None
    assert seen == sorted((t.pk for t in threads), reverse=True)


def test_the_list_polls_its_rows_every_15_seconds_with_the_same_filters(
    officer_client, email_channel
):
    make_thread(email_channel, subject="First")
    html = officer_client.get(INBOX, {"channel": "contact"}).content.decode()
    tbody = re.search(r"<tbody[^>]*>", html).group(0)
    assert 'hx-trigger="every 15s"' in tbody
    assert 'hx-get="/staff/inbox/rows/?channel=contact&amp;status=open&amp;status=waiting"' in (
        tbody
    )
    make_thread(email_channel, subject="Arrived since")
    rows = officer_client.get(
        ROWS, {"channel": "contact", "status": ["open", "waiting"]}, HTTP_HX_REQUEST="true"
    )
    assert rows.status_code == 200
    fragment = rows.content.decode()
    assert fragment.lstrip().startswith("<tbody") and "<html" not in fragment
    assert "Arrived since" in fragment and 'hx-trigger="every 15s"' in fragment


def test_polling_after_signing_out_gets_an_empty_401_htmx_does_not_swap(client):
    response = client.get(ROWS, HTTP_HX_REQUEST="true")
    assert response.status_code == 401 and response.content == b""


# --- Permissions ---------------------------------------------------------------------------


def test_anonymous_visitors_are_sent_to_sign_in(client, email_channel):
    thread = make_thread(email_channel)
    for url in (INBOX, f"{INBOX}{thread.pk}/"):
        response = client.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_residents_are_refused(client, resident_user, email_channel):
    thread = make_thread(email_channel)
    client.force_login(resident_user)
    assert client.get(INBOX).status_code == 403
    assert client.post(f"{INBOX}{thread.pk}/reply/", {"body": "hi"}).status_code == 403
    assert OutboundMessage.objects.count() == 0


def test_staff_without_view_thread_are_refused(client, staff_user, email_channel):
    thread = make_thread(email_channel)
    client.force_login(staff_user)
    assert client.get(INBOX).status_code == 403
    assert client.get(f"{INBOX}{thread.pk}/").status_code == 403
    assert client.get(ROWS, HTTP_HX_REQUEST="true").status_code == 403


def test_readers_cannot_reply_assign_or_open_cases(client, email_channel):
    reader = grant(StaffUserFactory(), "channels.view_thread")
    thread = make_thread(email_channel)
    client.force_login(reader)
    page = client.get(f"{INBOX}{thread.pk}/").content.decode()
    assert "Send reply" not in page and "Open case" not in page
    assert f"/{thread.pk}/assign/" not in page and "Mark as done" not in page
    posts = {
        "reply": {"body": "hi"},
        "assign": {"assignee": "me"},
        "status": {"action": "done"},
        "case/open": {"service": ServiceFactory().pk, "title": "x"},
        "case/link": {"reference": "CH-2026-000001"},
    }
    for action, data in posts.items():
        assert client.post(f"{INBOX}{thread.pk}/{action}/", data).status_code == 403, action
    thread.refresh_from_db()
    assert (thread.status, thread.assigned_to, thread.case) == ("open", None, None)


def test_unknown_thread_is_404(officer_client):
    assert officer_client.get(f"{INBOX}999999/").status_code == 404
    assert officer_client.post(f"{INBOX}999999/reply/", {"body": "x"}).status_code == 404


def test_pages_refuse_other_methods(officer_client, email_channel):
    thread = make_thread(email_channel)
    assert officer_client.post(INBOX).status_code == 405
    assert officer_client.get(f"{INBOX}{thread.pk}/reply/").status_code == 405


# --- One conversation ----------------------------------------------------------------------


def test_thread_page_shows_messages_and_prefilled_case_form(officer_client, ingested):
    response = officer_client.get(f"{INBOX}{ingested.pk}/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Missed bin collection on Ash Grove" in html
    assert "Our green bin at 14 Ash Grove was not collected" in html
    assert f"Reply to {ingested.citizen.display_name}" in html
    assert 'value="Missed bin collection on Ash Grove"' in html  # the case title
    assert response.context["open_case_form"].initial["description"].startswith("Hello")


def test_reply_is_sent_through_the_email_channel(
    officer_client, ingested, sink, officer, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = officer_client.post(
            f"{INBOX}{ingested.pk}/reply/", {"body": "We will collect it tomorrow."}
        )
    assert response.status_code == 302 and response["Location"] == f"{INBOX}{ingested.pk}/"
    outbound = OutboundMessage.objects.get()
    assert outbound.status == "sent" and outbound.created_by == officer
    [mail] = sink.received
    assert mail.rcpt_tos == ["Jane.Resident@example.org"]
    page = officer_client.get(response["Location"]).content.decode()
    # In a test the send runs after the view returns (on commit of the test transaction),
    # so the banner says queued; the page shows it sent.
    assert "Your reply is queued" in page and "govuk-notification-banner" in page
    assert "govuk-tag--green" in page and "Sent" in page
    assert "We will collect it tomorrow." in page


def test_reply_on_a_disabled_channel_is_queued_with_a_visible_error(
    officer_client, ingested, email_channel
):
    Channel.objects.filter(pk=email_channel.pk).update(enabled=False)
    response = officer_client.post(f"{INBOX}{ingested.pk}/reply/", {"body": "Noted, thanks."})
    assert response.status_code == 302
    outbound = OutboundMessage.objects.get()
    assert outbound.status == "queued" and "Channel is disabled" in outbound.last_error
    page = officer_client.get(response["Location"]).content.decode()
    assert "queued, but not sent yet" in page  # the banner
    assert "Queued, not sent yet" in page and "This reply is waiting to be sent" in page
    assert "Channel is disabled; queued until it is enabled again." in page
    assert "Noted, thanks." in page  # not lost


def test_an_empty_reply_shows_an_error_summary_and_queues_nothing(officer_client, ingested):
    response = officer_client.post(f"{INBOX}{ingested.pk}/reply/", {"body": "   "})
    assert response.status_code == 400
    html = response.content.decode()
    assert "There is a problem" in html and "Write a reply before sending." in html
    assert 'href="#id_body"' in html
    assert OutboundMessage.objects.count() == 0


def test_a_reply_the_service_refuses_shows_its_reason(officer_client, ingested):
    ingested.citizen.contact_points.update(undeliverable_at="2026-01-01T00:00:00Z")
    response = officer_client.post(f"{INBOX}{ingested.pk}/reply/", {"body": "Hello?"})
    assert response.status_code == 400
    html = response.content.decode()
    assert "There is a problem" in html and "no deliverable address" in html
    assert "Hello?" in html  # the officer's text is kept
    assert OutboundMessage.objects.count() == 0


def test_reply_from_the_case_page_goes_back_there_but_never_off_site(
    officer_client, ingested, sink
):
    case_url = "/staff/cases/CH-2026-000001/"
    response = officer_client.post(
        f"{INBOX}{ingested.pk}/reply/", {"body": "On it.", "next": case_url}
    )
    assert response["Location"] == case_url
    response = officer_client.post(
        f"{INBOX}{ingested.pk}/reply/", {"body": "Again.", "next": "https://evil.example/"}
    )
    assert response["Location"] == f"{INBOX}{ingested.pk}/"


def test_assign_to_me_to_a_team_member_and_unassign(officer_client, officer, email_channel):
    team = TeamFactory()
    member = StaffUserFactory(first_name="Ravi", last_name="Patel")
    team.members.add(member)
    thread = make_thread(email_channel, team=team)
    url = f"{INBOX}{thread.pk}/assign/"
    page = officer_client.get(f"{INBOX}{thread.pk}/").content.decode()
    assert "Ravi Patel" in page

    assert officer_client.post(url, {"assignee": "me"}).status_code == 302
    thread.refresh_from_db()
    assert thread.assigned_to == officer
    officer_client.post(url, {"assignee": str(member.pk)})
    thread.refresh_from_db()
    assert thread.assigned_to == member
    response = officer_client.post(url, {"assignee": "nobody"}, follow=True)
    assert "is unassigned" in response.content.decode()
    thread.refresh_from_db()
    assert thread.assigned_to is None

    outsider = StaffUserFactory()
    response = officer_client.post(url, {"assignee": str(outsider.pk)})
    assert response.status_code == 400 and "Select a valid choice" in response.content.decode()


def test_mark_done_and_reopen(officer_client, email_channel):
    thread = make_thread(email_channel)
    url = f"{INBOX}{thread.pk}/status/"
    response = officer_client.post(url, {"action": "done"}, follow=True)
    assert "marked as done" in response.content.decode()
    thread.refresh_from_db()
    assert thread.status == "done"
    assert "Reopen" in response.content.decode()
    officer_client.post(url, {"action": "reopen"})
    thread.refresh_from_db()
    assert thread.status == "open"
    assert officer_client.post(url, {"action": "explode"}).status_code == 400


def test_open_a_case_from_a_message(officer_client, officer, ingested):
    service = ServiceFactory(name="Missed bin collection")
    response = officer_client.post(
        f"{INBOX}{ingested.pk}/case/open/",
        {"service": service.pk, "title": "Missed green bin", "description": "Green bin missed."},
    )
    assert response.status_code == 302
    case = ServiceCase.objects.get()
    assert (case.title, case.description, case.service) == (
        "Missed green bin",
        "Green bin missed.",
        service,
    )
    assert case.citizen == ingested.citizen and case.created_by == officer
    ingested.refresh_from_db()
    assert ingested.case == case
    page = officer_client.get(response["Location"]).content.decode()
    assert f"Case {case.reference} is open" in page
    assert f'href="/staff/cases/{case.reference}/"' in page
    assert "Open case" not in page  # linked: no second case from this thread


def test_open_case_with_bad_input_shows_errors(officer_client, ingested):
    inactive = ServiceFactory(is_active=False)
    for data, error in (
        ({"title": "x"}, "Choose the service the case is for."),
        ({"service": inactive.pk, "title": "x"}, "Choose a service from the list."),
        ({"service": ServiceFactory().pk, "title": ""}, "Give the case a title."),
    ):
        response = officer_client.post(f"{INBOX}{ingested.pk}/case/open/", data)
        assert response.status_code == 400
        assert error in response.content.decode()
    assert ServiceCase.objects.count() == 0


def test_opening_a_case_needs_the_permission(client, ingested):
    reader = grant(StaffUserFactory(), "channels.view_thread", "channels.change_thread")
    client.force_login(reader)
    response = client.post(
        f"{INBOX}{ingested.pk}/case/open/", {"service": ServiceFactory().pk, "title": "x"}
    )
    assert response.status_code == 403 and ServiceCase.objects.count() == 0


def test_link_to_an_existing_case_by_reference(officer_client, ingested):
    case = open_case(service=ServiceFactory(), title="Earlier", citizen=ingested.citizen)
    response = officer_client.post(
        f"{INBOX}{ingested.pk}/case/link/", {"reference": f" {case.reference.lower()} "}
    )
    assert response.status_code == 302
    ingested.refresh_from_db()
    assert ingested.case == case
    assert case.events.filter(kind=CaseEvent.Kind.LINKED).exists()


def test_an_officer_outside_the_team_cannot_link_to_a_sensitive_case(
    officer_client, ingested, sensitive
):
    service, _member = sensitive
    case = open_case(service=service, title="Care at home", citizen=ingested.citizen)
    response = officer_client.post(
        f"{INBOX}{ingested.pk}/case/link/", {"reference": case.reference}
    )
    assert response.status_code == 400
    assert "only its team can link to it" in response.content.decode()
    assert "Care at home" not in response.content.decode()
    ingested.refresh_from_db()
    assert ingested.case is None
    assert not case.events.filter(kind=CaseEvent.Kind.LINKED).exists()


def test_linking_an_unknown_reference_is_a_form_error(officer_client, ingested):
    response = officer_client.post(
        f"{INBOX}{ingested.pk}/case/link/", {"reference": "CH-2026-999999"}
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert "There is no case with the reference CH-2026-999999" in html
    assert 'href="#id_reference"' in html
    ingested.refresh_from_db()
    assert ingested.case is None


def test_linking_another_residents_case_is_a_form_error(officer_client, ingested):
    case = open_case(service=ServiceFactory(), title="Not hers", citizen=CitizenFactory())
    response = officer_client.post(
        f"{INBOX}{ingested.pk}/case/link/", {"reference": case.reference}
    )
    assert response.status_code == 400 and "about another resident" in response.content.decode()


# --- Sensitive conversations ---------------------------------------------------------------


def test_sensitive_conversation_is_redacted_for_an_officer_outside_the_team(
    officer_client, email_channel, sensitive
):
    service, _member = sensitive
    thread = make_thread(
        email_channel,
        subject="Care assessment for my father",
        text="He fell twice this week.",
        service_code=service.code,
    )
    html = officer_client.get(INBOX).content.decode()
    assert "Sensitive conversation" in html
    assert "Care assessment" not in html and "fell twice" not in html

    response = officer_client.get(f"{INBOX}{thread.pk}/")
    assert response.status_code == 200  # it exists, and says so
    page = response.content.decode()
    assert "Sensitive conversation" in page and thread.reference in page
    assert "Care assessment" not in page and "fell twice" not in page
    assert "Send reply" not in page
    assert officer_client.post(f"{INBOX}{thread.pk}/reply/", {"body": "x"}).status_code == 403
    assert officer_client.post(f"{INBOX}{thread.pk}/assign/", {"assignee": "me"}).status_code == (
        403
    )


def test_sensitive_conversation_is_readable_by_the_team(client, email_channel, sensitive):
    service, member = sensitive
    member = grant(member, "channels.view_thread")
    thread = make_thread(
        email_channel,
        subject="Care assessment for my father",
        text="He fell twice this week.",
        service_code=service.code,
    )
    client.force_login(member)
    html = client.get(INBOX).content.decode()
    assert "Care assessment for my father" in html and "fell twice" in html
    page = client.get(f"{INBOX}{thread.pk}/").content.decode()
    assert "He fell twice this week." in page


def test_thread_linked_to_a_sensitive_case_follows_the_case(
    officer_client, email_channel, sensitive
):
    service, _member = sensitive
    thread = make_thread(email_channel, subject="About my mother")
    case = open_case(service=service, title="Referral", citizen=thread.citizen)
    Thread.objects.filter(pk=thread.pk).update(case=case)  # service_code left empty
    html = officer_client.get(INBOX).content.decode()
    assert "Sensitive conversation" in html and "About my mother" not in html
    assert case.reference in html  # that a case exists is not secret


# --- Query counts --------------------------------------------------------------------------


def count_queries(client, url) -> int:
    # Once unmeasured, so per-process caches (the service catalogue summary) are warm, as on
    # a running server; the measured request is the steady state.
    client.get(url)
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


def test_inbox_list_query_count_does_not_grow(
    officer_client, email_channel, sensitive, django_assert_max_num_queries
):
    service, _member = sensitive
    make_thread(email_channel, team=TeamFactory(), assigned_to=StaffUserFactory())
    one = count_queries(officer_client, INBOX)
    for n in range(19):
        thread = make_thread(
            email_channel,
            team=TeamFactory(),
            assigned_to=StaffUserFactory(),
            service_code=service.code if n % 2 else "",
        )
        if n % 3 == 0:
            case = open_case(service=ServiceFactory(), title="Case", citizen=thread.citizen)
            Thread.objects.filter(pk=thread.pk).update(case=case)
    assert count_queries(officer_client, INBOX) == one
    assert count_queries(officer_client, ROWS) <= one
    with django_assert_max_num_queries(10):
        officer_client.get(INBOX)


def test_thread_page_query_count_does_not_grow(
    officer_client, ingested, django_assert_max_num_queries
):
    team = TeamFactory()
    team.members.add(StaffUserFactory())
    Thread.objects.filter(pk=ingested.pk).update(team=team)
    url = f"{INBOX}{ingested.pk}/"
    one = count_queries(officer_client, url)
    for n in range(19):
        InboundMessage.objects.create(
            channel=ingested.channel,
            external_id=f"more-{n}",
            raw=b"",
            status="processed",
            classification="message",
            summary_text=f"Message {n}",
            thread=ingested,
            citizen=ingested.citizen,
        )
        OutboundMessage.objects.create(
            channel=ingested.channel,
            thread=ingested,
            citizen=ingested.citizen,
            to_value="jane@example.org",
            body_text=f"Reply {n}",
            created_by=StaffUserFactory(),
        )
        team.members.add(StaffUserFactory())
    assert count_queries(officer_client, url) == one
    with django_assert_max_num_queries(13):
        officer_client.get(url)


# --- Panels on the case and citizen pages ---------------------------------------------------


def render_panel(rf, user, provider, obj, path="/staff/somewhere/"):
    request = rf.get(path)
    request.user = user
    panel = provider(request, obj)
    html = render_to_string(
        "channels/staff/panels/" + panel.template_name.rsplit("/", 1)[1],
        {"panel": panel, "csrf_token": "token"},
        request=request,
    )
    return panel, html


def test_case_messages_panel_shows_threads_with_a_reply_form_back_to_the_case(
    rf, officer, ingested
):
    case = open_case(service=ServiceFactory(), title="Bin", citizen=ingested.citizen)
    Thread.objects.filter(pk=ingested.pk).update(case=case)
    case_url = f"/staff/cases/{case.reference}/"
    panel, html = render_panel(rf, officer, case_messages_panel, case, path=case_url)
    assert panel.key == "messages" and panel.title == "Messages"
    assert "Our green bin at 14 Ash Grove" in html
    assert f'action="/staff/inbox/{ingested.pk}/reply/"' in html
    assert f'name="next" value="{case_url}"' in html
    assert f'<label class="govuk-label" for="case-reply-{ingested.pk}">' in html


def test_case_messages_panel_hides_a_sensitive_case_from_outsiders(rf, officer, sensitive):
    service, member = sensitive
    thread = make_thread(
        Channel.objects.create(kind="email-smtp", slug="care", name="Care"),
        subject="About my mother",
        text="She needs help at home.",
    )
    case = open_case(service=service, title="Referral", citizen=thread.citizen)
    Thread.objects.filter(pk=thread.pk).update(case=case)
    _panel, html = render_panel(rf, officer, case_messages_panel, case)
    assert "1 conversation is linked" in html and "needs help" not in html
    member = grant(member, "channels.view_thread")
    _panel, html = render_panel(rf, member, case_messages_panel, case)
    assert "She needs help at home." in html


def test_case_messages_panel_queries_are_constant(rf, officer, email_channel):
    citizen = CitizenFactory()
    case = open_case(service=ServiceFactory(), title="Bin", citizen=citizen)
    request = rf.get("/staff/cases/x/")
    request.user = officer

    def measure():
        with CaptureQueriesContext(connection) as queries:
            case_messages_panel(request, case)
        return len(queries)

    make_thread(email_channel, citizen=citizen, case=case)
    measure()  # the first call also loads the officer's permissions
    one = measure()
    for _ in range(5):
        thread = make_thread(email_channel, citizen=citizen, case=case)
        for n in range(8):
            OutboundMessage.objects.create(
                channel=email_channel,
                thread=thread,
                citizen=citizen,
                to_value="x@example.org",
                body_text=f"Reply {n}",
            )
    assert measure() == one
    [(_thread, items), *_] = selectors.case_threads_with_messages(case)
    assert len(items) == 5  # the latest five messages per conversation


def test_citizen_conversations_panel_redacts_sensitive_threads_and_stays_constant(
    rf, officer, email_channel, sensitive
):
    service, _member = sensitive
    citizen = CitizenFactory()
    make_thread(email_channel, citizen=citizen, subject="Noisy neighbours")
    make_thread(email_channel, citizen=citizen, subject="Care at home", service_code=service.code)
    panel, html = render_panel(rf, officer, citizen_conversations_panel, citizen)
    assert panel.key == "conversations"
    assert "Noisy neighbours" in html and "Sensitive conversation" in html
    assert "Care at home" not in html

    request = rf.get("/staff/citizens/x/")
    request.user = officer
    citizen_conversations_panel(request, citizen)  # loads the officer's permissions
    with CaptureQueriesContext(connection) as queries:
        citizen_conversations_panel(request, citizen)
    before = len(queries)
    for _ in range(25):
        make_thread(email_channel, citizen=citizen)
    with CaptureQueriesContext(connection) as queries:
        panel = citizen_conversations_panel(request, citizen)
    assert len(queries) == before and len(panel.context["rows"]) == 20


def test_panels_are_registered_with_the_core():
    from citizenhub.staff import panels

    assert "messages" in panels._case_panels
    assert "conversations" in panels._citizen_panels


def test_the_case_and_citizen_pages_show_the_panels(officer_client, ingested):
    case = open_case(service=ServiceFactory(), title="Bin", citizen=ingested.citizen)
    Thread.objects.filter(pk=ingested.pk).update(case=case)
    case_page = officer_client.get(f"/staff/cases/{case.reference}/")
    assert case_page.status_code == 200
    html = case_page.content.decode()
    assert "Our green bin at 14 Ash Grove" in html
    assert f'name="next" value="/staff/cases/{case.reference}/"' in html
    citizen_page = officer_client.get(f"/staff/citizens/{ingested.citizen.public_id}/")
    assert citizen_page.status_code == 200
    assert "Missed bin collection on Ash Grove" in citizen_page.content.decode()


# --- The threads API keeps the same rule -----------------------------------------------------


def test_threads_api_withholds_sensitive_content_from_other_teams(
    api_client, caseworker, email_channel, sensitive
):
    service, member = sensitive
    thread = make_thread(
        email_channel,
        subject="Care package for my mother",
        text="She needs help at home.",
        service_code=service.code,
    )
    api_client.force_authenticate(caseworker)
    listed = api_client.get("/api/v1/threads/").json()["results"]
    [row] = [r for r in listed if r["id"] == thread.pk]
    assert row["subject"] is None and row["content_restricted"] is True
    detail = api_client.get(f"/api/v1/threads/{thread.pk}/")
    assert detail.status_code == 200
    body = detail.json()
    assert body["messages"] == [] and body["subject"] is None
    assert "Care package" not in detail.content.decode()
    assert "help at home" not in detail.content.decode()
    reply = api_client.post(f"/api/v1/threads/{thread.pk}/replies/", {"body": "Hello"})
    assert reply.status_code == 403
    assert OutboundMessage.objects.count() == 0

    api_client.force_authenticate(member)
    body = api_client.get(f"/api/v1/threads/{thread.pk}/").json()
    assert body["subject"] == "Care package for my mother" and body["content_restricted"] is False
    assert body["messages"][0]["body_text"] == "She needs help at home."


def test_rendering_the_conversations_panel_loads_nothing_more_per_thread(
    rf, officer, email_channel, sensitive
):
    # The panel's query loads only the fields it shows: a deferred field read by the
    # template would cost one query per row.
    service, _member = sensitive
    citizen = CitizenFactory()
    case = open_case(service=ServiceFactory(), title="Bin", citizen=citizen)
    make_thread(email_channel, citizen=citizen, case=case)
    render_panel(rf, officer, citizen_conversations_panel, citizen)
    with CaptureQueriesContext(connection) as one:
        render_panel(rf, officer, citizen_conversations_panel, citizen)
    for n in range(10):
        make_thread(email_channel, citizen=citizen, case=case if n % 2 else None)
        make_thread(email_channel, citizen=citizen, service_code=service.code)
    with CaptureQueriesContext(connection) as many:
        _panel, html = render_panel(rf, officer, citizen_conversations_panel, citizen)
    assert len(many) == len(one)
    assert case.reference in html and "Sensitive conversation" in html
