"""URL routes of the channels app (webhooks, metrics, staff channel pages)."""

from django.urls import path

from channels import forms_views, metrics, views, webhooks

app_name = "channels"

urlpatterns: list = [
    path("metrics", metrics.metrics_view, name="metrics"),
    path("staff/channels/", views.channel_health, name="channel-health"),
    path("hooks/<slug:slug>/", webhooks.inbound_webhook, name="inbound-webhook"),
    path("hooks/<slug:slug>/status/", webhooks.delivery_status_webhook, name="delivery-status"),
    # Mailgun posts the raw MIME message only to forward() URLs ending in "mime".
    path("hooks/<slug:slug>/mime", webhooks.inbound_webhook, name="inbound-webhook-mime"),
    path("forms/<slug:slug>/", forms_views.public_form, name="webform"),
]
