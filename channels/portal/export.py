"""The resident's messages in their data export (subject access): every conversation and
every message to or from them, as plain JSON (ISO dates, text only, no raw payloads)."""

from __future__ import annotations

from typing import Any

from channels.portal.selectors import ResidentMessage, channel_in_words, resident_messages_by_thread
from citizenhub.models import Citizen


def _message(item: ResidentMessage) -> dict[str, Any]:
    return {
        "direction": item.direction,
        "channel": item.channel,
        "date": item.at.isoformat(),
        "subject": item.subject,
        "text": item.text,
    }


def export_messages(citizen: Citizen) -> dict[str, Any]:
    """{"conversations": [...], "other_messages": [...]} for the data export."""
    threads, by_thread = resident_messages_by_thread(citizen)
    return {
        "conversations": [
            {
                "reference": thread.reference,
                "subject": thread.subject,
                "channel": channel_in_words(thread.channel),
                "case_reference": thread.case.reference if thread.case_id else None,
                "started": thread.created_at.isoformat(),
                "last_message": thread.last_message_at.isoformat(),
                "messages": [_message(item) for item in by_thread.get(thread.pk, [])],
            }
            for thread in threads
        ],
        # Messages that never joined a conversation (e.g. one that could not be threaded).
        "other_messages": [_message(item) for item in by_thread.get(None, [])],
    }
