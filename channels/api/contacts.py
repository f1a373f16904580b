"""REST endpoints for contact logged by staff: phone calls and visits, onto the timeline."""

from __future__ import annotations

import django_filters
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from channels.api.serializers import ThreadCitizenSerializer
from channels.models import (
    LOGGED_CONTACT_MAX_SECONDS,
    LOGGED_CONTACT_NOTES_LIMIT,
    LoggedContact,
    Thread,
)
from channels.services.contacts import contact_log
from citizenhub.api.pagination import KeysetPagination
from citizenhub.api.serializers import StrictInputSerializer
from citizenhub.models import Citizen

ERRORS = {
    400: OpenApiResponse(description="The request has errors; `error.fields` names them."),
    401: OpenApiResponse(description="Not signed in or no valid token."),
    403: OpenApiResponse(description="Signed in, but not council staff."),
}


class LoggedContactInputSerializer(StrictInputSerializer):
    citizen = serializers.UUIDField(help_text="The citizen's public id.")
    kind = serializers.ChoiceField(choices=LoggedContact.Kind.choices)
    direction = serializers.ChoiceField(
        choices=LoggedContact.Direction.choices,
        help_text="inbound: the resident called or came in; outbound: the council did.",
    )
    occurred_at = serializers.DateTimeField(help_text="When it began; not in the future.")
    duration_seconds = serializers.IntegerField(
        min_value=0,
        max_value=LOGGED_CONTACT_MAX_SECONDS,
        required=False,
        allow_null=True,
        default=None,
    )
    outcome = serializers.ChoiceField(choices=LoggedContact.Outcome.choices)
    notes = serializers.CharField(
        max_length=LOGGED_CONTACT_NOTES_LIMIT, allow_blank=True, required=False, default=""
    )
    department = serializers.CharField(max_length=100, allow_blank=True, required=False, default="")
    thread = serializers.IntegerField(
        min_value=1,
        required=False,
        allow_null=True,
        default=None,
        help_text="The id of the citizen's thread this contact was about, if any.",
    )


class LoggedContactSerializer(serializers.ModelSerializer):
    citizen = ThreadCitizenSerializer(read_only=True)
    thread = serializers.IntegerField(source="thread_id", read_only=True, allow_null=True)
    logged_by = serializers.CharField(
        source="logged_by.get_username", read_only=True, allow_null=True, default=None
    )

    class Meta:
        model = LoggedContact
        fields = [
            "id",
            "citizen",
            "kind",
            "direction",
            "occurred_at",
            "duration_seconds",
            "outcome",
            "notes",
            "department",
            "thread",
            "logged_by",
            "created_at",
        ]
        read_only_fields = fields


class LoggedContactPagination(KeysetPagination):
    ordering = ("-occurred_at", "-id")


class LoggedContactFilter(django_filters.FilterSet):
    citizen = django_filters.UUIDFilter(field_name="citizen__public_id")
    kind = django_filters.ChoiceFilter(choices=LoggedContact.Kind.choices)
    outcome = django_filters.MultipleChoiceFilter(choices=LoggedContact.Outcome.choices)
    department = django_filters.CharFilter(max_length=100)

    class Meta:
        model = LoggedContact
        fields = ["citizen", "kind", "outcome", "department"]


class LoggedContactViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """Phone calls and visits recorded by staff, newest first."""

    serializer_class = LoggedContactSerializer
    pagination_class = LoggedContactPagination
    filterset_class = LoggedContactFilter

    def get_queryset(self):
        return LoggedContact.objects.select_related("citizen", "logged_by")

    @extend_schema(
        summary="List logged calls and visits",
        description="Newest first, keyset-paginated; filter by `citizen` (public id).",
        responses={200: LoggedContactSerializer(many=True), **ERRORS},
    )
    def list(self, request: Request, *args, **kwargs) -> Response:
        return super().list(request, *args, **kwargs)

    @extend_schema(
        summary="Log a phone call or a visit",
        description="Records the contact and a staff-only entry on the citizen's timeline "
        "(kind `call` or `visit`, channel `phone` or `in_person`) with its duration and "
        "outcome. A time in the future, an unknown citizen or thread, or a thread of "
        "another resident is refused with 400 naming the field.",
        request=LoggedContactInputSerializer,
        responses={201: LoggedContactSerializer, **ERRORS},
        examples=[
            OpenApiExample(
                "A call needing a callback",
                request_only=True,
                value={
                    "citizen": "3f1c2a9e-8d4b-4e7a-9c1d-2b5e6f7a8b9c",
                    "kind": "call",
                    "direction": "inbound",
                    "occurred_at": "2025-03-04T10:15:00Z",
                    "duration_seconds": 420,
                    "outcome": "callback_needed",
                    "notes": "Asked about the garden waste subscription; call back Friday.",
                    "department": "Waste",
                },
            )
        ],
    )
    def create(self, request: Request) -> Response:
        payload = LoggedContactInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = dict(payload.validated_data)
        citizen = Citizen.objects.filter(public_id=data.pop("citizen")).first()
        if citizen is None:
            raise serializers.ValidationError({"citizen": ["No citizen has this id."]})
        thread_id = data.pop("thread")
        thread = None
        if thread_id is not None:
            thread = Thread.objects.select_related("citizen").filter(pk=thread_id).first()
            if thread is None:
                raise serializers.ValidationError({"thread": ["No thread has this id."]})
        contact = contact_log(citizen=citizen, thread=thread, by=request.user, **data)
        contact = self.get_queryset().get(pk=contact.pk)
        return Response(self.get_serializer(contact).data, status=status.HTTP_201_CREATED)
