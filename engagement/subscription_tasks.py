"""Celery tasks of subscriptions: sending a confirmation link, and letting unconfirmed
requests lapse. Imported by EngagementConfig.ready() so workers register them."""

from __future__ import annotations

from celery import shared_task

from engagement import subscriptions


def _backoff_seconds(retries: int) -> int:
    return min(600, 30 * 2**retries)


@shared_task(
    bind=True, name="engagement.send_subscription_confirmation", max_retries=6, ignore_result=True
)
def send_subscription_confirmation_task(self, subscription_id: int) -> str:
    # Skips anything no longer pending, so a redelivered task after a confirmation sends
    # nothing; a retry after a provider error sends the link once more at most.
    try:
        return subscriptions.send_subscription_confirmation(subscription_id=subscription_id)
    except subscriptions.ConfirmationNotSent as exc:
        if self.request.is_eager or self.request.retries >= self.max_retries:
            return "not_sent"
        raise self.retry(exc=exc, countdown=_backoff_seconds(self.request.retries)) from exc


@shared_task(name="engagement.expire_pending_subscriptions", ignore_result=True)
def expire_pending_subscriptions() -> int:
    return subscriptions.expire_pending_subscriptions()
