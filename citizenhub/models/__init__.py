"""The hub core's data: people (profiles, identities, timeline, audit) and service cases."""

from citizenhub.models.cases import (
    CaseEvent,
    CaseReferenceSequence,
    ClockType,
    Service,
    ServiceCase,
    Team,
)
from citizenhub.models.duplicates import DuplicateCandidate
from citizenhub.models.people import (
    Address,
    AuditEvent,
    ChannelKind,
    Citizen,
    CitizenMerge,
    ContactPoint,
    Language,
    TimelineEntry,
)
from citizenhub.models.portal import CaseAttachment, ContactVerification

__all__ = [
    "Address",
    "AuditEvent",
    "CaseAttachment",
    "CaseEvent",
    "CaseReferenceSequence",
    "ChannelKind",
    "Citizen",
    "CitizenMerge",
    "ClockType",
    "ContactPoint",
    "ContactVerification",
    "DuplicateCandidate",
    "Language",
    "Service",
    "ServiceCase",
    "Team",
    "TimelineEntry",
]
