"""Staff roles (Django groups) with their permissions, and the gate in front of staff pages.

Being staff (`user.is_staff`) lets a person into the dashboard at all; the groups below say
what they may do there. Permissions are looked up by codename, so the roles pick up models
of later issues (service cases, campaigns, ...) on the next `migrate`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser, Group, Permission
from django.contrib.auth.views import redirect_to_login
from django.db import DEFAULT_DB_ALIAS, transaction
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse

CASEWORKER = "caseworker"
COMMS_OFFICER = "comms officer"
DEMOCRACY_OFFICER = "democracy officer"
SUPERVISOR = "supervisor"
ADMINISTRATOR = "administrator"
STAFF_GROUPS = (CASEWORKER, COMMS_OFFICER, DEMOCRACY_OFFICER, SUPERVISOR, ADMINISTRATOR)

# The hub core and the inbox: every staff role reads them, within its role's purpose.
CORE_APPS = ("citizenhub", "channels")
# Casework: caseworkers open and update cases and write their history, never delete them.
CASEWORK_PERMISSIONS = (
    "add_servicecase",
    "change_servicecase",
    "transition_servicecase",
    "add_caseevent",
)
# The inbox: answering residents and sharing out conversations is casework too.
INBOX_PERMISSIONS = ("add_outboundmessage", "change_thread")
# Decisions above a caseworker: merging profiles, legal holds, moving any case.
SUPERVISOR_EXTRA_PERMISSIONS = (
    "merge_citizen",
    "set_legal_hold",
    "transition_servicecase",
    "add_servicecase",
    "add_caseevent",
)


def _codename_prefixes(*actions: str) -> Q:
    query = Q()
    for action in actions:
        query |= Q(codename__startswith=f"{action}_")
    return query


def _role_permissions(role: str) -> Q | None:
    """Which permissions a role holds, as a filter on Permission; None means none."""
    in_core = Q(content_type__app_label__in=CORE_APPS)
    if role == ADMINISTRATOR:
        return in_core | Q(content_type__app_label__in=("engagement", "democracy"))
    if role == SUPERVISOR:
        return (
            (in_core & _codename_prefixes("view", "change"))
            | (in_core & Q(codename__in=SUPERVISOR_EXTRA_PERMISSIONS))
            | (Q(content_type__app_label="channels") & Q(codename__in=INBOX_PERMISSIONS))
        )
    if role == CASEWORKER:
        return (
            (in_core & _codename_prefixes("view"))
            | (Q(content_type__app_label="citizenhub") & Q(codename__in=CASEWORK_PERMISSIONS))
            | (Q(content_type__app_label="channels") & Q(codename__in=INBOX_PERMISSIONS))
        )
    if role == COMMS_OFFICER:
        return Q(content_type__app_label="engagement") & _codename_prefixes("view", "add", "change")
    if role == DEMOCRACY_OFFICER:
        return Q(content_type__app_label="democracy") & _codename_prefixes("view", "add", "change")
    return None


def ensure_staff_groups(*, using: str = DEFAULT_DB_ALIAS) -> dict[str, Group]:
    """Create the staff groups and grant each its role's permissions; safe to run again.

    Permissions are only ever added: an administrator's extra grants in the admin survive
    a deployment.
    """
    groups: dict[str, Group] = {}
    with transaction.atomic(using=using):
        for role in STAFF_GROUPS:
            group, _ = Group.objects.using(using).get_or_create(name=role)
            query = _role_permissions(role)
            if query is not None:
                permissions = list(Permission.objects.using(using).filter(query))
                group.permissions.add(*permissions)
            groups[role] = group
    return groups


def user_in_group(user: AbstractBaseUser | AnonymousUser, name: str) -> bool:
    if not user.is_authenticated:
        return False
    return user.groups.filter(name=name).exists()


def is_staff_member(user: AbstractBaseUser | AnonymousUser) -> bool:
    return bool(user.is_authenticated and user.is_active and user.is_staff)


def deny_or_login(request: HttpRequest) -> HttpResponse | None:
    """None if the request may see staff pages; else the login redirect or the 403 page."""
    user = request.user
    if not user.is_authenticated:
        return redirect_to_login(request.get_full_path(), reverse("account_login"))
    if not is_staff_member(user):
        return render(request, "staff/forbidden.html", status=403)
    return None


def staff_required(view_func: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Sign-in first (then back here), and a 403 page for people who are not council staff."""

    @wraps(view_func)
    def _wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        refusal = deny_or_login(request)
        if refusal is not None:
            return refusal
        return view_func(request, *args, **kwargs)

    return _wrapped


class StaffRequiredMixin:
    """Class-based views' `staff_required`: put it first among the bases."""

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        refusal = deny_or_login(request)
        if refusal is not None:
            return refusal
        return super().dispatch(request, *args, **kwargs)  # type: ignore[misc]
