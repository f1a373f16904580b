"""Delivery receipts update what we sent, never go backwards, and ignore the unknown."""

import pytest

from channels.adapters import DeliveryReport
from channels.models import OutboundMessage
from channels.services.outbound import record_delivery_reports
from citizenhub.services import citizen_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent(email_channel):
    citizen = citizen_create(given_name="Ann", contact_points=[("phone", "07700 900401")])

    def make(provider_id: str) -> OutboundMessage:
        return OutboundMessage.objects.create(
            channel=email_channel,
            citizen=citizen,
            to_value="+447700900401",
            body_text="hi",
            status=OutboundMessage.Status.SENT,
            provider_message_id=provider_id,
        )

    return citizen, make


def test_delivered_and_unknown(email_channel, sent):
    _, make = sent
    message = make("p-1")
    applied = record_delivery_reports(
        channel=email_channel,
        reports=[
            DeliveryReport("p-1", "delivered"),
            DeliveryReport("nobody-sent-this", "delivered"),
        ],
    )
    assert (applied.updated, applied.unknown) == (1, 1)
    message.refresh_from_db()
    assert message.status == "delivered" and message.delivered_at


def test_permanent_failure_marks_the_number_undeliverable(email_channel, sent):
    citizen, make = sent
    message = make("p-2")
    record_delivery_reports(
        channel=email_channel,
        reports=[DeliveryReport("p-2", "permanent_failure", "number does not exist")],
    )
    message.refresh_from_db()
    assert message.status == "failed" and "does not exist" in message.last_error
    assert citizen.contact_points.get().undeliverable_at is not None


def test_a_final_state_is_never_undone(email_channel, sent):
    _, make = sent
    message = make("p-3")
    record_delivery_reports(channel=email_channel, reports=[DeliveryReport("p-3", "delivered")])
    record_delivery_reports(
        channel=email_channel, reports=[DeliveryReport("p-3", "temporary_failure", "late")]
    )
    message.refresh_from_db()
    assert message.status == "delivered" and message.last_error == ""


def test_status_endpoint_refuses_channels_without_receipts(client, email_channel):
    response = client.post(
        f"/hooks/{email_channel.slug}/status/", b"{}", content_type="application/json"
    )
    assert response.status_code == 404
    assert client.post("/hooks/no-such-channel/status/").status_code == 404
