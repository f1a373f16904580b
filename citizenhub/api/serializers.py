"""API shapes for citizens, contact points and timeline entries (input and output separate)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field, inline_serializer
from rest_framework import serializers

from citizenhub.models import ChannelKind, Citizen, ContactPoint, Language, TimelineEntry


class StrictInputSerializer(serializers.Serializer):
    """An input serializer that refuses fields it does not know instead of ignoring them,
    so a typo in an integrating system's request is reported, not silently dropped."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError(
                    {name: ["This field is not part of this request."] for name in unknown}
                )
        return super().to_internal_value(data)


class ContactPointSerializer(serializers.ModelSerializer):
    class Meta:
        model = ContactPoint
        fields = [
            "id",
            "kind",
            "value",
            "normalised",
            "is_primary",
            "verification_level",
            "verified_at",
            "source",
            "undeliverable_at",
            "created_at",
        ]
        read_only_fields = fields


class ContactPointInputSerializer(StrictInputSerializer):
    kind = serializers.ChoiceField(choices=ContactPoint.Kind.choices)
    value = serializers.CharField(max_length=320)
    is_primary = serializers.BooleanField(default=False)
    verification_level = serializers.ChoiceField(
        choices=ContactPoint.VerificationLevel.choices,
        default=ContactPoint.VerificationLevel.UNVERIFIED,
    )


class NewContactPointSerializer(StrictInputSerializer):
    kind = serializers.ChoiceField(choices=ContactPoint.Kind.choices)
    value = serializers.CharField(max_length=320)


class CitizenSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="public_id", read_only=True)
    display_name = serializers.CharField(read_only=True)
    merged_into = serializers.UUIDField(
        source="merged_into.public_id", read_only=True, allow_null=True, default=None
    )
    contact_points = serializers.SerializerMethodField()

    class Meta:
        model = Citizen
        fields = [
            "id",
            "display_name",
            "given_name",
            "family_name",
            "date_of_birth",
            "preferred_language",
            "preferred_channel",
            "accessibility_needs",
            "do_not_contact",
            "status",
            "merged_into",
            "contact_points",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    @extend_schema_field(ContactPointSerializer(many=True))
    def get_contact_points(self, citizen: Citizen) -> list[dict]:
        # Reads the prefetched `live_contact_points` so a page costs one query, not one per row.
        points = getattr(citizen, "live_contact_points", None)
        if points is None:
            points = citizen.contact_points.filter(removed_at__isnull=True)
        return ContactPointSerializer(points, many=True).data


class CitizenInputSerializer(StrictInputSerializer):
    given_name = serializers.CharField(max_length=150, allow_blank=True, default="")
    family_name = serializers.CharField(max_length=150, allow_blank=True, default="")
    date_of_birth = serializers.DateField(required=False, allow_null=True, default=None)
    preferred_language = serializers.ChoiceField(choices=Language.choices, default="en")
    preferred_channel = serializers.ChoiceField(
        choices=ChannelKind.choices, allow_blank=True, default=""
    )
    accessibility_needs = serializers.CharField(max_length=2000, allow_blank=True, default="")
    contact_points = NewContactPointSerializer(many=True, required=False, default=list)

    def validate(self, attrs: dict) -> dict:
        if not (attrs["given_name"] or attrs["family_name"] or attrs["contact_points"]):
            raise serializers.ValidationError(
                "Give at least a name or one contact point for the new profile."
            )
        return attrs


class TimelineEntrySerializer(serializers.ModelSerializer):
    source = serializers.SerializerMethodField()

    class Meta:
        model = TimelineEntry
        fields = [
            "id",
            "occurred_at",
            "kind",
            "channel",
            "department",
            "service_code",
            "summary",
            "visibility",
            "source",
        ]
        read_only_fields = fields

    @extend_schema_field(
        inline_serializer(
            "TimelineSource",
            {"type": serializers.CharField(), "id": serializers.CharField()},
            allow_null=True,
        )
    )
    def get_source(self, entry: TimelineEntry) -> dict[str, str] | None:
        if entry.source_type_id is None:
            return None
        return {
            "type": entry.source_type.natural_key()[0] + "." + entry.source_type.model,
            "id": entry.source_id,
        }
