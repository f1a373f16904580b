"""The resident's own API (/api/v1/me/): their profile, their cases with the history they
may see, and "add information" to a case. For the council's app and for residents' own
tools; signed in by session or token as a resident with a profile.

Every query goes through the caller's own profile: another resident's case reference is
404, exactly like a reference that does not exist.
"""

from __future__ import annotations

from django.http import Http404
from django.urls import path
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
)
from rest_framework import status
from rest_framework.exceptions import Throttled
from rest_framework.generics import ListAPIView
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from citizenhub.api.me_serializers import (
    MyCaseDetailSerializer,
    MyCaseSerializer,
    MyCaseUpdateInputSerializer,
    MyHistoryLineSerializer,
    MyProfileSerializer,
)
from citizenhub.api.pagination import KeysetPagination
from citizenhub.errors import ApplicationError
from citizenhub.models import ServiceCase
from citizenhub.portal import selectors
from citizenhub.portal.access import citizen_for_user
from citizenhub.portal.forms_cases import case_update_refusal
from citizenhub.portal.limits import case_updates_limit, resident_key
from citizenhub.services.cases import RESIDENT_LABEL, case_resident_update

TAG = "Resident (me)"
REFERENCE = OpenApiParameter(
    "reference", str, OpenApiParameter.PATH, description="The case reference, e.g. CH-2026-000123."
)
NOT_FOUND = OpenApiResponse(description="No case of yours has that reference.")


class IsResident(BasePermission):
    """Signed in, with a verified e-mail address linked to a live profile; the profile is
    put on the request as `request.citizen`."""

    message = "Sign in with a resident account whose e-mail address is verified."

    def has_permission(self, request: Request, view: object) -> bool:
        citizen = citizen_for_user(request.user)
        if citizen is None:
            return False
        request.citizen = citizen
        return True


class MyCasesPagination(KeysetPagination):
    ordering = ("-opened_at", "-id")
    page_size = 20
    max_page_size = 100


class ResidentAPIView(APIView):
    permission_classes = [IsResident]
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "resident"


class ResidentCaseAPIView(ResidentAPIView):
    """An endpoint about one of the caller's cases (`reference` in the URL): the case is
    looked up before the method is dispatched, so another resident's reference is 404
    whatever the method, never 405."""

    case: ServiceCase

    def initial(self, request: Request, *args: object, **kwargs: object) -> None:
        super().initial(request, *args, **kwargs)
        case = selectors.resident_case(request.citizen, str(kwargs.get("reference", "")))
        if case is None:
            raise Http404("No case of yours has that reference.")
        self.case = case


class MeView(ResidentAPIView):
    @extend_schema(
        tags=[TAG],
        summary="My profile",
        description="The signed-in resident's name, preferred language and channel, and the "
        "contact details the council holds (removed ones are left out).",
        responses={200: MyProfileSerializer},
    )
    def get(self, request: Request) -> Response:
        citizen = request.citizen
        points = citizen.contact_points.filter(removed_at__isnull=True).order_by(
            "kind", "-is_primary", "pk"
        )
        data = {
            "given_name": citizen.given_name,
            "family_name": citizen.family_name,
            "display_name": citizen.display_name,
            "preferred_language": citizen.preferred_language,
            "preferred_channel": citizen.preferred_channel,
            "contact_points": list(points),
        }
        return Response(MyProfileSerializer(data).data)


class MyCaseListView(ListAPIView):
    permission_classes = [IsResident]
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "resident"
    serializer_class = MyCaseSerializer
    pagination_class = MyCasesPagination
    filter_backends: list = []
    queryset = ServiceCase.objects.none()  # for the schema; get_queryset scopes to the caller

    def get_queryset(self):
        return selectors.resident_cases(self.request.citizen)

    @extend_schema(
        tags=[TAG],
        summary="My cases",
        description="The signed-in resident's cases, newest first.",
    )
    def get(self, request: Request, *args: object, **kwargs: object) -> Response:
        return super().get(request, *args, **kwargs)


class MyCaseDetailView(ResidentCaseAPIView):
    @extend_schema(
        tags=[TAG],
        summary="One of my cases",
        description="The case with the history the resident may see (never internal notes or "
        "officers' names), the resolution and the files they attached.",
        parameters=[REFERENCE],
        responses={200: MyCaseDetailSerializer, 404: NOT_FOUND},
    )
    def get(self, request: Request, reference: str) -> Response:
        case = self.case
        case.resident_history = (
            []
            if case.anonymised_at
            else [
                selectors.history_line(event, request.user)
                for event in selectors.resident_case_history(case)
            ]
        )
        case.resident_attachments = (
            [] if case.anonymised_at else selectors.resident_case_attachments(case, request.citizen)
        )
        return Response(MyCaseDetailSerializer(case, context={"request": request}).data)


class MyCaseUpdateView(ResidentCaseAPIView):
    @extend_schema(
        tags=[TAG],
        summary="Add information to one of my cases",
        description="Adds the text to the case history, where the officers see it. A case "
        'waiting for the resident goes back to "in progress". Only open cases take new '
        "information: a resolved case is reopened on the portal instead.",
        parameters=[REFERENCE],
        request=MyCaseUpdateInputSerializer,
        responses={
            201: MyHistoryLineSerializer,
            400: OpenApiResponse(
                description="The text is missing or too long, or the case is "
                "closed (code `case_closed`)."
            ),
            404: NOT_FOUND,
        },
        examples=[
            OpenApiExample(
                "Add information",
                value={"text": "The bin is still by the gate this morning."},
                request_only=True,
            )
        ],
    )
    def post(self, request: Request, reference: str) -> Response:
        case = self.case
        serializer = MyCaseUpdateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        refusal = case_update_refusal(case)
        if refusal:
            raise ApplicationError(refusal, code="case_closed")
        limit, key = case_updates_limit(), resident_key(request.citizen)
        if (retry_after := limit.consume(key)) is not None:
            raise Throttled(wait=retry_after)
        event = case_resident_update(
            case=case,
            text=serializer.validated_data["text"],
            data={"source": "api"},
            actor=request.user,
            actor_label=RESIDENT_LABEL,
            on_timeline=True,
        )
        line = selectors.history_line(event, request.user)
        return Response(MyHistoryLineSerializer(line).data, status=status.HTTP_201_CREATED)


urlpatterns = [
    path("", MeView.as_view(), name="api-me"),
    path("cases/", MyCaseListView.as_view(), name="api-me-cases"),
    path("cases/<str:reference>/", MyCaseDetailView.as_view(), name="api-me-case"),
    path("cases/<str:reference>/updates/", MyCaseUpdateView.as_view(), name="api-me-case-updates"),
]
