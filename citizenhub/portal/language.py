"""The resident's language follows them: the choice saved on their profile applies when
they sign in on any device, until they pick another with the toggle.

Django's LocaleMiddleware decides from the language cookie, then Accept-Language. A
signed-in resident who has never used the toggle on this browser has no cookie, so their
profile's language (remembered in the session at sign-in, to cost no query per page) wins
over what the browser says.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import translation

from citizenhub.middleware import OUTAGE_ERRORS

SESSION_LANGUAGE_KEY = "citizenhub_language"


def remember_language_on_login(sender: Any, request: HttpRequest, user: Any, **kwargs: Any) -> None:
    from citizenhub.portal.access import citizen_for_user

    citizen = citizen_for_user(user)
    if citizen is not None and hasattr(request, "session"):
        request.session[SESSION_LANGUAGE_KEY] = citizen.preferred_language


class ResidentLanguageMiddleware:
    """After LocaleMiddleware: a signed-in resident's saved language, unless this browser
    has chosen one with the toggle (the cookie)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        session = getattr(request, "session", None)
        if session is not None and settings.LANGUAGE_COOKIE_NAME not in request.COOKIES:
            try:
                language = session.get(SESSION_LANGUAGE_KEY)
            except OUTAGE_ERRORS:
                # The session store is down: the view meets the outage and answers 503
                # (citizenhub.middleware); a middleware error here would be a bare 500.
                language = None
            if language in dict(settings.LANGUAGES):
                translation.activate(language)
                request.LANGUAGE_CODE = language
        return self.get_response(request)
