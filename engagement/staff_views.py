"""Staff campaign pages at /staff/campaigns/: the list by status, writing a campaign, preview
and test send, submission, the second officer's review, scheduling, cancelling and the
analytics. Views are thin: every change goes through engagement.campaigns, which also
decides who may do what (comms officers write; a second officer or a supervisor approves).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from citizenhub.errors import ApplicationError, ConflictError
from citizenhub.staff.access import staff_required
from engagement import campaigns as campaign_services
from engagement.analytics import campaign_summary
from engagement.campaigns import (
    may_approve_campaigns,
    may_edit_campaigns,
    may_view_campaigns,
)
from engagement.forms import (
    CHANNEL_LABELS,
    MESSAGE_CLASS_HINTS,
    CampaignForm,
    CancelForm,
    RefuseForm,
    SampleResidentForm,
    ScheduleForm,
    TestSendForm,
)
from engagement.models import Campaign, CampaignResponse, Delivery
from engagement.sms_segments import max_segments, sms_length, sms_length_problem

Status = Campaign.Status
PAGE_SIZE = 50
TEMPLATE_DIR = "engagement/staff/campaigns"


def _forbidden(request: HttpRequest) -> HttpResponse:
    return render(request, "staff/forbidden.html", status=403)


def _detail_url(campaign: Campaign) -> str:
    return reverse("campaigns:detail", args=[campaign.pk])


def _load(pk: int) -> Campaign:
    campaign = (
        Campaign.objects.select_related("created_by", "approved_by")
        .prefetch_related("topics")
        .filter(pk=pk)
        .first()
    )
    if campaign is None:
        raise Http404("No such campaign.")
    return campaign


def _add_errors(form: Any, exc: ValidationError) -> None:
    if hasattr(exc, "error_dict"):
        for name, errors in exc.message_dict.items():
            form.add_error(name if name in form.fields else None, errors)
    else:
        form.add_error(None, exc.messages)


def _context(request: HttpRequest, **extra: Any) -> dict[str, Any]:
    return {"staff_section": "campaigns", **extra}


# --- List ------------------------------------------------------------------------------------


@require_GET
@staff_required
def campaign_list(request: HttpRequest) -> HttpResponse:
    if not may_view_campaigns(request.user):
        return _forbidden(request)
    counts = dict(
        Campaign.objects.values_list("status").annotate(n=Count("pk")).values_list("status", "n")
    )
    status = request.GET.get("status", "")
    if status and status not in Status.values:
        status = ""
    tabs = [
        {
            "value": value,
            "label": label,
            "count": counts.get(value, 0),
            "url": f"?status={value}",
            "current": value == status,
        }
        for value, label in Status.choices
    ]
    campaigns = (
        Campaign.objects.select_related("created_by", "approved_by")
        .annotate(delivery_count=Count("deliveries"))
        .order_by("-created_at", "-pk")
    )
    if status:
        campaigns = campaigns.filter(status=status)
    paginator = Paginator(campaigns, PAGE_SIZE)
    page = paginator.get_page(request.GET.get("page"))
    base = f"?status={status}&" if status else "?"
    return render(
        request,
        f"{TEMPLATE_DIR}/list.html",
        _context(
            request,
            tabs=tabs,
            total=sum(counts.values()),
            status=status,
            page=page,
            previous_url=f"{base}page={page.previous_page_number()}" if page.has_previous() else "",
            next_url=f"{base}page={page.next_page_number()}" if page.has_next() else "",
            can_edit=may_edit_campaigns(request.user),
        ),
    )


# --- Writing --------------------------------------------------------------------------------


def _sms_check(form: CampaignForm) -> dict[str, Any] | None:
    """The SMS length of what the officer typed, shown after "Check" or a failed save."""
    text = form.data.get("sms_text", "") if form.is_bound else ""
    if not text:
        return None
    draft = Campaign(sms_text=str(text))
    length = campaign_services.sms_length_of(draft)
    return {"length": length, "problem": sms_length_problem(length), "limit": max_segments()}


def _form_page(
    request: HttpRequest, form: CampaignForm, campaign: Campaign | None, status: int = 200
) -> HttpResponse:
    return render(
        request,
        f"{TEMPLATE_DIR}/form.html",
        _context(
            request,
            form=form,
            campaign=campaign,
            sms_check=_sms_check(form),
            message_class_options=[
                {"value": value, "hint": hint} for value, hint in MESSAGE_CLASS_HINTS.items()
            ],
        ),
        status=status,
    )


@require_http_methods(["GET", "POST"])
@staff_required
def campaign_new(request: HttpRequest) -> HttpResponse:
    if not may_edit_campaigns(request.user):
        return _forbidden(request)
    if request.method == "GET":
        return _form_page(request, CampaignForm(), None)
    form = CampaignForm(request.POST)
    if request.POST.get("action") == "check":
        form.is_valid()  # show field errors alongside the count; nothing is saved
        return _form_page(request, form, None)
    if form.is_valid():
        try:
            campaign = campaign_services.campaign_create(
                officer=request.user, **form.service_values()
            )
        except ValidationError as exc:
            _add_errors(form, exc)
        except ApplicationError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, _("Draft saved."))
            return HttpResponseRedirect(_detail_url(campaign))
    return _form_page(request, form, None, status=400)


@require_http_methods(["GET", "POST"])
@staff_required
def campaign_edit(request: HttpRequest, pk: int) -> HttpResponse:
    if not may_edit_campaigns(request.user):
        return _forbidden(request)
    campaign = _load(pk)
    if campaign.status != Status.DRAFT:
        messages.info(request, _("Only drafts can be changed."))
        return HttpResponseRedirect(_detail_url(campaign))
    if request.method == "GET":
        return _form_page(
            request, CampaignForm(initial=CampaignForm.initial_for(campaign)), campaign
        )
    form = CampaignForm(request.POST)
    if request.POST.get("action") == "check":
        form.is_valid()
        return _form_page(request, form, campaign)
    status = 400
    if form.is_valid():
        try:
            campaign_services.campaign_update(
                campaign=campaign,
                expected_version=form.cleaned_data.get("version"),
                officer=request.user,
                **form.service_values(),
            )
        except ConflictError as exc:
            form.add_error(None, exc.message)
            status = 409
        except ValidationError as exc:
            _add_errors(form, exc)
        except ApplicationError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, _("Draft saved."))
            return HttpResponseRedirect(_detail_url(campaign))
    return _form_page(request, form, campaign, status=status)


# --- The campaign page ----------------------------------------------------------------------


def _detail_page(
    request: HttpRequest,
    campaign: Campaign,
    *,
    error: str = "",
    forms: dict[str, Any] | None = None,
    status: int = 200,
) -> HttpResponse:
    user = request.user
    forms = forms or {}
    readiness = campaign_services.Readiness([], None)
    if campaign.status in (Status.DRAFT, Status.AWAITING_APPROVAL, Status.APPROVED):
        readiness = campaign_services.campaign_readiness(campaign)
    writers = campaign_services.campaign_writers(campaign)
    error_form = next((form for form in forms.values() if form.errors), None)
    return render(
        request,
        f"{TEMPLATE_DIR}/detail.html",
        _context(
            request,
            campaign=campaign,
            channel_labels=[str(CHANNEL_LABELS.get(c, c)) for c in campaign.channels],
            problems=readiness.problems,
            audience=readiness.audience,
            sms=sms_length(campaign.sms_text) if campaign.sms_text else None,
            sms_limit=max_segments(),
            refusal=(
                campaign_services.last_refusal(campaign)
                if campaign.status == Status.DRAFT
                else None
            ),
            error=error,
            error_form=error_form,
            can_edit=may_edit_campaigns(user),
            can_review=may_approve_campaigns(user) and user.pk not in writers,
            can_cancel=may_approve_campaigns(user)
            and campaign.status in (Status.DRAFT, Status.AWAITING_APPROVAL, Status.APPROVED),
            wrote_it=user.pk in writers,
            test_send_form=forms.get("test_send") or TestSendForm(auto_id="test-%s"),
            schedule_form=forms.get("schedule") or ScheduleForm(auto_id="schedule-%s"),
            cancel_form=forms.get("cancel") or CancelForm(auto_id="cancel-%s"),
            response_count=(
                CampaignResponse.objects.filter(campaign=campaign).count()
                if campaign.asks_response
                else None
            ),
        ),
        status=status,
    )


@require_GET
@staff_required
def campaign_detail(request: HttpRequest, pk: int) -> HttpResponse:
    if not may_view_campaigns(request.user):
        return _forbidden(request)
    return _detail_page(request, _load(pk))


def _act(
    request: HttpRequest,
    pk: int,
    allowed: Callable[[Any], bool],
    change: Callable[[Campaign], Any],
    success: str,
    *,
    form: Any = None,
    key: str = "",
) -> HttpResponse:
    """Run one lifecycle step from a POST; on refusal show the campaign page again with the
    reason (400, or 409 for a conflict) and nothing changed."""
    if not allowed(request.user):
        return _forbidden(request)
    campaign = _load(pk)
    error = ""
    status = 400
    if form is None or form.is_valid():
        try:
            change(campaign)
        except ConflictError as exc:
            error, status = exc.message, 409
        except ValidationError as exc:
            if form is not None:
                _add_errors(form, exc)
            else:
                error = " ".join(exc.messages)
        except ApplicationError as exc:
            error = exc.message
            status = 403 if exc.code in ("forbidden", "four_eyes") else 400
        else:
            messages.success(request, success)
            return HttpResponseRedirect(_detail_url(campaign))
    return _detail_page(
        request,
        _load(pk),
        error=error,
        forms={key: form} if form is not None else None,
        status=status,
    )


@require_POST
@staff_required
def campaign_submit(request: HttpRequest, pk: int) -> HttpResponse:
    return _act(
        request,
        pk,
        may_edit_campaigns,
        lambda c: campaign_services.campaign_submit(campaign=c, officer=request.user),
        _("Sent for approval. A second officer must approve it before it can be sent."),
    )


@require_POST
@staff_required
def campaign_test_send(request: HttpRequest, pk: int) -> HttpResponse:
    form = TestSendForm(request.POST, auto_id="test-%s")

    def change(campaign: Campaign) -> None:
        data = form.cleaned_data
        campaign_services.campaign_test_send(
            campaign=campaign,
            officer=request.user,
            channel=data["channel"],
            to_phone=data.get("to_phone", ""),
        )

    return _act(
        request,
        pk,
        may_edit_campaigns,
        change,
        _("Test sent to you."),
        form=form,
        key="test_send",
    )


@require_POST
@staff_required
def campaign_schedule(request: HttpRequest, pk: int) -> HttpResponse:
    form = ScheduleForm(request.POST, auto_id="schedule-%s")
    return _act(
        request,
        pk,
        may_edit_campaigns,
        lambda c: campaign_services.campaign_schedule(
            campaign=c, at=form.cleaned_data["at"], officer=request.user
        ),
        _("Scheduled."),
        form=form,
        key="schedule",
    )


@require_POST
@staff_required
def campaign_start(request: HttpRequest, pk: int) -> HttpResponse:
    return _act(
        request,
        pk,
        may_edit_campaigns,
        lambda c: campaign_services.campaign_start(campaign=c, officer=request.user),
        _("Sending has started."),
    )


@require_POST
@staff_required
def campaign_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    form = CancelForm(request.POST, auto_id="cancel-%s")
    return _act(
        request,
        pk,
        may_approve_campaigns,
        lambda c: campaign_services.campaign_cancel(
            campaign=c, officer=request.user, reason=form.cleaned_data["reason"]
        ),
        _("Campaign cancelled."),
        form=form,
        key="cancel",
    )


# --- Preview ---------------------------------------------------------------------------------


@require_GET
@staff_required
def campaign_preview(request: HttpRequest, pk: int) -> HttpResponse:
    if not may_view_campaigns(request.user):
        return _forbidden(request)
    campaign = _load(pk)
    form = SampleResidentForm(request.GET or None)
    sample = campaign_services.SAMPLE_RESIDENT
    if request.GET and form.is_valid():
        data = form.cleaned_data
        sample = campaign_services.SampleResident(
            given_name=data["given_name"].strip(),
            family_name=data["family_name"].strip(),
            preferred_language=data["preferred_language"] or "en",
        )
    elif not request.GET:
        form = SampleResidentForm(
            initial={"given_name": sample.given_name, "family_name": sample.family_name}
        )
    rendered = campaign_services.render_preview(campaign, sample)
    return render(
        request,
        f"{TEMPLATE_DIR}/preview.html",
        _context(
            request,
            campaign=campaign,
            form=form,
            sample=sample,
            rendered=rendered,
            sms_problem=sms_length_problem(rendered.sms_length),
            sms_limit=max_segments(),
        ),
        status=400 if form.errors else 200,
    )


# --- Review by a second officer -------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@staff_required
def campaign_review(request: HttpRequest, pk: int) -> HttpResponse:
    if not may_approve_campaigns(request.user):
        return _forbidden(request)
    campaign = _load(pk)
    form = RefuseForm()
    error = ""
    status = 200
    if request.method == "POST":
        decision = request.POST.get("decision")
        status = 400
        try:
            if decision == "approve":
                campaign_services.campaign_approve(campaign=campaign, officer=request.user)
                messages.success(request, _("Approved. Schedule it or send it now."))
                return HttpResponseRedirect(_detail_url(campaign))
            if decision == "refuse":
                form = RefuseForm(request.POST)
                if form.is_valid():
                    campaign_services.campaign_refuse(
                        campaign=campaign, officer=request.user, reason=form.cleaned_data["reason"]
                    )
                    messages.success(request, _("Refused: it is a draft again, with your reason."))
                    return HttpResponseRedirect(_detail_url(campaign))
            else:
                error = _("Choose to approve or refuse the campaign.")
        except ValidationError as exc:
            _add_errors(form, exc)
        except ApplicationError as exc:
            error = exc.message
            status = 403 if exc.code in ("forbidden", "four_eyes") else 400
        campaign = _load(pk)
    rendered = campaign_services.render_preview(campaign)
    return render(
        request,
        f"{TEMPLATE_DIR}/review.html",
        _context(
            request,
            campaign=campaign,
            form=form,
            error=error,
            rendered=rendered,
            sms_limit=max_segments(),
            wrote_it=request.user.pk in campaign_services.campaign_writers(campaign),
        ),
        status=status,
    )


# --- Analytics -------------------------------------------------------------------------------


def _label(choices: Any, value: str) -> str:
    try:
        return str(choices(value).label)
    except ValueError:
        return value


def campaign_figures(campaign: Campaign) -> dict[str, Any]:
    """The analytics page's tables and chart, from E2's summary of the deliveries
    (engagement.analytics.campaign_summary); statuses nobody is in are left out."""
    summary = campaign_summary(campaign)
    statuses = [row for row in summary["by_status"] if row["count"]]
    channels = summary["by_channel"]
    channel_rows = [
        [str(CHANNEL_LABELS.get(c["channel"], c["label"]))]
        + [c["by_status"].get(s["status"], 0) for s in statuses]
        + [c["total"]]
        for c in channels
    ]
    return {
        "total": summary["total"],
        "status_header": [_("Status"), _("Deliveries")],
        "status_rows": [[s["label"], s["count"]] for s in statuses],
        "channel_header": [_("Channel"), *(s["label"] for s in statuses), _("Total")],
        "channel_rows": channel_rows,
        "reason_rows": [
            [r["rule_name"], _label(Delivery.Status, r["status"]), r["reason"], r["count"]]
            for r in summary["by_reason"]
        ],
        "chart": {
            "type": "bar",
            "stacked": True,
            "horizontal": True,
            "labels": [row[0] for row in channel_rows],
            "datasets": [
                {
                    "label": s["label"],
                    "data": [c["by_status"].get(s["status"], 0) for c in channels],
                }
                for s in statuses
            ],
            "valueTitle": _("Deliveries"),
        },
    }


@require_GET
@staff_required
def campaign_analytics(request: HttpRequest, pk: int) -> HttpResponse:
    if not may_view_campaigns(request.user):
        return _forbidden(request)
    campaign = _load(pk)
    responses = None
    if campaign.asks_response:
        responses = list(
            CampaignResponse.objects.filter(campaign=campaign)
            .values_list("channel")
            .annotate(n=Count("pk"))
            .order_by("channel")
        )
    return render(
        request,
        f"{TEMPLATE_DIR}/analytics.html",
        _context(
            request,
            campaign=campaign,
            figures=campaign_figures(campaign),
            responses=[(str(CHANNEL_LABELS.get(c, c)), n) for c, n in responses or []],
            response_total=sum(n for _c, n in responses or []),
        ),
    )
