"""Service functions of the hub core: every write that matters goes through these."""

from citizenhub.services.audit import audit_record
from citizenhub.services.citizens import citizen_create, contact_point_add, contact_point_verify
from citizenhub.services.identity import IdentityResolution, resolve_identity
from citizenhub.services.merge import citizen_merge, citizen_unmerge
from citizenhub.services.timeline import (
    TimelineEntryData,
    record_timeline_entries,
    record_timeline_entry,
)

__all__ = [
    "IdentityResolution",
    "TimelineEntryData",
    "audit_record",
    "citizen_create",
    "citizen_merge",
    "citizen_unmerge",
    "contact_point_add",
    "contact_point_verify",
    "record_timeline_entries",
    "record_timeline_entry",
    "resolve_identity",
]
