"""Issue acceptance: a resident who texts, mentions the council on Mastodon and fills in a
form, with those identities already on their profile, has one profile with three timeline
entries in three threads, and a staff reply to each goes out through its own channel."""

import pytest
from django.core.cache import cache

from channels.models import Channel, InboundMessage, OutboundMessage, Thread, WebForm
from channels.services.outbound import thread_reply
from channels.services.polling import poll_channel
from citizenhub.models import Citizen, TimelineEntry
from citizenhub.services import citizen_create
from tests.channels.sink import smtp_sink
from tests.channels.test_sms import (
    NOTIFY_KEY_VARIABLE,
    NOTIFY_TOKEN,
    NOTIFY_TOKEN_VARIABLE,
    notify_payload,
    post_notify,
)
from tests.channels.test_social import INSTANCE, MASTODON_TOKEN, MASTODON_TOKEN_ENV, mention
from tests.channels.test_webforms import QUESTIONS, token_from
from tests.fakes.mastodon import FakeMastodon, RunningFakeMastodon
from tests.fakes.notify import DEFAULT_TEMPLATE_ID, FakeNotify

pytestmark = pytest.mark.django_db


@pytest.fixture
def providers(monkeypatch):
    cache.clear()
    mastodon = FakeMastodon(token=MASTODON_TOKEN, domain=INSTANCE)
    with (
        FakeNotify() as notify,
        RunningFakeMastodon(mastodon) as mastodon_url,
        smtp_sink() as (
            mail,
            smtp_port,
        ),
    ):
        monkeypatch.setenv(NOTIFY_TOKEN_VARIABLE, NOTIFY_TOKEN)
        monkeypatch.setenv(NOTIFY_KEY_VARIABLE, notify.api_key)
        monkeypatch.setenv(MASTODON_TOKEN_ENV, MASTODON_TOKEN)
        Channel.objects.create(
            kind="sms-notify",
            slug="notify-sms",
            name="Text line",
            address="07700 900555",
            settings={
                "callback_token_env": NOTIFY_TOKEN_VARIABLE,
                "api_key_env": NOTIFY_KEY_VARIABLE,
                "api_base_url": notify.base_url,
                "template_id": DEFAULT_TEMPLATE_ID,
            },
        )
        Channel.objects.create(
            kind="mastodon",
            slug="mastodon",
            name="Mastodon",
            address=f"@northmoor@{INSTANCE}",
            settings={
                "api_base_url": mastodon_url,
                "access_token_env": MASTODON_TOKEN_ENV,
                "instance_domain": INSTANCE,
            },
        )
        Channel.objects.create(
            kind="email-smtp",
            slug="contact",
            name="Contact mailbox",
            address="contact@northmoor.example",
            settings={"smtp_host": "127.0.0.1", "smtp_port": smtp_port},
        )
        web = Channel.objects.create(
            kind="webform",
            slug="web",
            name="Website forms",
            settings={"reply_email_channel": "contact"},
        )
        WebForm.objects.create(
            channel=web,
            slug="report-a-problem",
            title="Report a problem",
            fields=QUESTIONS,
            allowed_origins=[],
        )
        yield notify, mastodon, mail
    cache.clear()


def test_three_channels_one_profile_three_threads_and_replies_through_each(
    client, providers, staff_user, django_capture_on_commit_callbacks
):
    notify, mastodon, mail = providers
    jane = citizen_create(
        given_name="Jane",
        family_name="Resident",
        contact_points=[
            ("phone", "07700 900123"),
            ("mastodon", "jane@mastodon.example"),
            ("email", "jane@example.org"),
        ],
    )
    capture = django_capture_on_commit_callbacks

    # 1. She texts (Notify sends her number as 447700900123).
    with capture(execute=True):
        assert post_notify(client, notify_payload("notify_received.json")).status_code == 200
    # 2. She mentions the council on Mastodon; the poller fetches it.
    mastodon.add_notification(
        mention(1, acct="jane@mastodon.example", text="Pothole on Mill Lane 🚲")
    )
    with capture(execute=True):
        assert poll_channel(channel_id=Channel.objects.get(slug="mastodon").pk).status == "polled"
    # 3. She fills in the council's web form.
    url = "/forms/report-a-problem/"
    answers = {
        "full_name": "Jane Resident",
        "email": "Jane@Example.org",
        "problem": "Pothole",
        "details": "Still not fixed.",
        "form_token": token_from(client.get(url)),
    }
    with capture(execute=True):
        assert client.post(url, answers).status_code == 200

    assert Citizen.objects.count() == 1
    assert set(InboundMessage.objects.values_list("status", "citizen_id")) == {
        ("processed", jane.pk)
    }
    entries = TimelineEntry.objects.filter(citizen=jane, kind="message_in")
    assert sorted(entries.values_list("channel", flat=True)) == ["mastodon", "sms", "web"]
    threads = Thread.objects.filter(citizen=jane)
    assert threads.count() == 3
    assert sorted(threads.values_list("channel__slug", flat=True)) == [
        "mastodon",
        "notify-sms",
        "web",
    ]

    for thread in threads:
        with capture(execute=True):
            thread_reply(
                thread=thread, body=f"Thanks Jane, about {thread.channel.name}.", by=staff_user
            )
    assert set(OutboundMessage.objects.values_list("status", flat=True)) == {"sent"}
    assert [t.phone_number for t in notify.sent] == ["+447700900123"]
    assert "Text line" in notify.sent[0].personalisation["body"]
    assert [p["visibility"] for p in mastodon.posted()] == ["direct"]
    assert "Mastodon" in mastodon.posted()[0]["status"]
    assert [m.rcpt_tos for m in mail.received] == [["jane@example.org"]]
    assert "Website forms" in mail.received[0].message.get_payload()
    assert TimelineEntry.objects.filter(citizen=jane, kind="message_out").count() == 3
