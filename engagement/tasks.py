"""Celery tasks of campaign sending (queue "bulk"): thin, by id, idempotent."""

from __future__ import annotations

from celery import shared_task

from engagement import sending
from engagement.models import Campaign, Delivery

# Batches queued by one run; a bigger campaign continues in the next run, so no task holds
# a worker (or nears the time limit) for 200,000 deliveries.
BATCHES_PER_RUN = 20


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
    more = (
        queued > 0
        and Delivery.objects.filter(
            campaign_id=campaign_id, status=Delivery.Status.PENDING
        ).exists()
    )
    if more:
        send_campaign.delay(campaign_id)
    return {"queued": queued, "more": more}


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
