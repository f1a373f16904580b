"""Celery tasks of campaign sending (queue "bulk"): thin, by id, idempotent."""

from __future__ import annotations

import datetime

from celery import shared_task
from django.utils import timezone

from engagement import sending
from engagement.models import Campaign

# Batches queued by one run; a bigger campaign continues in the next run, so no task holds
# a worker (or nears the time limit) for 200,000 deliveries.
BATCHES_PER_RUN = 20
# When a run queued nothing yet deliveries are still pending (another run holds them
# locked), the next run waits a little rather than spinning.
RETRY_WHEN_IDLE_SECONDS = 10
# Pending deliveries this old, of a campaign still sending, mean its send task was lost (a
# worker died, the publish after commit was lost, SITE_URL was missing, a run of batches
# all failed): resume_stalled_campaigns enqueues it again. Well above a normal run's time.
STALLED_AFTER = datetime.timedelta(minutes=10)


@shared_task(name="engagement.send_campaign", ignore_result=True)
def send_campaign(campaign_id: int) -> dict:
    """Queue a sending campaign's pending deliveries. Running it again (a redelivery, a
    second start, released held deliveries) queues only what is still pending."""
    campaign = Campaign.objects.filter(pk=campaign_id).first()
    if campaign is None:
        return {"queued": 0}
    queued = sending.queue_deliveries(
        campaign=campaign, batch_size=sending.DEFAULT_BATCH_SIZE, max_batches=BATCHES_PER_RUN
    )
    # Whether anything is left to queue, not whether this run queued something: a run
    # whose batches were all suppressed or failed must not end the campaign's sending.
    more = bool(sending.campaigns_with_pending_deliveries(campaign_id=campaign_id))
    if more:
        if queued:
            send_campaign.delay(campaign_id)
        else:
            send_campaign.apply_async((campaign_id,), countdown=RETRY_WHEN_IDLE_SECONDS)
    return {"queued": queued, "more": more}


@shared_task(name="engagement.resume_stalled_campaigns", ignore_result=True)
def resume_stalled_campaigns() -> list[int]:
    """Send again the campaigns still SENDING with deliveries pending for STALLED_AFTER
    (beat, every 5 minutes). Idempotent: a second run of send_campaign queues only what is
    still pending, and rows another run holds are skipped, never queued twice."""
    stalled = sending.campaigns_with_pending_deliveries(
        created_before=timezone.now() - STALLED_AFTER
    )
    for campaign_id in stalled:
        send_campaign.delay(campaign_id)
    return stalled


@shared_task(name="engagement.release_held_deliveries", ignore_result=True)
def release_held_deliveries() -> dict:
    """Held deliveries whose quiet hours are over become pending and are sent (beat runs
    this every few minutes)."""
    from engagement.rules import release_held_deliveries as release

    released = release()
    for campaign_id in released:
        send_campaign.delay(campaign_id)
    return {str(campaign_id): count for campaign_id, count in released.items()}


@shared_task(name="engagement.start_due_campaigns", ignore_result=True)
def start_due_campaigns() -> list[int]:
    """Approved campaigns whose scheduled time has come start sending (beat, every minute)."""
    from engagement.campaigns import start_due_campaigns as start

    return start().started
