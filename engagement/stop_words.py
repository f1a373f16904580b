"""Opting out by text message: a resident who texts STOP (or UNSUBSCRIBE, STOPIO, …) to the
council's number is unsubscribed from every non-essential message by text (PECR: every
marketing message offers a simple way to refuse, and a reply is the simplest there is).

Only a whole message counts (trimmed, any case, a full stop or exclamation mark at the end
allowed): "Stop the roadworks outside my house" is a message for staff, not an opt-out.
The message itself is processed as usual (it stays in its thread for staff to see).
Essential service messages are not subscriptions and still reach the resident.

The receiver runs inside the ingest transaction (channels.services.ingest sends
inbound_messages_processed there): one query when no message in the batch is a stop word,
and nothing here may fail the batch, so each resident's opt-out works in a savepoint and
failures are logged. When something was stopped, the resident gets one short text saying
so, queued on the channel their STOP came in on (sent after commit by the outbound queue);
a STOP with nothing left to stop gets no answer, so an auto-responder cannot start a loop.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection

from django.conf import settings
from django.db import transaction
from django.db.models.functions import Length
from django.utils import translation
from django.utils.translation import gettext as _

from channels.models import Channel, InboundMessage, OutboundMessage
from citizenhub.models import ChannelKind, Citizen
from engagement.models import ConsentRecord

logger = logging.getLogger(__name__)

# The words mobile networks and SMS providers treat as an opt-out (Twilio's list, and the
# UK industry's STOP/STOP ALL), and their Welsh equivalents.
STOP_WORDS = frozenset(
    {
        "STOP",
        "STOP ALL",
        "STOPALL",
        "UNSUBSCRIBE",
        "END",
        "CANCEL",
        "QUIT",
        "OPT OUT",
        "OPTOUT",
        # Welsh: "stop", "unsubscribe".
        "STOPIO",
        "DAD-DANYSGRIFIO",
        "DAD DANYSGRIFIO",
        "DADDANYSGRIFIO",
    }
)
# Longer messages are never a stop word: the query only fetches short texts.
_LONGEST = max(len(word) for word in STOP_WORDS) + 8
_SMS_KINDS = (Channel.Kind.SMS_NOTIFY, Channel.Kind.SMS_TWILIO)
_SPACES = re.compile(r"\s+")
STOP_WORDING = "Texted “{word}” to the council's number: stop every non-essential text message"
STOP_ACTOR = "resident (texted a stop word)"


def is_stop_message(text: str | None) -> bool:
    """The whole message is a stop word (any case, spaces trimmed, a final . or ! allowed)."""
    return _normalised(text) in STOP_WORDS


def _normalised(text: str | None) -> str:
    return _SPACES.sub(" ", (text or "").strip().rstrip(".!").strip()).upper()


def stop_requests(message_ids: Collection[int]) -> list[InboundMessage]:
    """The processed text messages among `message_ids` that are a stop word from a known
    resident, oldest first (one query)."""
    if not message_ids:
        return []
    candidates = (
        InboundMessage.objects.filter(
            pk__in=list(message_ids),
            citizen__isnull=False,
            channel__kind__in=_SMS_KINDS,
        )
        .exclude(classification=InboundMessage.Classification.DUPLICATE)
        .annotate(body_length=Length("body_text"))
        .filter(body_length__lte=_LONGEST)
        .select_related("channel", "citizen")
        .order_by("received_at", "pk")
    )
    return [message for message in candidates if is_stop_message(message.body_text)]


def opt_out_by_text(message: InboundMessage) -> bool:
    """Unsubscribe the sender of a stop word from every non-essential text message, and
    queue the confirmation; True when something was stopped."""
    from engagement.subscriptions import unsubscribe

    result = unsubscribe(
        citizen=message.citizen,
        channel=ChannelKind.SMS,
        topic=None,
        # No source says "text message" (a model change); like a provider's spam report
        # (engagement.sending), it came through a provider's API, and the wording says how.
        source=ConsentRecord.Source.API,
        wording=STOP_WORDING.format(word=_normalised(message.body_text)),
        actor_label=STOP_ACTOR,
    )
    if not result.changed:
        return False
    _queue_confirmation(message)
    return True


def confirmation_text(citizen: Citizen) -> str:
    with translation.override(citizen.preferred_language or "en-gb"):
        return _(
            "%(council)s: you will not get council updates by text message any more. You "
            "will still get texts about your own requests and service messages."
        ) % {"council": settings.COUNCIL_NAME}


def _queue_confirmation(message: InboundMessage) -> None:
    # Not a conversation (no thread: the STOP's own thread keeps its status for staff); sent
    # by the outbound queue after commit, with its retries.
    from channels.tasks import send_outbound_message

    if not message.channel.enabled or not message.sender_value:
        return
    outbound = OutboundMessage.objects.create(
        channel=message.channel,
        thread=None,
        citizen=message.citizen,
        to_value=message.sender_value,
        body_text=confirmation_text(message.citizen),
    )
    transaction.on_commit(lambda: send_outbound_message.delay(outbound.pk))


def on_inbound_messages_processed(
    sender: object, message_ids: Collection[int], **kwargs: object
) -> None:
    """channels' inbound_messages_processed receiver (connected in engagement.apps)."""
    try:
        requests = stop_requests(message_ids)
    except Exception:
        logger.exception("looking for stop words failed for %d messages", len(message_ids))
        return
    done: set[int] = set()
    for message in requests:
        if message.citizen_id in done:
            continue  # "STOP" twice in one batch: one opt-out, one confirmation
        done.add(message.citizen_id)
        try:
            with transaction.atomic():
                opt_out_by_text(message)
        except Exception:
            # The resident's message itself must never be lost; staff see it in its thread.
            logger.exception("opting out after stop word in inbound message %s failed", message.pk)
