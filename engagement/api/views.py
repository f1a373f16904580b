"""REST endpoints for topics, subscriptions, the consent ledger and campaigns.

For council systems with staff tokens. Every call needs a staff account. Topics are readable
by any staff role; a resident's subscriptions and consents only by the roles that see them on
the citizen 360 (their model's view permission), and each read of one resident's is
recorded in the audit log; campaigns by the roles that see the staff campaign pages. Writes
need the model permission of what they write. Subscriptions go through the double opt-in of
engagement.subscriptions: the API can ask for one, never make it active. The ledger is
append-only here too: records are added, never changed or deleted (405).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any
from uuid import UUID

import django_filters
from django.db.models import Count, Prefetch, Q, QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response

from citizenhub.api.pagination import KeysetPagination
from citizenhub.api.permissions import IsCouncilStaff
from citizenhub.models import AuditEvent, Citizen
from citizenhub.services import audit_record
from citizenhub.services.identity import follow_merges
from engagement import services as consent_services
from engagement import subscriptions
from engagement.api import serializers as s
from engagement.api import topic_services
from engagement.campaigns import may_view_campaigns
from engagement.models import (
    Campaign,
    CampaignResponse,
    ConsentRecord,
    Delivery,
    MessageClass,
    Subscription,
    Topic,
)


def _client_ip(request: Request) -> str | None:
    # REMOTE_ADDR as the deployment's proxy settings leave it; never a header a client sets.
    return request.META.get("REMOTE_ADDR")


# --- Permissions ---------------------------------------------------------------------------


class EngagementPermission(BasePermission):
    """Model permissions by action: `view.required_permissions` maps an action to the
    permissions it needs. Actions not listed (and methods with no action, which end in 405)
    need only a staff account."""

    message = "Your role does not allow this; ask for the comms officer role."

    def has_permission(self, request: Request, view: Any) -> bool:
        needed = getattr(view, "required_permissions", {}).get(view.action, ())
        return request.user.has_perms(needed)


class MayViewCampaigns(BasePermission):
    """The rule of the staff campaign pages: the campaign view permission, or a supervisor
    (who approves campaigns without writing them)."""

    message = "Your role does not allow this; ask for the comms officer role."

    def has_permission(self, request: Request, view: Any) -> bool:
        return may_view_campaigns(request.user)


def _audit_read(request: Request, citizen: Citizen, what: str) -> None:
    """A staff read of one resident's engagement data, for "who viewed my record", as the
    citizen 360 records its reads."""
    audit_record(
        action=AuditEvent.Action.VIEW,
        target=citizen,
        actor=request.user,
        reason=f"API read of {what}",
    )


def _resident_by_public_id(public_id: Any) -> Citizen | None:
    """The live profile a public id names (a merged profile's id answers for the profile it
    was merged into), or None when no resident has it."""
    citizen = Citizen.objects.filter(public_id=public_id).first()
    return None if citizen is None else follow_merges(citizen)


# --- Shared schema parts -------------------------------------------------------------------

ERRORS = {
    400: OpenApiResponse(description="The request has errors; `error.fields` names them."),
    401: OpenApiResponse(description="Not signed in or no valid token."),
    403: OpenApiResponse(
        description="Not council staff, or a role without the permission this needs."
    ),
}
CITIZEN_EXAMPLE = "3f0c8a4e-6b1d-4a8e-9d0f-2a7f4c1b9e55"


def _not_found(what: str) -> dict[int, OpenApiResponse]:
    return {404: OpenApiResponse(description=f"No {what} with that id.")}


# --- Topics --------------------------------------------------------------------------------


class TopicFilter(django_filters.FilterSet):
    kind = django_filters.ChoiceFilter(choices=Topic.Kind.choices)
    is_public = django_filters.BooleanFilter(label="Offered to residents (true) or internal")
    is_active = django_filters.BooleanFilter()

    class Meta:
        model = Topic
        fields = ["kind", "is_public", "is_active"]


class TopicPagination(KeysetPagination):
    ordering = ("slug",)


TOPIC_SLUG = OpenApiParameter("slug", OpenApiTypes.STR, OpenApiParameter.PATH)
TOPIC_EXAMPLE = {
    "slug": "garden-waste",
    "name": "Garden waste collections",
    "description": "Collection dates, renewals and changes to the service.",
    "kind": "service",
    "service": "garden-waste",
    "is_public": True,
    "consent_wording": "Tell me about garden waste collections",
    "consent_wording_version": "2026-1",
}


@extend_schema_view(
    list=extend_schema(
        summary="List topics",
        description="Public and internal topics, by slug, keyset-paginated.",
        responses={200: s.TopicSerializer(many=True), **ERRORS},
    ),
    retrieve=extend_schema(
        summary="Get one topic",
        parameters=[TOPIC_SLUG],
        responses={200: s.TopicSerializer, **ERRORS, **_not_found("topic")},
    ),
)
class TopicViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    """What residents can hear about: services, wards and themes."""

    serializer_class = s.TopicSerializer
    pagination_class = TopicPagination
    filterset_class = TopicFilter
    permission_classes = [IsCouncilStaff, EngagementPermission]
    required_permissions = {
        "create": ("engagement.add_topic",),
        "update": ("engagement.change_topic",),
        "partial_update": ("engagement.change_topic",),
    }
    lookup_field = "slug"
    lookup_value_regex = r"[-a-zA-Z0-9_]+"

    def get_queryset(self) -> QuerySet[Topic]:
        return Topic.objects.select_related("service").annotate(
            active_subscriptions=Count(
                "subscriptions", filter=Q(subscriptions__status=Subscription.Status.ACTIVE)
            )
        )

    def _shown(self, topic: Topic, code: int = status.HTTP_200_OK) -> Response:
        return Response(self.get_serializer(self.get_queryset().get(pk=topic.pk)).data, code)

    @extend_schema(
        summary="Create a topic",
        description="Needs the permission to add topics (comms officers). The slug is "
        "permanent; a `service` topic names a catalogue service, a `ward` topic an ONS "
        "ward code.",
        request=s.TopicCreateSerializer,
        responses={201: s.TopicSerializer, **ERRORS},
        examples=[OpenApiExample("A service topic", value=TOPIC_EXAMPLE, request_only=True)],
    )
    def create(self, request: Request) -> Response:
        payload = s.TopicCreateSerializer(data=request.data, context={"topic": None})
        payload.is_valid(raise_exception=True)
        topic = topic_services.topic_create(**payload.validated_data)
        return self._shown(topic, status.HTTP_201_CREATED)

    @extend_schema(
        summary="Replace a topic's details",
        description="`name`, `kind`, `consent_wording` and `consent_wording_version` are "
        "required; other fields left out keep their values. The slug never changes. New "
        "`consent_wording` needs a new `consent_wording_version`: the ledger keeps which "
        "words each resident agreed to.",
        parameters=[TOPIC_SLUG],
        request=s.TopicUpdateSerializer,
        responses={200: s.TopicSerializer, **ERRORS, **_not_found("topic")},
    )
    def update(self, request: Request, slug: str | None = None) -> Response:
        return self._change(request, partial=False)

    @extend_schema(
        summary="Change some of a topic's details",
        description="As PUT, with only the fields to change.",
        parameters=[TOPIC_SLUG],
        request=s.TopicUpdateSerializer,
        responses={200: s.TopicSerializer, **ERRORS, **_not_found("topic")},
        examples=[
            OpenApiExample(
                "New wording",
                value={
                    "consent_wording": "Tell me about garden waste collections and renewals",
                    "consent_wording_version": "2026-2",
                },
                request_only=True,
            )
        ],
    )
    def partial_update(self, request: Request, slug: str | None = None) -> Response:
        return self._change(request, partial=True)

    def _change(self, request: Request, *, partial: bool) -> Response:
        topic = self.get_object()
        payload = s.TopicUpdateSerializer(
            data=request.data, partial=partial, context={"topic": topic}
        )
        payload.is_valid(raise_exception=True)
        topic = topic_services.topic_update(topic=topic, **payload.validated_data)
        return self._shown(topic)


# --- Subscriptions -------------------------------------------------------------------------


class SubscriptionFilter(django_filters.FilterSet):
    citizen = django_filters.UUIDFilter(
        method="filter_citizen",
        label="The resident's public id (a merged profile's id answers for the profile it "
        "was merged into)",
    )
    topic = django_filters.CharFilter(field_name="topic__slug", max_length=64, label="Topic slug")
    status = django_filters.MultipleChoiceFilter(choices=Subscription.Status.choices)
    channel = django_filters.ChoiceFilter(choices=s.SUBSCRIPTION_CHANNEL_CHOICES)

    class Meta:
        model = Subscription
        fields = ["citizen", "topic", "status", "channel"]

    def filter_citizen(
        self, queryset: QuerySet[Subscription], name: str, value: UUID
    ) -> QuerySet[Subscription]:
        citizen = _resident_by_public_id(value)
        return queryset.none() if citizen is None else queryset.filter(citizen=citizen)


class IdPagination(KeysetPagination):
    ordering = ("-id",)


SUBSCRIPTION_ID = OpenApiParameter(
    "id", OpenApiTypes.INT, OpenApiParameter.PATH, description="The subscription's id."
)
# What someone hears about can be sensitive (bereavement support, adult social care): the
# same permission as the Subscriptions panel of the citizen 360.
SUBSCRIPTION_READ = ("engagement.view_subscription",)


@extend_schema_view(
    list=extend_schema(
        summary="List subscriptions",
        description="Newest first, keyset-paginated; filter by resident, topic, status and "
        "channel. Needs the role that may read subscriptions (as on the citizen 360); a "
        "read filtered by a resident is recorded in the audit log.",
        responses={200: s.SubscriptionSerializer(many=True), **ERRORS},
    ),
    retrieve=extend_schema(
        summary="Get one subscription",
        description="Needs the role that may read subscriptions; every read is recorded in "
        "the audit log.",
        parameters=[SUBSCRIPTION_ID],
        responses={200: s.SubscriptionSerializer, **ERRORS, **_not_found("subscription")},
    ),
)
class SubscriptionViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Residents hearing about topics on a channel, with double opt-in."""

    serializer_class = s.SubscriptionSerializer
    pagination_class = IdPagination
    filterset_class = SubscriptionFilter
    permission_classes = [IsCouncilStaff, EngagementPermission]
    required_permissions = {
        "list": SUBSCRIPTION_READ,
        "retrieve": SUBSCRIPTION_READ,
        "create": ("engagement.add_subscription",),
        "unsubscribe": ("engagement.change_subscription",),
    }

    def get_queryset(self) -> QuerySet[Subscription]:
        return Subscription.objects.select_related("citizen", "topic")

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        queryset = self.filter_queryset(self.get_queryset())  # a bad filter is 400 here
        # Filters are valid by now, so `citizen` is absent or a well-formed id. Lists not
        # filtered by a resident are audience work on many people; not audited per person.
        if request.query_params.get("citizen"):
            citizen = _resident_by_public_id(request.query_params["citizen"])
            if citizen is not None:
                _audit_read(request, citizen, "subscriptions")
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        subscription = self.get_object()
        _audit_read(request, subscription.citizen, f"subscription {subscription.pk}")
        return Response(self.get_serializer(subscription).data)

    def _shown(self, subscription: Subscription, code: int = status.HTTP_200_OK) -> Response:
        reloaded = self.get_queryset().get(pk=subscription.pk)
        return Response(self.get_serializer(reloaded).data, code)

    @extend_schema(
        summary="Subscribe a resident to a topic",
        description="Double opt-in, always: the subscription starts `pending` and the "
        "resident is sent a link to confirm it (valid for 7 days); nothing is sent to it "
        "until they do. There is no way to create an `active` subscription through the "
        "API, even with proof of an opt-in collected elsewhere: record that with "
        "POST /consents/ instead. 201 when the subscription is new, 200 when the resident "
        "already had one for the topic and channel: an active one stays active, a pending "
        "one has its link sent again (at most every 15 minutes), an unsubscribed one starts "
        "again as pending. The resident needs an e-mail address (for `email`) or a "
        "confirmed mobile number (for `sms`): without one the answer is 400 with "
        "`code: no_address`. A merged profile's id stands for the profile it was merged "
        "into.",
        request=s.SubscribeSerializer,
        responses={201: s.SubscriptionSerializer, 200: s.SubscriptionSerializer, **ERRORS},
        examples=[
            OpenApiExample(
                "E-mail bulletin",
                value={"citizen": CITIZEN_EXAMPLE, "topic": "garden-waste", "channel": "email"},
                request_only=True,
            )
        ],
    )
    def create(self, request: Request) -> Response:
        payload = s.SubscribeSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        existed = Subscription.objects.filter(
            citizen=data["citizen"], topic=data["topic"], channel=data["channel"]
        ).exists()
        subscription = subscriptions.subscribe(
            citizen=data["citizen"],
            topic=data["topic"],
            channel=data["channel"],
            source=ConsentRecord.Source.API,
            actor=request.user,
            ip_address=_client_ip(request),
        )
        return self._shown(subscription, status.HTTP_200_OK if existed else status.HTTP_201_CREATED)

    @extend_schema(
        summary="Unsubscribe",
        description="Ends the subscription (pending or active) and withdraws consent still "
        "given for the topic on that channel, as a new line in the consent ledger. "
        "Unsubscribing again changes nothing. Essential service messages still reach the "
        "resident: they are not subscriptions.",
        parameters=[SUBSCRIPTION_ID],
        request=s.UnsubscribeSerializer,
        responses={200: s.SubscriptionSerializer, **ERRORS, **_not_found("subscription")},
    )
    @action(detail=True, methods=["post"], filterset_class=None, pagination_class=None)
    def unsubscribe(self, request: Request, pk: str | None = None) -> Response:
        subscription = self.get_object()
        s.UnsubscribeSerializer(data=request.data or {}).is_valid(raise_exception=True)
        # Idempotent: nothing left to stop writes nothing.
        subscriptions.unsubscribe(
            citizen=subscription.citizen,
            topic=subscription.topic,
            channel=subscription.channel,
            source=ConsentRecord.Source.API,
            actor=request.user,
            ip_address=_client_ip(request),
        )
        return self._shown(subscription)


# --- Consents ------------------------------------------------------------------------------


class ConsentQuerySerializer(serializers.Serializer):
    citizen = serializers.UUIDField(help_text="The resident's public id.")

    def validate_citizen(self, public_id: Any) -> Citizen:
        return s.citizen_by_public_id(public_id)


class ConsentPagination(KeysetPagination):
    ordering = ("-occurred_at", "-id")


CONSENT_READ = ("engagement.view_consentrecord",)


@extend_schema_view(
    retrieve=extend_schema(
        summary="Get one consent record",
        description="Reading it is recorded in the audit log.",
        parameters=[
            OpenApiParameter("id", OpenApiTypes.INT, OpenApiParameter.PATH),
        ],
        responses={200: s.ConsentRecordSerializer, **ERRORS, **_not_found("consent record")},
    ),
)
class ConsentViewSet(mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The consent ledger: append-only, one line per consent given or withdrawn. PUT,
    PATCH and DELETE answer 405: a change is a new record."""

    serializer_class = s.ConsentRecordSerializer
    pagination_class = ConsentPagination
    filterset_class = None
    permission_classes = [IsCouncilStaff, EngagementPermission]
    required_permissions = {
        "list": CONSENT_READ,
        "retrieve": CONSENT_READ,
        "create": ("engagement.add_consentrecord",),
    }

    def get_queryset(self) -> QuerySet[ConsentRecord]:
        return ConsentRecord.objects.select_related("citizen")

    @extend_schema(
        summary="A resident's consents: the state now and the ledger",
        description="`current` is the latest record of each purpose and channel; `results` "
        "the whole ledger, newest first, keyset-paginated. A merged profile's id answers "
        "for the profile it was merged into. Needs the role that may read consents; every "
        "read is recorded in the audit log, as on the citizen 360.",
        parameters=[
            OpenApiParameter(
                "citizen",
                OpenApiTypes.UUID,
                required=True,
                description="The resident's public id.",
            )
        ],
        responses={200: s.ConsentLedgerPageSerializer, **ERRORS},
    )
    def list(self, request: Request) -> Response:
        query = ConsentQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        citizen = follow_merges(query.validated_data["citizen"])
        _audit_read(request, citizen, "consents")
        current = sorted(
            consent_services.current_consents(citizen).values(),
            key=lambda record: (record.purpose, record.channel),
        )
        for record in current:
            record.citizen = citizen  # all the same profile: no query per purpose
        page = self.paginate_queryset(self.get_queryset().filter(citizen=citizen))
        return Response(
            {
                "citizen": citizen.public_id,
                "current": s.ConsentRecordSerializer(current, many=True).data,
                "next": self.paginator.get_next_link(),
                "results": s.ConsentRecordSerializer(page, many=True).data,
            }
        )

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        record = self.get_object()
        _audit_read(request, record.citizen, f"consent record {record.pk}")
        return Response(self.get_serializer(record).data)

    @extend_schema(
        summary="Record consent given or withdrawn",
        description="Appends one line to the ledger with the exact wording the resident was "
        "shown, its version and the lawful basis; source `api`, the calling account as "
        "actor and the caller's address. `purpose` is a topic's slug or a fixed purpose. "
        "Recording consent does not subscribe anyone (that is POST /subscriptions/, with "
        "double opt-in); withdrawing does not end a subscription's record, but no "
        "non-essential message goes out against a withdrawal.",
        request=s.ConsentInputSerializer,
        responses={201: s.ConsentRecordSerializer, **ERRORS},
        examples=[
            OpenApiExample(
                "Withdrawn at the contact centre's system",
                value={
                    "citizen": CITIZEN_EXAMPLE,
                    "purpose": "residents-newsletter",
                    "channel": "email",
                    "action": "withdrawn",
                    "lawful_basis": "consent",
                    "wording": "Send me the monthly residents' newsletter by e-mail",
                    "wording_version": "2026-1",
                },
                request_only=True,
            )
        ],
    )
    def create(self, request: Request) -> Response:
        payload = s.ConsentInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        record = consent_services.record_consent(
            **payload.validated_data,
            source=ConsentRecord.Source.API,
            actor=request.user,
            ip_address=_client_ip(request),
        )
        return Response(self.get_serializer(record).data, status=status.HTTP_201_CREATED)


# --- Campaigns -----------------------------------------------------------------------------


class CampaignFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=Campaign.Status.choices)
    message_class = django_filters.ChoiceFilter(choices=MessageClass.choices)
    topic = django_filters.CharFilter(field_name="topics__slug", max_length=64, label="Topic slug")

    class Meta:
        model = Campaign
        fields = ["status", "message_class", "topic"]


class CampaignViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Bulletins and campaigns, with their deliveries counted by status. Read-only: campaigns
    are written, approved and sent on the staff pages (four eyes), and read by the same roles
    as those pages."""

    serializer_class = s.CampaignSerializer
    permission_classes = [IsCouncilStaff, MayViewCampaigns]
    pagination_class = IdPagination
    filterset_class = CampaignFilter

    def get_queryset(self) -> QuerySet[Campaign]:
        return Campaign.objects.select_related("created_by", "approved_by").prefetch_related(
            Prefetch("topics", queryset=Topic.objects.only("id", "slug"))
        )

    def _context(self, campaigns: list[Campaign]) -> dict[str, Any]:
        # Two grouped queries for the whole page, however many campaigns and deliveries
        # (the (campaign, status) index answers the first).
        ids = [campaign.pk for campaign in campaigns]
        delivery_counts: dict[int, dict[str, int]] = defaultdict(dict)
        for row in (
            Delivery.objects.filter(campaign_id__in=ids)
            .values("campaign_id", "status")
            .annotate(n=Count("id"))
            .order_by()
        ):
            delivery_counts[row["campaign_id"]][row["status"]] = row["n"]
        response_counts = dict(
            CampaignResponse.objects.filter(campaign_id__in=ids)
            .values("campaign_id")
            .annotate(n=Count("id"))
            .order_by()
            .values_list("campaign_id", "n")
        )
        return {
            **self.get_serializer_context(),
            "delivery_counts": delivery_counts,
            "response_counts": response_counts,
        }

    @extend_schema(
        summary="List campaigns",
        description="Newest first, keyset-paginated, with delivery counts by status. Needs "
        "the role that may see the staff campaign pages (comms officers, supervisors, "
        "administrators).",
        responses={200: s.CampaignSerializer(many=True), **ERRORS},
    )
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        data = s.CampaignSerializer(page, many=True, context=self._context(page)).data
        return self.get_paginated_response(data)

    @extend_schema(
        summary="Get one campaign",
        description="Its status, schedule and deliveries counted by status (`suppressed` "
        "ones were stopped by a contact rule; `held` wait for quiet hours to end). Needs the "
        "same role as the list.",
        parameters=[OpenApiParameter("id", OpenApiTypes.INT, OpenApiParameter.PATH)],
        responses={200: s.CampaignSerializer, **ERRORS, **_not_found("campaign")},
    )
    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        campaign = self.get_object()
        return Response(s.CampaignSerializer(campaign, context=self._context([campaign])).data)
