"""Reviewing and carrying out a resident's erasure request (/staff/cases/<reference>/erasure/).

Any officer who may read the case sees the plan: what would be erased, what is kept, why
and until when. Only a supervisor or administrator of the team handling the request
(information governance) may carry it out. The case page links here through a case panel,
shown on erasure requests only.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from citizenhub import case_selectors
from citizenhub.errors import ApplicationError
from citizenhub.gdpr import ERASURE_SERVICE_CODE
from citizenhub.models import AuditEvent, ServiceCase
from citizenhub.services import audit_record
from citizenhub.services.erasure import can_carry_out_erasure, carry_out_erasure, erasure_plan
from citizenhub.staff.access import staff_required
from citizenhub.staff.panels import Panel, register_case_panel

VIEW_PERMISSION = "citizenhub.view_servicecase"


def _refuse(request: HttpRequest, message: str) -> HttpResponse:
    return render(request, "staff/cases/refused.html", {"message": message}, status=403)


@require_http_methods(["GET", "POST"])
@staff_required
def erasure_review(request: HttpRequest, reference: str) -> HttpResponse:
    user = request.user
    if not user.has_perm(VIEW_PERMISSION):
        return _refuse(request, _("Your role does not allow you to read cases."))
    case = get_object_or_404(
        case_selectors.cases_for(user), reference=reference, service__code=ERASURE_SERVICE_CODE
    )
    if not case.content_visible:
        return _refuse(request, _("Only the team handling this request can review it."))
    allowed = can_carry_out_erasure(user, case)
    error = ""
    status = 200
    if request.method == "POST":
        if not allowed:
            return _refuse(
                request,
                _(
                    "Only a supervisor or administrator of the team handling the request "
                    "can carry out an erasure."
                ),
            )
        try:
            carry_out_erasure(case=case, actor=user)
        except ApplicationError as exc:
            error, status = exc.message, 400
            case = get_object_or_404(case_selectors.cases_for(user), pk=case.pk)
        else:
            messages.success(
                request,
                _("Erasure carried out. The resident is told what was erased and kept."),
            )
            return redirect("staff:case-detail", reference=case.reference)
    plan = erasure_plan(case.citizen) if case.citizen is not None else None
    if case.citizen is not None:
        audit_record(
            action=AuditEvent.Action.VIEW,
            target=case.citizen,
            actor=user,
            reason=f"Erasure review for {case.reference}",
            details={"page": "erasure_review", "case": case.reference},
        )
    return render(
        request,
        "staff/erasure/review.html",
        {
            "case": case,
            "plan": plan,
            "can_carry_out": allowed and case.is_open and plan is not None,
            "error": error,
            "staff_section": "cases",
        },
        status=status,
    )


def erasure_case_panel(request: HttpRequest, case: ServiceCase) -> Panel | None:
    """A link to the review, on erasure requests only (no query: the service is loaded)."""
    if case.service.code != ERASURE_SERVICE_CODE:
        return None
    return Panel(
        key="erasure",
        title=_("Erasure request"),
        template_name="staff/erasure/_case_panel.html",
        context={"url": reverse("staff:case-erasure", kwargs={"reference": case.reference})},
    )


# The panel registers when the staff URLs load (they include this module), which is before
# any case page is served.
register_case_panel("erasure", order=5)(erasure_case_panel)

# Included by citizenhub/staff/urls.py at cases/<reference>/erasure/ (namespace "staff").
urlpatterns = [path("", erasure_review, name="case-erasure")]
