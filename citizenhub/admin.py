"""Admin for the hub core: support staff search, inspect and (through services) repair."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from citizenhub import services
from citizenhub.errors import ApplicationError
from citizenhub.models import (
    Address,
    AuditEvent,
    Citizen,
    CitizenMerge,
    ContactPoint,
    Service,
    ServiceCase,
    Team,
    TimelineEntry,
)


class ContactPointInline(admin.TabularInline):
    model = ContactPoint
    extra = 0
    fields = ("kind", "normalised", "is_primary", "verification_level", "source", "removed_at")
    readonly_fields = fields
    can_delete = False
    show_change_link = True


class AddressInline(admin.TabularInline):
    model = Address
    extra = 0
    fields = ("line1", "town", "postcode", "uprn", "ward_code", "is_primary")


@admin.register(Citizen)
class CitizenAdmin(admin.ModelAdmin):
    list_display = (
        "display_name",
        "status",
        "preferred_language",
        "preferred_channel",
        "do_not_contact",
        "created_at",
    )
    list_filter = ("status", "preferred_language", "preferred_channel", "do_not_contact")
    search_fields = (
        "given_name",
        "family_name",
        "=public_id",
        "contact_points__match_key",
        "addresses__postcode",
        "=addresses__uprn",
    )
    readonly_fields = ("public_id", "status", "merged_into", "created_at", "updated_at")
    raw_id_fields = ("user",)
    inlines = [ContactPointInline, AddressInline]
    date_hierarchy = "created_at"
    show_full_result_count = False


@admin.register(ContactPoint)
class ContactPointAdmin(admin.ModelAdmin):
    list_display = (
        "normalised",
        "kind",
        "citizen",
        "is_primary",
        "verification_level",
        "source",
        "undeliverable_at",
        "removed_at",
    )
    list_filter = ("kind", "verification_level", "source", "is_primary")
    search_fields = ("match_key", "value", "citizen__family_name")
    raw_id_fields = ("citizen",)
    list_select_related = ("citizen",)
    readonly_fields = ("normalised", "match_key", "created_at")


@admin.register(Address)
class AddressAdmin(admin.ModelAdmin):
    list_display = ("line1", "town", "postcode", "uprn", "ward_code", "citizen")
    list_filter = ("ward_code",)
    search_fields = ("=postcode", "=uprn", "line1", "citizen__family_name")
    raw_id_fields = ("citizen",)
    list_select_related = ("citizen",)


@admin.register(TimelineEntry)
class TimelineEntryAdmin(admin.ModelAdmin):
    list_display = (
        "occurred_at",
        "citizen",
        "kind",
        "channel",
        "department",
        "summary",
        "visibility",
    )
    list_filter = ("kind", "channel", "visibility", "department")
    search_fields = ("summary", "=citizen__public_id")
    raw_id_fields = ("citizen",)
    list_select_related = ("citizen",)
    date_hierarchy = "occurred_at"
    show_full_result_count = False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False  # the timeline is history: written by services, never edited by hand


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = (
        "occurred_at",
        "actor_label",
        "action",
        "target_type",
        "target_id",
        "citizen",
        "reason",
    )
    list_filter = ("action", "target_type")
    search_fields = ("actor_label", "=target_id", "=citizen__public_id", "reason")
    list_select_related = ("citizen", "target_type")
    date_hierarchy = "occurred_at"
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(CitizenMerge)
class CitizenMergeAdmin(admin.ModelAdmin):
    list_display = ("merged_at", "survivor", "duplicate", "merged_by", "reason", "unmerged_at")
    list_filter = ("unmerged_at",)
    search_fields = ("=survivor__public_id", "=duplicate__public_id", "reason")
    list_select_related = ("survivor", "duplicate", "merged_by")
    readonly_fields = (
        "survivor",
        "duplicate",
        "merged_at",
        "merged_by",
        "reason",
        "field_choices",
        "snapshot",
        "unmerged_at",
        "unmerged_by",
    )
    actions = ["unmerge"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # merges are made by the merge service, with its checks

    @admin.action(description="Undo the selected merges")
    def unmerge(self, request: HttpRequest, queryset: QuerySet[CitizenMerge]) -> None:
        for merge in queryset:
            try:
                services.citizen_unmerge(merge=merge, by=request.user, reason="admin action")
            except ApplicationError as exc:
                self.message_user(request, f"Merge {merge.pk}: {exc.message}", messages.ERROR)
            else:
                self.message_user(request, f"Merge {merge.pk} undone.", messages.SUCCESS)


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "department", "email")
    list_filter = ("department",)
    search_fields = ("name", "slug", "department")
    filter_horizontal = ("members",)
    prepopulated_fields = {"slug": ("name",)}


@admin.register(Service)
class ServiceAdmin(admin.ModelAdmin):
    """The service catalogue, edited by the council (load_service_catalogue seeds it)."""

    list_display = (
        "name",
        "code",
        "team",
        "department",
        "clock_type",
        "sla_days",
        "is_public",
        "is_sensitive",
        "is_active",
    )
    list_filter = ("department", "team", "clock_type", "is_public", "is_sensitive", "is_active")
    search_fields = ("name", "code", "keywords", "group")
    list_select_related = ("team",)


@admin.register(ServiceCase)
class ServiceCaseAdmin(admin.ModelAdmin):
    """Cases are worked on the staff dashboard, which enforces who may read sensitive ones.

    The admin therefore shows only what every officer may see (reference, service, team,
    status, dates) and never a title, description, resolution, location or history, and
    changes nothing: all writes go through the case services.
    """

    list_display = ("reference", "service", "team", "status", "priority", "due_on", "breached")
    list_filter = ("status", "breached", "legal_hold", "service", "team")
    search_fields = ("=reference",)
    list_select_related = ("service", "team")
    date_hierarchy = "opened_at"
    show_full_result_count = False
    fields = (
        "reference",
        "service",
        "team",
        "status",
        "priority",
        "opened_at",
        "due_on",
        "clock_stopped_at",
        "breached",
        "resolved_at",
        "closed_at",
        "legal_hold",
        "anonymised_at",
        "version",
    )
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False
