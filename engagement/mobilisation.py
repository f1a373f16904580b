"""Mobilisation: replies to campaigns that ask for one (volunteer call-outs, RSVPs), matched
back from the inbound messages of any channel and counted as CampaignResponses.

A processed inbound message from a resident who received such a campaign counts when it
- answers the campaign's own message: it is in the thread the campaign's message started,
  or its In-Reply-To / References name that message's Message-ID (e-mail replies);
- is a text message to the number the campaign texted, and the campaign's text is the last
  one the council sent that resident before the reply (SMS has no threading headers);
- or carries the campaign's reply keyword as a word, on any channel.
Only campaigns that started within ENGAGEMENT_RESPONSE_WINDOW_DAYS are considered, and an
inbound message answers at most one campaign (CampaignResponse.inbound_message_id is unique).
A stop word ("STOP", engagement.stop_words) is an opt-out, never an answer.

The receiver runs inside the ingest transaction (channels.services.ingest sends
inbound_messages_processed there): it costs one query when no campaign is collecting
replies, and nothing here may fail the batch, so it works in a savepoint and logs failures.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from channels.models import InboundMessage, OutboundMessage
from engagement.models import Campaign, CampaignResponse, Delivery
from engagement.stop_words import is_stop_message

logger = logging.getLogger(__name__)

DEFAULT_RESPONSE_WINDOW_DAYS = 30
RESPONSE_TEXT_LIMIT = 2000
# Deliveries that reached (or were handed to) the provider: the resident may have the message.
RECEIVED_STATUSES = (Delivery.Status.QUEUED, Delivery.Status.SENT, Delivery.Status.DELIVERED)


def response_window() -> timedelta:
    days = int(getattr(settings, "ENGAGEMENT_RESPONSE_WINDOW_DAYS", DEFAULT_RESPONSE_WINDOW_DAYS))
    return timedelta(days=days)


def _bare(message_id: str) -> str:
    return (message_id or "").strip().strip("<>").strip()


def _has_keyword(text: str, keyword: str) -> bool:
    return (
        bool(keyword) and re.search(rf"(?<!\w){re.escape(keyword)}(?!\w)", text, re.I) is not None
    )


@dataclass(frozen=True)
class _Received:
    campaign_id: int
    channel: str
    to_value: str
    outbound_id: int | None
    thread_id: int | None
    message_id: str
    sent_at: datetime | None


def _collecting_campaigns(now: datetime) -> dict[int, Campaign]:
    return {
        campaign.pk: campaign
        for campaign in Campaign.objects.filter(
            asks_response=True,
            status__in=[Campaign.Status.SENDING, Campaign.Status.SENT],
            started_at__gte=now - response_window(),
        ).only("pk", "response_keyword", "started_at")
    }


def match_responses(message_ids: Collection[int]) -> list[CampaignResponse]:
    """Record a CampaignResponse for each of these inbound messages that answers a campaign."""
    if not message_ids:
        return []
    now = timezone.now()
    campaigns = _collecting_campaigns(now)
    if not campaigns:
        return []
    messages = list(
        InboundMessage.objects.filter(pk__in=list(message_ids), citizen__isnull=False)
        .exclude(classification=InboundMessage.Classification.DUPLICATE)
        .select_related("channel")
        .only(
            "pk",
            "citizen_id",
            "thread_id",
            "in_reply_to",
            "references",
            "sender_value",
            "subject",
            "body_text",
            "received_at",
            "channel__kind",
        )
    )
    if not messages:
        return []
    received: dict[int, list[_Received]] = {}
    for row in (
        Delivery.objects.filter(
            campaign_id__in=list(campaigns),
            citizen_id__in={m.citizen_id for m in messages},
            status__in=RECEIVED_STATUSES,
        )
        .order_by("-created_at")
        .values_list(
            "citizen_id",
            "campaign_id",
            "channel",
            "to_value",
            "outbound_id",
            "outbound__thread_id",
            "outbound__message_id",
            "outbound__created_at",
        )
    ):
        citizen_id, *rest = row
        received.setdefault(citizen_id, []).append(_Received(*rest))
    if not received:
        return []
    already = set(
        CampaignResponse.objects.filter(
            inbound_message_id__in=[m.pk for m in messages]
        ).values_list("inbound_message_id", flat=True)
    )
    last_texts = _last_texts_to([m for m in messages if m.citizen_id in received and _is_sms(m)])
    responses = []
    for message in messages:
        if message.pk in already or message.citizen_id not in received:
            continue
        if is_stop_message(message.body_text):
            continue  # an opt-out (engagement.stop_words), not an answer to the campaign
        campaign_id = _answered_campaign(
            message, received[message.citizen_id], campaigns, last_texts.get(message.pk)
        )
        if campaign_id is None:
            continue
        responses.append(
            CampaignResponse(
                campaign_id=campaign_id,
                citizen_id=message.citizen_id,
                channel=message.channel.timeline_channel,
                inbound_message_id=message.pk,
                text=(message.body_text or message.subject)[:RESPONSE_TEXT_LIMIT],
                received_at=message.received_at,
            )
        )
    # A concurrent batch recording the same message loses quietly (unique inbound id).
    CampaignResponse.objects.bulk_create(responses, ignore_conflicts=True)
    return responses


def _is_sms(message: InboundMessage) -> bool:
    return message.channel.timeline_channel == "sms"


def _last_texts_to(messages: list[InboundMessage]) -> dict[int, int]:
    """For each SMS reply: the id of the last text the council sent that number before it."""
    if not messages:
        return {}
    numbers = {m.sender_value for m in messages if m.sender_value}
    sent = list(
        OutboundMessage.objects.filter(
            to_value__in=numbers,
            citizen_id__in={m.citizen_id for m in messages},
            created_at__gte=timezone.now() - response_window(),
        )
        .filter(~Q(status=OutboundMessage.Status.FAILED))
        .order_by("-created_at", "-pk")
        .values_list("pk", "to_value", "created_at")
    )
    latest: dict[int, int] = {}
    for message in messages:
        for pk, to_value, created_at in sent:
            if to_value == message.sender_value and created_at <= message.received_at:
                latest[message.pk] = pk
                break
    return latest


def _answered_campaign(
    message: InboundMessage,
    received: list[_Received],
    campaigns: dict[int, Campaign],
    last_text_id: int | None,
) -> int | None:
    """Which campaign the message answers; the most specific evidence wins."""
    references = {_bare(message.in_reply_to), *(_bare(r) for r in message.references or [])}
    references.discard("")
    for item in received:
        if message.thread_id and item.thread_id == message.thread_id:
            return item.campaign_id
        if item.message_id and _bare(item.message_id) in references:
            return item.campaign_id
    for item in received:
        if (
            last_text_id is not None
            and item.outbound_id == last_text_id
            and item.channel == "sms"
            and item.to_value == message.sender_value
        ):
            return item.campaign_id
    text = f"{message.subject}\n{message.body_text}"
    # `received` is newest first: a keyword shared by two campaigns answers the later one.
    for item in received:
        if _has_keyword(text, campaigns[item.campaign_id].response_keyword):
            return item.campaign_id
    return None


def on_inbound_messages_processed(
    sender: object, message_ids: Collection[int], **kwargs: object
) -> None:
    """channels' inbound_messages_processed receiver (connected in engagement.apps)."""
    try:
        with transaction.atomic():
            match_responses(message_ids)
    except Exception:
        # Counting replies must never lose the residents' messages themselves.
        logger.exception("matching campaign responses failed for %d messages", len(message_ids))


def response_count(campaign: Campaign) -> int:
    return CampaignResponse.objects.filter(campaign=campaign).count()
