"""Who the signed-in resident is, and the guard every /my/ page uses.

A resident's pages only ever query through `request.citizen`: another resident's ids are
simply not found (404), so the pages leak neither data nor existence.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse

from citizenhub.models import Citizen
from citizenhub.services.identity import follow_merges


def citizen_for_user(user: Any) -> Citizen | None:
    """The live profile of a signed-in user, following merges; None for anonymous users and
    accounts with no profile yet (an e-mail address not yet verified)."""
    if not getattr(user, "is_authenticated", False):
        return None
    citizen = Citizen.objects.filter(user=user).first()
    if citizen is None:
        return None
    citizen = follow_merges(citizen)
    return citizen if citizen.is_live else None


def resident_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Signed in with a verified e-mail address (so linked to a profile): sets
    request.citizen. Anyone else is sent to sign in; a signed-in account without a profile
    is sent to verify its e-mail address."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        citizen = citizen_for_user(request.user)
        if citizen is None:
            from django.shortcuts import redirect

            return redirect("account_email")
        request.citizen = citizen
        return view(request, *args, **kwargs)

    return wrapped
