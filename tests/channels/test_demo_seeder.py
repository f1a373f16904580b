"""The channels demo seeder: a channel of each kind that works offline, routing rules, the
report-a-problem form, and a year of contact history through the real pipeline."""

import datetime
import hashlib
import hmac
import io
import json
import re
import time
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.db.models import F, Max, Min
from django.http import QueryDict
from django.test import RequestFactory
from twilio.request_validator import RequestValidator

from channels.adapters import TransientChannelError, adapter_for, registered_kinds
from channels.demo import DEMO_CHANNELS, DEMO_ROUTING_RULES, WEBFORM_SLUG, seed_demo_channels
from channels.demo_history import (
    HISTORY_MIN_RESIDENTS,
    PlannedMessage,
    plan_history,
)
from channels.email.parsing import external_id_for
from channels.forms_views import _submission, check_answers
from channels.models import (
    Channel,
    InboundMessage,
    OutboundMessage,
    RoutingRule,
    Thread,
    WebForm,
    webform_field_problems,
)
from channels.services.accounts import channel_settings_problems
from channels.services.ingest import ingest_inbound_messages, store_raw_messages
from channels.services.outbound import send_outbound, thread_reply
from channels.services.polling import poll_channel
from citizenhub.demo import DemoOptions
from citizenhub.demo_data import DEMO_NOW, plan_residents
from citizenhub.models import Citizen, ContactPoint, TimelineEntry
from tests.channels.conftest import eml, raw_email

pytestmark = pytest.mark.django_db

MAKEFILE = Path(__file__).resolve().parents[2] / "Makefile"
ALL_KINDS = {kind for kind in Channel.Kind.values if kind != Channel.Kind.STAFF}


def demo_secrets() -> dict[str, str]:
    """The DEMO_... variables the Makefile's DEMO_ENV exports, with their values."""
    return dict(re.findall(r"\b(DEMO_[A-Z0-9_]+)=(\S+)", MAKEFILE.read_text()))


@pytest.fixture
def demo_env(monkeypatch):
    for name, value in demo_secrets().items():
        monkeypatch.setenv(name, value)


def seed_channels() -> dict[str, Channel]:
    seed_demo_channels(DemoOptions(residents=0))
    return {channel.kind: channel for channel in Channel.objects.all()}


def snapshot() -> tuple:
    return (
        list(
            Channel.objects.order_by("slug").values(
                "slug", "kind", "enabled", "address", "settings"
            )
        ),
        list(
            RoutingRule.objects.order_by("priority").values(
                "name", "priority", "keywords", "department", "service_code", "channel"
            )
        ),
        list(WebForm.objects.values("slug", "channel__slug", "title", "fields", "enabled")),
    )


# --- the channels ----------------------------------------------------------------------------


def test_seeding_twice_gives_the_same_channels_rules_and_form():
    first = seed_demo_channels(DemoOptions(residents=0))
    before = snapshot()
    second = seed_demo_channels(DemoOptions(residents=0))

    assert snapshot() == before
    assert (
        first
        == second
        == {
            "channels": len(DEMO_CHANNELS),
            "routing rules": len(DEMO_ROUTING_RULES),
            "history messages": 0,
            "staff replies": 0,
        }
    )
    channel = Channel.objects.get(slug="contact")
    assert (channel.kind, channel.address, channel.enabled) == (
        "email-smtp",
        "contact@northmoor.example",
        True,
    )
    assert (channel.setting("smtp_host"), channel.setting("smtp_port")) == ("127.0.0.1", 1025)
    assert RoutingRule.objects.count() == len(DEMO_ROUTING_RULES)


def test_every_kind_with_an_adapter_has_one_demo_channel_and_staff_none():
    channels = seed_channels()

    assert set(registered_kinds()) == ALL_KINDS  # staff contact is logged, not received
    assert set(channels) == ALL_KINDS
    assert Channel.objects.count() == len(ALL_KINDS)
    for channel in channels.values():
        adapter_for(channel)


def test_only_the_channels_whose_libraries_cannot_be_faked_are_off():
    channels = seed_channels()

    off = {kind for kind, channel in channels.items() if not channel.enabled}
    assert off == {Channel.Kind.X, Channel.Kind.SMS_TWILIO}
    assert all("(demo: no provider)" in channels[kind].name for kind in off)


def test_no_secret_is_stored_in_any_channel_settings():
    channels = seed_channels()
    secret_values = set(demo_secrets().values())

    for channel in channels.values():
        assert channel_settings_problems(channel.settings) == [], channel.slug
        named = [value for key, value in channel.settings.items() if key.endswith("_env")]
        assert all(name.startswith("DEMO_") for name in named), channel.slug
        stored = json.dumps(channel.settings)
        assert not any(value in stored for value in secret_values), channel.slug


def test_every_provider_address_is_loopback():
    channels = seed_channels()

    for channel in channels.values():
        for key, value in channel.settings.items():
            if key in ("host", "smtp_host"):
                assert value == "127.0.0.1", (channel.slug, key)
            if key.endswith("_url"):
                assert urlsplit(value).hostname == "127.0.0.1", (channel.slug, key)


def test_demo_env_exports_the_secrets_of_the_channels_that_are_on_and_no_others():
    channels = seed_channels()
    exported = set(demo_secrets())

    for channel in channels.values():
        named = {value for key, value in channel.settings.items() if key.endswith("_env")}
        if channel.enabled:
            assert named <= exported, channel.slug
        else:
            # X's and Twilio's libraries only call the real services: give them nothing.
            assert not named & exported, channel.slug


def test_the_demo_secrets_satisfy_the_adapters(demo_env):
    channels = seed_channels()

    for channel in channels.values():
        if channel.enabled:
            for key in channel.settings:
                if key.endswith("_env"):
                    assert channel.secret(key.removesuffix("_env"))
    adapter_for(channels[Channel.Kind.SMS_NOTIFY])._api_key()  # its key has a fixed shape


def test_the_report_a_problem_form_is_valid_and_replies_through_demo_channels():
    channels = seed_channels()
    webform = WebForm.objects.get(slug=WEBFORM_SLUG)

    webform.full_clean()
    assert webform_field_problems(webform.fields) == []
    assert {"email", "phone"} <= {field.type for field in webform.field_definitions()}
    form_channel = channels[Channel.Kind.WEBFORM]
    assert webform.channel == form_channel
    assert (
        Channel.objects.get(slug=form_channel.setting("reply_email_channel")).kind == "email-smtp"
    )
    assert Channel.objects.get(slug=form_channel.setting("reply_sms_channel")).kind == "sms-notify"


def test_polling_channels_with_nothing_listening_fail_and_back_off_quietly(demo_env):
    channels = seed_channels()

    for kind in (Channel.Kind.EMAIL_IMAP, Channel.Kind.MASTODON):
        outcome = poll_channel(channel_id=channels[kind].pk)
        assert outcome.status == "failed", kind
        channel = Channel.objects.get(pk=channels[kind].pk)
        assert channel.consecutive_failures == 1 and channel.last_error
        assert channel.backoff_until is not None
        assert poll_channel(channel_id=channel.pk).status == "backing_off"
    assert poll_channel(channel_id=channels[Channel.Kind.X].pk).status == "disabled"


def test_a_reply_with_no_provider_running_stays_queued_with_the_error(demo_env):
    channels = seed_channels()
    sms = channels[Channel.Kind.SMS_NOTIFY]
    text = {
        "id": "5f1e5c8e-0000-4000-8000-000000000001",
        "source_number": "447700900123",
        "destination_number": "07700900594",
        "message": "Bin not collected today",
        "date_received": "2026-10-01T09:00:00.000000Z",
    }
    stored = store_raw_messages(
        channel=sms,
        raws=[
            adapter_for(sms).parse_webhook(
                RequestFactory().post(
                    "/hooks/sms/",
                    json.dumps(text),
                    content_type="application/json",
                    HTTP_AUTHORIZATION="Bearer demo-notify-callback-token",
                )
            )[0]
        ],
    )
    ingest_inbound_messages(stored.new_ids)
    reply = thread_reply(thread=Thread.objects.get(), body="The crew will come back.", by=None)

    with pytest.raises(TransientChannelError):
        send_outbound(outbound_id=reply.pk)

    reply.refresh_from_db()
    assert reply.status == OutboundMessage.Status.QUEUED
    assert "Notify" in reply.last_error


def test_seed_demo_runs_it(settings):
    settings.DEBUG = True
    call_command("seed_demo", residents=0, quiet=True)
    assert Channel.objects.filter(slug="contact", enabled=True).exists()


def test_seeding_again_repairs_a_mailbox_the_demo_could_not_receive_on():
    seed_demo_channels(DemoOptions(residents=0))
    Channel.objects.filter(slug="contact").update(enabled=False, kind="email-imap")
    seed_demo_channels(DemoOptions(residents=0))
    channel = Channel.objects.get(slug="contact")
    assert channel.enabled and channel.kind == "email-smtp"


def test_a_missed_bin_email_is_routed_to_waste_and_recycling(django_capture_on_commit_callbacks):
    seed_demo_channels(DemoOptions(residents=0))
    channel = Channel.objects.get(slug="contact")
    with django_capture_on_commit_callbacks(execute=True):
        store_raw_messages(channel=channel, raws=[raw_email(eml("simple.eml"))])
    thread = Thread.objects.get()
    assert (thread.department, thread.service_code) == ("Waste & Recycling", "WR-MISSED")


# --- the payloads are the providers' own --------------------------------------------------------


def one_message_per_kind(channels) -> dict[str, PlannedMessage]:
    """Stranger i writes on the i-th kind: the first nine cover every channel."""
    events = plan_history(
        residents=[],
        strangers=len(ALL_KINDS),
        channels=channels,
        webform=WebForm.objects.get(slug=WEBFORM_SLUG),
    )
    first: dict[str, PlannedMessage] = {}
    for event in events:
        if isinstance(event, PlannedMessage):
            first.setdefault(event.channel_kind, event)
    assert set(first) == ALL_KINDS
    return first


def test_generated_payloads_are_what_the_adapters_store_from_a_real_delivery(demo_env):
    channels = seed_channels()
    messages = one_message_per_kind(channels)
    factory = RequestFactory()

    def delivered(kind: str, request) -> list:
        return adapter_for(channels[kind]).parse_webhook(request)

    # GOV.UK Notify: the callback body, with the bearer token.
    notify = messages[Channel.Kind.SMS_NOTIFY].raw
    [stored] = delivered(
        Channel.Kind.SMS_NOTIFY,
        factory.post(
            "/hooks/sms/",
            notify.raw,
            content_type="application/json",
            HTTP_AUTHORIZATION="Bearer demo-notify-callback-token",
        ),
    )
    assert (stored.external_id, stored.raw) == (notify.external_id, notify.raw)

    # Twilio: the signed form post (its channel is off, so its token is set here only).
    twilio = messages[Channel.Kind.SMS_TWILIO].raw
    token = "twilio-test-token"
    params = dict(parse_qsl(twilio.raw.decode(), keep_blank_values=True))
    signature = RequestValidator(token).compute_signature(
        "http://127.0.0.1:8000/hooks/sms-twilio/", params
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DEMO_TWILIO_AUTH_TOKEN", token)
        [stored] = delivered(
            Channel.Kind.SMS_TWILIO,
            factory.post(
                "/hooks/sms-twilio/",
                twilio.raw,
                content_type=twilio.content_type,
                HTTP_X_TWILIO_SIGNATURE=signature,
            ),
        )
    assert (stored.external_id, stored.raw) == (twilio.external_id, twilio.raw)

    # Facebook: Meta's signed envelope around the event.
    facebook = messages[Channel.Kind.FACEBOOK].raw
    event = json.loads(facebook.raw)
    field = "changes" if "value" in event else "messaging"
    page_id = channels[Channel.Kind.FACEBOOK].setting("page_id")
    body = json.dumps(
        {"object": "page", "entry": [{"id": page_id, "time": 1, field: [event]}]}
    ).encode()
    signature = hmac.new(b"demo-facebook-app-secret", body, hashlib.sha256).hexdigest()
    [stored] = delivered(
        Channel.Kind.FACEBOOK,
        factory.post(
            "/hooks/facebook/",
            body,
            content_type="application/json",
            HTTP_X_HUB_SIGNATURE_256=f"sha256={signature}",
        ),
    )
    assert (stored.external_id, stored.raw) == (facebook.external_id, facebook.raw)

    # Mailgun: the raw MIME in body-mime, signed.
    mailgun = messages[Channel.Kind.EMAIL_WEBHOOK].raw
    timestamp, nonce = str(int(time.time())), "a" * 50
    signed = hmac.new(
        b"demo-mailgun-signing-key", (timestamp + nonce).encode(), hashlib.sha256
    ).hexdigest()
    form = {
        "recipient": mailgun.recipients[0],
        "body-mime": mailgun.raw.decode(),
        "timestamp": timestamp,
        "token": nonce,
        "signature": signed,
    }
    [stored] = delivered(Channel.Kind.EMAIL_WEBHOOK, factory.post("/hooks/x/mime", form))
    assert (stored.external_id, stored.raw, stored.recipients) == (
        mailgun.external_id,
        mailgun.raw,
        mailgun.recipients,
    )

    # Polled: what the adapters store for an item the API listed.
    for kind in (Channel.Kind.MASTODON, Channel.Kind.X):
        polled = messages[kind].raw
        stored = adapter_for(channels[kind]).raw_inbound(json.loads(polled.raw))
        assert (stored.external_id, stored.raw) == (polled.external_id, polled.raw), kind

    # E-mail as received by SMTP or read over IMAP.
    for kind in (Channel.Kind.EMAIL_SMTP, Channel.Kind.EMAIL_IMAP):
        mail = messages[kind].raw
        assert mail.external_id == external_id_for(mail.raw)
    imap = messages[Channel.Kind.EMAIL_IMAP].raw
    assert adapter_for(channels[Channel.Kind.EMAIL_IMAP])._recipients(imap.raw) == imap.recipients

    # The web form: what its view stores for answers that pass its checks.
    webform = WebForm.objects.get(slug=WEBFORM_SLUG)
    submission = json.loads(messages[Channel.Kind.WEBFORM].raw.raw)
    expected = json.loads(_submission(webform, submission["fields"], submission["ip_hash"], ""))
    assert submission == {**expected, "submitted_at": submission["submitted_at"]}
    answers = QueryDict(mutable=True)
    answers.update({name: str(value) for name, value in submission["fields"].items()})
    _values, fields = check_answers(webform, answers)
    assert [field.error for field in fields if field.error] == []


def test_the_history_plan_is_the_same_every_time_and_grows_by_appending():
    channels = seed_channels()
    webform = WebForm.objects.get(slug=WEBFORM_SLUG)

    def planned(residents: int, strangers: int) -> list:
        events = plan_history(
            residents=plan_residents(residents),
            strangers=strangers,
            channels=channels,
            webform=webform,
        )
        return [
            (event.raw.external_id, event.raw.raw)
            if isinstance(event, PlannedMessage)
            else (event.message_id, event.body)
            for event in events
        ]

    small = planned(100, 10)
    assert planned(100, 10) == small
    assert set(small) <= set(planned(120, 12))


# --- a year of history ---------------------------------------------------------------------


@pytest.fixture
def history(settings) -> str:
    """seed_demo with just enough residents for history; its summary line."""
    settings.DEBUG = True
    out = io.StringIO()
    call_command("seed_demo", residents=HISTORY_MIN_RESIDENTS, stdout=out)
    return out.getvalue()


def history_counts() -> dict[str, int]:
    return {
        "inbound": InboundMessage.objects.count(),
        "threads": Thread.objects.count(),
        "timeline": TimelineEntry.objects.count(),
        "outbound": OutboundMessage.objects.count(),
        "citizens": Citizen.objects.count(),
        "contact points": ContactPoint.objects.count(),
    }


def test_a_small_council_gets_no_history(settings):
    settings.DEBUG = True
    call_command("seed_demo", residents=HISTORY_MIN_RESIDENTS - 1, quiet=True)

    assert not InboundMessage.objects.exists()
    assert not OutboundMessage.objects.exists()


def test_every_channel_kind_has_processed_messages_and_threads(history):
    messages = InboundMessage.objects.all()

    assert set(messages.values_list("status", flat=True)) == {InboundMessage.Status.PROCESSED}
    assert set(messages.values_list("channel__kind", flat=True)) == ALL_KINDS
    assert set(Thread.objects.values_list("channel__kind", flat=True)) == ALL_KINDS
    assert not messages.filter(thread__isnull=True).exists()
    assert set(messages.values_list("channel__slug", flat=True)) == {
        channel.slug for channel in DEMO_CHANNELS
    }


def test_history_spans_the_year_before_demo_now(history):
    span = InboundMessage.objects.aggregate(first=Min("received_at"), last=Max("received_at"))

    assert DEMO_NOW - datetime.timedelta(days=366) <= span["first"]
    assert span["first"] <= DEMO_NOW - datetime.timedelta(days=300)
    assert DEMO_NOW - datetime.timedelta(days=45) <= span["last"] <= DEMO_NOW
    entries = TimelineEntry.objects.filter(kind__in=["message_in", "message_out"])
    assert entries.filter(occurred_at__gt=DEMO_NOW).count() == 0
    # Threads begin with their first message and are ordered by their last.
    for thread in Thread.objects.annotate(first=Min("inbound_messages__received_at")):
        assert thread.created_at == thread.first
        assert thread.last_message_at <= DEMO_NOW


def test_residents_are_found_by_their_own_addresses_and_strangers_get_profiles(history):
    planned = {
        plan.public_id
        for plan in plan_residents(HISTORY_MIN_RESIDENTS)
        if plan.contact_points and not plan.provisional
    }
    from_residents = InboundMessage.objects.filter(citizen__public_id__in=planned)

    assert from_residents.count() >= 20
    assert from_residents.filter(contact_point__source=ContactPoint.Source.DEMO).exists()
    strangers = InboundMessage.objects.filter(contact_point__source=ContactPoint.Source.INBOUND)
    assert set(strangers.values_list("citizen__status", flat=True)) == {Citizen.Status.PROVISIONAL}


def test_staff_replies_were_sent_then_and_are_on_the_timeline(history):
    replies = OutboundMessage.objects.select_related("thread")
    outbound_type = ContentType.objects.get_for_model(OutboundMessage)

    assert replies.count() >= 5
    for reply in replies:
        assert reply.status == OutboundMessage.Status.SENT and not reply.last_error
        assert reply.sent_at <= DEMO_NOW and reply.provider_message_id
        assert reply.thread.last_message_at >= reply.sent_at
        entry = TimelineEntry.objects.get(source_type=outbound_type, source_id=str(reply.pk))
        assert (entry.kind, entry.occurred_at) == ("message_out", reply.sent_at)


def test_answers_to_staff_replies_join_the_thread_they_answer(history):
    answered = Thread.objects.filter(
        inbound_messages__received_at__gt=F("outbound_messages__sent_at")
    ).distinct()

    assert answered.count() >= 3
    # An e-mail answer threads by In-Reply-To our reply's Message-ID, even on another channel
    # (a web form's reply went out by e-mail from the contact centre).
    by_reference = InboundMessage.objects.filter(
        in_reply_to__in=OutboundMessage.objects.values("message_id")
    )
    assert by_reference.exists()
    for message in by_reference:
        assert message.thread.outbound_messages.filter(message_id=message.in_reply_to).exists()


def test_seed_demo_again_adds_no_history(history):
    before = history_counts()
    threads = list(Thread.objects.order_by("pk").values_list("pk", "status", "last_message_at"))
    out = io.StringIO()

    call_command("seed_demo", residents=HISTORY_MIN_RESIDENTS, stdout=out)

    assert history_counts() == before
    assert list(Thread.objects.order_by("pk").values_list("pk", "status", "last_message_at")) == (
        threads
    )
    # Nothing was even delivered twice: a second run sends no message to the pipeline.
    assert set(Channel.objects.values_list("duplicate_count", flat=True)) == {0}
    assert "0 history messages, 0 staff replies." in out.getvalue()
    first = re.search(r"(\d+) history messages, (\d+) staff replies", history)
    assert (int(first[1]), int(first[2])) == (before["inbound"], before["outbound"])
