"""The staff case page's panel of the photos a resident attached to their report.

Registers itself when imported (CitizenhubConfig.ready() imports it). One query, whatever
the number of photos; nothing is shown for a case whose content the officer may not read.
"""

from __future__ import annotations

from django.http import HttpRequest
from django.utils.translation import gettext as _

from citizenhub.case_selectors import can_see_case_content
from citizenhub.models import ServiceCase
from citizenhub.staff.panels import Panel, register_case_panel


@register_case_panel("attachments", order=5)
def case_attachments_panel(request: HttpRequest, case: ServiceCase) -> Panel | None:
    visible = getattr(case, "content_visible", None)
    if visible is None:
        visible = can_see_case_content(request.user, case)
    if not visible:
        return None
    attachments = list(
        case.attachments.order_by("created_at", "pk").only(
            "public_id", "case_id", "original_name", "content_type", "size", "created_at"
        )
    )
    if not attachments:
        return None
    return Panel(
        key="attachments",
        title=_("Photos from the resident"),
        template_name="staff/cases/_attachments_panel.html",
        context={"attachments": attachments},
    )
