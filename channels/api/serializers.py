"""API shapes for threads, their messages and staff replies."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from channels.models import Attachment, Channel, Thread
from channels.selectors import ThreadMessage
from citizenhub.api.serializers import StrictInputSerializer


class ChannelSummarySerializer(serializers.ModelSerializer):
    class Meta:
        model = Channel
        fields = ["slug", "kind", "name", "enabled"]
        read_only_fields = fields


class ThreadCitizenSerializer(serializers.Serializer):
    id = serializers.UUIDField(source="public_id")
    display_name = serializers.CharField()


class ThreadSerializer(serializers.ModelSerializer):
    reference = serializers.CharField(read_only=True)
    channel = ChannelSummarySerializer(read_only=True)
    citizen = ThreadCitizenSerializer(read_only=True)
    assigned_to = serializers.CharField(
        source="assigned_to.get_username", read_only=True, allow_null=True, default=None
    )
    subject = serializers.SerializerMethodField()
    content_restricted = serializers.SerializerMethodField(
        help_text="True when the conversation is about a sensitive service (adult social care, "
        "bereavement) whose team you are not in: subject and messages are withheld."
    )

    class Meta:
        model = Thread
        fields = [
            "id",
            "reference",
            "subject",
            "content_restricted",
            "status",
            "channel",
            "citizen",
            "department",
            "service_code",
            "assigned_to",
            "last_message_at",
            "created_at",
        ]
        read_only_fields = fields

    def _restricted(self, thread: Thread) -> bool:
        access = self.context.get("access")
        return access is None or not access.thread_visible(thread)

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_subject(self, thread: Thread) -> str | None:
        return None if self._restricted(thread) else thread.subject

    def get_content_restricted(self, thread: Thread) -> bool:
        return self._restricted(thread)


class AttachmentSerializer(serializers.ModelSerializer):
    stored = serializers.SerializerMethodField()

    class Meta:
        model = Attachment
        fields = [
            "id",
            "filename",
            "declared_type",
            "sniffed_type",
            "size",
            "stored",
            "rejected_reason",
        ]
        read_only_fields = fields

    def get_stored(self, attachment: Attachment) -> bool:
        return bool(attachment.file)


class ThreadMessageSerializer(serializers.Serializer):
    """An inbound or outbound message in a thread, in one shape."""

    direction = serializers.ChoiceField(choices=["in", "out"])
    id = serializers.IntegerField(source="message.pk")
    occurred_at = serializers.DateTimeField()
    subject = serializers.CharField(source="message.subject")
    body_text = serializers.CharField(source="message.body_text")
    summary_text = serializers.SerializerMethodField()
    body_html = serializers.SerializerMethodField()
    sender = serializers.SerializerMethodField()
    to = serializers.SerializerMethodField()
    status = serializers.CharField(source="message.status")
    error = serializers.CharField(source="message.last_error")
    attachments = serializers.SerializerMethodField()

    def get_summary_text(self, item: ThreadMessage) -> str:
        return getattr(item.message, "summary_text", "") or item.message.body_text

    @extend_schema_field(serializers.CharField(help_text="Allow-list sanitised HTML, or ''."))
    def get_body_html(self, item: ThreadMessage) -> str:
        return getattr(item.message, "body_html", "")

    def get_sender(self, item: ThreadMessage) -> str:
        if item.direction == "in":
            return item.message.sender_value
        user = item.message.created_by
        return user.get_username() if user else "system"

    def get_to(self, item: ThreadMessage) -> str:
        return item.message.to_value if item.direction == "out" else ""

    @extend_schema_field(AttachmentSerializer(many=True))
    def get_attachments(self, item: ThreadMessage) -> list[dict]:
        if item.direction != "in":
            return []
        return AttachmentSerializer(item.message.attachments.all(), many=True).data


class ThreadDetailSerializer(ThreadSerializer):
    messages = serializers.SerializerMethodField()

    class Meta(ThreadSerializer.Meta):
        fields = [*ThreadSerializer.Meta.fields, "messages"]
        read_only_fields = fields

    @extend_schema_field(ThreadMessageSerializer(many=True))
    def get_messages(self, thread: Thread) -> list[dict]:
        if self._restricted(thread):
            return []
        return ThreadMessageSerializer(self.context["messages"], many=True).data


class ReplyInputSerializer(StrictInputSerializer):
    body = serializers.CharField(max_length=50_000, trim_whitespace=True)
    subject = serializers.CharField(max_length=300, required=False, allow_blank=False)


class OutboundSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="pk")
    status = serializers.CharField()
    to = serializers.CharField(source="to_value")
    subject = serializers.CharField()
    message_id = serializers.CharField()
    error = serializers.CharField(source="last_error")
    created_at = serializers.DateTimeField()
