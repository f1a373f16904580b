"""The citizen 360 panel "Messages held back": the citizen's campaign deliveries that a
contact rule (or their do-not-contact choice) suppressed or held, with the rule and why.

Registered in EngagementConfig.ready(); one query whatever the citizen's history, shown to
roles that may read deliveries (comms officers, administrators).
"""

from __future__ import annotations

from django.http import HttpRequest
from django.utils.translation import gettext as _

from citizenhub.models import Citizen
from citizenhub.staff.panels import Panel
from engagement.models import Delivery

SHOWN = 10
HELD_BACK = (Delivery.Status.SUPPRESSED, Delivery.Status.HELD)


def citizen_deliveries_panel(request: HttpRequest, citizen: Citizen) -> Panel | None:
    if not request.user.has_perm("engagement.view_delivery"):
        return None
    deliveries = list(
        Delivery.objects.filter(citizen=citizen, status__in=HELD_BACK)
        .select_related("campaign", "rule")
        .only(
            "channel",
            "status",
            "reason",
            "created_at",
            "campaign__title",
            "campaign__message_class",
            "rule__name",
        )
        .order_by("-created_at", "-id")[: SHOWN + 1]
    )
    return Panel(
        key="deliveries-held-back",
        title=_("Messages held back"),
        template_name="engagement/staff/_deliveries_panel.html",
        context={
            "deliveries": deliveries[:SHOWN],
            "more": len(deliveries) > SHOWN,
            "held": Delivery.Status.HELD,
        },
    )
