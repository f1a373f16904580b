"""The staff search page: one box for a name, e-mail, phone, postcode, UPRN or case reference."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET

from citizenhub import search
from citizenhub.case_selectors import REDACTED_TITLE
from citizenhub.models import Citizen, ServiceCase
from citizenhub.staff.access import staff_required
from citizenhub.staff.views.cases import STATUS_TAGS, case_deadline

VIEW_PERMISSION = "citizenhub.view_citizen"

MATCH_LABELS = {
    search.MatchKind.EMAIL: gettext_lazy("e-mail address"),
    search.MatchKind.PHONE: gettext_lazy("phone number"),
    search.MatchKind.HANDLE: gettext_lazy("social media account"),
    search.MatchKind.UPRN: gettext_lazy("UPRN"),
    search.MatchKind.POSTCODE: gettext_lazy("postcode"),
    search.MatchKind.POSTCODE_DISTRICT: gettext_lazy("postcode district"),
    search.MatchKind.REFERENCE: gettext_lazy("case reference"),
    search.MatchKind.NAME: gettext_lazy("name"),
}


@require_GET
@staff_required
def search_page(request: HttpRequest) -> HttpResponse:
    if not request.user.has_perm(VIEW_PERMISSION):
        return render(request, "staff/forbidden.html", status=403)
    raw = request.GET.get("q", "")
    term, too_long = search.clean_term(raw)
    error = ""
    results = None
    if too_long:
        # Nobody types 200 characters into a search box: say so rather than search for
        # a cut-off part of what was pasted.
        error = _("Search for %(limit)d characters or fewer") % {"limit": search.TERM_LIMIT}
    elif term:
        results = search.search_staff(request.user, term)
        today = timezone.localdate()
        # Labels looked up once per page, not through get_FOO_display() per row.
        citizen_status = {value: str(label) for value, label in Citizen.Status.choices}
        case_status = {value: str(label) for value, label in ServiceCase.Status.choices}
        for citizen in results.citizens:
            citizen.status_label = citizen_status.get(citizen.status, citizen.status)
        for case in results.cases:
            case.deadline = case_deadline(case, today)
            case.status_tag = STATUS_TAGS.get(case.status, "govuk-tag--grey")
            case.status_label = case_status.get(case.status, case.status)
    context = {
        "term": "" if too_long else term,
        "error": error,
        "results": results,
        "matched_by": _(" or ").join(
            str(MATCH_LABELS[kind]) for kind in (results.matched_by if results else ())
        ),
        "redacted_title": REDACTED_TITLE,
        # Row links are built from these prefixes rather than a {% url %} per row.
        "citizens_url": reverse("staff:citizens"),
        "cases_url": reverse("staff:case-queue"),
        "limit": search.DEFAULT_LIMIT,
        "staff_section": "search",
    }
    return render(request, "staff/search/search.html", context)
