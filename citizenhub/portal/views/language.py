"""The English/Cymraeg toggle: Django's set_language, and for a signed-in resident the
choice is saved on their profile, so messages to them are written in it too."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_POST
from django.views.i18n import set_language as django_set_language

from citizenhub.portal.access import citizen_for_user
from citizenhub.portal.language import SESSION_LANGUAGE_KEY
from citizenhub.services.citizens import citizen_set_preferred_language


@require_POST
def set_language(request: HttpRequest) -> HttpResponse:
    response = django_set_language(request)
    language = request.POST.get("language", "")
    if language in dict(settings.LANGUAGES):
        citizen = citizen_for_user(request.user)
        if citizen is not None:
            citizen_set_preferred_language(citizen=citizen, language=language, actor=request.user)
            request.session[SESSION_LANGUAGE_KEY] = language
    return response
