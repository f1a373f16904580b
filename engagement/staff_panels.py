"""The engagement app's panels on the citizen 360 page: consents now and their history, and
the resident's subscriptions with their status.

Registered in EngagementConfig.ready(); a fixed number of queries whatever the ledger's
length, shown to roles that may read consent records and subscriptions (comms officers,
administrators).
"""

from __future__ import annotations

from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext as _

from citizenhub.models import Citizen
from citizenhub.staff.panels import Panel
from engagement.models import ConsentRecord, Subscription
from engagement.services import purpose_titles
from engagement.subscriptions import channel_label, is_waiting, topic_title

HISTORY_SHOWN = 10


def citizen_consents_panel(request: HttpRequest, citizen: Citizen) -> Panel | None:
    if not request.user.has_perm("engagement.view_consentrecord"):
        return None
    # A person's ledger is a few lines a year: read it whole, newest first; the first line
    # of each purpose and channel is its current state.
    records = list(
        ConsentRecord.objects.filter(citizen=citizen)
        .order_by("-occurred_at", "-id")
        .only("purpose", "channel", "action", "occurred_at", "source", "wording_version")
    )
    latest: dict[tuple[str, str], ConsentRecord] = {}
    for record in records:
        latest.setdefault((record.purpose, record.channel), record)
    titles = purpose_titles({record.purpose for record in records})
    current = [
        {"title": titles[purpose], "channel": channel_label(channel), "record": record}
        for (purpose, channel), record in sorted(
            latest.items(), key=lambda item: (titles[item[0][0]].lower(), item[0][1])
        )
    ]
    return Panel(
        key="consents",
        title=_("Consents"),
        template_name="engagement/staff/panels/citizen_consents.html",
        context={
            "current": current,
            "history": records[:HISTORY_SHOWN],
            "titles": titles,
            "more": len(records) > HISTORY_SHOWN,
            "given": ConsentRecord.Action.GIVEN,
        },
    )


def citizen_subscriptions_panel(request: HttpRequest, citizen: Citizen) -> Panel | None:
    if not request.user.has_perm("engagement.view_subscription"):
        return None
    now = timezone.now()
    rows = []
    for subscription in (
        Subscription.objects.filter(citizen=citizen)
        .select_related("topic")
        .order_by("topic__name", "channel")
    ):
        if subscription.status == Subscription.Status.ACTIVE:
            status, since, tag = _("Subscribed"), subscription.confirmed_at, "green"
        elif is_waiting(subscription, now):
            status, since, tag = _("Waiting for confirmation"), subscription.requested_at, "yellow"
        elif subscription.status == Subscription.Status.PENDING or (
            subscription.unsubscribed_at is None
        ):
            status, since, tag = _("Not confirmed in time"), subscription.confirm_by, "grey"
        else:
            status, since, tag = _("Unsubscribed"), subscription.unsubscribed_at, "grey"
        rows.append(
            {
                "topic": topic_title(subscription.topic),
                "channel": channel_label(subscription.channel),
                "status": status,
                "tag": tag,
                "since": since,
                "source": subscription.get_source_display(),
            }
        )
    return Panel(
        key="subscriptions",
        title=_("Subscriptions"),
        template_name="engagement/staff/_subscriptions_panel.html",
        context={"rows": rows},
    )
