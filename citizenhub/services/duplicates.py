"""Officers' decisions on suggested duplicates: "not the same person", or merge them."""

from __future__ import annotations

from collections.abc import Mapping

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from citizenhub import duplicates
from citizenhub.errors import ApplicationError
from citizenhub.models import AuditEvent, Citizen, CitizenMerge, DuplicateCandidate
from citizenhub.services.audit import audit_record
from citizenhub.services.merge import citizen_merge

# Written as `method` on a pair an officer ruled on before the finder ever suggested it.
OFFICER_METHOD = "officer-review"


def _check_open(candidate: DuplicateCandidate) -> None:
    if candidate.status == DuplicateCandidate.Status.DISMISSED:
        raise ApplicationError(
            "An officer has already decided these are not the same person.",
            code="already_dismissed",
        )
    if candidate.status == DuplicateCandidate.Status.MERGED:
        raise ApplicationError("These profiles have already been merged.", code="already_merged")


def _reviewer(by: AbstractBaseUser | None) -> AbstractBaseUser | None:
    return by if by is not None and getattr(by, "is_authenticated", False) else None


def duplicate_dismiss(
    *, candidate: DuplicateCandidate, by: AbstractBaseUser | None, reason: str
) -> DuplicateCandidate:
    """Record that a suggested pair is two people. The finder never suggests them again."""
    if not reason.strip():
        raise ApplicationError("Say why these are not the same person.", code="no_reason")
    with transaction.atomic():
        candidate = (
            DuplicateCandidate.objects.select_for_update()
            .select_related("citizen_a", "citizen_b")
            .get(pk=candidate.pk)
        )
        _check_open(candidate)
        candidate.status = DuplicateCandidate.Status.DISMISSED
        candidate.reviewed_by = _reviewer(by)
        candidate.reviewed_at = timezone.now()
        candidate.save(update_fields=["status", "reviewed_by", "reviewed_at"])
        # One event on each profile, so each one's audit log says who was ruled out, and why.
        for citizen, other in (
            (candidate.citizen_a, candidate.citizen_b),
            (candidate.citizen_b, candidate.citizen_a),
        ):
            audit_record(
                action=AuditEvent.Action.UPDATE,
                target=candidate,
                citizen=citizen,
                actor=by,
                reason=reason.strip(),
                details={"decision": "not_same_person", "other_profile": str(other.public_id)},
            )
    return candidate


def duplicate_dismiss_pair(
    *, first: Citizen, second: Citizen, by: AbstractBaseUser | None, reason: str
) -> DuplicateCandidate:
    """ "Not the same person" for any two profiles, suggested or not: the pair's suggestion is
    dismissed, or a dismissed one is recorded so the finder never suggests them."""
    if first.pk == second.pk:
        raise ApplicationError("These are one profile, not two.", code="same_profile")
    for citizen in (first, second):
        if not citizen.is_live:
            raise ApplicationError(
                f"Profile {citizen.public_id} is {citizen.get_status_display().lower()}; "
                "there is nothing to decide about it.",
                code="not_live",
            )
    if not reason.strip():
        raise ApplicationError("Say why these are not the same person.", code="no_reason")
    a, b = duplicates.ordered_pair(first, second)
    with transaction.atomic():
        candidate = DuplicateCandidate.objects.filter(citizen_a=a, citizen_b=b).first()
        if candidate is None:
            facts = duplicates.load_profile_facts([a.pk, b.pk])
            if a.pk in facts and b.pk in facts:
                result = duplicates.score_pair(facts[a.pk], facts[b.pk])
                score, reasons = round(result.score, 4), result.reasons()
            else:  # a merged or erased profile is not scored
                score, reasons = 0.0, []
            candidate, _ = DuplicateCandidate.objects.get_or_create(
                citizen_a=a,
                citizen_b=b,
                defaults={"score": score, "reasons": reasons, "method": OFFICER_METHOD},
            )
        return duplicate_dismiss(candidate=candidate, by=by, reason=reason)


def duplicate_merge(
    *,
    candidate: DuplicateCandidate,
    survivor: Citizen,
    by: AbstractBaseUser | None,
    reason: str,
    field_choices: Mapping[str, str] | None = None,
) -> CitizenMerge:
    """Merge a suggested pair: `survivor` (one of the two) keeps the other's records.

    citizen_merge does the merge and closes this suggestion (and the duplicate's others) as
    merged; the refusals it raises (two portal accounts, a profile already merged, no reason)
    reach the caller unchanged, and nothing is written.
    """
    with transaction.atomic():
        candidate = DuplicateCandidate.objects.select_for_update().get(pk=candidate.pk)
        _check_open(candidate)
        pair = {candidate.citizen_a_id: "citizen_a", candidate.citizen_b_id: "citizen_b"}
        if survivor.pk not in pair:
            raise ApplicationError(
                "The profile to keep must be one of the two suggested profiles.",
                code="survivor_not_in_pair",
            )
        duplicate_id = next(pk for pk in pair if pk != survivor.pk)
        duplicate = Citizen.objects.get(pk=duplicate_id)
        merge = citizen_merge(
            survivor=survivor,
            duplicate=duplicate,
            by=by,
            reason=reason,
            field_choices=field_choices,
        )
        audit_record(
            action=AuditEvent.Action.MERGE,
            target=candidate,
            actor=by,
            reason=reason.strip(),
            details={
                "merge_id": merge.pk,
                "score": candidate.score,
                "method": candidate.method,
                "survivor": str(survivor.public_id),
                "duplicate": str(duplicate.public_id),
            },
        )
    return merge
