"""API shapes for topics, subscriptions, consent records and campaigns (input and output
separate; inputs refuse fields they do not know)."""

from __future__ import annotations

import re
from typing import Any

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field, extend_schema_serializer, inline_serializer
from rest_framework import serializers

from citizenhub.api.serializers import StrictInputSerializer
from citizenhub.models import ChannelKind, Citizen, Service
from citizenhub.services.identity import follow_merges
from engagement.models import (
    Campaign,
    ConsentRecord,
    Delivery,
    Subscription,
    Topic,
)
from engagement.purposes import PURPOSES, purpose_for
from engagement.services import WORDING_LIMIT
from engagement.subscriptions import SUBSCRIBABLE_CHANNELS

SUBSCRIPTION_CHANNEL_CHOICES = [
    (channel, ChannelKind(channel).label) for channel in SUBSCRIBABLE_CHANNELS
]
# ONS ward codes: a country letter and eight digits (E05001234, W05000981).
_WARD_CODE = re.compile(r"^[EWSN]\d{8}$")


def citizen_by_public_id(public_id: Any) -> Citizen:
    """The citizen an input names by public id, or a field error the caller can act on."""
    citizen = Citizen.objects.filter(public_id=public_id).first()
    if citizen is None:
        raise serializers.ValidationError("There is no resident with this id.")
    return citizen


# --- Topics --------------------------------------------------------------------------------


class TopicSerializer(serializers.ModelSerializer):
    service = serializers.CharField(
        source="service.code",
        read_only=True,
        allow_null=True,
        default=None,
        help_text="The catalogue service's code, for topics of kind `service`.",
    )
    active_subscriptions = serializers.IntegerField(
        read_only=True, help_text="Confirmed subscriptions on every channel."
    )

    class Meta:
        model = Topic
        fields = [
            "slug",
            "name",
            "description",
            "kind",
            "service",
            "ward_code",
            "is_public",
            "is_active",
            "consent_wording",
            "consent_wording_version",
            "active_subscriptions",
            "created_at",
        ]
        read_only_fields = fields


class TopicUpdateSerializer(StrictInputSerializer):
    """Changing a topic. The slug cannot change: consent records name the topic by it."""

    name = serializers.CharField(max_length=150)
    description = serializers.CharField(max_length=2000, allow_blank=True, required=False)
    kind = serializers.ChoiceField(choices=Topic.Kind.choices)
    service = serializers.CharField(
        max_length=32,
        allow_null=True,
        required=False,
        help_text="A catalogue service's code; needed for kind `service`.",
    )
    ward_code = serializers.CharField(
        max_length=9,
        allow_blank=True,
        required=False,
        help_text="The ONS ward code (E05001234); needed for kind `ward`.",
    )
    is_public = serializers.BooleanField(
        required=False, help_text="Offered to residents; internal topics are for staff audiences."
    )
    is_active = serializers.BooleanField(required=False)
    consent_wording = serializers.CharField(
        max_length=WORDING_LIMIT, help_text="The words a resident agrees to when subscribing."
    )
    consent_wording_version = serializers.CharField(
        max_length=32, help_text="A new value whenever the wording changes."
    )

    def validate_service(self, code: str | None) -> Service | None:
        if code is None:
            return None
        service = Service.objects.filter(code=code).first()
        if service is None:
            raise serializers.ValidationError(f"There is no service with the code {code!r}.")
        return service

    def validate_ward_code(self, value: str) -> str:
        value = value.strip().upper()
        if value and not _WARD_CODE.match(value):
            raise serializers.ValidationError("Give the ONS ward code, such as E05001234.")
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        current: Topic | None = self.context.get("topic")
        merged = {
            "kind": current.kind if current else Topic.Kind.THEME,
            "service": current.service if current else None,
            "ward_code": current.ward_code if current else "",
            **attrs,
        }
        errors = {}
        if merged["kind"] == Topic.Kind.SERVICE and merged["service"] is None:
            errors["service"] = "A service topic needs the service's code."
        if merged["kind"] == Topic.Kind.WARD and not merged["ward_code"]:
            errors["ward_code"] = "A ward topic needs the ward's code."
        if current is not None and (
            "consent_wording" in attrs
            and attrs["consent_wording"].strip() != current.consent_wording.strip()
            and attrs.get("consent_wording_version", current.consent_wording_version)
            == current.consent_wording_version
        ):
            # The ledger keeps which words each person agreed to by version: new words
            # under an old version would make earlier records ambiguous.
            errors["consent_wording_version"] = "New wording needs a new wording version."
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


class TopicCreateSerializer(TopicUpdateSerializer):
    slug = serializers.SlugField(
        max_length=64, help_text="Permanent: consent records name the topic by it."
    )
    kind = serializers.ChoiceField(choices=Topic.Kind.choices, default=Topic.Kind.THEME)
    consent_wording_version = serializers.CharField(max_length=32, default="1")

    def validate_slug(self, slug: str) -> str:
        slug = slug.lower()
        if Topic.objects.filter(slug=slug).exists():
            raise serializers.ValidationError(f"There is already a topic {slug!r}.")
        if any(purpose.slug == slug for purpose in PURPOSES):
            raise serializers.ValidationError(f"{slug!r} is a fixed consent purpose.")
        return slug


# --- Subscriptions -------------------------------------------------------------------------


class SubscriptionSerializer(serializers.ModelSerializer):
    citizen = serializers.UUIDField(
        source="citizen.public_id", read_only=True, help_text="The resident's public id."
    )
    topic = serializers.CharField(source="topic.slug", read_only=True)

    class Meta:
        model = Subscription
        fields = [
            "id",
            "citizen",
            "topic",
            "channel",
            "status",
            "source",
            "requested_at",
            "confirm_by",
            "confirmed_at",
            "unsubscribed_at",
        ]
        read_only_fields = fields


class SubscribeSerializer(StrictInputSerializer):
    citizen = serializers.UUIDField(help_text="The resident's public id.")
    topic = serializers.SlugField(max_length=64, help_text="The topic's slug.")
    channel = serializers.ChoiceField(choices=SUBSCRIPTION_CHANNEL_CHOICES)

    def validate_citizen(self, public_id: Any) -> Citizen:
        # A merged profile's id stands for the profile it was merged into.
        citizen = follow_merges(citizen_by_public_id(public_id))
        if not citizen.is_live:
            raise serializers.ValidationError("This profile was erased.")
        return citizen

    def validate_topic(self, slug: str) -> Topic:
        topic = Topic.objects.filter(slug=slug, is_active=True).first()
        if topic is None:
            raise serializers.ValidationError(f"There is no active topic {slug!r}.")
        return topic


class UnsubscribeSerializer(StrictInputSerializer):
    """No fields: the subscription is in the URL. Unknown fields are still refused."""


# --- Consents ------------------------------------------------------------------------------


class ConsentRecordSerializer(serializers.ModelSerializer):
    citizen = serializers.UUIDField(
        source="citizen.public_id", read_only=True, help_text="The resident's public id."
    )
    recorded_by = serializers.CharField(
        source="actor_label", read_only=True, help_text="The account or system that recorded it."
    )

    class Meta:
        model = ConsentRecord
        fields = [
            "id",
            "citizen",
            "purpose",
            "channel",
            "action",
            "lawful_basis",
            "wording",
            "wording_version",
            "source",
            "recorded_by",
            "occurred_at",
            "ip_address",
        ]
        read_only_fields = fields


# One object, not a list: the list view answers with the state and a page of the ledger.
@extend_schema_serializer(many=False)
class ConsentLedgerPageSerializer(serializers.Serializer):
    """The schema of GET /consents/: the current state with one page of the ledger."""

    citizen = serializers.UUIDField(
        help_text="The live profile's public id (the one asked for, or the profile it was "
        "merged into)."
    )
    current = ConsentRecordSerializer(
        many=True,
        help_text="The latest record of each purpose and channel: the state now. A purpose "
        "counts as consented only where the latest action is `given`.",
    )
    next = serializers.URLField(allow_null=True, help_text="The next page, or null.")
    results = ConsentRecordSerializer(many=True, help_text="The ledger, newest first.")


class ConsentInputSerializer(StrictInputSerializer):
    citizen = serializers.UUIDField(help_text="The resident's public id.")
    purpose = serializers.SlugField(
        max_length=64, help_text="A topic's slug, or a fixed purpose such as residents-newsletter."
    )
    channel = serializers.ChoiceField(choices=ChannelKind.choices)
    action = serializers.ChoiceField(choices=ConsentRecord.Action.choices)
    lawful_basis = serializers.ChoiceField(
        choices=ConsentRecord.LawfulBasis.choices, default=ConsentRecord.LawfulBasis.CONSENT
    )
    wording = serializers.CharField(
        max_length=WORDING_LIMIT, help_text="The exact words the resident was shown."
    )
    wording_version = serializers.CharField(max_length=32)
    occurred_at = serializers.DateTimeField(
        required=False,
        default=None,
        allow_null=True,
        help_text="When the resident gave or withdrew it, if earlier than now (with a time "
        "zone); never in the future.",
    )

    def validate_citizen(self, public_id: Any) -> Citizen:
        return citizen_by_public_id(public_id)

    def validate_occurred_at(self, value: Any) -> Any:
        if value is not None and value > timezone.now():
            raise serializers.ValidationError("This time is in the future.")
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        purpose, channel = attrs["purpose"], attrs["channel"]
        if Topic.objects.filter(slug=purpose).exists():
            return attrs
        if purpose_for(purpose, channel) is not None:
            return attrs
        if any(known.slug == purpose for known in PURPOSES):
            raise serializers.ValidationError(
                {"channel": f"The purpose {purpose!r} is not offered on {channel!r}."}
            )
        # A typo would otherwise start a ledger no campaign ever reads.
        raise serializers.ValidationError(
            {"purpose": f"There is no topic or consent purpose {purpose!r}."}
        )


# --- Campaigns -----------------------------------------------------------------------------

DELIVERY_STATUSES = [status.value for status in Delivery.Status]


class CampaignSerializer(serializers.ModelSerializer):
    topics = serializers.SerializerMethodField()
    created_by = serializers.CharField(
        source="created_by.get_username", read_only=True, allow_null=True, default=None
    )
    approved_by = serializers.CharField(
        source="approved_by.get_username", read_only=True, allow_null=True, default=None
    )
    deliveries = serializers.SerializerMethodField()
    responses = serializers.SerializerMethodField()

    class Meta:
        model = Campaign
        fields = [
            "id",
            "title",
            "status",
            "message_class",
            "topics",
            "channels",
            "asks_response",
            "created_by",
            "created_at",
            "submitted_at",
            "approved_by",
            "approved_at",
            "scheduled_for",
            "started_at",
            "finished_at",
            "version",
            "deliveries",
            "responses",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_topics(self, campaign: Campaign) -> list[str]:
        # Prefetched by the view: sorted here rather than by a query per row.
        return sorted(topic.slug for topic in campaign.topics.all())

    @extend_schema_field(
        inline_serializer(
            "CampaignDeliveryCounts",
            {
                "total": serializers.IntegerField(),
                **{name: serializers.IntegerField() for name in DELIVERY_STATUSES},
            },
        )
    )
    def get_deliveries(self, campaign: Campaign) -> dict[str, int]:
        counts = self.context["delivery_counts"].get(campaign.pk, {})
        row = {name: counts.get(name, 0) for name in DELIVERY_STATUSES}
        return {"total": sum(row.values()), **row}

    @extend_schema_field(OpenApiTypes.INT)
    def get_responses(self, campaign: Campaign) -> int:
        return self.context["response_counts"].get(campaign.pk, 0)
