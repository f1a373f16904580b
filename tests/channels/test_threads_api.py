"""The staff reply API: threads, their messages, replies; and the stale-message sweeper."""

import datetime

import pytest
from django.utils import timezone

from channels.models import InboundMessage, OutboundMessage, Thread
from channels.services.ingest import store_raw_messages
from channels.tasks import sweep_stale_messages
from tests.channels.conftest import eml, raw_email
from tests.channels.sink import smtp_sink

pytestmark = pytest.mark.django_db
THREADS = "/api/v1/threads/"


def ingest(channel, capture, *names):
    with capture(execute=True):
        store_raw_messages(channel=channel, raws=[raw_email(eml(name)) for name in names])


def test_inbox_lists_threads_newest_first_with_filters(
    staff_api, email_channel, django_capture_on_commit_callbacks
):
    ingest(email_channel, django_capture_on_commit_callbacks, "simple.eml", "html_script.eml")
    body = staff_api.get(THREADS).json()
    assert [t["subject"] for t in body["results"]] == [
        "Fly-tipping behind the shops",
        "Missed bin collection on Ash Grove",
    ]
    first = body["results"][0]
    assert first["channel"]["slug"] == "contact" and first["reference"].startswith("CH-")
    assert staff_api.get(THREADS, {"status": "done"}).json()["results"] == []
    assert len(staff_api.get(THREADS, {"channel": "contact"}).json()["results"]) == 2
    assert staff_api.get(THREADS, {"status": "nonsense"}).status_code == 400


@pytest.fixture
def replier_api(api_client, caseworker):
    """An integration client acting as a caseworker, who may reply to residents."""
    api_client.force_authenticate(caseworker)
    return api_client


def test_thread_detail_shows_both_directions_and_sanitised_html(
    replier_api, email_channel, django_capture_on_commit_callbacks
):
    staff_api = replier_api
    ingest(email_channel, django_capture_on_commit_callbacks, "html_script.eml")
    thread = Thread.objects.get()
    with smtp_sink() as (sink, port):
        email_channel.settings = {**email_channel.settings, "smtp_port": port}
        email_channel.save()
        with django_capture_on_commit_callbacks(execute=True):
            response = staff_api.post(
                f"{THREADS}{thread.pk}/replies/",
                {"body": "We'll clear it this week."},
                format="json",
            )
    assert response.status_code == 202, response.content
    assert response.json()["status"] == "queued"  # the worker sends it after commit
    assert OutboundMessage.objects.get().status == "sent" and len(sink.received) == 1
    detail = staff_api.get(f"{THREADS}{thread.pk}/").json()
    assert [m["direction"] for m in detail["messages"]] == ["in", "out"]
    assert "<script" not in detail["messages"][0]["body_html"]
    assert detail["messages"][1]["to"] == "priya@example.net"


@pytest.mark.parametrize(
    ("body", "field"), [({}, "body"), ({"body": ""}, "body"), ({"body": "hi", "cc": "x@y.z"}, "cc")]
)
def test_bad_reply_bodies_are_400_and_nothing_is_queued(
    replier_api, email_channel, django_capture_on_commit_callbacks, body, field
):
    staff_api = replier_api
    ingest(email_channel, django_capture_on_commit_callbacks, "simple.eml")
    thread = Thread.objects.get()
    response = staff_api.post(f"{THREADS}{thread.pk}/replies/", body, format="json")
    assert response.status_code == 400 and field in response.json()["error"]["fields"]
    assert OutboundMessage.objects.count() == 0


def test_reply_to_unknown_thread_is_404(replier_api):
    assert (
        replier_api.post(f"{THREADS}999999/replies/", {"body": "x"}, format="json").status_code
        == 404
    )


def test_replying_needs_the_permission_and_queues_nothing_without_it(
    staff_api, email_channel, django_capture_on_commit_callbacks
):
    ingest(email_channel, django_capture_on_commit_callbacks, "simple.eml")
    thread = Thread.objects.get()
    response = staff_api.post(f"{THREADS}{thread.pk}/replies/", {"body": "Hi"}, format="json")
    assert response.status_code == 403
    assert "channels.add_outboundmessage" in response.json()["error"]["message"]
    assert OutboundMessage.objects.count() == 0


def test_residents_and_anonymous_cannot_use_the_inbox(api_client, resident_user):
    assert api_client.get(THREADS).status_code in (401, 403)
    api_client.force_authenticate(resident_user)
    assert api_client.get(THREADS).status_code == 403


def test_inbox_and_detail_query_counts_do_not_grow(
    staff_api, email_channel, django_capture_on_commit_callbacks, django_assert_max_num_queries
):
    ingest(email_channel, django_capture_on_commit_callbacks, "simple.eml")
    thread = Thread.objects.get()
    # Two of these load who may read sensitive conversations (the officer's teams, and the
    # sensitive services): once per request, whatever the number of threads.
    with django_assert_max_num_queries(4) as small_list:
        staff_api.get(THREADS)
    with django_assert_max_num_queries(7) as small_detail:
        staff_api.get(f"{THREADS}{thread.pk}/")
    ingest(
        email_channel,
        django_capture_on_commit_callbacks,
        "html_script.eml",
        "misdeclared_charset.eml",
        "malformed_mime.eml",
        "no_message_id.eml",
    )
    # more messages in the same thread: replies from Jane
    for n in range(5):
        data = (
            f"From: jane.resident@example.org\r\nSubject: Re: bins\r\n"
            f"Message-ID: <more-{n}@example.org>\r\nIn-Reply-To: <CAF1234abcd@mail.example.org>"
            f"\r\n\r\nMore {n}\r\n"
        ).encode()
        with django_capture_on_commit_callbacks(execute=True):
            store_raw_messages(channel=email_channel, raws=[raw_email(data)])
    assert thread.inbound_messages.count() == 6
    with django_assert_max_num_queries(len(small_list.captured_queries)):
        assert len(staff_api.get(THREADS).json()["results"]) == 5
    with django_assert_max_num_queries(len(small_detail.captured_queries)):
        assert len(staff_api.get(f"{THREADS}{thread.pk}/").json()["messages"]) == 6


def test_sweeper_finishes_what_a_lost_publish_left_behind(email_channel):
    # Stored, but the enqueue never happened (no on_commit executed here).
    store_raw_messages(channel=email_channel, raws=[raw_email(eml("simple.eml"))])
    message = InboundMessage.objects.get()
    assert message.status == "received"
    assert sweep_stale_messages() == {"inbound": 0, "outbound": 0}  # too fresh to sweep
    InboundMessage.objects.update(received_at=timezone.now() - datetime.timedelta(minutes=5))
    assert sweep_stale_messages()["inbound"] == 1
    message.refresh_from_db()
    assert message.status == "processed"
