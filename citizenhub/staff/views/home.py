"""The staff dashboard's front page: a welcome and the way into each section."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from citizenhub.staff.access import staff_required


@require_GET
@staff_required
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "staff/home.html", {"staff_section": "home"})
