"""REST endpoints for the unified inbox: threads, their messages and staff replies."""

from __future__ import annotations

import django_filters
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response

from channels import selectors
from channels.api import serializers as s
from channels.models import Thread
from channels.services.outbound import thread_reply
from citizenhub.api.pagination import KeysetPagination

ERRORS = {
    400: OpenApiResponse(description="The request has errors; `error.fields` names them."),
    401: OpenApiResponse(description="Not signed in or no valid token."),
    403: OpenApiResponse(description="Signed in, but not council staff."),
}
NOT_FOUND = {404: OpenApiResponse(description="No thread with that id.")}


class ThreadPagination(KeysetPagination):
    ordering = ("-last_message_at", "-id")


class ThreadFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=Thread.Status.choices)
    channel = django_filters.CharFilter(field_name="channel__slug", max_length=64)
    citizen = django_filters.UUIDFilter(field_name="citizen__public_id")
    department = django_filters.CharFilter(max_length=100)
    unassigned = django_filters.BooleanFilter(field_name="assigned_to", lookup_expr="isnull")

    class Meta:
        model = Thread
        fields = ["status", "channel", "citizen", "department", "unassigned"]


class ThreadViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Conversations with residents from every channel: the unified inbox."""

    serializer_class = s.ThreadSerializer
    pagination_class = ThreadPagination
    filterset_class = ThreadFilter

    def get_queryset(self):
        return selectors.inbox_threads().select_related("case__service")

    def get_serializer_context(self) -> dict:
        # Who may read sensitive conversations, loaded once per request (two queries).
        return {**super().get_serializer_context(), "access": self._access()}

    def _access(self) -> selectors.ContentAccess:
        if not hasattr(self, "_content_access"):
            self._content_access = selectors.content_access(self.request.user)
        return self._content_access

    @extend_schema(
        summary="List threads (the unified inbox)",
        responses={200: s.ThreadSerializer(many=True), **ERRORS},
    )
    def list(self, request: Request, *args, **kwargs) -> Response:
        return super().list(request, *args, **kwargs)

    @extend_schema(
        summary="One thread with its messages, oldest first",
        responses={200: s.ThreadDetailSerializer, **ERRORS, **NOT_FOUND},
    )
    def retrieve(self, request: Request, *args, **kwargs) -> Response:
        thread = self.get_object()
        messages = (
            selectors.thread_messages(thread) if self._access().thread_visible(thread) else []
        )
        context = {**self.get_serializer_context(), "messages": messages}
        return Response(s.ThreadDetailSerializer(thread, context=context).data)

    @extend_schema(
        summary="Reply to a thread through its own channel",
        description="Queues the reply; a worker sends it. `status` is `queued` until then. "
        "A reply on a disabled channel is kept queued with `error` saying why.",
        request=s.ReplyInputSerializer,
        responses={202: s.OutboundSerializer, **ERRORS, **NOT_FOUND},
    )
    @action(detail=True, methods=["post"], pagination_class=None, filterset_class=None)
    def replies(self, request: Request, pk=None) -> Response:
        if not request.user.has_perm("channels.add_outboundmessage"):
            raise PermissionDenied(
                "Replying to residents needs the caseworker or supervisor role "
                "(permission channels.add_outboundmessage)."
            )
        thread = self.get_object()
        if not self._access().thread_visible(thread):
            raise PermissionDenied(
                "This conversation is about a sensitive service; only its team may reply."
            )
        payload = s.ReplyInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        outbound = thread_reply(thread=thread, by=request.user, **payload.validated_data)
        outbound.refresh_from_db()
        return Response(s.OutboundSerializer(outbound).data, status=status.HTTP_202_ACCEPTED)
