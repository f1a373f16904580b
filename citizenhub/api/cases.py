"""REST endpoints for service cases, the service catalogue and teams.

Cases are read through citizenhub.case_selectors, so a case of a sensitive service shows
only that it exists (reference, service, team, status, dates) to callers outside its team,
and refuses their notes, transitions and assignments. Changes carry the `version` the
caller read: a change based on an older version is refused with 409 instead of
overwriting somebody else's.
"""

from __future__ import annotations

from typing import Any

import django_filters
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Q, QuerySet
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
)
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response

from citizenhub import case_selectors
from citizenhub.api.pagination import KeysetPagination
from citizenhub.api.permissions import IsCouncilStaff
from citizenhub.api.serializers import StrictInputSerializer
from citizenhub.models import (
    AuditEvent,
    CaseEvent,
    ChannelKind,
    Citizen,
    Service,
    ServiceCase,
    Team,
)
from citizenhub.normalise import normalise_postcode
from citizenhub.services import audit_record
from citizenhub.services import cases as case_services

VIEW = "citizenhub.view_servicecase"
ADD = "citizenhub.add_servicecase"
CHANGE = "citizenhub.change_servicecase"
TRANSITION = "citizenhub.transition_servicecase"

# What a caller outside a sensitive case's team must not read: the content, and anything
# that says who the resident is or where they live.
RESTRICTED_FIELDS = (
    "title",
    "description",
    "resolution",
    "citizen",
    "location_text",
    "postcode",
    "assignee",
    "priority",
)


# --- Permissions ---------------------------------------------------------------------------


class CasePermission(BasePermission):
    """The same model permissions as the staff pages, by action (and method for notes)."""

    message = "Your role does not allow this; ask your supervisor for the casework role."
    required = {
        "list": (VIEW,),
        "retrieve": (VIEW,),
        "create": (VIEW, ADD),
        "transition": (VIEW, TRANSITION),
        "assign": (VIEW, CHANGE),
    }

    def has_permission(self, request: Request, view: Any) -> bool:
        if view.action == "notes":
            needed = (VIEW,) if request.method == "GET" else (VIEW, CHANGE)
        else:
            needed = self.required.get(view.action, (VIEW,))
        return request.user.has_perms(needed)


# --- Output --------------------------------------------------------------------------------


class CaseSerializer(serializers.ModelSerializer):
    citizen = serializers.UUIDField(
        source="citizen.public_id",
        read_only=True,
        allow_null=True,
        default=None,
        help_text="The resident's public id; null for anonymous reports and restricted cases.",
    )
    service = serializers.CharField(source="service.code", read_only=True)
    service_name = serializers.CharField(source="service.name", read_only=True)
    team = serializers.CharField(source="team.slug", read_only=True)
    assignee = serializers.CharField(
        source="assignee.username", read_only=True, allow_null=True, default=None
    )
    title = serializers.CharField(read_only=True, allow_null=True)
    description = serializers.CharField(read_only=True, allow_null=True)
    resolution = serializers.CharField(read_only=True, allow_null=True)
    location_text = serializers.CharField(read_only=True, allow_null=True)
    postcode = serializers.CharField(read_only=True, allow_null=True)
    priority = serializers.ChoiceField(
        choices=ServiceCase.Priority.choices, read_only=True, allow_null=True
    )
    overdue = serializers.SerializerMethodField()
    content_restricted = serializers.SerializerMethodField()

    class Meta:
        model = ServiceCase
        fields = [
            "reference",
            "citizen",
            "service",
            "service_name",
            "team",
            "assignee",
            "status",
            "priority",
            "title",
            "description",
            "resolution",
            "location_text",
            "postcode",
            "source_channel",
            "opened_at",
            "due_on",
            "clock_stopped_at",
            "overdue",
            "breached",
            "resolved_at",
            "closed_at",
            "legal_hold",
            "anonymised_at",
            "version",
            "content_restricted",
        ]
        read_only_fields = fields

    @extend_schema_field(OpenApiTypes.BOOL)
    def get_overdue(self, case: ServiceCase) -> bool:
        return case_services.is_overdue(case, timezone.localdate())

    @extend_schema_field(OpenApiTypes.BOOL)
    def get_content_restricted(self, case: ServiceCase) -> bool:
        return not _content_visible(case)

    def to_representation(self, case: ServiceCase) -> dict[str, Any]:
        data = super().to_representation(case)
        if data["content_restricted"]:
            for name in RESTRICTED_FIELDS:
                data[name] = None
        return data


def _content_visible(case: ServiceCase) -> bool:
    # Cases always come from case_selectors.cases_for, which annotates this.
    return bool(getattr(case, "content_visible", False))


class CaseNoteSerializer(serializers.ModelSerializer):
    class Meta:
        model = CaseEvent
        fields = ["id", "kind", "text", "visibility", "actor_label", "created_at"]
        read_only_fields = fields


class ServiceSerializer(serializers.ModelSerializer):
    team = serializers.CharField(source="team.slug", read_only=True)

    class Meta:
        model = Service
        fields = [
            "code",
            "name",
            "description",
            "group",
            "keywords",
            "department",
            "team",
            "clock_type",
            "sla_days",
            "is_public",
            "is_sensitive",
            "allows_anonymous",
            "is_active",
        ]
        read_only_fields = fields


class TeamSerializer(serializers.ModelSerializer):
    class Meta:
        model = Team
        fields = ["slug", "name", "department", "email"]
        read_only_fields = fields


# --- Input ---------------------------------------------------------------------------------


class CaseCreateSerializer(StrictInputSerializer):
    service = serializers.CharField(max_length=32, help_text="The service's code.")
    citizen = serializers.UUIDField(
        required=False, allow_null=True, default=None, help_text="The resident's public id."
    )
    title = serializers.CharField(max_length=case_services.TITLE_LIMIT)
    description = serializers.CharField(
        max_length=case_services.DESCRIPTION_LIMIT, required=False, allow_blank=True, default=""
    )
    priority = serializers.ChoiceField(
        choices=ServiceCase.Priority.choices, default=ServiceCase.Priority.NORMAL
    )
    source_channel = serializers.ChoiceField(
        choices=ChannelKind.choices, required=False, allow_blank=True, default=""
    )
    location_text = serializers.CharField(
        max_length=300, required=False, allow_blank=True, default=""
    )
    postcode = serializers.CharField(max_length=10, required=False, allow_blank=True, default="")

    def validate_service(self, code: str) -> Service:
        service = Service.objects.filter(code=code).select_related("team").first()
        if service is None:
            raise serializers.ValidationError(f"There is no service with the code {code!r}.")
        return service

    def validate_citizen(self, public_id: Any) -> Citizen | None:
        if public_id is None:
            return None
        citizen = Citizen.objects.filter(public_id=public_id).first()
        if citizen is None:
            raise serializers.ValidationError("There is no resident with this id.")
        return citizen

    def validate_postcode(self, value: str) -> str:
        if not value:
            return ""
        try:
            return normalise_postcode(value, field="postcode").normalised
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.message_dict["postcode"]) from None


class CaseTransitionSerializer(StrictInputSerializer):
    status = serializers.ChoiceField(choices=ServiceCase.Status.choices)
    version = serializers.IntegerField(
        min_value=1, help_text="The case's `version` when you read it."
    )
    resolution = serializers.CharField(
        max_length=case_services.DESCRIPTION_LIMIT,
        required=False,
        allow_blank=True,
        default="",
        help_text="Needed to resolve: the text the resident receives.",
    )
    reason = serializers.CharField(
        max_length=case_services.NOTE_LIMIT,
        required=False,
        allow_blank=True,
        default="",
        help_text="Needed to reopen, or to close a new case.",
    )


class CaseNoteInputSerializer(StrictInputSerializer):
    text = serializers.CharField(max_length=case_services.NOTE_LIMIT)


class CaseAssignSerializer(StrictInputSerializer):
    assignee = serializers.CharField(
        allow_null=True, max_length=150, help_text="The officer's username; null to unassign."
    )
    team = serializers.CharField(
        required=False, max_length=50, help_text="Move the case to this team (slug) too."
    )
    version = serializers.IntegerField(
        min_value=1, help_text="The case's `version` when you read it."
    )

    def validate_assignee(self, username: str | None) -> Any:
        if username is None:
            return None
        user = get_user_model().objects.filter(username=username, is_active=True).first()
        if user is None:
            raise serializers.ValidationError(f"There is no active user {username!r}.")
        return user

    def validate_team(self, slug: str) -> Team:
        team = Team.objects.filter(slug=slug).first()
        if team is None:
            raise serializers.ValidationError(f"There is no team {slug!r}.")
        return team


# --- Filters and paging --------------------------------------------------------------------


class CaseFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=ServiceCase.Status.choices)
    service = django_filters.CharFilter(field_name="service__code", max_length=32)
    team = django_filters.CharFilter(field_name="team__slug", max_length=50)
    assignee = django_filters.CharFilter(
        field_name="assignee__username", max_length=150, label="The assignee's username"
    )
    citizen = django_filters.UUIDFilter(
        field_name="citizen__public_id", label="The resident's public id"
    )
    overdue = django_filters.BooleanFilter(method="filter_overdue", label="Past the due date")
    q = django_filters.CharFilter(
        method="filter_q", max_length=200, label="A case reference, or words of the title"
    )

    class Meta:
        model = ServiceCase
        fields = ["status", "service", "team", "assignee", "citizen", "overdue", "q"]

    def filter_overdue(self, queryset: QuerySet, name: str, value: bool) -> QuerySet:
        condition = case_services.overdue_q(timezone.localdate())
        return queryset.filter(condition) if value else queryset.exclude(condition)

    def filter_q(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        value = value.strip()
        if not value:
            return queryset
        # Titles match only where the caller may read them: a hidden title must not be
        # discoverable by guessing words.
        visible = case_selectors.case_content_visible_q(self.request.user)
        return queryset.filter(Q(reference__iexact=value) | (Q(title__icontains=value) & visible))


class CasePagination(KeysetPagination):
    ordering = ("-id",)


class NotePagination(KeysetPagination):
    ordering = ("id",)


# --- Views ---------------------------------------------------------------------------------

ERRORS = {
    400: OpenApiResponse(description="The request has errors; `error.fields` names them."),
    401: OpenApiResponse(description="Not signed in or no valid token."),
    403: OpenApiResponse(
        description="Not council staff, a role without this permission, or a case of a "
        "sensitive service outside the caller's team."
    ),
}
NOT_FOUND = {404: OpenApiResponse(description="No case with that reference.")}
CONFLICT = {
    409: OpenApiResponse(
        description="The case changed since `version` was read (`error.details` has "
        "`current_version` and `changed_by`): read it again and retry."
    )
}
REFERENCE = OpenApiParameter(
    "reference",
    OpenApiTypes.STR,
    OpenApiParameter.PATH,
    description="The case reference, e.g. CH-2026-000123.",
)


@extend_schema_view(
    retrieve=extend_schema(parameters=[REFERENCE]),
    transition=extend_schema(parameters=[REFERENCE]),
    notes=extend_schema(parameters=[REFERENCE]),
    assign=extend_schema(parameters=[REFERENCE]),
)
class CaseViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Service cases: requests from residents worked through a workflow to a due date."""

    serializer_class = CaseSerializer
    pagination_class = CasePagination
    filterset_class = CaseFilter
    permission_classes = [IsCouncilStaff, CasePermission]
    lookup_field = "reference"
    lookup_value_regex = r"[A-Za-z0-9-]+"

    def get_queryset(self) -> QuerySet[ServiceCase]:
        if getattr(self, "swagger_fake_view", False):
            return ServiceCase.objects.none()
        return case_selectors.cases_for(self.request.user)

    def _reloaded(self, case: ServiceCase) -> ServiceCase:
        return case_selectors.cases_for(self.request.user).get(pk=case.pk)

    def _case_to_work_on(self) -> ServiceCase:
        case = self.get_object()
        if not _content_visible(case):
            raise PermissionDenied(
                "This case belongs to a sensitive service: only its team can work on it."
            )
        return case

    @extend_schema(
        summary="List and search cases",
        description="Newest first, keyset-paginated. `q` matches a reference exactly or "
        "words of a title (titles of sensitive cases only for their team). Cases of "
        "sensitive services outside the caller's team come with `content_restricted: true` "
        "and their content null.",
        responses={200: CaseSerializer(many=True), **ERRORS},
    )
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    @extend_schema(
        summary="Get one case",
        description="Reading a case is recorded in the audit log.",
        responses={200: CaseSerializer, **ERRORS, **NOT_FOUND},
    )
    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        case = self.get_object()
        audit_record(
            action=AuditEvent.Action.VIEW,
            target=case,
            actor=request.user,
            citizen=case.citizen,
            reason="API read",
            details={"content_visible": _content_visible(case)},
        )
        return Response(self.get_serializer(case).data)

    @extend_schema(
        summary="Open a case",
        description="Due by the service's clock (working days, FOI or subject access).",
        request=CaseCreateSerializer,
        responses={201: CaseSerializer, **ERRORS},
        examples=[
            OpenApiExample(
                "Missed bin",
                value={
                    "service": "missed-bin",
                    "citizen": "3f0c8a4e-6b1d-4a8e-9d0f-2a7f4c1b9e55",
                    "title": "Green bin not emptied",
                    "location_text": "Outside 4 Mill Lane",
                    "postcode": "NM1 4AB",
                },
                request_only=True,
            )
        ],
    )
    def create(self, request: Request) -> Response:
        payload = CaseCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        case = case_services.open_case(**payload.validated_data, actor=request.user)
        return Response(
            self.get_serializer(self._reloaded(case)).data, status=status.HTTP_201_CREATED
        )

    @extend_schema(
        summary="Move a case through its workflow",
        description="Allowed moves depend on the status; an illegal one is a 400 with "
        "`code: illegal_transition` and the allowed statuses in `error.details.allowed`.",
        request=CaseTransitionSerializer,
        responses={200: CaseSerializer, **ERRORS, **NOT_FOUND, **CONFLICT},
        examples=[
            OpenApiExample(
                "Resolve",
                value={"status": "resolved", "version": 3, "resolution": "Emptied on Tuesday."},
                request_only=True,
            )
        ],
    )
    @action(detail=True, methods=["post"], filterset_class=None, pagination_class=None)
    def transition(self, request: Request, reference: str | None = None) -> Response:
        case = self._case_to_work_on()
        payload = CaseTransitionSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        case_services.case_transition(
            case=case,
            to_status=data["status"],
            expected_version=data["version"],
            actor=request.user,
            reason=data["reason"],
            resolution=data["resolution"],
        )
        return Response(CaseSerializer(self._reloaded(case)).data)

    @extend_schema(
        methods=["GET"],
        summary="A case's internal notes",
        description="Staff-only notes, oldest first, keyset-paginated.",
        responses={200: CaseNoteSerializer(many=True), **ERRORS, **NOT_FOUND},
    )
    @extend_schema(
        methods=["POST"],
        summary="Add an internal note to a case",
        description="Notes are never shown to the resident and never conflict.",
        request=CaseNoteInputSerializer,
        responses={201: CaseNoteSerializer, **ERRORS, **NOT_FOUND},
    )
    @action(
        detail=True,
        methods=["get", "post"],
        filterset_class=None,
        pagination_class=NotePagination,
    )
    def notes(self, request: Request, reference: str | None = None) -> Response:
        case = self._case_to_work_on()
        if request.method == "GET":
            notes = case.events.filter(kind=CaseEvent.Kind.NOTE)
            page = self.paginate_queryset(notes)
            return self.get_paginated_response(CaseNoteSerializer(page, many=True).data)
        payload = CaseNoteInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        note = case_services.case_add_note(
            case=case, text=payload.validated_data["text"], actor=request.user
        )
        return Response(CaseNoteSerializer(note).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Assign a case",
        description="To an officer in the case's team (or in `team`, which moves it), or "
        "to nobody with `assignee: null`.",
        request=CaseAssignSerializer,
        responses={200: CaseSerializer, **ERRORS, **NOT_FOUND, **CONFLICT},
    )
    @action(detail=True, methods=["post"], filterset_class=None, pagination_class=None)
    def assign(self, request: Request, reference: str | None = None) -> Response:
        case = self._case_to_work_on()
        payload = CaseAssignSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        case_services.case_assign(
            case=case,
            expected_version=data["version"],
            assignee=data["assignee"],
            team=data.get("team"),
            actor=request.user,
        )
        return Response(CaseSerializer(self._reloaded(case)).data)


class ServiceViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The service catalogue: what residents can ask for, who does it, and how fast."""

    serializer_class = ServiceSerializer
    pagination_class = None
    filterset_class = None
    lookup_field = "code"
    queryset = Service.objects.select_related("team").order_by("name")

    @extend_schema(
        summary="List the service catalogue",
        responses={200: ServiceSerializer(many=True), **ERRORS},
    )
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    @extend_schema(
        summary="Get one service",
        parameters=[OpenApiParameter("code", OpenApiTypes.STR, OpenApiParameter.PATH)],
        responses={
            200: ServiceSerializer,
            **ERRORS,
            404: OpenApiResponse(description="No such service."),
        },
    )
    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().retrieve(request, *args, **kwargs)


class TeamViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """The council's case-working teams."""

    serializer_class = TeamSerializer
    pagination_class = None
    filterset_class = None
    queryset = Team.objects.order_by("name")

    @extend_schema(summary="List the teams", responses={200: TeamSerializer(many=True), **ERRORS})
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)
