"""Staff must set up an authenticator app (TOTP) before using staff pages or the API."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlencode

from allauth.mfa.models import Authenticator
from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.urls import reverse

from citizenhub.api.errors import error_body
from citizenhub.middleware import OUTAGE_ERRORS, ServiceUnavailableMiddleware

# Django's admin is a staff page too: its own login is replaced by allauth's (urls.py), and
# an officer without an authenticator is sent to set one up before using it.
STAFF_PREFIXES = ("/staff/", "/admin/")
API_PREFIX = "/api/v1/"
MFA_REQUIRED_MESSAGE = (
    "Staff accounts must set up two-factor authentication (an authenticator app) before "
    "using the API in a browser session. Sign in and follow the instructions, or use an API "
    "token."
)


def has_totp(user) -> bool:
    return Authenticator.objects.filter(user_id=user.pk, type=Authenticator.Type.TOTP).exists()


class StaffMfaRequiredMiddleware:
    """Send staff without TOTP to set it up; answer their API calls with 403 `mfa_required`.

    It runs after AuthenticationMiddleware, so `request.user` is the *session* user: API
    clients authenticating with a token (integration accounts, DRF's TokenAuthentication)
    are anonymous here and pass untouched. Residents are never affected.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        path = request.path_info
        is_staff_page = path.startswith(STAFF_PREFIXES)
        is_api = path.startswith(API_PREFIX)
        if (is_staff_page or is_api) and settings.STAFF_MFA_REQUIRED:
            try:
                user = request.user
                refuse = user.is_authenticated and user.is_staff and not has_totp(user)
            except OUTAGE_ERRORS as exc:
                # Django turns an exception raised here into a 500 before the outage
                # middleware sees it; answer with its 503 instead (never skip the check).
                return ServiceUnavailableMiddleware(self.get_response)._unavailable(request, exc)
            if refuse:
                return self._refuse(request, api=is_api)
        return self.get_response(request)

    def _refuse(self, request: HttpRequest, *, api: bool) -> HttpResponse:
        if api:
            body = error_body("mfa_required", MFA_REQUIRED_MESSAGE)
            body["error"]["fields"] = {}
            return JsonResponse(body, status=403)
        url = f"{reverse('mfa_activate_totp')}?{urlencode({'next': request.get_full_path()})}"
        if request.headers.get("HX-Request"):
            # An HTMX swap would put the whole set-up page inside a fragment: go there instead.
            response = HttpResponse(status=204)
            response["HX-Redirect"] = url
            return response
        return HttpResponseRedirect(url)
