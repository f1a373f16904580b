"""Public pages of the portal: the home page, the service pages from the catalogue, and the
page for a form sent without its CSRF token."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_safe

from citizenhub.models import ClockType, Service


@dataclass(frozen=True)
class HomeSlot:
    """A block of the home page's "Have your say" section (open consultations, petitions)."""

    key: str
    template_name: str
    context: dict[str, Any] = field(default_factory=dict)


# The "Have your say" slot: the democracy app appends providers here (a provider takes the
# request and returns a HomeSlot, or None when it has nothing open). Empty until then, and
# the section is not shown while no provider has anything.
HAVE_YOUR_SAY_PROVIDERS: list[Callable[[HttpRequest], HomeSlot | None]] = []

# Where "Find my councillor" sends its postcode; the page arrives with the democracy issue.
FIND_MY_COUNCILLOR_PATH = "/councillors/"


@require_safe
def home(request: HttpRequest) -> HttpResponse:
    slots = [slot for provider in HAVE_YOUR_SAY_PROVIDERS if (slot := provider(request))]
    return render(
        request,
        "portal/home.html",
        {"have_your_say": slots, "find_my_councillor_path": FIND_MY_COUNCILLOR_PATH},
    )


def reportable_services() -> QuerySet[Service]:
    """The services residents can see and report: public and still offered."""
    return Service.objects.filter(is_public=True, is_active=True)


@dataclass(frozen=True)
class ServiceGroup:
    name: str
    services: list[Service]


def services_by_group(services: Iterable[Service]) -> list[ServiceGroup]:
    """Services under their catalogue group, groups A-Z and services A-Z within each; the
    ungrouped ones last, under "Other services"."""
    groups: dict[str, list[Service]] = {}
    for service in sorted(services, key=lambda s: s.name.casefold()):
        groups.setdefault(service.group.strip(), []).append(service)
    named = sorted((name for name in groups if name), key=str.casefold)
    result = [ServiceGroup(name, groups[name]) for name in named]
    if "" in groups:
        result.append(ServiceGroup(_("Other services"), groups[""]))
    return result


def time_to_deal_with(service: Service) -> str:
    """How long the council aims to take, as a resident reads it."""
    if service.clock_type == ClockType.SUBJECT_ACCESS:
        return _("We aim to deal with it within one calendar month.")
    if service.clock_type == ClockType.FOI:
        return _("We aim to deal with it within 20 working days.")
    days = service.sla_days
    if service.clock_type == ClockType.CALENDAR_DAYS:
        text = ngettext(
            "We aim to deal with it within %(days)d day.",
            "We aim to deal with it within %(days)d days.",
            days,
        )
    else:
        text = ngettext(
            "We aim to deal with it within %(days)d working day.",
            "We aim to deal with it within %(days)d working days.",
            days,
        )
    return text % {"days": days}


@require_safe
def service_list(request: HttpRequest) -> HttpResponse:
    services = reportable_services().only("code", "name", "group", "description")
    return render(request, "portal/services/list.html", {"groups": services_by_group(services)})


@require_safe
def service_detail(request: HttpRequest, code: str) -> HttpResponse:
    # Staff-only and withdrawn services are not found, exactly like ones that never existed.
    service = get_object_or_404(reportable_services(), code=code)
    return render(
        request,
        "portal/services/detail.html",
        {"service": service, "time_to_deal_with": time_to_deal_with(service)},
    )


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """CSRF_FAILURE_VIEW: the form came without a valid token (an old page, blocked
    cookies, or another website posting here). Nothing was saved; say what to do."""
    return render(request, "403_csrf.html", status=403)
