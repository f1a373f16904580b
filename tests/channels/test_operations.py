"""Operating the channels: the commands, /metrics, the admin and the staff health page."""

import datetime
import json
import re
import socket
import uuid
from io import StringIO

import pytest
import redis
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from kombu import Connection, Exchange, Producer, Queue

from channels.adapters import RawInbound
from channels.management.commands import channels_add
from channels.models import (
    Attachment,
    Channel,
    ChannelCursor,
    InboundMessage,
    OutboundMessage,
    RoutingRule,
    Thread,
)
from channels.services.ingest import mark_failed, store_raw_messages
from channels.services.outbound import thread_reply
from tests.channels.conftest import eml, raw_email
from tests.factories import CitizenFactory, StaffUserFactory, UserFactory

pytestmark = pytest.mark.django_db

TOKEN = "scrape-token-0123456789abcdef"


def ingest(channel, *raws, capture):
    with capture(execute=True):
        return store_raw_messages(channel=channel, raws=list(raws))


@pytest.fixture
def superuser_client(client):
    client.force_login(UserFactory(username="admin", is_staff=True, is_superuser=True))
    return client


@pytest.fixture
def staff_client(client):
    client.force_login(StaffUserFactory())
    return client


def add(*args: str) -> str:
    out = StringIO()
    call_command("channels_add", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


# --- channels_add / channels_list ----------------------------------------------------------


def test_add_creates_a_channel_with_typed_settings():
    add(
        "email-smtp",
        "council-contact",
        "--name",
        "Council contact",
        "--address",
        "contact@northmoor.example",
        "--poll-interval",
        "30",
        "--set",
        "smtp_port=2525",
        "use_tls=true",
        'domains=["a.example", "b.example"]',
        "--set",
        "reply_domain=in.northmoor.example",
        "password_env=SMTP_PASSWORD",
        "keywords=bins",
        "ratio=NaN",
    )
    channel = Channel.objects.get(slug="council-contact")
    assert (channel.kind, channel.name, channel.address) == (
        "email-smtp",
        "Council contact",
        "contact@northmoor.example",
    )
    assert channel.enabled and channel.poll_interval_seconds == 30
    assert channel.settings == {
        "smtp_port": 2525,
        "use_tls": True,
        "domains": ["a.example", "b.example"],
        "reply_domain": "in.northmoor.example",
        "password_env": "SMTP_PASSWORD",
        "keywords": "bins",
        "ratio": "NaN",  # not JSON: kept as text
    }


def test_add_disabled_and_name_defaults_to_slug():
    add("email-smtp", "quiet", "--disabled")
    channel = Channel.objects.get(slug="quiet")
    assert not channel.enabled and channel.name == "quiet"


def test_update_merges_settings_and_keeps_what_is_not_given(django_capture_on_commit_callbacks):
    add("email-smtp", "box", "--name", "Box", "--set", "smtp_port=25", "use_tls=false")
    add("email-smtp", "box", "--update", "--set", "smtp_port=2525", "--unset", "use_tls")
    channel = Channel.objects.get(slug="box")
    assert channel.name == "Box" and channel.settings == {"smtp_port": 2525}


def test_update_enabling_releases_queued_replies(django_capture_on_commit_callbacks):
    add("email-smtp", "box", "--disabled")
    channel = Channel.objects.get(slug="box")
    OutboundMessage.objects.create(
        channel=channel, citizen=CitizenFactory(), to_value="a@example.org", body_text="Hello"
    )
    with django_capture_on_commit_callbacks() as callbacks:
        out = add("email-smtp", "box", "--update", "--enabled")
    assert Channel.objects.get(slug="box").enabled
    assert "1 queued message(s) released" in out
    assert len(callbacks) == 1  # the send task, enqueued after commit


@pytest.mark.parametrize(
    "key",
    ["password", "imap_password", "api_key", "apiKey", "accessToken", "client_secret", "token"],
)
def test_add_refuses_a_secret_in_settings(key):
    with pytest.raises(CommandError) as caught:
        add("email-smtp", "box", "--set", f"{key}=hunter2")
    assert f"{key}_env=ENV_VAR_NAME" in str(caught.value)
    assert not Channel.objects.exists()


def test_add_refuses_a_secret_where_a_variable_name_belongs():
    with pytest.raises(CommandError, match="must name an environment variable"):
        add("email-smtp", "box", "--set", "password_env=hunter2 with spaces")


def test_add_refuses_an_unknown_kind_and_a_kind_without_adapter(monkeypatch):
    monkeypatch.setattr(channels_add, "registered_kinds", lambda: ["email-imap", "email-smtp"])
    with pytest.raises(CommandError) as caught:
        add("carrier-pigeon", "box")
    assert "Unknown channel kind 'carrier-pigeon'" in str(caught.value)
    assert "email-imap, email-smtp" in str(caught.value)
    with pytest.raises(CommandError) as caught:
        add("sms-twilio", "box")
    assert "adapter is not built" in str(caught.value)
    assert "Kinds available: email-imap, email-smtp" in str(caught.value)
    assert not Channel.objects.exists()


def test_add_refuses_an_existing_slug_without_update_and_update_of_a_missing_one():
    add("email-smtp", "box")
    with pytest.raises(CommandError, match="already exists; add --update"):
        add("email-smtp", "box")
    with pytest.raises(CommandError, match="No channel with slug 'other'"):
        add("email-smtp", "other", "--update")
    assert Channel.objects.count() == 1


def test_update_cannot_change_the_kind(monkeypatch):
    monkeypatch.setattr(channels_add, "registered_kinds", lambda: ["email-imap", "email-smtp"])
    add("email-smtp", "box")
    with pytest.raises(CommandError, match="kind cannot change"):
        add("email-imap", "box", "--update")


def test_list_prints_a_table_and_json(email_channel, django_capture_on_commit_callbacks):
    ingest(email_channel, raw_email(eml("simple.eml")), capture=django_capture_on_commit_callbacks)
    Channel.objects.filter(pk=email_channel.pk).update(consecutive_failures=3)
    out = StringIO()
    call_command("channels_list", stdout=out)
    header, row = out.getvalue().splitlines()
    assert header.split()[:4] == ["SLUG", "KIND", "ENABLED", "ADDRESS"]
    assert row.split()[:4] == ["contact", "email-smtp", "yes", "contact@northmoor.example"]
    assert row.split()[-4:] == ["1", "1", "0", "0"]

    out = StringIO()
    call_command("channels_list", "--json", stdout=out)
    (data,) = json.loads(out.getvalue())
    assert data["slug"] == "contact" and data["enabled"] is True
    assert data["consecutive_failures"] == 3 and data["backoff_until"] is None
    assert (data["received_count"], data["processed_count"]) == (1, 1)


def test_list_says_when_there_are_no_channels():
    out = StringIO()
    call_command("channels_list", stdout=out)
    assert "No channels yet" in out.getvalue()


# --- /metrics --------------------------------------------------------------------------------

LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
SAMPLE = re.compile(
    rf"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{{(?P<labels>{LABEL}(?:,{LABEL})*)\}})? "
    r"(?P<value>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|NaN|[+-]Inf)$"
)


def parse_metrics(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every line is a HELP/TYPE comment or `name{labels} value`; samples follow their TYPE."""
    assert text.endswith("\n")
    samples = {}
    typed = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            name, kind = line.split()[2:4]
            assert kind in {"counter", "gauge"}
            typed.add(name)
            continue
        if line.startswith("# HELP "):
            continue
        match = SAMPLE.match(line)
        assert match, f"not a sample line: {line!r}"
        assert match["name"] in typed, f"sample before its TYPE: {line!r}"
        labels = tuple(
            re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', match["labels"] or "")
        )
        samples[(match["name"], labels)] = float(match["value"])
    return samples


def scrape(client, token=TOKEN):
    return client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}")


@pytest.fixture
def scrape_token(monkeypatch):
    monkeypatch.setenv("METRICS_TOKEN", TOKEN)
    return TOKEN


def test_metrics_refuses_anonymous_and_non_staff(client, scrape_token):
    assert client.get("/metrics").status_code == 403
    assert scrape(client, token="wrong-token-0123456789abcdef").status_code == 403
    client.force_login(UserFactory())
    assert client.get("/metrics").status_code == 403


def test_metrics_token_is_off_when_unset_or_too_short(client, monkeypatch):
    monkeypatch.delenv("METRICS_TOKEN", raising=False)
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 403
    monkeypatch.setenv("METRICS_TOKEN", "short")
    assert scrape(client, token="short").status_code == 403


def test_metrics_for_staff_and_for_the_scrape_token(client, staff_client, scrape_token):
    response = staff_client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    client.logout()
    assert scrape(client).status_code == 200


def test_metrics_values_after_ingest(
    client,
    email_channel,
    second_email_channel,
    scrape_token,
    settings,
    django_capture_on_commit_callbacks,
):
    settings.REDIS_URL = None
    ingest(email_channel, raw_email(eml("simple.eml")), capture=django_capture_on_commit_callbacks)
    ingest(email_channel, raw_email(eml("simple.eml")), capture=django_capture_on_commit_callbacks)
    ingest(
        email_channel,
        raw_email(eml("garbled_from.eml")),
        capture=django_capture_on_commit_callbacks,
    )
    # Stored but not processed yet (the task never ran): two minutes of lag.
    waiting = store_raw_messages(
        channel=second_email_channel,
        raws=[
            RawInbound(
                external_id="waiting-1",
                raw=eml("simple.eml"),
                received_at=timezone.now() - datetime.timedelta(seconds=120),
            )
        ],
    )
    Channel.objects.filter(pk=second_email_channel.pk).update(
        consecutive_failures=2, backoff_until=timezone.now() + datetime.timedelta(minutes=5)
    )
    OutboundMessage.objects.create(
        channel=email_channel, citizen=CitizenFactory(), to_value="a@example.org", body_text="Hi"
    )

    response = scrape(client)
    assert response.status_code == 200
    metrics = parse_metrics(response.content.decode())
    contact = (("channel", "contact"), ("kind", "email-smtp"))
    planning = (("channel", "planning"), ("kind", "email-smtp"))
    failed_inbound = InboundMessage.objects.filter(status="failed").count()
    assert metrics[("citizenhub_channel_messages_received_total", contact)] == 2
    assert metrics[("citizenhub_channel_messages_duplicates_total", contact)] == 1
    assert metrics[("citizenhub_channel_messages_processed_total", contact)] == 2 - failed_inbound
    assert metrics[("citizenhub_channel_messages_failed_total", contact)] == failed_inbound
    assert metrics[("citizenhub_channel_messages_received_total", planning)] == 1
    assert metrics[("citizenhub_channel_up", contact)] == 1
    assert metrics[("citizenhub_channel_up", planning)] == 0
    assert metrics[("citizenhub_channel_consecutive_failures", planning)] == 2
    assert metrics[("citizenhub_channel_enabled", planning)] == 1
    assert 119 <= metrics[("citizenhub_ingest_lag_seconds", ())] < 200
    assert metrics[("citizenhub_inbound_messages", (("status", "received"),))] == 1
    assert metrics[("citizenhub_inbound_messages", (("status", "failed"),))] == failed_inbound
    assert metrics[("citizenhub_outbound_messages_queued", ())] == 1
    assert not any(name == "citizenhub_queue_depth" for name, _ in metrics)  # no REDIS_URL

    # Once processed, nothing waits: the lag is 0.
    with django_capture_on_commit_callbacks(execute=True):
        from channels.tasks import ingest_inbound_batch

        ingest_inbound_batch.delay(waiting.new_ids)
    metrics = parse_metrics(scrape(client).content.decode())
    assert metrics[("citizenhub_ingest_lag_seconds", ())] == 0


def test_metrics_label_values_are_escaped():
    from channels.metrics import MetricFamily, render_exposition

    family = MetricFamily("x_total", "counter", "help")
    family.add(3, channel='we"ird\\slug\nname')
    text = render_exposition([family])
    assert 'x_total{channel="we\\"ird\\\\slug\\nname"} 3' in text
    assert parse_metrics(text)


def test_metrics_query_count_does_not_grow_with_channels(client, scrape_token, settings):
    settings.REDIS_URL = None

    def make_channels(n):
        for i in range(n):
            Channel.objects.create(
                kind="email-smtp", slug=f"box-{Channel.objects.count()}-{i}", name="Box"
            )

    make_channels(1)
    with CaptureQueriesContext(connection) as one:
        assert scrape(client).status_code == 200
    make_channels(9)
    with CaptureQueriesContext(connection) as ten:
        response = scrape(client)
    assert len(one) == len(ten) <= 5  # channels, lag, two status gauges, queued replies
    metrics = parse_metrics(response.content.decode())
    assert sum(1 for name, _ in metrics if name == "citizenhub_channel_up") == 10


def test_metrics_staff_query_count(staff_client, django_assert_max_num_queries, settings):
    settings.REDIS_URL = None
    Channel.objects.create(kind="email-smtp", slug="a", name="A")
    with django_assert_max_num_queries(7):  # session and user, then the five above
        assert staff_client.get("/metrics").status_code == 200


def _redis_reachable(url: str) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5):
            pass
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except (OSError, redis.RedisError):
        return False
    return True


TEST_REDIS_URL = "redis://127.0.0.1:6379/15"


@pytest.mark.skipif(not _redis_reachable(TEST_REDIS_URL), reason="needs Redis on 127.0.0.1")
def test_queue_depth_counts_every_priority_list_of_each_queue(client, scrape_token, settings):
    # Queue names unique to this test, so that nothing else using the database interferes.
    names = [f"test-{uuid.uuid4().hex[:8]}-{suffix}" for suffix in ("ingest", "outbound")]
    settings.REDIS_URL = TEST_REDIS_URL
    settings.CELERY_TASK_QUEUES = [Queue(name) for name in names]
    transport_options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
    try:
        with Connection(TEST_REDIS_URL, transport_options=transport_options) as broker:
            producer = Producer(broker)
            queue = Queue(names[0], Exchange(names[0], type="direct"), routing_key=names[0])
            for priority in (0, 0, 5, 9):  # the default list, then two priority lists
                producer.publish(
                    {"n": priority},
                    exchange=queue.exchange,
                    routing_key=names[0],
                    declare=[queue],
                    priority=priority,
                )
        raw = redis.Redis.from_url(TEST_REDIS_URL)
        assert raw.llen(names[0]) == 2  # kombu really did spread them over several lists
        metrics = parse_metrics(scrape(client).content.decode())
        assert metrics[("citizenhub_broker_up", ())] == 1
        assert metrics[("citizenhub_queue_depth", (("queue", names[0]),))] == 4
        assert metrics[("citizenhub_queue_depth", (("queue", names[1]),))] == 0
    finally:
        client_ = redis.Redis.from_url(TEST_REDIS_URL)
        for name in names:
            client_.delete(name, *(f"{name}\x06\x16{step}" for step in (3, 6, 9)))
            client_.delete(f"_kombu.binding.{name}")


def test_metrics_still_answer_when_redis_is_down(client, scrape_token, settings):
    settings.REDIS_URL = "redis://127.0.0.1:9/0"
    settings.READINESS_TIMEOUT_SECONDS = 1
    response = scrape(client)
    assert response.status_code == 200
    metrics = parse_metrics(response.content.decode())
    assert metrics[("citizenhub_broker_up", ())] == 0
    assert not any(name == "citizenhub_queue_depth" for name, _ in metrics)


# --- admin -----------------------------------------------------------------------------------


@pytest.fixture
def channel_records(email_channel, django_capture_on_commit_callbacks):
    """One of everything the channels admin shows, made through the services."""
    ingest(email_channel, raw_email(eml("simple.eml")), capture=django_capture_on_commit_callbacks)
    ingest(
        email_channel, raw_email(eml("html_script.eml")), capture=django_capture_on_commit_callbacks
    )
    message = InboundMessage.objects.get(subject__startswith="Missed bin")
    Attachment.objects.create(
        message=message, filename="photo.jpg", size=10, sha256="0" * 64, rejected_reason="test"
    )
    ChannelCursor.objects.create(channel=email_channel, key="INBOX", state={"uid": 7})
    RoutingRule.objects.create(name="Bins", keywords="bin", department="Waste")
    with django_capture_on_commit_callbacks():  # queued; the send task is not run
        thread_reply(thread=message.thread, body="We will collect it tomorrow.", by=None)
    return message


MODELS = [Channel, ChannelCursor, Thread, InboundMessage, Attachment, OutboundMessage, RoutingRule]


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_admin_changelist_and_change_page_load(superuser_client, channel_records, model):
    name = model._meta.model_name
    response = superuser_client.get(reverse(f"admin:channels_{name}_changelist"))
    assert response.status_code == 200
    obj = model.objects.order_by("pk").first()
    response = superuser_client.get(reverse(f"admin:channels_{name}_change", args=[obj.pk]))
    assert response.status_code == 200


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_admin_changelist_queries_do_not_grow_with_rows(
    superuser_client,
    channel_records,
    second_email_channel,
    model,
    django_capture_on_commit_callbacks,
):
    url = reverse(f"admin:channels_{model._meta.model_name}_changelist")
    superuser_client.get(url)  # warm the content-type cache
    with CaptureQueriesContext(connection) as before:
        superuser_client.get(url)
    ingest(
        second_email_channel,
        raw_email(eml("no_message_id.eml")),
        raw_email(eml("misdeclared_charset.eml")),
        capture=django_capture_on_commit_callbacks,
    )
    for message in InboundMessage.objects.filter(channel=second_email_channel):
        Attachment.objects.create(message=message, filename="a.pdf", size=1, sha256="1" * 64)
        ChannelCursor.objects.create(channel=second_email_channel, key=f"k{message.pk}")
        RoutingRule.objects.create(name=f"Rule {message.pk}", channel=second_email_channel)
        with django_capture_on_commit_callbacks():
            thread_reply(thread=message.thread, body="Thanks", by=None)
    with CaptureQueriesContext(connection) as after:
        superuser_client.get(url)
    assert len(after) == len(before)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="uses PostgreSQL's row estimate")
def test_admin_big_table_list_uses_the_row_estimate_not_count(
    superuser_client, channel_records, monkeypatch
):
    from channels import admin as channels_admin

    monkeypatch.setattr(channels_admin, "ESTIMATE_COUNT_ABOVE", 0)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE channels_inboundmessage")
    url = reverse("admin:channels_inboundmessage_changelist")
    with CaptureQueriesContext(connection) as queries:
        response = superuser_client.get(url)
    assert response.status_code == 200 and "Fly-tipping" in response.content.decode()
    assert not any("COUNT(" in q["sql"] for q in queries)
    with CaptureQueriesContext(connection) as queries:  # filtered: counted exactly
        superuser_client.get(url + "?status__exact=processed")
    assert any("COUNT(" in q["sql"] for q in queries)


def test_admin_inbound_page_shows_the_raw_message_as_escaped_text(
    superuser_client, channel_records
):
    message = InboundMessage.objects.get(subject__startswith="Fly-tipping")
    url = reverse("admin:channels_inboundmessage_change", args=[message.pk])
    response = superuser_client.get(url)
    content = response.content.decode()
    assert '<script>alert("pwned")' not in content
    assert "&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt;" in content
    assert 'name="_save"' not in content  # never editable


def test_admin_raw_preview_is_truncated(superuser_client, email_channel):
    data = eml("simple.eml") + b"x" * 50_000
    store_raw_messages(channel=email_channel, raws=[raw_email(data)])
    message = InboundMessage.objects.get()
    response = superuser_client.get(
        reverse("admin:channels_inboundmessage_change", args=[message.pk])
    )
    assert response.status_code == 200
    assert f"{len(data) - 20_000:,} more bytes not shown" in response.content.decode()


def test_admin_reprocess_action_on_a_failed_message(
    superuser_client, email_channel, django_capture_on_commit_callbacks
):
    stored = store_raw_messages(channel=email_channel, raws=[raw_email(eml("simple.eml"))])
    mark_failed(message_ids=stored.new_ids, error="database unavailable: boom")
    failed_view = reverse("admin:channels_inboundmessage_changelist") + "?status__exact=failed"
    response = superuser_client.get(failed_view)
    assert response.status_code == 200
    assert "database unavailable: boom" in response.content.decode()

    with django_capture_on_commit_callbacks(execute=True):
        response = superuser_client.post(
            failed_view,
            {"action": "reprocess", "_selected_action": stored.new_ids},
            follow=True,
        )
    assert response.status_code == 200
    assert "1 message(s) queued for processing again" in response.content.decode()
    message = InboundMessage.objects.get()
    assert message.status == "processed" and message.last_error == ""


def test_admin_enable_action_releases_queued_replies(
    superuser_client, channel_records, email_channel, django_capture_on_commit_callbacks
):
    Channel.objects.filter(pk=email_channel.pk).update(enabled=False)
    url = reverse("admin:channels_channel_changelist")
    with django_capture_on_commit_callbacks() as callbacks:
        response = superuser_client.post(
            url, {"action": "enable_channels", "_selected_action": [email_channel.pk]}
        )
    assert response.status_code == 302
    assert Channel.objects.get(pk=email_channel.pk).enabled
    assert len(callbacks) == 1  # the queued reply's send task

    superuser_client.post(
        url, {"action": "disable_channels", "_selected_action": [email_channel.pk]}
    )
    assert not Channel.objects.get(pk=email_channel.pk).enabled


def test_admin_clear_backoff_action(superuser_client, email_channel):
    later = timezone.now() + datetime.timedelta(hours=1)
    Channel.objects.filter(pk=email_channel.pk).update(backoff_until=later, consecutive_failures=4)
    response = superuser_client.post(
        reverse("admin:channels_channel_changelist"),
        {"action": "clear_backoff_and_poll", "_selected_action": [email_channel.pk]},
    )
    assert response.status_code == 302
    email_channel.refresh_from_db()
    assert email_channel.backoff_until is None


def test_admin_channel_form_refuses_a_secret(superuser_client):
    response = superuser_client.post(
        reverse("admin:channels_channel_add"),
        {
            "name": "Box",
            "slug": "box",
            "kind": "email-smtp",
            "enabled": "on",
            "address": "",
            "poll_interval_seconds": "60",
            "settings": '{"password": "hunter2"}',
        },
    )
    assert response.status_code == 200
    assert "password_env=ENV_VAR_NAME" in response.content.decode()
    assert not Channel.objects.exists()


def test_admin_channel_form_checks_the_kind_and_saves_a_good_channel(superuser_client, monkeypatch):
    monkeypatch.setattr("channels.admin.registered_kinds", lambda: ["email-smtp"])
    form = {
        "name": "Box",
        "slug": "box",
        "kind": "sms-twilio",
        "enabled": "on",
        "address": "",
        "poll_interval_seconds": "60",
        "settings": '{"auth_token_env": "TWILIO_TOKEN"}',
    }
    url = reverse("admin:channels_channel_add")
    response = superuser_client.post(url, form)
    assert response.status_code == 200 and "adapter is not built" in response.content.decode()
    response = superuser_client.post(url, {**form, "kind": "email-smtp"})
    assert response.status_code == 302
    assert Channel.objects.get().settings == {"auth_token_env": "TWILIO_TOKEN"}


# --- health page -----------------------------------------------------------------------------


def test_health_page_redirects_anonymous_to_the_admin_login(client):
    response = client.get("/staff/channels/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/?next=/staff/channels/")


def test_health_page_shows_each_state_and_escapes_errors(staff_client, email_channel):
    now = timezone.now()
    Channel.objects.create(
        kind="email-smtp",
        slug="failing",
        name="Failing box",
        consecutive_failures=3,
        last_error="<script>alert('x')</script> connection refused",
    )
    Channel.objects.create(
        kind="email-smtp",
        slug="resting",
        name="Resting box",
        consecutive_failures=1,
        backoff_until=now + datetime.timedelta(minutes=10),
        last_error="timeout",
    )
    Channel.objects.create(kind="email-smtp", slug="off", name="Switched off", enabled=False)
    store_raw_messages(
        channel=email_channel,
        raws=[
            RawInbound(
                external_id="w1",
                raw=b"x",
                received_at=now - datetime.timedelta(minutes=5),
            )
        ],
    )
    response = staff_client.get("/staff/channels/")
    assert response.status_code == 200
    content = response.content.decode()
    assert "<script>alert(" not in content
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; connection refused" in content
    assert "Failing" in content and "3 failures in a row" in content
    assert "Backing off until" in content and "Disabled" in content
    assert "channel-health__row--ok" in content  # the contact mailbox
    assert "<caption>" in content and '<th scope="col">' in content
    assert '<th scope="row">' in content
    assert re.search(r"arrived 5(\xa0| )minutes ago \(30\d seconds\)", content)


def test_health_page_query_count_does_not_grow_with_channels(staff_client):
    Channel.objects.create(kind="email-smtp", slug="a", name="A")
    with CaptureQueriesContext(connection) as one:
        assert staff_client.get("/staff/channels/").status_code == 200
    for i in range(9):
        Channel.objects.create(kind="email-smtp", slug=f"b{i}", name=f"B{i}")
    with CaptureQueriesContext(connection) as ten:
        assert staff_client.get("/staff/channels/").status_code == 200
    assert len(one) == len(ten) <= 4  # session, user, channels, oldest waiting message


def test_health_page_refuses_non_staff(client):
    client.force_login(UserFactory())
    response = client.get("/staff/channels/")
    assert response.status_code == 302
