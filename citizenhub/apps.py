from django.apps import AppConfig


class CitizenhubConfig(AppConfig):
    name = "citizenhub"
    verbose_name = "Citizen hub"
    default_auto_field = "django.db.models.BigAutoField"
