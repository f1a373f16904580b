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
        # E4 (campaigns): replies to campaigns that ask for one, matched after ingest.
        from channels.services.ingest import inbound_messages_processed
        from engagement import mobilisation

        inbound_messages_processed.connect(
            mobilisation.on_inbound_messages_processed,
            dispatch_uid="engagement.mobilisation.responses",
        )
        # Opt-out fixes: a resident texting STOP (UNSUBSCRIBE, STOPIO, …) stops every
        # non-essential text message (engagement.stop_words).
        from engagement import stop_words

        inbound_messages_processed.connect(
            stop_words.on_inbound_messages_processed,
            dispatch_uid="engagement.stop_words.opt_out",
        )

        # E1 (subscriptions): one subscription per topic and channel survives a merge, and
        # never as consent where either profile opted out; unmerging gives the duplicate
        # its own back. Their 360 panel, their erasure, and their Celery tasks.
        from citizenhub.services.merge import citizen_unmerged
        from engagement import subscription_tasks, subscriptions  # noqa: F401 (tasks)

        citizen_merging.connect(
            subscriptions.reconcile_subscriptions_on_merge,
            dispatch_uid="engagement.subscriptions.merge",
        )
        citizen_unmerged.connect(
            subscriptions.restore_subscriptions_on_unmerge,
            dispatch_uid="engagement.subscriptions.unmerge",
        )
        register_citizen_panel("subscriptions", order=41)(staff_panels.citizen_subscriptions_panel)
        register_erasure_handler(
            "subscriptions",
            covers=("engagement.Subscription",),
            plan=services.erasure_plan_subscriptions,
            erase=services.erase_subscriptions,
        )

        # E2 (fan-out): the 360 panel of campaign messages a contact rule held back.
        from engagement import staff_panels_deliveries

        register_citizen_panel("deliveries-held-back", order=42)(
            staff_panels_deliveries.citizen_deliveries_panel
        )

        # Lead: a campaign both merged profiles received keeps one delivery per channel;
        # unmerging puts the duplicate's back (engagement.merging).
        from engagement import merging

        citizen_merging.connect(
            merging.reconcile_deliveries_on_merge, dispatch_uid="engagement.deliveries.merge"
        )
        citizen_unmerged.connect(
            merging.restore_deliveries_on_unmerge, dispatch_uid="engagement.deliveries.unmerge"
        )

        # E3 (sending): a campaign delivery follows its outbound message (sent, delivered,
        # failed, bounced, marked as spam) as the channels app reports it.
        from channels.signals import outbound_status_changed
        from engagement import sending

        outbound_status_changed.connect(
            sending.on_outbound_status_changed, dispatch_uid="engagement.sending.follow_outbound"
        )
