"""Reading cases, with purpose-based access to sensitive services.

A sensitive service (adult social care, bereavement) keeps its case content to its own
team: the team the case sits with, or the team that owns the service. Everybody else on the
staff sees only that a case exists (reference, service, status, dates) so that nobody
contradicts work they cannot see. Pages, the API and search all read cases through here.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Exists, OuterRef, Q, QuerySet

from citizenhub.models import Service, ServiceCase, Team

User = AbstractBaseUser | AnonymousUser

REDACTED_TITLE = "Sensitive case: content restricted to its team"


def _member_of(team_field: str, user: User) -> Exists:
    return Exists(
        Team.members.through.objects.filter(team_id=OuterRef(team_field), user_id=user.pk)
    )


def cases_for(user: User) -> QuerySet[ServiceCase]:
    """Every case the user may know exists, each annotated with `content_visible`."""
    if not getattr(user, "is_authenticated", False) or not user.is_staff:
        return ServiceCase.objects.none()
    return (
        ServiceCase.objects.select_related("service", "team", "assignee", "citizen")
        .annotate(
            in_case_team=_member_of("team_id", user),
            in_service_team=_member_of("service__team_id", user),
        )
        .annotate(
            content_visible=Q(service__is_sensitive=False)
            | Q(in_case_team=True)
            | Q(in_service_team=True)
        )
    )


def case_content_visible_q(user: User, prefix: str = "") -> Q:
    """A condition on cases (or on a relation to them, with `prefix`) true where the user
    may read the content; for filtering searches so hidden text never matches."""
    team_ids = list(Team.objects.filter(members=user).values_list("pk", flat=True))
    return (
        Q(**{f"{prefix}service__is_sensitive": False})
        | Q(**{f"{prefix}team_id__in": team_ids})
        | Q(**{f"{prefix}service__team_id__in": team_ids})
    )


def can_see_case_content(user: User, case: ServiceCase) -> bool:
    if not getattr(user, "is_authenticated", False) or not user.is_staff:
        return False
    if not case.service.is_sensitive:
        return True
    return Team.objects.filter(
        Q(pk=case.team_id) | Q(pk=case.service.team_id), members=user
    ).exists()


def hidden_service_codes(user: User) -> frozenset[str]:
    """Codes of sensitive services the user may not read: timeline entries, threads and
    messages tagged with these show that something happened, not what."""
    sensitive = Service.objects.filter(is_sensitive=True)
    if getattr(user, "is_authenticated", False):
        sensitive = sensitive.exclude(team__members=user)
    return frozenset(sensitive.values_list("code", flat=True))


def case_queue(
    user: User,
    *,
    scope: str = "mine",
    team: Team | None = None,
    include_closed: bool = False,
) -> QuerySet[ServiceCase]:
    """A work queue, soonest due first: "mine" (assigned to me), "team" (my teams' cases or
    one team's), "unassigned" (my teams', nobody's) or "all"."""
    queryset = cases_for(user)
    if not include_closed:
        queryset = queryset.filter(status__in=ServiceCase.OPEN_STATUSES)
    if scope == "mine":
        queryset = queryset.filter(assignee=user)
    elif scope in ("team", "unassigned"):
        if team is not None:
            queryset = queryset.filter(team=team)
        else:
            queryset = queryset.filter(team__members=user)
        if scope == "unassigned":
            queryset = queryset.filter(assignee__isnull=True)
    return queryset.order_by("due_on", "-priority", "opened_at", "pk")
