"""API shapes of the resident's own API (/api/v1/me/): what a resident may read of their
profile and cases, and what they may send (input and output separate)."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from citizenhub.api.serializers import StrictInputSerializer
from citizenhub.models import ChannelKind, ContactPoint, Language, ServiceCase
from citizenhub.portal import selectors


class MyContactPointSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=ContactPoint.Kind.choices)
    value = serializers.CharField()
    is_primary = serializers.BooleanField()
    verification_level = serializers.ChoiceField(choices=ContactPoint.VerificationLevel.choices)
    verified_at = serializers.DateTimeField(allow_null=True)


class MyProfileSerializer(serializers.Serializer):
    given_name = serializers.CharField()
    family_name = serializers.CharField()
    display_name = serializers.CharField()
    preferred_language = serializers.ChoiceField(choices=Language.choices)
    preferred_channel = serializers.ChoiceField(
        choices=ChannelKind.choices, allow_blank=True, help_text="Blank: no preference (e-mail)."
    )
    contact_points = MyContactPointSerializer(many=True)


class MyServiceSerializer(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()


class MyCaseStatusMixin(serializers.Serializer):
    status = serializers.ChoiceField(choices=ServiceCase.Status.choices)
    status_label = serializers.SerializerMethodField(
        help_text="The status in the resident's words, in the request's language."
    )

    @extend_schema_field(serializers.CharField())
    def get_status_label(self, case: ServiceCase) -> str:
        return str(selectors.resident_status(case.status).label)


class MyCaseSerializer(MyCaseStatusMixin):
    reference = serializers.CharField()
    service = MyServiceSerializer()
    title = serializers.SerializerMethodField(help_text="Null once the case is anonymised.")
    opened_at = serializers.DateTimeField()
    due_on = serializers.DateField()
    last_update_at = serializers.DateTimeField(allow_null=True)

    def _user_id(self) -> int | None:
        request = self.context.get("request")
        return getattr(getattr(request, "user", None), "pk", None)

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_title(self, case: ServiceCase) -> str | None:
        if case.anonymised_at:
            return None
        return selectors.resident_case_title(case, self._user_id())


class MyHistoryLineSerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    title = serializers.CharField()
    text = serializers.CharField(allow_blank=True)
    by_resident = serializers.BooleanField(help_text="True for the resident's own actions.")


class MyAttachmentSerializer(serializers.Serializer):
    id = serializers.UUIDField(source="public_id")
    name = serializers.CharField(source="original_name")
    content_type = serializers.CharField()
    size = serializers.IntegerField()
    url = serializers.SerializerMethodField()

    @extend_schema_field(serializers.CharField())
    def get_url(self, attachment) -> str:
        return f"/attachments/{attachment.public_id}/"


class MyCaseDetailSerializer(MyCaseSerializer):
    """A case in full for its resident; an anonymised case only as a tombstone (every
    content field null or empty)."""

    description = serializers.SerializerMethodField()
    location_text = serializers.SerializerMethodField()
    postcode = serializers.SerializerMethodField()
    resolution = serializers.SerializerMethodField()
    resolved_at = serializers.DateTimeField(allow_null=True)
    closed_at = serializers.DateTimeField(allow_null=True)
    anonymised = serializers.SerializerMethodField()
    history = MyHistoryLineSerializer(many=True, source="resident_history")
    attachments = MyAttachmentSerializer(many=True, source="resident_attachments")

    def _content(self, case: ServiceCase, name: str) -> str | None:
        return None if case.anonymised_at else getattr(case, name)

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_description(self, case: ServiceCase) -> str | None:
        if case.anonymised_at:
            return None
        return selectors.resident_case_texts(case, self._user_id())[1]

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_location_text(self, case: ServiceCase) -> str | None:
        return self._content(case, "location_text")

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_postcode(self, case: ServiceCase) -> str | None:
        return self._content(case, "postcode")

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_resolution(self, case: ServiceCase) -> str | None:
        return self._content(case, "resolution")

    @extend_schema_field(serializers.BooleanField())
    def get_anonymised(self, case: ServiceCase) -> bool:
        return case.anonymised_at is not None


class MyCaseUpdateInputSerializer(StrictInputSerializer):
    text = serializers.CharField(
        max_length=settings.PORTAL_CASE_UPDATE_MAX_CHARS,
        help_text="What the resident wants to add to their case.",
    )
