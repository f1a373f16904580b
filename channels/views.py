"""Staff pages of the channels app: the channel health page."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from django.conf import settings
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from channels.models import Channel
from channels.selectors import oldest_waiting_received_at


@dataclass(frozen=True)
class ChannelHealth:
    channel: Channel
    state: str  # "ok", "backing_off", "disabled", "failing"

    @classmethod
    def of(cls, channel: Channel, now: datetime.datetime) -> ChannelHealth:
        if not channel.enabled:
            state = "disabled"
        elif channel.backoff_until and channel.backoff_until > now:
            state = "backing_off"
        elif channel.consecutive_failures or channel.last_error:
            # Back-off over but no success since, or a send failed: still needs a look.
            state = "failing"
        else:
            state = "ok"
        return cls(channel, state)


@staff_member_required
@never_cache
@require_GET
def channel_health(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    channels = Channel.objects.order_by("name").defer("settings")
    oldest = oldest_waiting_received_at()
    context = {
        "council_name": settings.COUNCIL_NAME,
        "rows": [ChannelHealth.of(channel, now) for channel in channels],
        "oldest_waiting": oldest,
        "lag_seconds": int((now - oldest).total_seconds()) if oldest else 0,
    }
    return render(request, "channels/health.html", context)
