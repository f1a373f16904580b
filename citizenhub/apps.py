from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.apps import apps as global_apps
from django.conf import settings
from django.core import checks
from django.db.models.signals import post_delete, post_migrate, post_save

# Every app whose permissions the staff roles refer to (citizenhub.staff.access).
ROLE_APPS = ("citizenhub", "channels", "engagement", "democracy")


class CitizenhubConfig(AppConfig):
    name = "citizenhub"
    verbose_name = "Citizen hub"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        post_migrate.connect(create_staff_groups, sender=self)
        checks.register(check_frontend_packages, checks.Tags.staticfiles)
        checks.register(check_site_url, checks.Tags.security, deploy=True)
        # A resident's saved language applies as soon as they sign in (citizenhub.portal.language).
        from django.contrib.auth.signals import user_logged_in

        from citizenhub.portal.language import remember_language_on_login

        user_logged_in.connect(remember_language_on_login, dispatch_uid="resident-language")
        # Erasing a profile deletes its pending phone codes (and the numbers typed for them).
        from citizenhub.services.erasure import register_erasure_handler
        from citizenhub.services.verification import verification_erase, verification_erasure_plan

        register_erasure_handler(
            "contact_verifications",
            covers=("citizenhub.ContactVerification",),
            plan=verification_erasure_plan,
            erase=verification_erase,
        )
        import citizenhub.portal.signals  # noqa: F401 - a verified e-mail links the profile

        # The cached catalogue summary (sensitive services, departments) must follow edits.
        from citizenhub.case_selectors import forget_catalogue_summary
        from citizenhub.staff.views import attachments_panel, erasure  # noqa: F401 - register panels

        service = self.get_model("Service")
        post_save.connect(forget_catalogue_summary, sender=service, dispatch_uid="catalogue-save")
        post_delete.connect(
            forget_catalogue_summary, sender=service, dispatch_uid="catalogue-delete"
        )


def create_staff_groups(sender: AppConfig, using: str, **kwargs: Any) -> None:
    """After `migrate`, make sure the staff groups exist with their permissions."""
    from django.contrib.auth.management import create_permissions

    from citizenhub.staff.access import ensure_staff_groups

    # Django creates each app's permissions in that app's own post_migrate, and channels
    # and the others come after citizenhub: create theirs now so the roles get them at once.
    for label in ROLE_APPS:
        if label in global_apps.app_configs:
            create_permissions(
                global_apps.get_app_config(label), verbosity=0, using=using, apps=global_apps
            )
    ensure_staff_groups(using=using)


def check_frontend_packages(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    missing = [str(path) for _prefix, path in settings.FRONTEND_PACKAGE_DIRS if not path.is_dir()]
    if not missing:
        return []
    return [
        checks.Warning(
            "Front-end packages (GOV.UK Frontend, HTMX, Chart.js) are not installed: "
            + ", ".join(missing),
            hint="Run `make install` (npm ci); pages are unstyled until then.",
            id="citizenhub.W001",
        )
    ]


def check_site_url(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Links in messages sent by workers (unsubscribe, preferences, confirmations) are built
    from SITE_URL; without it they would be relative and useless in an e-mail."""
    site_url = getattr(settings, "SITE_URL", "")
    if site_url.startswith(("https://", "http://")):
        return []
    return [
        checks.Error(
            f"SITE_URL is {site_url!r}: links in e-mails and texts need the site's public address.",
            hint="Set SITE_URL, e.g. https://citizenhub.example.gov.uk (or ALLOWED_HOSTS).",
            id="citizenhub.E002",
        )
    ]
