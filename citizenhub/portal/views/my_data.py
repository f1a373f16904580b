"""My data (/my/data/): what the council holds about the resident and why, a copy of it
(JSON download or a readable page, both from citizenhub.gdpr.export_citizen_data), who
viewed their record, and formal subject access and erasure requests (opened as cases)."""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from typing import Any

from django import forms
from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import formats, timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods

from citizenhub import gdpr
from citizenhub.errors import ApplicationError
from citizenhub.models import ServiceCase
from citizenhub.portal.access import resident_required

WHO_VIEWED_ON_SUMMARY = 5

# The two requests a resident can make here, by the slug in the URL.
REQUEST_KINDS = {
    "subject-access": gdpr.SUBJECT_ACCESS_SERVICE_CODE,
    "erasure": gdpr.ERASURE_SERVICE_CODE,
}


class DataRequestForm(forms.Form):
    explanation = forms.CharField(
        label=gettext_lazy("Tell us more (optional)"),
        help_text=gettext_lazy(
            "For example, which information or which period you are asking about."
        ),
        required=False,
        max_length=gdpr.EXPLANATION_LIMIT,
        widget=forms.Textarea(attrs={"rows": 5}),
        error_messages={
            "max_length": gettext_lazy(
                "Your explanation must be %(limit_value)d characters or fewer (it has "
                "%(show_value)d)."
            ),
        },
    )


# --- The readable copy ---------------------------------------------------------------------

# Field names of the export in words; apps' fields not listed read as their key humanised.
FIELD_LABELS: dict[str, Any] = {
    "reference": gettext_lazy("Reference"),
    "given_name": gettext_lazy("Given name"),
    "family_name": gettext_lazy("Family name"),
    "date_of_birth": gettext_lazy("Date of birth"),
    "preferred_language": gettext_lazy("Preferred language"),
    "preferred_channel": gettext_lazy("Preferred way to contact you"),
    "accessibility_needs": gettext_lazy("Accessibility needs"),
    "do_not_contact": gettext_lazy("Do not contact"),
    "created_at": gettext_lazy("Created"),
    "account": gettext_lazy("Your account"),
    "email": gettext_lazy("E-mail address"),
    "date_joined": gettext_lazy("Signed up"),
    "last_login": gettext_lazy("Last signed in"),
    "kind": gettext_lazy("Kind"),
    "value": gettext_lazy("Value"),
    "verification": gettext_lazy("Verification"),
    "verified_at": gettext_lazy("Verified"),
    "primary": gettext_lazy("Main one"),
    "source": gettext_lazy("Source"),
    "added_at": gettext_lazy("Added"),
    "undeliverable_since": gettext_lazy("Undeliverable since"),
    "removed_at": gettext_lazy("Removed"),
    "address": gettext_lazy("Address"),
    "uprn": gettext_lazy("Property reference (UPRN)"),
    "service": gettext_lazy("Service"),
    "title": gettext_lazy("Title"),
    "description": gettext_lazy("Description"),
    "location": gettext_lazy("Location"),
    "postcode": gettext_lazy("Postcode"),
    "status": gettext_lazy("Status"),
    "opened_at": gettext_lazy("Opened"),
    "due_on": gettext_lazy("Due"),
    "resolved_at": gettext_lazy("Resolved"),
    "closed_at": gettext_lazy("Closed"),
    "resolution": gettext_lazy("Resolution"),
    "history": gettext_lazy("History"),
    "attachments": gettext_lazy("Attachments"),
    "date": gettext_lazy("Date"),
    "event": gettext_lazy("Event"),
    "text": gettext_lazy("Text"),
    "file_name": gettext_lazy("File name"),
    "type": gettext_lazy("Type"),
    "size_bytes": gettext_lazy("Size (bytes)"),
    "channel": gettext_lazy("Channel"),
    "department": gettext_lazy("Department"),
    "summary": gettext_lazy("Summary"),
    "teams": gettext_lazy("Teams"),
    "what": gettext_lazy("What"),
    "reason": gettext_lazy("Reason given"),
    "current": gettext_lazy("Now"),
    "purpose": gettext_lazy("Purpose"),
    "action": gettext_lazy("Change"),
    "lawful_basis": gettext_lazy("Lawful basis"),
    "wording": gettext_lazy("Words shown"),
    "wording_version": gettext_lazy("Wording version"),
    "recorded_by": gettext_lazy("Recorded by"),
    "ip_address": gettext_lazy("Internet address"),
    "conversations": gettext_lazy("Conversations"),
    "other_messages": gettext_lazy("Other messages"),
    "messages": gettext_lazy("Messages"),
    "direction": gettext_lazy("Direction"),
    "subject": gettext_lazy("Subject"),
    "case_reference": gettext_lazy("Case reference"),
    "started": gettext_lazy("Started"),
    "last_message": gettext_lazy("Last message"),
}
_ISO_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass
class Node:
    """One value of the export, ready for the page: text, a list, or labelled fields."""

    kind: str  # "text" | "list" | "fields"
    text: str = ""
    items: list[Any] | None = None


def _label(key: str) -> str:
    label = FIELD_LABELS.get(key)
    return str(label) if label is not None else key.replace("_", " ").capitalize()


def _text(value: Any) -> str:
    if value is None or value == "":
        return "\N{EN DASH}"
    if isinstance(value, bool):
        return _("Yes") if value else _("No")
    if isinstance(value, str) and _ISO_DATETIME.match(value):
        try:
            moment = timezone.localtime(datetime.datetime.fromisoformat(value))
            return formats.date_format(moment, "j F Y, H:i")
        except ValueError:
            return value
    if isinstance(value, str) and _ISO_DATE.match(value):
        try:
            return formats.date_format(datetime.date.fromisoformat(value), "j F Y")
        except ValueError:
            return value
    return str(value)


def display_tree(value: Any) -> Node:
    """The export's data as nested nodes the template renders recursively."""
    if isinstance(value, dict):
        return Node("fields", items=[(_label(k), display_tree(v)) for k, v in value.items()])
    if isinstance(value, (list, tuple)):
        return Node("list", items=[display_tree(item) for item in value])
    return Node("text", text=_text(value))


# --- Pages ---------------------------------------------------------------------------------


@require_GET
@resident_required
def my_data(request: HttpRequest) -> HttpResponse:
    citizen = request.citizen
    return render(
        request,
        "portal/my/data/index.html",
        {
            "accesses": gdpr.record_accesses(citizen, limit=WHO_VIEWED_ON_SUMMARY),
            "open_sar": gdpr.open_request_for(citizen, gdpr.SUBJECT_ACCESS_SERVICE_CODE),
            "open_erasure": gdpr.open_request_for(citizen, gdpr.ERASURE_SERVICE_CODE),
        },
    )


@require_GET
@resident_required
def export_json(request: HttpRequest) -> HttpResponse:
    citizen = request.citizen
    data = gdpr.export_citizen_data(citizen)
    gdpr.record_export(citizen=citizen, actor=request.user, export_format="json")
    response = JsonResponse(data, json_dumps_params={"ensure_ascii": False, "indent": 2})
    stamp = timezone.localdate().isoformat()
    response["Content-Disposition"] = f'attachment; filename="my-data-{stamp}.json"'
    response["Cache-Control"] = "no-store"
    return response


@require_GET
@resident_required
def export_page(request: HttpRequest) -> HttpResponse:
    citizen = request.citizen
    data = gdpr.export_citizen_data(citizen)
    gdpr.record_export(citizen=citizen, actor=request.user, export_format="html")
    sections = [
        {"key": key, "title": section["title"], "node": display_tree(section["data"])}
        for key, section in data["sections"].items()
    ]
    response = render(
        request,
        "portal/my/data/export.html",
        {"export": data, "sections": sections, "generated_at": timezone.now()},
    )
    response["Cache-Control"] = "no-store"
    return response


@require_GET
@resident_required
def record_views(request: HttpRequest) -> HttpResponse:
    shown = settings.MY_DATA_WHO_VIEWED_SHOWN
    accesses = gdpr.record_accesses(request.citizen, limit=shown + 1)
    return render(
        request,
        "portal/my/data/views.html",
        {"accesses": accesses[:shown], "more": len(accesses) > shown},
    )


def _request_kind(kind: str) -> str:
    code = REQUEST_KINDS.get(kind)
    if code is None:
        raise Http404
    return code


@require_http_methods(["GET", "POST"])
@resident_required
def data_request(request: HttpRequest, kind: str) -> HttpResponse:
    code = _request_kind(kind)
    citizen = request.citizen
    existing = gdpr.open_request_for(citizen, code)
    form = DataRequestForm(request.POST if request.method == "POST" else None)
    status = 200
    if request.method == "POST" and existing is None:
        if form.is_valid():
            try:
                result = gdpr.open_data_request(
                    citizen=citizen,
                    service_code=code,
                    explanation=form.cleaned_data["explanation"],
                    actor=request.user,
                )
            except ApplicationError as exc:
                form.add_error(None, exc.message)
            else:
                return redirect(
                    "portal:my-data-request-received", kind=kind, reference=result.case.reference
                )
        status = 400
    return render(
        request,
        "portal/my/data/request.html",
        {"kind": kind, "form": form, "existing": existing},
        status=status,
    )


@require_GET
@resident_required
def data_request_received(request: HttpRequest, kind: str, reference: str) -> HttpResponse:
    code = _request_kind(kind)
    case = get_object_or_404(
        ServiceCase.objects.filter(gdpr.person_q(request.citizen)).select_related("service"),
        reference=reference,
        service__code=code,
    )
    return render(request, "portal/my/data/request_received.html", {"kind": kind, "case": case})
