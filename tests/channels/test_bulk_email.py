"""Bulk e-mail through the SMTP adapter: the HTML alternative, list headers (RFC 8058) with no
way to inject others, and refusals told apart: a dead address from a server's policy."""

from __future__ import annotations

import pytest

from channels.adapters.email_base import extra_headers
from channels.models import OutboundMessage
from channels.services.outbound import send_outbound
from citizenhub.models import ContactPoint
from citizenhub.services import citizen_create
from tests.channels.sink import smtp_sink

pytestmark = pytest.mark.django_db

UNSUBSCRIBE = "<https://council.example/unsubscribe/abc123/>"


@pytest.fixture
def sink(email_channel):
    with smtp_sink() as (handler, port):
        email_channel.settings = {**email_channel.settings, "smtp_port": port}
        email_channel.save()
        yield handler


@pytest.fixture
def resident(db):
    return citizen_create(
        given_name="Nia", family_name="Price", contact_points=[("email", "nia@example.org")]
    )


def bulk_message(channel, citizen, **fields) -> OutboundMessage:
    values = {
        "channel": channel,
        "citizen": citizen,
        "to_value": "nia@example.org",
        "subject": "Bin day changes",
        "body_text": "Bins now go out on Tuesdays.",
        "body_html": "<p>Bins now go out on <strong>Tuesdays</strong>.</p>",
        "message_id": "campaign-1-nia@citizenhub.test",
        "headers": {
            "List-Unsubscribe": UNSUBSCRIBE,
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
    }
    values.update(fields)
    return OutboundMessage.objects.create(**values)


def test_bulk_email_has_text_and_html_parts_and_one_click_unsubscribe(
    email_channel, sink, resident
):
    message = bulk_message(email_channel, resident)
    assert send_outbound(outbound_id=message.pk) == "sent"

    [received] = sink.received
    mail = received.message
    assert received.rcpt_tos == ["nia@example.org"]
    assert mail["List-Unsubscribe"] == UNSUBSCRIBE
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert mail["Message-ID"] == "<campaign-1-nia@citizenhub.test>"
    assert mail.get_content_type() == "multipart/alternative"
    text, html = mail.get_payload()
    assert text.get_content_type() == "text/plain"
    assert "Tuesdays" in text.get_payload(decode=True).decode()
    assert html.get_content_type() == "text/html"
    assert "<strong>Tuesdays</strong>" in html.get_payload(decode=True).decode()


def test_a_reply_without_html_or_headers_stays_a_plain_message(email_channel, sink, resident):
    message = bulk_message(email_channel, resident, body_html="", headers={})
    send_outbound(outbound_id=message.pk)
    mail = sink.received[0].message
    assert mail.get_content_type() == "text/plain"
    assert mail["List-Unsubscribe"] is None


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"Bcc": "everyone@example.org"}, id="addressing-header"),
        pytest.param({"From": "mayor@example.org"}, id="sender-header"),
        pytest.param({"Content-Type": "text/html"}, id="content-header"),
        pytest.param(
            {"List-Unsubscribe": "<https://x.example/>\r\nBcc: everyone@example.org"},
            id="crlf-injection",
        ),
        pytest.param({"List-Unsubscribe": "<https://x.example/>\nBcc: a@b.c"}, id="lf-injection"),
        pytest.param({"List-Id": ["not", "text"]}, id="not-text"),
        pytest.param({"List-Id": "x" * 3000}, id="too-long"),
    ],
)
def test_unsafe_or_unknown_extra_headers_are_dropped_and_the_mail_still_goes(
    email_channel, sink, resident, headers, caplog
):
    message = bulk_message(email_channel, resident, headers=headers)
    assert send_outbound(outbound_id=message.pk) == "sent"
    [received] = sink.received
    assert received.rcpt_tos == ["nia@example.org"]
    mail = received.message
    assert mail["Bcc"] is None and mail["List-Unsubscribe"] is None
    assert mail["From"].endswith("<contact@northmoor.example>")
    assert mail.get_content_type() == "multipart/alternative"
    assert b"everyone@example.org" not in received.data
    assert "dropped" in caplog.text


def test_a_nul_in_a_header_is_dropped_too():
    # PostgreSQL's jsonb cannot even store one; the adapter does not rely on that.
    message = OutboundMessage(pk=1, headers={"List-Id": "news\x00", "Precedence": "bulk"})
    assert extra_headers(message) == {"Precedence": "bulk"}


def test_header_names_are_matched_without_regard_to_case(email_channel, sink, resident):
    message = bulk_message(email_channel, resident, headers={"list-unsubscribe": UNSUBSCRIBE})
    send_outbound(outbound_id=message.pk)
    assert sink.received[0].message["List-Unsubscribe"] == UNSUBSCRIBE


def test_an_address_refused_for_good_fails_and_is_marked_undeliverable(
    email_channel, sink, resident
):
    sink.refuse_with = "550 5.1.1 <nia@example.org>: Recipient address rejected: User unknown"
    message = bulk_message(email_channel, resident)
    assert send_outbound(outbound_id=message.pk) == "failed"
    message.refresh_from_db()
    assert message.status == "failed" and "RecipientRefused" in message.last_error
    assert ContactPoint.objects.get(citizen=resident).undeliverable_at is not None


def test_a_policy_refusal_fails_without_blaming_the_address(email_channel, sink, resident):
    # Relay denied is our server's or configuration's problem, not the resident's address.
    sink.refuse_with = "554 5.7.1 <nia@example.org>: Relay access denied"
    message = bulk_message(email_channel, resident)
    assert send_outbound(outbound_id=message.pk) == "failed"
    message.refresh_from_db()
    assert message.status == "failed" and "PermanentSendError" in message.last_error
    assert ContactPoint.objects.get(citizen=resident).undeliverable_at is None


def test_a_deferred_recipient_stays_queued(email_channel, sink, resident):
    from channels.adapters import TransientChannelError

    sink.refuse_with = "451 4.2.1 mailbox busy, try later"
    message = bulk_message(email_channel, resident)
    with pytest.raises(TransientChannelError):
        send_outbound(outbound_id=message.pk)
    message.refresh_from_db()
    assert message.status == "queued"
    assert ContactPoint.objects.get(citizen=resident).undeliverable_at is None
