"""URL routes of the channels app (webhooks, metrics, staff channel pages)."""

from django.urls import path  # noqa: F401 - used as routes are added below

app_name = "channels"

urlpatterns: list = []
