"""REST endpoints for citizens, their contact points and their timeline."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from citizenhub import selectors, services
from citizenhub.api import serializers as s
from citizenhub.api.filters import CitizenFilter, TimelineFilter
from citizenhub.api.pagination import CitizenPagination, TimelinePagination
from citizenhub.models import AuditEvent, Citizen

ERRORS = {
    400: OpenApiResponse(description="The request has errors; `error.fields` names them."),
    401: OpenApiResponse(description="Not signed in or no valid token."),
    403: OpenApiResponse(description="Signed in, but not council staff."),
}
NOT_FOUND = {404: OpenApiResponse(description="No citizen with that id.")}
CITIZEN_ID = OpenApiParameter(
    "id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="The citizen's public id."
)


@extend_schema_view(
    retrieve=extend_schema(parameters=[CITIZEN_ID]),
    contact_points=extend_schema(parameters=[CITIZEN_ID]),
    timeline=extend_schema(parameters=[CITIZEN_ID]),
)
class CitizenViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Citizen profiles: one per person, whatever channel they reach the council by."""

    serializer_class = s.CitizenSerializer
    pagination_class = CitizenPagination
    filterset_class = CitizenFilter
    lookup_field = "public_id"
    lookup_url_kwarg = "id"
    lookup_value_converter = "uuid"

    def get_queryset(self):
        if self.action == "timeline":
            return selectors.timeline_entries()
        return selectors.citizens_with_contact_points()

    def _citizen(self) -> Citizen:
        return get_object_or_404(Citizen, public_id=self.kwargs["id"])

    @extend_schema(
        summary="List and search citizens",
        description="Newest first, keyset-paginated. `q` searches names, e-mail addresses "
        "and phone numbers (any UK format).",
        responses={200: s.CitizenSerializer(many=True), **ERRORS},
    )
    def list(self, request: Request, *args, **kwargs) -> Response:
        return super().list(request, *args, **kwargs)

    @extend_schema(
        summary="Get one citizen",
        description="Reading a profile is recorded in the audit log.",
        responses={200: s.CitizenSerializer, **ERRORS, **NOT_FOUND},
    )
    def retrieve(self, request: Request, *args, **kwargs) -> Response:
        citizen = self.get_object()
        services.audit_record(
            action=AuditEvent.Action.VIEW,
            target=citizen,
            actor=request.user,
            reason="API read",
        )
        return Response(self.get_serializer(citizen).data)

    @extend_schema(
        summary="Create a citizen",
        request=s.CitizenInputSerializer,
        responses={201: s.CitizenSerializer, **ERRORS},
    )
    def create(self, request: Request) -> Response:
        payload = s.CitizenInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = dict(payload.validated_data)
        contact_points = [(cp["kind"], cp["value"]) for cp in data.pop("contact_points")]
        citizen = services.citizen_create(
            **data, contact_points=contact_points, source="api", actor=request.user
        )
        citizen = self.get_queryset().get(pk=citizen.pk)
        return Response(self.get_serializer(citizen).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        methods=["GET"],
        summary="List a citizen's contact points",
        responses={200: s.ContactPointSerializer(many=True), **ERRORS, **NOT_FOUND},
    )
    @extend_schema(
        methods=["POST"],
        summary="Add a contact point to a citizen",
        description="Adding one the citizen already has returns it with 200; one that belongs "
        "to another profile is refused (400) so that identities are never shared.",
        request=s.ContactPointInputSerializer,
        responses={
            201: s.ContactPointSerializer,
            200: s.ContactPointSerializer,
            **ERRORS,
            **NOT_FOUND,
        },
    )
    @action(
        detail=True,
        methods=["get", "post"],
        url_path="contact-points",
        pagination_class=None,
        filterset_class=None,
    )
    def contact_points(self, request: Request, id=None) -> Response:
        citizen = self._citizen()
        if request.method == "GET":
            points = citizen.contact_points.filter(removed_at__isnull=True).order_by("kind", "id")
            return Response(s.ContactPointSerializer(points, many=True).data)
        payload = s.ContactPointInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        existing_ids = set(citizen.contact_points.values_list("pk", flat=True))
        point = services.contact_point_add(
            citizen=citizen, source="api", actor=request.user, **payload.validated_data
        )
        created = point.pk not in existing_ids
        return Response(
            s.ContactPointSerializer(point).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )

    @extend_schema(
        summary="A citizen's timeline",
        description="Everything between the citizen and the council, newest first, "
        "keyset-paginated: follow `next`; pages stay stable while new entries arrive.",
        parameters=[
            OpenApiParameter("kind", str, many=True, description="Entry kinds to include."),
            OpenApiParameter("channel", str, many=True, description="Channels to include."),
        ],
        responses={200: s.TimelineEntrySerializer(many=True), **ERRORS, **NOT_FOUND},
    )
    @action(
        detail=True,
        methods=["get"],
        pagination_class=TimelinePagination,
        filterset_class=TimelineFilter,
        serializer_class=s.TimelineEntrySerializer,
    )
    def timeline(self, request: Request, id=None) -> Response:
        citizen = self._citizen()
        entries = self.filter_queryset(self.get_queryset().filter(citizen=citizen))
        page = self.paginate_queryset(entries)
        return self.get_paginated_response(s.TimelineEntrySerializer(page, many=True).data)
