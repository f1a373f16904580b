from django.apps import AppConfig


class ChannelsConfig(AppConfig):
    # Our own app, not the PyPI package "channels" (Django Channels), which must never be
    # installed beside it. The label is fixed before the first migration and must not change.
    name = "channels"
    label = "channels"
    verbose_name = "Channels"
    default_auto_field = "django.db.models.BigAutoField"
