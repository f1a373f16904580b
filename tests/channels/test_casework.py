"""Cases from conversations: opening and linking, routing rules that open cases, residents'
replies on a case, and the resolution sent back to the resident."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from channels.models import InboundMessage, OutboundMessage, RoutingRule, Thread
from channels.services import casework
from channels.services.casework import (
    link_thread_to_case,
    on_inbound_messages_processed,
    open_case_from_thread,
    thread_assign,
    thread_mark_done,
    thread_reopen,
)
from channels.services.ingest import store_raw_messages
from channels.services.routing import RoutingDecision
from citizenhub.errors import ApplicationError
from citizenhub.models import CaseEvent, ServiceCase
from citizenhub.services.cases import case_transition, open_case
from tests.channels.conftest import eml, raw_email
from tests.channels.sink import smtp_sink
from tests.factories import (
    CitizenFactory,
    EmailContactPointFactory,
    ServiceFactory,
    StaffUserFactory,
    TeamFactory,
)

pytestmark = pytest.mark.django_db


def ingest(channel, capture, *payloads, recipients=()):
    with capture(execute=True):
        store_raw_messages(
            channel=channel, raws=[raw_email(data, *recipients) for data in payloads]
        )


def reply_to(thread: Thread, text: str, message_id: str) -> bytes:
    """The resident writing again in the thread (its [CH-n] reference in the subject)."""
    return (
        f"From: Jane Resident <jane.resident@example.org>\r\nTo: contact@northmoor.example\r\n"
        f"Subject: Re: {thread.subject} [{thread.reference}]\r\nMessage-ID: <{message_id}>\r\n"
        f"\r\n{text}\r\n"
    ).encode()


@pytest.fixture
def sink(email_channel):
    with smtp_sink() as (handler, port):
        email_channel.settings = {**email_channel.settings, "smtp_port": port}
        email_channel.save()
        yield handler


@pytest.fixture
def bins():
    return ServiceFactory(code="missed-bin", name="Missed bin collection")


@pytest.fixture
def thread(email_channel, django_capture_on_commit_callbacks):
    ingest(email_channel, django_capture_on_commit_callbacks, eml("simple.eml"))
    return Thread.objects.get()


# --- Opening and linking --------------------------------------------------------------------


def test_open_case_from_thread_links_it_and_records_the_link(thread, bins, caseworker):
    case = open_case_from_thread(
        thread=thread, service=bins, title="Missed green bin", actor=caseworker
    )
    assert case.citizen_id == thread.citizen_id
    assert case.source_channel == "email"
    assert "green bin at 14 Ash Grove" in case.description
    assert case.team == bins.team
    thread.refresh_from_db()
    assert (thread.case, thread.team, thread.service_code) == (case, bins.team, "missed-bin")
    linked = case.events.get(kind=CaseEvent.Kind.LINKED)
    assert linked.data["thread"] == thread.pk and linked.actor == caseworker
    with pytest.raises(ApplicationError, match="already linked"):
        open_case_from_thread(thread=thread, service=bins, title="Again", actor=caseworker)
    assert ServiceCase.objects.count() == 1


def test_open_case_from_thread_refuses_an_inactive_service_and_changes_nothing(
    thread, bins, caseworker
):
    bins.is_active = False
    bins.save()
    with pytest.raises(ApplicationError):
        open_case_from_thread(thread=thread, service=bins, title="Missed bin", actor=caseworker)
    thread.refresh_from_db()
    assert thread.case is None and ServiceCase.objects.count() == 0


def test_link_thread_to_an_existing_case_of_the_same_resident(thread, bins, caseworker):
    case = open_case(service=bins, title="Earlier report", citizen=thread.citizen)
    link_thread_to_case(thread=thread, case=case, actor=caseworker)
    thread.refresh_from_db()
    assert thread.case == case and thread.team == case.team
    assert case.events.filter(kind="linked", data__thread=thread.pk).exists()
    with pytest.raises(ApplicationError, match="already linked"):
        link_thread_to_case(thread=thread, case=case, actor=caseworker)


def test_linking_to_another_residents_case_is_refused(thread, bins, caseworker):
    other = open_case(service=bins, title="Neighbour's bin", citizen=CitizenFactory())
    with pytest.raises(ApplicationError, match="another resident"):
        link_thread_to_case(thread=thread, case=other, actor=caseworker)
    thread.refresh_from_db()
    assert thread.case is None


# --- Assigning and closing -------------------------------------------------------------------


def test_assign_to_self_team_member_or_nobody(thread, caseworker):
    team = TeamFactory()
    member, outsider = StaffUserFactory(), StaffUserFactory()
    team.members.add(member)
    thread.team = team
    thread.save()
    assert thread_assign(thread=thread, assignee=caseworker, actor=caseworker).assigned_to == (
        caseworker
    )
    assert thread_assign(thread=thread, assignee=member, actor=caseworker).assigned_to == member
    with pytest.raises(ApplicationError, match="not in the team"):
        thread_assign(thread=thread, assignee=outsider, actor=caseworker)
    assert thread_assign(thread=thread, assignee=None, actor=caseworker).assigned_to is None


def test_mark_done_and_reopen(thread, caseworker):
    assert thread_mark_done(thread=thread, actor=caseworker).status == "done"
    assert thread_reopen(thread=thread, actor=caseworker).status == "open"


# --- Routing rules that open cases ----------------------------------------------------------


def test_routing_rule_opens_a_case_for_a_new_thread(
    email_channel, bins, django_capture_on_commit_callbacks
):
    rule = RoutingRule.objects.create(
        name="Bins", keywords="bin", service_code="missed-bin", opens_case=True
    )
    ingest(email_channel, django_capture_on_commit_callbacks, eml("simple.eml"))
    thread = Thread.objects.select_related("case").get()
    case = thread.case
    assert case is not None and case.service == bins
    assert case.title == "Missed bin collection on Ash Grove"
    assert case.source_channel == "email" and case.citizen_id == thread.citizen_id
    assert thread.team == bins.team  # the service's team, as the rule names none
    assert case.events.get(kind="linked").actor_label == f"routing rule {rule.pk}"

    # The resident writes again in the same thread: no second case, an update on this one.
    ingest(
        email_channel,
        django_capture_on_commit_callbacks,
        reply_to(thread, "It is still there.", "again-1@example.org"),
    )
    assert InboundMessage.objects.get(message_id="again-1@example.org").thread_id == thread.pk
    assert ServiceCase.objects.count() == 1
    update = case.events.get(kind="resident_update")
    assert update.text == "It is still there." and update.visibility == "resident"


def test_rule_without_opens_case_only_routes(
    email_channel, bins, django_capture_on_commit_callbacks
):
    team = TeamFactory()
    RoutingRule.objects.create(name="Bins", keywords="bin", service_code="missed-bin", team=team)
    ingest(email_channel, django_capture_on_commit_callbacks, eml("simple.eml"))
    thread = Thread.objects.get()
    assert thread.case is None and thread.team == team
    assert ServiceCase.objects.count() == 0


@pytest.mark.parametrize("problem", ["unknown", "inactive"])
def test_rule_naming_a_missing_or_inactive_service_leaves_the_thread_in_the_inbox(
    email_channel, bins, django_capture_on_commit_callbacks, caplog, problem
):
    if problem == "inactive":
        bins.is_active = False
        bins.save()
    code = "no-such-service" if problem == "unknown" else "missed-bin"
    RoutingRule.objects.create(name="Bins", keywords="bin", service_code=code, opens_case=True)
    ingest(email_channel, django_capture_on_commit_callbacks, eml("simple.eml"))
    message = InboundMessage.objects.get()
    assert message.status == "processed"
    assert message.thread.case is None and message.thread.status == "open"
    assert ServiceCase.objects.count() == 0
    assert "stays in the inbox" in caplog.text


def test_a_failing_case_opening_never_fails_the_ingest_batch(
    email_channel, bins, django_capture_on_commit_callbacks, monkeypatch
):
    def broken(**kwargs):
        raise RuntimeError("case numbering is down")

    monkeypatch.setattr(casework, "open_case_from_thread", broken)
    RoutingRule.objects.create(
        name="Bins", keywords="bin", service_code="missed-bin", opens_case=True
    )
    ingest(email_channel, django_capture_on_commit_callbacks, eml("simple.eml"))
    assert InboundMessage.objects.get().status == "processed"
    assert Thread.objects.get().case is None


def test_rule_opening_cases_needs_a_service_code():
    from django.core.exceptions import ValidationError

    rule = RoutingRule(name="Broken", keywords="bin", opens_case=True)
    with pytest.raises(ValidationError, match="service code"):
        rule.full_clean()


# --- Residents' replies on a case -----------------------------------------------------------


def test_resident_reply_on_a_case_waiting_on_them_moves_it_back_in_progress(
    email_channel, thread, bins, caseworker, django_capture_on_commit_callbacks
):
    case = open_case_from_thread(thread=thread, service=bins, title="Missed bin", actor=None)
    case = case_transition(case=case, to_status="waiting", expected_version=case.version)
    ingest(
        email_channel,
        django_capture_on_commit_callbacks,
        reply_to(thread, "Yes, the green one.", "answer-1@example.org"),
    )
    case.refresh_from_db()
    assert case.status == "in_progress"
    assert case.clock_stopped_at is None
    update = case.events.get(kind="resident_update")
    assert update.data["thread"] == thread.pk and update.actor_label == "resident"
    assert case.events.filter(kind="status", to_status="in_progress").count() == 1


def test_resident_reply_on_a_resolved_case_does_not_reopen_it(
    email_channel, thread, bins, django_capture_on_commit_callbacks
):
    case = open_case_from_thread(thread=thread, service=bins, title="Missed bin", actor=None)
    with django_capture_on_commit_callbacks(execute=True):
        case = case_transition(
            case=case, to_status="resolved", expected_version=case.version, resolution="Done."
        )
    ingest(
        email_channel,
        django_capture_on_commit_callbacks,
        reply_to(thread, "Thank you!", "thanks-1@example.org"),
    )
    case.refresh_from_db()
    assert case.status == "resolved"
    assert case.events.filter(kind="resident_update").count() == 1
    thread.refresh_from_db()
    assert thread.status == "open"  # back in the inbox for an officer to decide


def test_the_ingest_hook_checks_linked_cases_with_one_query_per_batch(
    email_channel, django_capture_on_commit_callbacks
):
    payloads = [
        (
            f"From: person{n}@example.org\r\nTo: contact@northmoor.example\r\n"
            f"Subject: Question {n}\r\nMessage-ID: <q{n}@example.org>\r\n\r\nHello {n}\r\n"
        ).encode()
        for n in range(20)
    ]
    ingest(email_channel, django_capture_on_commit_callbacks, *payloads)
    ids = list(InboundMessage.objects.values_list("pk", flat=True))
    for batch in (ids[:1], ids):
        routing = {pk: RoutingDecision() for pk in batch}
        with CaptureQueriesContext(connection) as queries:
            on_inbound_messages_processed(
                sender=InboundMessage, message_ids=batch, routing=routing, new_thread_ids=set()
            )
        assert len(queries) == 1


# --- Resolutions sent to the resident --------------------------------------------------------


def test_resolving_sends_the_resolution_through_the_cases_latest_thread(
    thread, bins, caseworker, sink, django_capture_on_commit_callbacks
):
    case = open_case_from_thread(thread=thread, service=bins, title="Missed bin", actor=None)
    with django_capture_on_commit_callbacks(execute=True):
        case_transition(
            case=case,
            to_status="resolved",
            expected_version=case.version,
            resolution="The crew collected your bin this morning.",
            actor=caseworker,
        )
    outbound = OutboundMessage.objects.get()
    assert outbound.thread == thread and outbound.status == "sent"
    assert outbound.created_by == caseworker
    [mail] = sink.received
    assert mail.rcpt_tos == ["Jane.Resident@example.org"]
    sent_text = mail.message.get_payload(decode=True).decode()
    assert "The crew collected your bin this morning." in sent_text
    assert case.reference in outbound.body_text
    reply = case.events.get(kind="reply")
    assert reply.data["outbound"] == outbound.pk and reply.visibility == "resident"


def test_resolving_a_case_without_a_thread_starts_an_email_conversation(
    email_channel, bins, caseworker, sink, django_capture_on_commit_callbacks
):
    point = EmailContactPointFactory()
    case = open_case(service=bins, title="Reported by phone", citizen=point.citizen)
    with django_capture_on_commit_callbacks(execute=True):
        case_transition(
            case=case,
            to_status="resolved",
            expected_version=case.version,
            resolution="We replaced your bin.",
            actor=caseworker,
        )
    outbound = OutboundMessage.objects.select_related("thread").get()
    assert outbound.to_value == point.normalised and outbound.status == "sent"
    thread = outbound.thread
    assert thread.case == case and thread.citizen == point.citizen
    assert thread.status == "waiting" and thread.service_code == "missed-bin"
    assert f"[{thread.reference}]" in outbound.subject
    [mail] = sink.received
    assert mail.rcpt_tos == [point.normalised]
    assert case.events.filter(kind="reply").count() == 1


def test_resolving_without_thread_or_email_address_notes_why_nothing_was_sent(
    email_channel, bins, caseworker
):
    case = open_case(service=bins, title="Reported at the desk", citizen=CitizenFactory())
    case = case_transition(
        case=case, to_status="resolved", expected_version=case.version, resolution="Fixed."
    )
    assert case.status == "resolved"
    note = case.events.get(kind="note")
    assert "could not be sent" in note.text and "e-mail address" in note.text
    assert OutboundMessage.objects.count() == 0 and Thread.objects.count() == 0


def test_resolving_without_thread_or_email_channel_notes_why(bins):
    point = EmailContactPointFactory()
    case = open_case(service=bins, title="Reported by phone", citizen=point.citizen)
    case_transition(
        case=case, to_status="resolved", expected_version=case.version, resolution="Fixed."
    )
    assert "no e-mail channel" in case.events.get(kind="note").text


def test_a_reply_refused_by_the_channel_does_not_undo_the_resolution(thread, bins):
    case = open_case_from_thread(thread=thread, service=bins, title="Missed bin", actor=None)
    # The resident's only address bounced: nothing can be delivered on this thread.
    thread.citizen.contact_points.update(undeliverable_at="2026-01-01T00:00:00Z")
    case = case_transition(
        case=case, to_status="resolved", expected_version=case.version, resolution="Fixed."
    )
    case.refresh_from_db()
    assert case.status == "resolved"
    assert "no deliverable address" in case.events.get(kind="note").text
    assert OutboundMessage.objects.count() == 0
