from django.apps import AppConfig


class ChannelsConfig(AppConfig):
    # Our own app, not the PyPI package "channels" (Django Channels), which must never be
    # installed beside it. The label is fixed before the first migration and must not change.
    name = "channels"
    label = "channels"
    verbose_name = "Channels"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The core sends signals and keeps a panel registry; it never imports this app.
        from channels.services import casework
        from channels.services.ingest import inbound_messages_processed
        from channels.staff import panels
        from citizenhub.services.cases import case_status_changed
        from citizenhub.staff.panels import register_case_panel, register_citizen_panel

        inbound_messages_processed.connect(
            casework.on_inbound_messages_processed, dispatch_uid="channels.casework.inbound"
        )
        case_status_changed.connect(
            casework.on_case_status_changed, dispatch_uid="channels.casework.case_status"
        )
        register_case_panel("messages", order=10)(panels.case_messages_panel)
        register_citizen_panel("conversations", order=20)(panels.citizen_conversations_panel)
        # --- Portal: my messages on the /my/ page and in the resident's data export.
        from django.utils.translation import gettext_lazy

        from channels.portal.export import export_messages
        from citizenhub.portal.registry import register_export_section, register_my_section

        register_my_section(
            "messages",
            order=20,
            title=gettext_lazy("My messages"),
            description=gettext_lazy("Your conversations with us by e-mail, text and more."),
            url_name="my-messages:list",
        )
        register_export_section("messages", order=20, title=gettext_lazy("Messages"))(
            export_messages
        )
        # --- end of portal: my messages.
        import channels.portal.verification  # noqa: F401 - registers the sender of phone codes
