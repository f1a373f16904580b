"""The inbox's panels on the core's pages: a case's messages, a citizen's conversations.

Registered in ChannelsConfig.ready() through citizenhub.staff.panels; each runs a constant
number of queries whatever the history, and hides what the officer may not read.
"""

from __future__ import annotations

from django.http import HttpRequest
from django.utils.translation import gettext as _

from channels import selectors
from channels.staff.forms import ReplyForm
from citizenhub.case_selectors import can_see_case_content
from citizenhub.models import Citizen, ServiceCase
from citizenhub.staff.panels import Panel

CITIZEN_THREADS_SHOWN = 20


def case_messages_panel(request: HttpRequest, case: ServiceCase) -> Panel | None:
    """The conversations linked to the case with their latest messages, and a reply form
    that posts to the inbox and comes back to the case page."""
    user = request.user
    if not user.has_perm("channels.view_thread"):
        return None
    visible = getattr(case, "content_visible", None)
    if visible is None:
        visible = can_see_case_content(user, case)
    context: dict[str, object] = {"case": case, "restricted": not visible}
    if not visible:
        # That conversations exist is not secret; what they say is.
        context["thread_count"] = case.threads.count()
    else:
        context["threads"] = selectors.case_threads_with_messages(case)
        context["can_reply"] = user.has_perm("channels.add_outboundmessage")
        context["next"] = request.get_full_path()
        context["reply_form"] = ReplyForm()
    return Panel(
        key="messages",
        title=_("Messages"),
        template_name="channels/staff/panels/case_messages.html",
        context=context,
    )


def citizen_conversations_panel(request: HttpRequest, citizen: Citizen) -> Panel | None:
    """The citizen's conversations on every channel, newest first; sensitive ones redacted."""
    user = request.user
    if not user.has_perm("channels.view_thread"):
        return None
    threads = selectors.citizen_threads(citizen, limit=CITIZEN_THREADS_SHOWN)
    rows = selectors.inbox_rows(threads, selectors.content_access(user))
    return Panel(
        key="conversations",
        title=_("Conversations"),
        template_name="channels/staff/panels/citizen_conversations.html",
        context={
            "citizen": citizen,
            "rows": rows,
            "limited": len(rows) >= CITIZEN_THREADS_SHOWN,
        },
    )
