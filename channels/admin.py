"""Admin for the channels: switch accounts on and off, inspect messages, reprocess failures."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import BinaryField, QuerySet
from django.db.models.functions import Substr
from django.http import HttpRequest
from django.urls import reverse
from django.utils.functional import cached_property
from django.utils.html import format_html

from channels.adapters import registered_kinds
from channels.models import (
    Attachment,
    Channel,
    ChannelCursor,
    InboundMessage,
    OutboundMessage,
    RoutingRule,
    Thread,
    WebForm,
    webform_field_problems,
)
from channels.services.accounts import (
    channel_settings_problems,
    channels_clear_backoff,
    channels_disable,
    channels_enable,
    kind_error,
)
from channels.services.ingest import reprocess_messages
from channels.services.outbound import release_queued_outbound
from channels.services.polling import polling_kinds

RAW_PREVIEW_BYTES = 20_000
# Above this many rows (PostgreSQL's estimate) an unfiltered list shows the estimate.
ESTIMATE_COUNT_ABOVE = 100_000


class EstimatedCountPaginator(Paginator):
    """For the big tables: the unfiltered admin list takes PostgreSQL's row estimate instead
    of COUNT(*), which reads the whole table on every page view. Filtered lists (status,
    channel, search) are counted exactly, as those filters are narrow or indexed."""

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        query = getattr(queryset, "query", None)
        connection = connections[queryset.db] if query is not None else None
        if connection is not None and connection.vendor == "postgresql" and not query.where:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass",
                    [queryset.model._meta.db_table],
                )
                row = cursor.fetchone()
            if row and row[0] > max(ESTIMATE_COUNT_ABOVE, 0):
                return int(row[0])
        return super().count


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records written by the pipeline only: staff look, nobody edits or deletes by hand."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class ChannelForm(forms.ModelForm):
    class Meta:
        model = Channel
        fields = ("name", "slug", "kind", "enabled", "address", "poll_interval_seconds", "settings")

    def clean_kind(self) -> str:
        kind = self.cleaned_data["kind"]
        problem = kind_error(kind, registered_kinds())
        if problem:
            raise forms.ValidationError(problem)
        return kind

    def clean_settings(self) -> dict:
        values = self.cleaned_data["settings"] or {}
        if not isinstance(values, dict):
            raise forms.ValidationError("Settings must be a JSON object of key: value pairs.")
        problems = channel_settings_problems(values)
        if problems:
            raise forms.ValidationError(problems)
        return values


@admin.register(Channel)
class ChannelAdmin(admin.ModelAdmin):
    form = ChannelForm
    list_display = (
        "name",
        "slug",
        "kind",
        "enabled",
        "last_success_at",
        "consecutive_failures",
        "backoff_until",
        "received_count",
        "processed_count",
        "failed_link",
        "duplicate_count",
    )
    list_filter = ("kind", "enabled")
    search_fields = ("name", "=slug", "address")
    readonly_fields = (
        "last_poll_at",
        "last_success_at",
        "last_error",
        "last_error_at",
        "consecutive_failures",
        "backoff_until",
        "received_count",
        "processed_count",
        "failed_count",
        "duplicate_count",
        "created_at",
    )
    fieldsets = (
        (None, {"fields": ("name", "slug", "kind", "enabled", "address")}),
        (
            "Provider settings",
            {
                "fields": ("poll_interval_seconds", "settings"),
                "description": (
                    "Never put a secret here: put it in an environment variable and name "
                    'the variable, e.g. {"password_env": "IMAP_PASSWORD"}.'
                ),
            },
        ),
        (
            "Health",
            {
                "fields": (
                    "last_poll_at",
                    "last_success_at",
                    "consecutive_failures",
                    "backoff_until",
                    "last_error",
                    "last_error_at",
                )
            },
        ),
        (
            "Counters",
            {
                "fields": (
                    "received_count",
                    "processed_count",
                    "failed_count",
                    "duplicate_count",
                    "created_at",
                )
            },
        ),
    )
    actions = ["enable_channels", "disable_channels", "clear_backoff_and_poll"]

    def get_readonly_fields(self, request: HttpRequest, obj=None) -> tuple[str, ...]:
        if obj is not None:
            # Its messages and threads belong to the provider it was created for.
            return (*self.readonly_fields, "kind")
        return self.readonly_fields

    @admin.display(description="failed", ordering="failed_count")
    def failed_link(self, channel: Channel) -> str:
        if not channel.failed_count:
            return "0"
        url = reverse("admin:channels_inboundmessage_changelist")
        return format_html(
            '<a href="{}?status__exact=failed&amp;channel__id__exact={}">{}</a>',
            url,
            channel.pk,
            channel.failed_count,
        )

    def save_model(self, request: HttpRequest, obj: Channel, form, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if change and obj.enabled and "enabled" in form.changed_data:
            released = release_queued_outbound(channel=obj)
            if released:
                self.message_user(request, f"{released} queued message(s) released for sending.")

    @admin.action(description="Enable the selected channels (and send their queued replies)")
    def enable_channels(self, request: HttpRequest, queryset: QuerySet[Channel]) -> None:
        switched, released = channels_enable(channel_ids=queryset.values_list("pk", flat=True))
        self.message_user(
            request,
            f"{switched} channel(s) enabled; {released} queued message(s) released.",
            messages.SUCCESS,
        )

    @admin.action(description="Disable the selected channels (replies stay queued)")
    def disable_channels(self, request: HttpRequest, queryset: QuerySet[Channel]) -> None:
        count = channels_disable(channel_ids=queryset.values_list("pk", flat=True))
        self.message_user(request, f"{count} channel(s) disabled.", messages.SUCCESS)

    @admin.action(description="Clear back-off and poll now")
    def clear_backoff_and_poll(self, request: HttpRequest, queryset: QuerySet[Channel]) -> None:
        channels = list(queryset)
        polled = channels_clear_backoff(
            channel_ids=[c.pk for c in channels], polling_kinds=set(polling_kinds())
        )
        skipped = sum(1 for c in channels if not c.enabled)
        note = f" {skipped} disabled channel(s) left alone." if skipped else ""
        self.message_user(
            request,
            f"Back-off cleared for {len(channels)} channel(s); {polled} poll(s) started.{note}",
            messages.SUCCESS,
        )


@admin.register(ChannelCursor)
class ChannelCursorAdmin(ReadOnlyAdmin):
    list_display = ("channel", "key", "state", "updated_at")
    list_filter = ("channel",)
    list_select_related = ("channel",)
    search_fields = ("=channel__slug", "key")


@admin.register(Thread)
class ThreadAdmin(admin.ModelAdmin):
    paginator = EstimatedCountPaginator
    list_display = (
        "reference_display",
        "subject",
        "citizen",
        "channel",
        "status",
        "department",
        "team",
        "assigned_to",
        "case",
        "last_message_at",
    )
    list_display_links = ("reference_display", "subject")
    list_filter = ("status", "channel", "team")
    search_fields = (
        "subject",
        "citizen__given_name",
        "citizen__family_name",
        "=citizen__public_id",
    )
    list_select_related = ("channel", "citizen", "assigned_to", "team", "case")
    raw_id_fields = ("citizen", "assigned_to", "case")
    ordering = ("-last_message_at",)
    show_full_result_count = False

    # Threads change through the inbox and its services (assignment, status, routing), which
    # keep the timeline and audit trail in step; the admin only shows them.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    @admin.display(description="reference", ordering="pk")
    def reference_display(self, thread: Thread) -> str:
        return thread.reference


@admin.register(InboundMessage)
class InboundMessageAdmin(ReadOnlyAdmin):
    paginator = EstimatedCountPaginator
    list_display = (
        "received_at",
        "channel",
        "status",
        "classification",
        "sender_value",
        "subject",
        "citizen",
        "attempts",
        "last_error_excerpt",
    )
    # The failed-messages view is this list filtered on status Failed (linked from the
    # channel list and the health page): last error shown, "reprocess" action.
    list_filter = ("status", "classification", "channel")
    list_select_related = ("channel", "citizen")
    search_fields = ("=external_id", "=message_id", "sender_value", "subject")
    ordering = ("-received_at",)
    show_full_result_count = False
    actions = ["reprocess"]
    readonly_fields = (
        "channel",
        "external_id",
        "status",
        "last_error_display",
        "attempts",
        "received_at",
        "processed_at",
        "recipients",
        "classification",
        "message_id",
        "in_reply_to",
        "references",
        "sender_kind",
        "sender_value",
        "sender_name",
        "subject",
        "sent_at",
        "summary_text",
        "body_text",
        "citizen_link",
        "contact_point",
        "thread",
        "duplicate_of_link",
        "raw_content_type",
        "raw_size",
        "raw_preview",
    )
    fields = readonly_fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[InboundMessage]:
        # raw can be tens of megabytes: it is never loaded whole, the page shows its start.
        queryset = super().get_queryset(request).defer("raw", "body_html")
        match = request.resolver_match
        if match and match.url_name and match.url_name.endswith("_changelist"):
            return queryset.defer("body_text", "summary_text")
        head = Substr("raw", 1, RAW_PREVIEW_BYTES, output_field=BinaryField())
        return queryset.annotate(raw_head=head)

    @admin.display(description="last error")
    def last_error_excerpt(self, message: InboundMessage) -> str:
        # A traceback's last line names the exception, which is what a list needs.
        lines = message.last_error.strip().splitlines()
        return lines[-1][:200] if lines else ""

    @admin.display(description="last error")
    def last_error_display(self, message: InboundMessage) -> str:
        if not message.last_error:
            return "-"
        return format_html('<pre style="white-space: pre-wrap">{}</pre>', message.last_error)

    @admin.display(description="citizen")
    def citizen_link(self, message: InboundMessage) -> str:
        if not message.citizen_id:
            return "-"
        url = reverse("admin:citizenhub_citizen_change", args=[message.citizen_id])
        return format_html('<a href="{}">{}</a>', url, message.citizen_id)

    @admin.display(description="copy of")
    def duplicate_of_link(self, message: InboundMessage) -> str:
        if not message.duplicate_of_id:
            return "-"
        url = reverse("admin:channels_inboundmessage_change", args=[message.duplicate_of_id])
        return format_html('<a href="{}">message {}</a>', url, message.duplicate_of_id)

    @admin.display(description="raw message (start, as text)")
    def raw_preview(self, message: InboundMessage) -> str:
        head = bytes(getattr(message, "raw_head", b"") or b"")
        text = head.decode("utf-8", errors="replace")
        if message.raw_size > len(head):
            text += f"\n\n… {message.raw_size - len(head):,} more bytes not shown."
        # format_html escapes the text: a raw message is never rendered as HTML.
        return format_html('<pre style="white-space: pre-wrap; max-height: 40em">{}</pre>', text)

    @admin.action(description="Reprocess the selected failed messages")
    def reprocess(self, request: HttpRequest, queryset: QuerySet[InboundMessage]) -> None:
        ids = list(queryset.values_list("pk", flat=True))
        count = reprocess_messages(message_ids=ids)
        skipped = len(ids) - count
        note = f" {skipped} not failed, left alone." if skipped else ""
        self.message_user(
            request, f"{count} message(s) queued for processing again.{note}", messages.SUCCESS
        )


@admin.register(Attachment)
class AttachmentAdmin(ReadOnlyAdmin):
    paginator = EstimatedCountPaginator
    list_display = (
        "filename",
        "message_link",
        "declared_type",
        "sniffed_type",
        "size",
        "rejected_reason",
    )
    list_filter = ("sniffed_type",)
    search_fields = ("filename", "=sha256")
    ordering = ("-pk",)
    show_full_result_count = False
    fields = (
        "message_link",
        "filename",
        "declared_type",
        "sniffed_type",
        "size",
        "sha256",
        "stored_as",
        "rejected_reason",
    )
    readonly_fields = fields

    @admin.display(description="stored as")
    def stored_as(self, attachment: Attachment) -> str:
        # The storage name only: attachments live outside the web root and have no URL.
        return attachment.file.name or "-"

    @admin.display(description="message", ordering="message")
    def message_link(self, attachment: Attachment) -> str:
        # By id: showing the message itself would load its raw content for every row.
        url = reverse("admin:channels_inboundmessage_change", args=[attachment.message_id])
        return format_html('<a href="{}">message {}</a>', url, attachment.message_id)


@admin.register(OutboundMessage)
class OutboundMessageAdmin(ReadOnlyAdmin):
    paginator = EstimatedCountPaginator
    list_display = (
        "created_at",
        "channel",
        "to_value",
        "subject",
        "status",
        "attempts",
        "sent_at",
        "last_error",
    )
    list_filter = ("status", "channel")
    list_select_related = ("channel",)
    search_fields = ("=to_value", "subject", "=message_id", "=provider_message_id")
    raw_id_fields = ("citizen", "thread", "created_by")
    ordering = ("-created_at",)
    show_full_result_count = False


@admin.register(RoutingRule)
class RoutingRuleAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "priority",
        "enabled",
        "channel",
        "recipient_contains",
        "keywords",
        "department",
        "service_code",
        "team",
        "opens_case",
    )
    list_filter = ("enabled", "opens_case", "channel", "department", "team")
    list_select_related = ("channel", "team")
    search_fields = ("name", "keywords", "recipient_contains", "service_code")
    ordering = ("priority", "id")


@admin.register(WebForm)
class WebFormAdmin(admin.ModelAdmin):
    # The change page adds how to embed the form on the council's website.
    change_form_template = "channels/webform_embed_help.html"
    list_display = ("title", "slug", "channel", "enabled", "rate_limit_per_hour", "updated_at")
    list_filter = ("enabled", "channel")
    list_select_related = ("channel",)
    search_fields = ("title", "=slug")
    prepopulated_fields = {"slug": ("title",)}
    readonly_fields = ("created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("title", "slug", "channel", "enabled", "introduction")}),
        (
            "Questions",
            {
                "fields": ("fields",),
                "description": (
                    'A JSON list, one object per question, e.g. [{"name": "email", "label": '
                    '"Email address", "type": "email", "required": true}]. Types: text, '
                    'textarea, email, phone, postcode, select (with "choices"), checkbox. '
                    "Every form needs an email or a phone question. A question named "
                    '"case_reference" lets residents add to an existing case (CH-1234).'
                ),
            },
        ),
        (
            "After sending",
            {"fields": ("success_message",)},
        ),
        (
            "Embedding and abuse",
            {
                "fields": ("allowed_origins", "rate_limit_per_hour", "created_at", "updated_at"),
                "description": (
                    "Websites allowed to show the form in an iframe or post to it, as a JSON "
                    'list of origins, e.g. ["https://www.northmoor.gov.uk"].'
                ),
            },
        ),
    )

    def render_change_form(
        self, request: HttpRequest, context: dict, add=False, change=False, form_url="", obj=None
    ):
        if obj is not None and obj.pk:
            context["embed_url"] = request.build_absolute_uri(
                reverse("channels:webform", args=[obj.slug])
            )
            valid = not webform_field_problems(obj.fields)
            context["embed_fields"] = obj.field_definitions() if valid else []
        return super().render_change_form(request, context, add, change, form_url, obj)
