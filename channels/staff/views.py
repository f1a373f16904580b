"""The unified inbox pages: the list of conversations from every channel and one
conversation with its reply, assignment and case actions.

Every page runs a constant number of queries. Conversations about sensitive services are
listed for everybody (so nobody misses that they exist) but their content is shown only to
the teams the rule allows (channels.selectors.ContentAccess); the actions need the
content, so they are refused to everybody else. Writes go through channels.services and
end in a redirect with a notification banner (post/redirect/get).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from channels import selectors
from channels.models import InboundMessage, OutboundMessage, Thread
from channels.services.casework import (
    link_thread_to_case,
    message_text,
    open_case_from_thread,
    thread_assign,
    thread_mark_done,
    thread_reopen,
)
from channels.services.outbound import thread_reply
from channels.staff.forms import (
    AssignForm,
    InboxFilterForm,
    LinkCaseForm,
    OpenCaseForm,
    ReplyForm,
    ThreadStatusForm,
    encode_cursor,
)
from citizenhub.errors import ApplicationError
from citizenhub.staff.access import deny_or_login

VIEW = "channels.view_thread"
REPLY = "channels.add_outboundmessage"
CHANGE = "channels.change_thread"
OPEN_CASE = "citizenhub.add_servicecase"


def inbox_permission(
    *permissions: str,
) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """Council staff only (sign-in first), holding every one of `permissions`.

    HTMX polls get a 401/403 without a body, which HTMX does not swap in: a signed-out
    officer's list stays as it was instead of turning into the sign-in page.
    """

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            polled = bool(request.headers.get("HX-Request"))
            refusal = deny_or_login(request)
            if refusal is not None:
                if polled:
                    return HttpResponse(status=401 if refusal.status_code == 302 else 403)
                return refusal
            if not all(request.user.has_perm(p) for p in (VIEW, *permissions)):
                if polled:
                    return HttpResponse(status=403)
                return render(request, "channels/staff/forbidden.html", status=403)
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


# --- The list ------------------------------------------------------------------------------


def _filtered_page(request: HttpRequest) -> dict[str, Any]:
    """The inbox's context for the page and for the polled rows: the same filters."""
    form = InboxFilterForm(request.GET)
    context: dict[str, Any] = {"form": form, "rows": [], "next_url": "", "first_page_url": ""}
    if not form.is_valid():
        return context
    data = form.cleaned_data
    threads, more = selectors.inbox_page(
        user=request.user,
        channel=data["channel"],
        team=data["team"],
        statuses=data["status"],
        unassigned=data["assigned"] == "unassigned",
        mine=data["assigned"] == "mine",
        after=data["after"],
    )
    context["rows"] = selectors.inbox_rows(threads, selectors.content_access(request.user))
    filters = [(key, value) for key, value in _filter_params(form)]
    context["filter_query"] = urlencode(filters)
    if more and threads:
        context["next_url"] = "?" + urlencode([*filters, ("after", encode_cursor(threads[-1]))])
    if data["after"] is not None:
        context["first_page_url"] = "?" + urlencode(filters)
    rows_query = urlencode([*filters, *([("after", form.data["after"])] if data["after"] else [])])
    context["rows_url"] = reverse("inbox:rows") + (f"?{rows_query}" if rows_query else "")
    return context


def _filter_params(form: InboxFilterForm) -> list[tuple[str, str]]:
    data = form.cleaned_data
    params: list[tuple[str, str]] = []
    if data["channel"] is not None:
        params.append(("channel", data["channel"].slug))
    if data["team"] is not None:
        params.append(("team", data["team"].slug))
    params += [("status", status) for status in data["status"]]
    if data["assigned"]:
        params.append(("assigned", data["assigned"]))
    return params


@require_GET
@inbox_permission()
def inbox_list(request: HttpRequest) -> HttpResponse:
    context = _filtered_page(request)
    context["staff_section"] = "inbox"
    status = 400 if context["form"].errors else 200
    return render(request, "channels/staff/inbox.html", context, status=status)


@require_GET
@inbox_permission()
def inbox_rows(request: HttpRequest) -> HttpResponse:
    """The list's body alone, for HTMX to poll every 15 seconds with the page's filters."""
    context = _filtered_page(request)
    if context["form"].errors:
        return HttpResponse(status=400)
    return render(request, "channels/staff/_inbox_rows.html", context)


# --- One conversation ----------------------------------------------------------------------


def _thread_or_404(thread_id: int) -> Thread:
    thread = selectors.inbox_thread(thread_id)
    if thread is None:
        raise Http404("No conversation with that number.")
    return thread


def _team_members(thread: Thread) -> list[Any]:
    if thread.team_id is None:
        return []
    return list(thread.team.members.filter(is_active=True).order_by("first_name", "username"))


def _first_inbound(items: list[selectors.ThreadMessage]) -> InboundMessage | None:
    for item in items:
        if item.direction == "in":
            return item.message
    return None


def _render_thread(
    request: HttpRequest,
    thread: Thread,
    *,
    status: int = 200,
    error_form: Any = None,
    **forms: Any,
) -> HttpResponse:
    user = request.user
    access = selectors.content_access(user)
    visible = access.thread_visible(thread)
    context: dict[str, Any] = {
        "thread": thread,
        "content_visible": visible,
        "staff_section": "inbox",
        "error_form": error_form,
        "case_visible": thread.case is None or access.case_visible(thread.case),
    }
    if visible:
        items = selectors.thread_messages(thread)
        first = _first_inbound(items)
        context["items"] = items
        context["reply_form"] = forms.get("reply_form") or ReplyForm()
        if user.has_perm(CHANGE):
            members = _team_members(thread)
            current = thread.assigned_to_id
            context["assign_form"] = forms.get("assign_form") or AssignForm(
                members=members,
                initial={
                    "assignee": str(current)
                    if current and current != user.pk and any(m.pk == current for m in members)
                    else "me"
                },
            )
            context["link_form"] = forms.get("link_form") or LinkCaseForm()
        if user.has_perm(OPEN_CASE) and thread.case_id is None:
            context["open_case_form"] = forms.get("open_case_form") or OpenCaseForm(
                initial={
                    "title": thread.subject[:200],
                    "description": message_text(first),
                }
            )
    return render(request, "channels/staff/thread.html", context, status=status)


@require_GET
@inbox_permission()
def thread_detail(request: HttpRequest, thread_id: int) -> HttpResponse:
    return _render_thread(request, _thread_or_404(thread_id))


def _actionable(request: HttpRequest, thread_id: int) -> Thread | HttpResponse:
    """The thread, or the 403 page when the officer may not read (so not act on) it."""
    thread = _thread_or_404(thread_id)
    if not selectors.content_access(request.user).thread_visible(thread):
        return render(request, "channels/staff/forbidden.html", {"sensitive": True}, status=403)
    return thread


def _thread_url(thread: Thread) -> str:
    return reverse("inbox:thread", args=[thread.pk])


def _add_validation_errors(form: Any, exc: ValidationError) -> None:
    if hasattr(exc, "error_dict"):
        for field, errors in exc.error_dict.items():
            for error in errors:
                form.add_error(field if field in form.fields else None, error.messages)
    else:
        form.add_error(None, exc.messages)


def _safe_next(request: HttpRequest, target: str) -> str | None:
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return None


@require_POST
@inbox_permission(REPLY)
def thread_reply_view(request: HttpRequest, thread_id: int) -> HttpResponse:
    thread = _actionable(request, thread_id)
    if isinstance(thread, HttpResponse):
        return thread
    form = ReplyForm(request.POST)
    if form.is_valid():
        try:
            outbound = thread_reply(thread=thread, body=form.cleaned_data["body"], by=request.user)
        except ApplicationError as exc:
            form.add_error("body", exc.message)
        else:
            outbound.refresh_from_db(fields=["status", "last_error"])
            _reply_banner(request, outbound)
            target = _safe_next(request, form.cleaned_data["next"]) or _thread_url(thread)
            return HttpResponseRedirect(target)
    return _render_thread(request, thread, status=400, error_form=form, reply_form=form)


def _reply_banner(request: HttpRequest, outbound: OutboundMessage) -> None:
    if outbound.status in (OutboundMessage.Status.SENT, OutboundMessage.Status.DELIVERED):
        messages.success(request, _("Your reply has been sent."))
    elif outbound.status == OutboundMessage.Status.FAILED:
        messages.error(
            request, _("Your reply could not be sent: %(error)s") % {"error": outbound.last_error}
        )
    elif outbound.last_error:
        messages.warning(
            request,
            _(
                "Your reply is saved and queued, but not sent yet: %(error)s It goes out when "
                "the channel works again."
            )
            % {"error": outbound.last_error},
        )
    else:
        messages.success(request, _("Your reply is queued and will be sent in a moment."))


@require_POST
@inbox_permission(CHANGE)
def thread_assign_view(request: HttpRequest, thread_id: int) -> HttpResponse:
    thread = _actionable(request, thread_id)
    if isinstance(thread, HttpResponse):
        return thread
    form = AssignForm(request.POST, members=_team_members(thread))
    if form.is_valid():
        assignee = form.assignee_for(request.user)
        try:
            thread_assign(thread=thread, assignee=assignee, actor=request.user)
        except ApplicationError as exc:
            form.add_error("assignee", exc.message)
        else:
            if assignee is None:
                messages.success(
                    request, _("Conversation %(ref)s is unassigned.") % {"ref": thread.reference}
                )
            else:
                name = assignee.get_full_name() or assignee.get_username()
                who = _("you") if assignee == request.user else name
                messages.success(
                    request,
                    _("Conversation %(ref)s is assigned to %(who)s.")
                    % {"ref": thread.reference, "who": who},
                )
            return HttpResponseRedirect(_thread_url(thread))
    return _render_thread(request, thread, status=400, error_form=form, assign_form=form)


@require_POST
@inbox_permission(CHANGE)
def thread_status_view(request: HttpRequest, thread_id: int) -> HttpResponse:
    thread = _actionable(request, thread_id)
    if isinstance(thread, HttpResponse):
        return thread
    form = ThreadStatusForm(request.POST)
    if not form.is_valid():
        return _render_thread(request, thread, status=400, error_form=form)
    if form.cleaned_data["action"] == "done":
        thread_mark_done(thread=thread, actor=request.user)
        messages.success(
            request, _("Conversation %(ref)s is marked as done.") % {"ref": thread.reference}
        )
    else:
        thread_reopen(thread=thread, actor=request.user)
        messages.success(
            request, _("Conversation %(ref)s is open again.") % {"ref": thread.reference}
        )
    return HttpResponseRedirect(_thread_url(thread))


@require_POST
@inbox_permission(OPEN_CASE)
def thread_open_case_view(request: HttpRequest, thread_id: int) -> HttpResponse:
    thread = _actionable(request, thread_id)
    if isinstance(thread, HttpResponse):
        return thread
    form = OpenCaseForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            case = open_case_from_thread(
                thread=thread,
                service=data["service"],
                title=data["title"],
                description=data["description"],
                actor=request.user,
            )
        except ApplicationError as exc:
            form.add_error(None, exc.message)
        except ValidationError as exc:
            _add_validation_errors(form, exc)
        else:
            messages.success(
                request,
                _("Case %(ref)s is open and linked to this conversation.")
                % {"ref": case.reference},
            )
            return HttpResponseRedirect(_thread_url(thread))
    return _render_thread(request, thread, status=400, error_form=form, open_case_form=form)


@require_POST
@inbox_permission(CHANGE)
def thread_link_case_view(request: HttpRequest, thread_id: int) -> HttpResponse:
    thread = _actionable(request, thread_id)
    if isinstance(thread, HttpResponse):
        return thread
    form = LinkCaseForm(request.POST)
    if form.is_valid():
        case = form.cleaned_data["reference"]
        # Linking writes to the case's history and moves the conversation into the case's
        # team: work on a case, which only those who may read it can do.
        if not selectors.content_access(request.user).case_visible(case):
            form.add_error(
                "reference",
                _("Case %(ref)s belongs to a sensitive service: only its team can link to it.")
                % {"ref": case.reference},
            )
            return _render_thread(request, thread, status=400, error_form=form, link_form=form)
        try:
            link_thread_to_case(thread=thread, case=case, actor=request.user)
        except ApplicationError as exc:
            form.add_error("reference", exc.message)
        else:
            messages.success(
                request,
                _("This conversation is linked to case %(ref)s.") % {"ref": case.reference},
            )
            return HttpResponseRedirect(_thread_url(thread))
    return _render_thread(request, thread, status=400, error_form=form, link_form=form)
