"""Routing rules: which department and service an inbound message belongs to."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from channels.adapters import ParsedMessage
from channels.models import InboundMessage, RoutingRule
from citizenhub.models import Service


@dataclass(frozen=True)
class RoutingDecision:
    department: str = ""
    service_code: str = ""
    rule_id: int | None = None
    # The inbox the new thread goes to: the rule's team, else its service's team.
    team_id: int | None = None
    # Open a case of `service_code` for a new thread (the rule's opens_case).
    opens_case: bool = False


NO_ROUTE = RoutingDecision()


def enabled_rules() -> list[RoutingRule]:
    """The enabled rules in the order they are tried, each with `routed_team_id`: its own
    team or, when it has none, the team of its service (one query for all of them)."""
    rules = list(RoutingRule.objects.filter(enabled=True).order_by("priority", "id"))
    codes = {r.service_code for r in rules if r.service_code and r.team_id is None}
    service_teams = (
        dict(Service.objects.filter(code__in=codes).values_list("code", "team_id")) if codes else {}
    )
    for rule in rules:
        rule.routed_team_id = rule.team_id or service_teams.get(rule.service_code)
    return rules


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
        return RoutingDecision(
            department=rule.department,
            service_code=rule.service_code,
            rule_id=rule.pk,
            team_id=getattr(rule, "routed_team_id", rule.team_id),
            opens_case=rule.opens_case and bool(rule.service_code),
        )
    return NO_ROUTE
