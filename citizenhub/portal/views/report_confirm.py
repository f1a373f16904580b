"""The link e-mailed to the address given with an anonymous report: its page asks the owner
of the address to confirm (a button), and confirming makes the case theirs.

GET changes nothing (mail scanners follow links); only the POST, with its CSRF token, does.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from citizenhub.errors import ApplicationError
from citizenhub.portal.access import citizen_for_user
from citizenhub.services.report_followers import (
    FollowRequest,
    follow_link_max_age,
    follow_request_from_token,
    report_follow_confirm,
)


@require_http_methods(["GET", "POST"])
def report_confirm(request: HttpRequest, token: str) -> HttpResponse:
    try:
        follow = follow_request_from_token(token)
    except ApplicationError as exc:
        return _invalid_link(request, expired=exc.code == "expired_link")
    if follow.case.citizen_id is not None:
        return _page(request, "portal/report/confirm_already.html", follow)
    if request.method == "POST":
        try:
            case, linked_now = report_follow_confirm(follow=follow)
        except ApplicationError:
            # The case was anonymised, or the address's profile erased, meanwhile.
            return _invalid_link(request, expired=False)
        if not linked_now:  # another click got there first
            return _page(request, "portal/report/confirm_already.html", follow)
        signed_in_citizen = citizen_for_user(request.user)
        return _page(
            request,
            "portal/report/confirmed.html",
            follow,
            in_my_account=signed_in_citizen is not None and signed_in_citizen.pk == case.citizen_id,
        )
    return _page(request, "portal/report/confirm.html", follow)


def _page(
    request: HttpRequest, template_name: str, follow: FollowRequest, **context: object
) -> HttpResponse:
    # The report's own text is not shown: whoever holds the link sees only what the e-mail
    # already told them, in case the address was typed by mistake.
    return render(
        request,
        template_name,
        {"case": follow.case, "service": follow.case.service, **context},
    )


def _invalid_link(request: HttpRequest, *, expired: bool) -> HttpResponse:
    return render(
        request,
        "portal/report/confirm_invalid.html",
        {"expired": expired, "link_days": max(1, follow_link_max_age() // (24 * 60 * 60))},
        status=404,
    )
