"""Communications: topics, subscriptions, the consent ledger, campaigns, contact rules."""

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class EngagementConfig(AppConfig):
    name = "engagement"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The core keeps registries for the portal, the export, erasure and the staff pages;
        # it never imports this app.
        from citizenhub.portal.registry import register_export_section, register_my_section
        from citizenhub.services.erasure import register_erasure_handler
        from citizenhub.services.merge import citizen_merging
        from citizenhub.staff.panels import register_citizen_panel
        from engagement import services, staff_panels

        register_my_section(
            "preferences",
            order=30,
            title=_("My preferences"),
            description=_("Choose what the council may contact you about, and see your consents."),
            url_name="my-preferences:index",
        )
        register_export_section("consents", order=30, title=_("Your consents"))(
            services.export_consents
        )
        register_erasure_handler(
            "consents",
            covers=("engagement.ConsentRecord",),
            plan=services.erasure_plan_consents,
            erase=services.erase_consents,
        )
        citizen_merging.connect(
            services.reconcile_consents_on_merge, dispatch_uid="engagement.consents.merge"
        )
        register_citizen_panel("consents", order=40)(staff_panels.citizen_consents_panel)
