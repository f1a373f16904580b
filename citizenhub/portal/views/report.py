"""Report a problem: choose the service, describe the problem and where it is, add photos;
then a confirmation page with the case reference.

/report/ asks which service (a GET form, so it works without JavaScript and the choice is
in the address); /report/?service=<code> asks the rest. Valid answers open a case and store
the photos in one transaction: an invalid answer saves nothing, no case and no file.

An address given without signing in is only recorded on the case and sent a link
(services.report_followers): the case joins a profile only once the link is used.
Subject access and erasure requests have their own pages under /my/data/requests/.
"""

from __future__ import annotations

import logging
from urllib.parse import urlencode

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_http_methods, require_safe

from citizenhub.errors import ApplicationError
from citizenhub.models import CaseAttachment, ChannelKind, Citizen, Service, ServiceCase
from citizenhub.portal.access import citizen_for_user
from citizenhub.portal.forms_report import ChooseServiceForm, ReportForm
from citizenhub.portal.views.my_data import REQUEST_KINDS
from citizenhub.portal.views.public import reportable_services, services_by_group
from citizenhub.ratelimit import HourlyLimit, address_hash, client_address
from citizenhub.services.attachments import attach_file, delete_stored_files
from citizenhub.services.cases import DESCRIPTION_LIMIT, TITLE_LIMIT, open_case
from citizenhub.services.report_followers import (
    FollowRequest,
    case_request_follow,
    follow_confirmation_send,
    follow_token_make,
)

# The confirmation page shows only the case this browser session has just reported, so a
# reference in the address can never show somebody else's case.
SESSION_REPORTED = "portal:reported"
ANONYMOUS_ACTOR_LABEL = "resident (portal, not signed in)"
# Services with their own request pages (which refuse a second open request of a kind):
# service code -> the slug of /my/data/requests/<slug>/.
OWN_FLOW_SERVICES = {code: slug for slug, code in REQUEST_KINDS.items()}

logger = logging.getLogger(__name__)


def reportable_here() -> QuerySet[Service]:
    """The services /report/ offers: the public ones, less those with their own pages."""
    return reportable_services().exclude(code__in=OWN_FLOW_SERVICES)


@require_http_methods(["GET", "POST"])
def report(request: HttpRequest) -> HttpResponse:
    code = request.GET.get("service", "")
    if code in OWN_FLOW_SERVICES:
        return redirect("portal:my-data-request", kind=OWN_FLOW_SERVICES[code])
    service = reportable_here().filter(code=code).first() if code else None
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
        # Checked before the form (nothing of a refused report is stored, not even photos),
        # and counted on a valid form just before saving: parallel posts cannot all pass.
        # A report that fails after that still counts; an invalid form does not.
        retry_after = limit.retry_after(limit_key)
        if retry_after is None and form.is_valid():
            retry_after = limit.consume(limit_key)
            if retry_after is None:
                try:
                    case, follow = _submit_report(
                        request, service=service, citizen=citizen, form=form
                    )
                except ValidationError as exc:
                    _add_case_errors(form, exc)
                except ApplicationError as exc:
                    form.add_error(None, _case_refusal(service, exc))
                else:
                    if follow is not None:
                        follow_confirmation_send(
                            follow=follow, confirm_url=_confirm_url(request, follow)
                        )
                    request.session[SESSION_REPORTED] = {
                        "reference": case.reference,
                        "email_given": follow is not None,
                    }
                    return redirect("portal:report-done")
        if retry_after is not None:
            minutes = max(1, -(-retry_after // 60))
            form.add_error(
                None,
                ngettext(
                    "You have sent a lot of reports in the last hour. Wait %(minutes)d minute "
                    "and try again, or phone the council if it is urgent.",
                    "You have sent a lot of reports in the last hour. Wait %(minutes)d minutes "
                    "and try again, or phone the council if it is urgent.",
                    minutes,
                )
                % {"minutes": minutes},
            )
            status = 429
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
        return (
            HourlyLimit("portal:reports", settings.PORTAL_REPORTS_PER_HOUR),
            str(citizen.pk),
        )
    return (
        HourlyLimit("portal:anonymous-reports", settings.PORTAL_ANONYMOUS_REPORTS_PER_HOUR),
        address_hash(client_address(request), salt="portal.report.address"),
    )


def _choose_service(request: HttpRequest) -> HttpResponse:
    # An unknown, staff-only or withdrawn ?service= reads as "choose from the list".
    services = list(reportable_here().only("code", "name", "group", "description"))
    bound = "service" in request.GET
    form = ChooseServiceForm(request.GET if bound else None, services=services)
    if bound:
        form.is_valid()
    return render(
        request,
        "portal/report/choose.html",
        {"form": form, "groups": services_by_group(services)},
    )


# Field errors of open_case, in our words: its own messages are English, for staff and logs.
CASE_FIELD_MESSAGES = {
    "title": lambda: (
        _("The summary must be %(limit)d characters or fewer") % {"limit": TITLE_LIMIT}
    ),
    "description": lambda: (
        _("The description must be %(limit)d characters or fewer") % {"limit": DESCRIPTION_LIMIT}
    ),
}


def _add_case_errors(form: ReportForm, exc: ValidationError) -> None:
    fields = exc.message_dict if hasattr(exc, "error_dict") else {}
    known = [name for name in fields if name in CASE_FIELD_MESSAGES and name in form.fields]
    for name in known:
        form.add_error(name, CASE_FIELD_MESSAGES[name]())
    if not known:
        form.add_error(None, _("We could not send your report. Check your answers and try again."))


def _case_refusal(service: Service, exc: ApplicationError) -> str:
    if exc.code == "inactive":
        return _(
            "“%(service)s” is no longer offered online. Choose another service, or contact "
            "the council."
        ) % {"service": service.name}
    return _("We could not send your report. Contact the council if it is urgent.")


def _confirm_url(request: HttpRequest, follow: FollowRequest) -> str:
    return request.build_absolute_uri(
        reverse("portal:report-confirm", kwargs={"token": follow_token_make(follow)})
    )


def _submit_report(
    request: HttpRequest, *, service: Service, citizen: Citizen | None, form: ReportForm
) -> tuple[ServiceCase, FollowRequest | None]:
    data = form.cleaned_data
    user = request.user if request.user.is_authenticated else None
    stored: list[CaseAttachment] = []
    follow = None
    try:
        with transaction.atomic():
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
            if citizen is None and data.get("email"):
                # Never attached to whoever owns the address: it waits for the link.
                follow = case_request_follow(case=case, email=data["email"])
    except BaseException:
        # The rows were rolled back; their files would be orphans on disk.
        delete_stored_files(stored)
        raise
    return case, follow


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
            "email_given": bool(reported.get("email_given")),
            "signed_in": citizen_for_user(request.user) is not None,
        },
    )
