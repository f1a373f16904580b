"""The engagement app's panel on the citizen 360 page: consents now and their history.

Registered in EngagementConfig.ready(); one query whatever the ledger's length, shown to
roles that may read consent records (comms officers, administrators).
"""

from __future__ import annotations

from django.http import HttpRequest
from django.utils.translation import gettext as _

from citizenhub.models import Citizen
from citizenhub.staff.panels import Panel
from engagement.models import ConsentRecord
from engagement.purposes import PURPOSES

HISTORY_SHOWN = 10


def citizen_consents_panel(request: HttpRequest, citizen: Citizen) -> Panel | None:
    if not request.user.has_perm("engagement.view_consentrecord"):
        return None
    # A person's ledger is a few lines a year: read it whole, newest first; the first line
    # of each purpose is its current state.
    records = list(
        ConsentRecord.objects.filter(citizen=citizen)
        .order_by("-occurred_at", "-id")
        .only("purpose", "channel", "action", "occurred_at", "source", "wording_version")
    )
    latest: dict[tuple[str, str], ConsentRecord] = {}
    for record in records:
        latest.setdefault((record.purpose, record.channel), record)
    current = [
        {"title": purpose.title, "channel": purpose.channel, "record": latest.get(purpose.key)}
        for purpose in PURPOSES
    ]
    return Panel(
        key="consents",
        title=_("Consents"),
        template_name="engagement/staff/panels/citizen_consents.html",
        context={
            "current": current,
            "history": records[:HISTORY_SHOWN],
            "more": len(records) > HISTORY_SHOWN,
            "given": ConsentRecord.Action.GIVEN,
        },
    )
