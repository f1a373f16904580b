"""Public pages of the hub core (the residents' portal grows here in later issues)."""

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def home(request: HttpRequest) -> HttpResponse:
    return render(request, "citizenhub/home.html", {"council_name": settings.COUNCIL_NAME})
