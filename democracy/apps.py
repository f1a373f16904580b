from django.apps import AppConfig


class DemocracyConfig(AppConfig):
    name = "democracy"
    default_auto_field = "django.db.models.BigAutoField"
