"""Routing rules: which department and service an inbound message belongs to."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from channels.adapters import ParsedMessage
from channels.models import InboundMessage, RoutingRule


@dataclass(frozen=True)
class RoutingDecision:
    department: str = ""
    service_code: str = ""
    rule_id: int | None = None


NO_ROUTE = RoutingDecision()


def enabled_rules() -> list[RoutingRule]:
    return list(RoutingRule.objects.filter(enabled=True).order_by("priority", "id"))


def route_message(
    message: InboundMessage, parsed: ParsedMessage, rules: Sequence[RoutingRule]
) -> RoutingDecision:
    """The first matching rule decides; a rule matches on channel, council address and any
    keyword (all the conditions it sets must hold)."""
    haystack = f"{parsed.subject}\n{parsed.summary_text}".lower()
    recipients = [r.lower() for r in message.recipients]
    for rule in rules:
        if rule.channel_id and rule.channel_id != message.channel_id:
            continue
        needle = rule.recipient_contains.lower()
        if needle and not any(needle in recipient for recipient in recipients):
            continue
        keywords = rule.keyword_list()
        if keywords and not any(keyword in haystack for keyword in keywords):
            continue
        if not (rule.channel_id or needle or keywords):
            continue  # a rule with no condition would swallow everything: ignore it
        return RoutingDecision(rule.department, rule.service_code, rule.pk)
    return NO_ROUTE
