"""Merging two profiles of one person, and undoing a merge exactly.

A merge moves every row that points at the duplicate profile (contact points, addresses,
timeline, and whatever the feature apps link to a citizen) onto the survivor, found through
Django's model registry so that apps added later are covered without changes here. The
CitizenMerge row records both profiles' fields and the ids of every moved row, which is
what lets `citizen_unmerge` put each row back where it was.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

import django.dispatch
from django.contrib.auth.models import AbstractBaseUser
from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone

from citizenhub.errors import ApplicationError, ConflictError
from citizenhub.models import (
    Address,
    AuditEvent,
    Citizen,
    CitizenMerge,
    ContactPoint,
    DuplicateCandidate,
)
from citizenhub.services.audit import audit_record

# Sent inside the merge transaction before rows move, so an app can reconcile rows that
# would clash on the survivor (for example two subscriptions to the same topic). Receivers
# get survivor, duplicate and merge; they must record what they change in merge.snapshot.
citizen_merging = django.dispatch.Signal()
# Sent after the merge committed its changes (still inside the transaction).
citizen_merged = django.dispatch.Signal()
citizen_unmerged = django.dispatch.Signal()

MERGEABLE_FIELDS = (
    "given_name",
    "family_name",
    "date_of_birth",
    "preferred_language",
    "preferred_channel",
    "accessibility_needs",
)
# Relations that describe profiles rather than belong to one, and the audit trail, which
# stays attached to the profile it was written about.
_NOT_MOVED = {
    (Citizen, "merged_into"),
    (CitizenMerge, "survivor"),
    (CitizenMerge, "duplicate"),
    (AuditEvent, "citizen"),
    # A suggestion is about the two profiles as they were; the merge closes it instead.
    (DuplicateCandidate, "citizen_a"),
    (DuplicateCandidate, "citizen_b"),
}
# Rows with a primary flag: the survivor keeps its primary, the duplicate's are demoted.
_PRIMARY_FLAGGED = {ContactPoint: "kind", Address: None}


def _to_json(value: Any) -> Any:
    if isinstance(value, datetime.date):
        return value.isoformat()
    return value


def _from_json(field_name: str, value: Any) -> Any:
    if field_name == "date_of_birth" and value:
        return datetime.date.fromisoformat(value)
    return value


def _profile_state(citizen: Citizen) -> dict[str, Any]:
    state = {name: _to_json(getattr(citizen, name)) for name in MERGEABLE_FIELDS}
    state.update(
        status=citizen.status,
        do_not_contact=citizen.do_not_contact,
        user_id=citizen.user_id,
        merged_into_id=citizen.merged_into_id,
    )
    return state


def linked_relations() -> list[tuple[type[models.Model], str]]:
    """Every (model, foreign key name) that points at Citizen and moves with a merge."""
    relations = []
    for relation in Citizen._meta.related_objects:
        if not relation.one_to_many:  # reverse side of a ForeignKey to Citizen
            continue
        model, field_name = relation.related_model, relation.field.name
        if (model, field_name) not in _NOT_MOVED:
            relations.append((model, field_name))
    return relations


def _check_mergeable(survivor: Citizen, duplicate: Citizen, reason: str) -> None:
    if survivor.pk == duplicate.pk:
        raise ApplicationError("A profile cannot be merged into itself.", code="merge_self")
    for role, citizen in (("survivor", survivor), ("duplicate", duplicate)):
        if citizen.status == Citizen.Status.MERGED:
            raise ApplicationError(
                f"The {role} profile is already merged into profile "
                f"{citizen.merged_into.public_id}; merge into that one instead.",
                code="already_merged",
            )
        if citizen.status == Citizen.Status.ERASED:
            raise ApplicationError(f"The {role} profile has been erased.", code="erased")
    if survivor.user_id and duplicate.user_id:
        raise ApplicationError(
            "Both profiles have their own portal account; a person can keep only one. "
            "Ask the resident which account to close first.",
            code="two_accounts",
        )
    if not reason.strip():
        raise ApplicationError("Say why these profiles are the same person.", code="no_reason")


def _resolve_choices(
    survivor: Citizen, duplicate: Citizen, requested: Mapping[str, str]
) -> dict[str, str]:
    unknown = set(requested) - set(MERGEABLE_FIELDS)
    bad = {k: v for k, v in requested.items() if v not in ("survivor", "duplicate")}
    if unknown or bad:
        raise ApplicationError(
            "Field choices name fields that cannot be merged or sides other than "
            "'survivor' and 'duplicate'.",
            code="bad_choices",
            extra={"unknown_fields": sorted(unknown), "bad_sides": sorted(bad)},
        )
    choices = {}
    for name in MERGEABLE_FIELDS:
        if name in requested:
            choices[name] = requested[name]
        else:
            # By default keep what the survivor has, filling its gaps from the duplicate.
            empty = getattr(survivor, name) in ("", None)
            filled = getattr(duplicate, name) not in ("", None)
            choices[name] = "duplicate" if empty and filled else "survivor"
    return choices


def _lock_pair(first: Citizen, second: Citizen) -> tuple[Citizen, Citizen]:
    # Lock in primary-key order so two merges touching the same profiles cannot deadlock.
    locked = {
        c.pk: c
        for c in Citizen.objects.select_for_update()
        .filter(pk__in=[first.pk, second.pk])
        .order_by("pk")
    }
    return locked[first.pk], locked[second.pk]


def citizen_merge(
    *,
    survivor: Citizen,
    duplicate: Citizen,
    by: AbstractBaseUser | None,
    reason: str,
    field_choices: Mapping[str, str] | None = None,
) -> CitizenMerge:
    """Merge `duplicate` into `survivor`; returns the merge record that can undo it."""
    with transaction.atomic():
        survivor, duplicate = _lock_pair(survivor, duplicate)
        _check_mergeable(survivor, duplicate, reason)
        choices = _resolve_choices(survivor, duplicate, field_choices or {})
        snapshot: dict[str, Any] = {
            "survivor": _profile_state(survivor),
            "duplicate": _profile_state(duplicate),
            "moved": {},
            "demoted_primary": {},
            "repointed_merged_profiles": [],
        }
        merge = CitizenMerge.objects.create(
            survivor=survivor,
            duplicate=duplicate,
            merged_by=by,
            reason=reason.strip(),
            field_choices=choices,
            snapshot=snapshot,
        )
        citizen_merging.send(sender=Citizen, survivor=survivor, duplicate=duplicate, merge=merge)

        for model, group_field in _PRIMARY_FLAGGED.items():
            demoted = _demote_clashing_primaries(model, group_field, survivor, duplicate)
            snapshot["demoted_primary"][model._meta.label] = demoted
        for model, field_name in linked_relations():
            ids = list(
                model._default_manager.filter(**{field_name: duplicate}).values_list(
                    "pk", flat=True
                )
            )
            if ids:
                model._default_manager.filter(pk__in=ids).update(**{field_name: survivor})
                snapshot["moved"].setdefault(model._meta.label, {})[field_name] = ids
        repointed = list(duplicate.merged_profiles.values_list("pk", flat=True))
        Citizen.objects.filter(pk__in=repointed).update(merged_into=survivor)
        snapshot["repointed_merged_profiles"] = repointed

        for name, side in choices.items():
            if side == "duplicate":
                setattr(survivor, name, getattr(duplicate, name))
        # Most restrictive wins, whatever was chosen: an opt-out never becomes consent.
        survivor.do_not_contact = survivor.do_not_contact or duplicate.do_not_contact
        if Citizen.Status.ACTIVE in (survivor.status, duplicate.status):
            survivor.status = Citizen.Status.ACTIVE
        if duplicate.user_id:
            user_id = duplicate.user_id
            duplicate.user = None
            duplicate.status = Citizen.Status.MERGED
            duplicate.merged_into = survivor
            duplicate.save()
            survivor.user_id = user_id
        else:
            duplicate.status = Citizen.Status.MERGED
            duplicate.merged_into = survivor
            duplicate.save()
        survivor.save()

        _close_duplicate_candidates(survivor, duplicate, by)
        snapshot["survivor_after"] = _profile_state(survivor)
        merge.snapshot = snapshot
        merge.save(update_fields=["snapshot"])
        audit_record(
            action=AuditEvent.Action.MERGE,
            target=survivor,
            actor=by,
            reason=reason,
            details={"duplicate": str(duplicate.public_id), "merge_id": merge.pk},
        )
        audit_record(
            action=AuditEvent.Action.MERGE,
            target=duplicate,
            actor=by,
            reason=reason,
            details={"survivor": str(survivor.public_id), "merge_id": merge.pk},
        )
        citizen_merged.send(sender=Citizen, survivor=survivor, duplicate=duplicate, merge=merge)
    return merge


def _close_duplicate_candidates(
    survivor: Citizen, duplicate: Citizen, by: AbstractBaseUser | None
) -> None:
    """Open suggestions about the merged-away profile are settled (the finder suggests the
    survivor next time if the evidence is still there), and so is this pair's, whatever an
    officer decided about it before. Unmerging leaves them closed: the finder never reopens
    a decided pair, and the officer who unmerged can compare the two again."""
    reviewed_by = by if by is not None and getattr(by, "is_authenticated", False) else None
    DuplicateCandidate.objects.filter(
        (Q(citizen_a=duplicate) | Q(citizen_b=duplicate))
        & (Q(status=DuplicateCandidate.Status.OPEN) | Q(citizen_a=survivor) | Q(citizen_b=survivor))
    ).update(
        status=DuplicateCandidate.Status.MERGED, reviewed_by=reviewed_by, reviewed_at=timezone.now()
    )


def _demote_clashing_primaries(
    model: type[models.Model], group_field: str | None, survivor: Citizen, duplicate: Citizen
) -> list[int]:
    survivor_primaries = model._default_manager.filter(citizen=survivor, is_primary=True)
    duplicate_primaries = model._default_manager.filter(citizen=duplicate, is_primary=True)
    if group_field:
        groups = set(survivor_primaries.values_list(group_field, flat=True))
        clashing = duplicate_primaries.filter(**{f"{group_field}__in": groups})
    else:
        clashing = duplicate_primaries if survivor_primaries.exists() else model.objects.none()
    ids = list(clashing.values_list("pk", flat=True))
    model._default_manager.filter(pk__in=ids).update(is_primary=False)
    return ids


def citizen_unmerge(
    *, merge: CitizenMerge, by: AbstractBaseUser | None, reason: str = ""
) -> CitizenMerge:
    """Undo a merge: every moved row goes back and both profiles get their fields back.

    A survivor field changed again after the merge keeps its newer value; rows created on the
    survivor after the merge stay there.
    """
    with transaction.atomic():
        merge = CitizenMerge.objects.select_for_update().get(pk=merge.pk)
        if merge.unmerged_at is not None:
            raise ApplicationError("This merge has already been undone.", code="already_unmerged")
        survivor, duplicate = _lock_pair(merge.survivor, merge.duplicate)
        if duplicate.status != Citizen.Status.MERGED or duplicate.merged_into_id != survivor.pk:
            raise ConflictError(
                "The duplicate profile has changed since the merge; it cannot be unmerged.",
                code="merge_changed",
            )
        if survivor.status == Citizen.Status.MERGED:
            raise ConflictError(
                "The surviving profile was merged again since; undo that later merge first.",
                code="merge_changed",
            )
        snapshot = merge.snapshot
        label_to_model = {m._meta.label: m for m, _ in linked_relations()}
        for label, fields in snapshot["moved"].items():
            model = label_to_model[label]
            for field_name, ids in fields.items():
                model._default_manager.filter(pk__in=ids, **{field_name: survivor}).update(
                    **{field_name: duplicate}
                )
        for label, ids in snapshot["demoted_primary"].items():
            label_to_model[label]._default_manager.filter(pk__in=ids).update(is_primary=True)
        Citizen.objects.filter(
            pk__in=snapshot["repointed_merged_profiles"], merged_into=survivor
        ).update(merged_into=duplicate)

        before, after = snapshot["survivor"], snapshot["survivor_after"]
        current = _profile_state(survivor)
        for name in (*MERGEABLE_FIELDS, "do_not_contact", "status"):
            if current[name] == after[name]:
                setattr(survivor, name, _from_json(name, before[name]))
        moved_user = snapshot["duplicate"]["user_id"]
        if moved_user and survivor.user_id == moved_user:
            survivor.user = None
            survivor.save()
        else:
            survivor.save()
        for name in MERGEABLE_FIELDS:
            setattr(duplicate, name, _from_json(name, snapshot["duplicate"][name]))
        duplicate.do_not_contact = snapshot["duplicate"]["do_not_contact"]
        duplicate.status = snapshot["duplicate"]["status"]
        duplicate.merged_into = None
        if moved_user and survivor.user_id is None:
            duplicate.user_id = moved_user
        duplicate.save()

        merge.unmerged_at = timezone.now()
        merge.unmerged_by = by
        merge.save(update_fields=["unmerged_at", "unmerged_by"])
        for target in (survivor, duplicate):
            audit_record(
                action=AuditEvent.Action.UNMERGE,
                target=target,
                actor=by,
                reason=reason,
                details={"merge_id": merge.pk},
            )
        citizen_unmerged.send(sender=Citizen, merge=merge)
    return merge
