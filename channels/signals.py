"""Signals the channels app sends about messages it sent, for apps that build on it (the
engagement app's deliveries follow their outbound messages) without channels importing
them."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

import django.dispatch


@dataclass(frozen=True)
class OutboundStatusChange:
    """What happened to one outbound message.

    `outcome` is one of OUTCOMES: the message was handed to the provider ("sent"), reached
    the phone or mailbox ("delivered"), failed ("failed"), failed because the address does
    not exist or refused it for good ("bounced": its contact point is marked undeliverable
    already), or its recipient reported it as spam ("complained")."""

    outbound_id: int
    outcome: str
    detail: str = ""
    occurred_at: datetime.datetime | None = None


SENT, DELIVERED, FAILED, BOUNCED, COMPLAINED = OUTCOMES = (
    "sent",
    "delivered",
    "failed",
    "bounced",
    "complained",
)

# Sent with `changes` (a list of OutboundStatusChange) inside the transaction that wrote the
# messages' new status, so a receiver's writes commit or roll back with it. A receiver
# must not fail for messages it knows nothing about (thread replies): it is sent for every
# change of every outbound message.
outbound_status_changed = django.dispatch.Signal()
