"""Report a problem: choose the service, describe the problem and where it is, add photos;
then a confirmation page with the case reference.

/report/ asks which service (a GET form, so it works without JavaScript and the choice is
in the address); /report/?service=<code> asks the rest. Valid answers open a case and store
the photos in one transaction: an invalid answer saves nothing, no case and no file.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_safe

from citizenhub.errors import ApplicationError
from citizenhub.models import (
    CaseAttachment,
    ChannelKind,
    Citizen,
    ContactPoint,
    Service,
    ServiceCase,
)
from citizenhub.portal.access import citizen_for_user
from citizenhub.portal.forms_report import ChooseServiceForm, ReportForm
from citizenhub.portal.views.public import reportable_services, services_by_group
from citizenhub.ratelimit import HourlyLimit, address_hash, client_address
from citizenhub.services.attachments import attach_file, delete_stored_files
from citizenhub.services.cases import open_case
from citizenhub.services.identity import resolve_identity

# The confirmation page shows only the case this browser session has just reported, so a
# reference in the address can never show somebody else's case.
SESSION_REPORTED = "portal:reported"
ANONYMOUS_ACTOR_LABEL = "resident (portal, not signed in)"


@require_http_methods(["GET", "POST"])
def report(request: HttpRequest) -> HttpResponse:
    code = request.GET.get("service", "")
    service = reportable_services().filter(code=code).first() if code else None
    if service is None:
        return _choose_service(request)

    citizen = citizen_for_user(request.user)
    if request.user.is_authenticated and citizen is None:
        # Signed in, but the e-mail address is not verified yet: no profile to report as.
        return redirect("account_email")
    if citizen is None and not service.allows_anonymous:
        next_url = f"{reverse('portal:report')}?{urlencode({'service': service.code})}"
        query = urlencode({"next": next_url})
        return render(
            request,
            "portal/report/sign_in.html",
            {
                "service": service,
                "login_url": f"{reverse('account_login')}?{query}",
                "signup_url": f"{reverse('account_signup')}?{query}",
            },
        )

    anonymous = citizen is None
    status = 200
    if request.method == "POST":
        form = ReportForm(request.POST, request.FILES, anonymous=anonymous)
        limit, limit_key = _report_limit(request, citizen)
        retry_after = limit.retry_after(limit_key)
        if retry_after is not None:
            # Checked before the form: nothing of a refused report is stored, not even photos.
            form.full_clean()
            form.add_error(
                None,
                _(
                    "You have sent a lot of reports in the last hour. Wait %(minutes)s minutes "
                    "and try again, or phone the council if it is urgent."
                )
                % {"minutes": max(1, retry_after // 60)},
            )
            status = 429
        elif form.is_valid():
            try:
                case = _submit_report(request, service=service, citizen=citizen, form=form)
            except ValidationError as exc:
                for message in exc.messages:
                    form.add_error(None, message)
            except ApplicationError as exc:
                form.add_error(None, exc.message)
            else:
                limit.count(limit_key)
                request.session[SESSION_REPORTED] = {
                    "reference": case.reference,
                    "email_updates": anonymous and case.citizen_id is not None,
                }
                return redirect("portal:report-done")
    else:
        form = ReportForm(anonymous=anonymous)
    return render(
        request,
        "portal/report/describe.html",
        {
            "service": service,
            "form": form,
            "anonymous": anonymous,
            # A browser cannot refill file inputs: after an error, the photos are chosen again.
            "photos_dropped": request.method == "POST" and bool(request.FILES.getlist("photos")),
        },
        status=status,
    )


def _report_limit(request: HttpRequest, citizen: Citizen | None) -> tuple[HourlyLimit, str]:
    """Reports an hour: per profile when signed in, per address when not (a door open to
    anyone must not let a script fill the council's queues)."""
    if citizen is not None:
        return HourlyLimit("portal:reports", settings.PORTAL_REPORTS_PER_HOUR), str(citizen.pk)
    return (
        HourlyLimit("portal:anonymous-reports", settings.PORTAL_ANONYMOUS_REPORTS_PER_HOUR),
        address_hash(client_address(request), salt="portal.report.address"),
    )


def _choose_service(request: HttpRequest) -> HttpResponse:
    # An unknown, staff-only or withdrawn ?service= reads as "choose from the list".
    services = list(reportable_services().only("code", "name", "group", "description"))
    bound = "service" in request.GET
    form = ChooseServiceForm(request.GET if bound else None, services=services)
    if bound:
        form.is_valid()
    return render(
        request,
        "portal/report/choose.html",
        {"form": form, "groups": services_by_group(services)},
    )


def _submit_report(
    request: HttpRequest, *, service: Service, citizen: Citizen | None, form: ReportForm
) -> ServiceCase:
    data = form.cleaned_data
    user = request.user if request.user.is_authenticated else None
    stored: list[CaseAttachment] = []
    try:
        with transaction.atomic():
            if citizen is None and data.get("email"):
                # Updates reach an anonymous reporter through a profile for the address they
                # gave (a provisional one if it is new); the address stays unverified.
                citizen = resolve_identity(
                    kind=ContactPoint.Kind.EMAIL,
                    value=data["email"],
                    source=ContactPoint.Source.PORTAL,
                ).citizen
            case = open_case(
                service=service,
                title=form.summary_title,
                description=data["description"],
                citizen=citizen,
                actor=user,
                actor_label=ANONYMOUS_ACTOR_LABEL,
                source_channel=ChannelKind.WEB,
                postcode=data["postcode"],
                location_text=data["location_text"],
                latitude=data["latitude"],
                longitude=data["longitude"],
            )
            for photo in data["photos"]:
                stored.append(
                    attach_file(case=case, uploaded_file=photo, citizen=case.citizen, user=user)
                )
    except BaseException:
        # The rows were rolled back; their files would be orphans on disk.
        delete_stored_files(stored)
        raise
    return case


@require_safe
def report_done(request: HttpRequest) -> HttpResponse:
    reported = request.session.get(SESSION_REPORTED)
    case = None
    if isinstance(reported, dict):
        case = (
            ServiceCase.objects.select_related("service")
            .filter(reference=reported.get("reference"))
            .first()
        )
    if case is None:
        return redirect("portal:report")
    return render(
        request,
        "portal/report/done.html",
        {
            "case": case,
            "email_updates": bool(reported.get("email_updates")),
            "signed_in": citizen_for_user(request.user) is not None,
        },
    )
