"""Reading cases, with purpose-based access to sensitive services.

A sensitive service (adult social care, bereavement) keeps its case content to its own
team: the team the case sits with, or the team that owns the service. Everybody else on the
staff sees only that a case exists (reference, service, status, dates) so that nobody
contradicts work they cannot see. Pages, the API and search all read cases through here.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.cache import cache
from django.db.models import BooleanField, ExpressionWrapper, Q, QuerySet

from citizenhub.models import Service, ServiceCase, Team

User = AbstractBaseUser | AnonymousUser

REDACTED_TITLE = "Sensitive case: content restricted to its team"


# What an officer may read depends on their teams and on which services are sensitive. Both
# are read once per request object: a page asks several times (cases, timeline, panels).
_TEAM_IDS_ATTR = "_citizenhub_team_ids"
_HIDDEN_CODES_ATTR = "_citizenhub_hidden_service_codes"


def user_team_ids(user: User) -> frozenset[int]:
    """The ids of the teams the user is in (cached on this user object)."""
    if not getattr(user, "is_authenticated", False):
        return frozenset()
    cached = getattr(user, _TEAM_IDS_ATTR, None)
    if cached is None:
        cached = frozenset(Team.objects.filter(members=user).values_list("pk", flat=True))
        setattr(user, _TEAM_IDS_ATTR, cached)
    return cached


def forget_cached_access(user: User) -> None:
    """Drop what this user object remembers of its teams (after changing memberships)."""
    for name in (_TEAM_IDS_ATTR, _HIDDEN_CODES_ATTR):
        if hasattr(user, name):
            delattr(user, name)


def case_content_visible_q(user: User, prefix: str = "") -> Q:
    """A condition on cases (or on a relation to them, with `prefix`) true where the user
    may read the content; for filtering searches so hidden text never matches."""
    team_ids = sorted(user_team_ids(user))
    condition = Q(**{f"{prefix}service__is_sensitive": False})
    if team_ids:
        condition |= Q(**{f"{prefix}team_id__in": team_ids}) | Q(
            **{f"{prefix}service__team_id__in": team_ids}
        )
    return condition


def cases_for(user: User) -> QuerySet[ServiceCase]:
    """Every case the user may know exists, each annotated with `content_visible`.

    The condition compares with the user's team ids, read once, rather than correlated
    subqueries: compiling those was most of the cost of a page that lists a few cases."""
    if not getattr(user, "is_authenticated", False) or not user.is_staff:
        return ServiceCase.objects.none()
    return ServiceCase.objects.select_related("service", "team", "assignee", "citizen").annotate(
        content_visible=ExpressionWrapper(case_content_visible_q(user), output_field=BooleanField())
    )


def case_content_visible_to_teams(case: ServiceCase, team_ids: frozenset[int]) -> bool:
    """The sensitive-service rule for one case, given an officer's team ids."""
    return (
        not case.service.is_sensitive
        or case.team_id in team_ids
        or case.service.team_id in team_ids
    )


def can_see_case_content(user: User, case: ServiceCase) -> bool:
    if not getattr(user, "is_authenticated", False) or not user.is_staff:
        return False
    return case_content_visible_to_teams(case, user_team_ids(user))


@dataclass(frozen=True)
class CatalogueSummary:
    """What every staff page needs of the service catalogue: which services are sensitive
    (and whose), and the departments. Cached: the catalogue changes a few times a year and
    these were two queries on every page."""

    sensitive: tuple[tuple[str, int], ...]  # (service code, owning team id)
    departments: tuple[str, ...]


CATALOGUE_CACHE_KEY = "citizenhub:catalogue-summary:v1"
# A backstop only: saving or deleting a Service clears the entry at once (apps.py).
CATALOGUE_CACHE_SECONDS = 300


def catalogue_summary() -> CatalogueSummary:
    summary = cache.get(CATALOGUE_CACHE_KEY)
    if summary is None:
        rows = list(
            Service.objects.order_by().values_list("code", "team_id", "is_sensitive", "department")
        )
        summary = CatalogueSummary(
            sensitive=tuple((code, team_id) for code, team_id, sensitive, _ in rows if sensitive),
            departments=tuple(sorted({department for *_, department in rows if department})),
        )
        cache.set(CATALOGUE_CACHE_KEY, summary, CATALOGUE_CACHE_SECONDS)
    return summary


def forget_catalogue_summary(**_kwargs: object) -> None:
    """Signal receiver: a service changed, so the next page reads the catalogue again."""
    cache.delete(CATALOGUE_CACHE_KEY)


def hidden_service_codes(user: User) -> frozenset[str]:
    """Codes of sensitive services the user may not read: timeline entries, threads and
    messages tagged with these show that something happened, not what."""
    cached = getattr(user, _HIDDEN_CODES_ATTR, None)
    if cached is not None:
        return cached
    team_ids = user_team_ids(user)
    hidden = frozenset(
        code for code, team_id in catalogue_summary().sensitive if team_id not in team_ids
    )
    if getattr(user, "is_authenticated", False):
        setattr(user, _HIDDEN_CODES_ATTR, hidden)
    return hidden


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
