"""Creating and changing topics (the API is the first writer; staff pages can reuse these)."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction

from citizenhub.errors import ApplicationError
from citizenhub.models import Service
from engagement.models import Topic

# What a caller may change; the slug never changes (ledger records name topics by it).
CHANGEABLE_FIELDS = (
    "name",
    "description",
    "kind",
    "service",
    "ward_code",
    "is_public",
    "is_active",
    "consent_wording",
    "consent_wording_version",
)


def _fitting_kind(topic: Topic) -> None:
    # A topic names a service or a ward only when it is about one.
    if topic.kind != Topic.Kind.SERVICE:
        topic.service = None
    if topic.kind != Topic.Kind.WARD:
        topic.ward_code = ""


def topic_create(
    *,
    slug: str,
    name: str,
    consent_wording: str,
    consent_wording_version: str = "1",
    kind: str = Topic.Kind.THEME,
    description: str = "",
    service: Service | None = None,
    ward_code: str = "",
    is_public: bool = True,
    is_active: bool = True,
) -> Topic:
    topic = Topic(
        slug=slug,
        name=name.strip(),
        description=description.strip(),
        kind=kind,
        service=service,
        ward_code=ward_code,
        is_public=is_public,
        is_active=is_active,
        consent_wording=consent_wording.strip(),
        consent_wording_version=consent_wording_version.strip(),
    )
    _fitting_kind(topic)
    try:
        with transaction.atomic():
            topic.save()
    except IntegrityError:
        # Two callers creating the same slug at once: the second is told, not given a 500.
        raise ApplicationError(f"There is already a topic {slug!r}.", code="duplicate") from None
    return topic


def topic_update(*, topic: Topic, **changes: Any) -> Topic:
    """Apply `changes` (any of CHANGEABLE_FIELDS) to the topic."""
    unknown = set(changes) - set(CHANGEABLE_FIELDS)
    if unknown:
        raise TypeError(f"topic_update() cannot change {', '.join(sorted(unknown))}")
    with transaction.atomic():
        topic = Topic.objects.select_for_update().get(pk=topic.pk)
        for name, value in changes.items():
            setattr(topic, name, value.strip() if isinstance(value, str) else value)
        _fitting_kind(topic)
        topic.save()
    return topic
