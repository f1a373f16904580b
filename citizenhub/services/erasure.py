"""Erasure requests (UK GDPR Art 17): what an erasure would remove and keep, and doing it.

The right to erasure does not reach records the council needs for its public task or must
keep by law (Art 17(3)(b)); it does reach what the council holds only because the resident
agreed to it. So an erasure removes:
- consent-based data: consents are withdrawn and subscriptions ended by the apps that hold
  them (engagement registers a handler; the consent history itself is kept as the evidence
  Art 7(1) requires);
- the optional profile details the portal asks for and nothing else needs: date of birth
  and accessibility needs (a case that needs them records them itself);
- contact details nobody has confirmed and nothing refers to, and addresses no case uses;
and keeps, with the reason and until when:
- cases (public task; legal obligation for information-rights requests), until their
  service's retention period after closing, when they are anonymised anyway;
- confirmed contact details, to tell the resident about the cases kept and let them sign in;
- the timeline, the audit log (legal obligation: accountability, Art 5(2)) and any other
  record an app links to the profile without registering a handler (messages, logged
  calls, attachments): never erased by code that does not know what it is.

An officer of the information governance team reviews the plan and carries it out; the
resident learns the outcome through the erasure case's resolution.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import models, transaction
from django.db.models import Max
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from citizenhub.case_selectors import user_team_ids
from citizenhub.errors import ApplicationError
from citizenhub.gdpr import ERASURE_SERVICE_CODE, person_q
from citizenhub.models import (
    Address,
    AuditEvent,
    CaseEvent,
    Citizen,
    ClockType,
    ContactPoint,
    ServiceCase,
    TimelineEntry,
)
from citizenhub.models.portal import ContactVerification
from citizenhub.services.audit import actor_label_for, audit_record
from citizenhub.services.cases import case_transition
from citizenhub.services.identity import follow_merges
from citizenhub.services.merge import linked_relations
from citizenhub.staff.access import ADMINISTRATOR, SUPERVISOR

PUBLIC_TASK = "public_task"
LEGAL_OBLIGATION = "legal_obligation"
# Services whose cases the council keeps by law rather than for its public task.
_LEGAL_OBLIGATION_CLOCKS = (ClockType.SUBJECT_ACCESS, ClockType.FOI)
_VERIFIED_LEVELS = (
    ContactPoint.VerificationLevel.CONFIRMED,
    ContactPoint.VerificationLevel.STAFF_CHECKED,
    ContactPoint.VerificationLevel.ASSERTED,
)
# The roles that may carry out an erasure, within the team that owns the request.
ERASURE_ROLES = (SUPERVISOR, ADMINISTRATOR)


@dataclass(frozen=True)
class ErasureItem:
    """One kind of information in a plan: what it is, how many, and for what is kept the
    lawful basis, the reason in words and until when."""

    key: str
    what: str
    count: int
    reason: str = ""
    lawful_basis: str = ""
    retained_until: datetime.date | None = None
    retention: str = ""

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["retained_until"] = self.retained_until.isoformat() if self.retained_until else None
        return data


@dataclass(frozen=True)
class ErasurePlan:
    citizen: Citizen
    erase: tuple[ErasureItem, ...]
    keep: tuple[ErasureItem, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "erased": [item.as_dict() for item in self.erase],
            "kept": [item.as_dict() for item in self.keep],
        }


@dataclass(frozen=True)
class ErasureHandler:
    """What an app contributes: `plan(citizen)` returns (to erase, to keep) items, and
    `erase(citizen, case=, actor=)` erases exactly what its plan listed, inside the
    caller's transaction. `covers` names the models ("app_label.Model") whose rows it
    accounts for, so the generic "kept" listing leaves them out."""

    key: str
    covers: tuple[str, ...]
    plan: Callable[[Citizen], tuple[list[ErasureItem], list[ErasureItem]]]
    erase: Callable[..., None]
    order: int = 100


_handlers: dict[str, ErasureHandler] = {}


def register_erasure_handler(
    key: str,
    *,
    covers: tuple[str, ...],
    plan: Callable[[Citizen], tuple[list[ErasureItem], list[ErasureItem]]],
    erase: Callable[..., None],
    order: int = 100,
) -> None:
    """Called from an app's AppConfig.ready()."""
    _handlers[key] = ErasureHandler(key, covers, plan, erase, order)


def erasure_handlers() -> list[ErasureHandler]:
    return sorted(_handlers.values(), key=lambda handler: (handler.order, handler.key))


# The core's own models, which this module plans for itself.
_CORE_COVERED = {
    model._meta.label for model in (ContactPoint, Address, TimelineEntry, ServiceCase, AuditEvent)
} | {"citizenhub.CaseAttachment"}


# --- Planning ------------------------------------------------------------------------------


def _referenced_contact_point_ids(point_ids: list[int]) -> set[int]:
    """Contact points some other record refers to (a conversation, a message): erasing them
    would cascade into, or blank, records that are kept."""
    used: set[int] = set()
    if not point_ids:
        return used
    for relation in ContactPoint._meta.related_objects:
        if relation.related_model is ContactVerification or not relation.one_to_many:
            continue
        used.update(
            relation.related_model._default_manager.filter(
                **{f"{relation.field.name}__in": point_ids}
            ).values_list(relation.field.attname, flat=True)
        )
    return used


def _erasable_contact_points(citizen: Citizen) -> list[int]:
    unverified = list(
        citizen.contact_points.exclude(verification_level__in=_VERIFIED_LEVELS).values_list(
            "pk", flat=True
        )
    )
    used = _referenced_contact_point_ids(unverified)
    return [pk for pk in unverified if pk not in used]


def _erasable_addresses(citizen: Citizen) -> list[int]:
    return list(
        citizen.addresses.filter(cases__isnull=True).values_list("pk", flat=True).distinct()
    )


def _years(days: int) -> str:
    if days % 365 == 0:
        years = days // 365
        return translation.ngettext("%(n)d year", "%(n)d years", years) % {"n": years}
    return translation.ngettext("%(n)d day", "%(n)d days", days) % {"n": days}


def _case_items(citizen: Citizen) -> list[ErasureItem]:
    items = []
    for case in (
        ServiceCase.objects.filter(person_q(citizen))
        .select_related("service")
        .order_by("opened_at", "id")
    ):
        service = case.service
        legal = service.clock_type in _LEGAL_OBLIGATION_CLOCKS
        until = (
            timezone.localtime(case.closed_at).date()
            + datetime.timedelta(days=service.retention_days)
            if case.closed_at
            else None
        )
        items.append(
            ErasureItem(
                key=f"case:{case.reference}",
                what=_("Case %(reference)s (%(service)s)")
                % {"reference": case.reference, "service": service.name},
                count=1,
                lawful_basis=LEGAL_OBLIGATION if legal else PUBLIC_TASK,
                reason=(
                    _("The council must keep a record of information-rights requests.")
                    if legal
                    else _("The council needs the record of the service it provided.")
                ),
                retained_until=until,
                retention=(
                    ""
                    if until
                    else _("%(period)s after the case is closed, then anonymised")
                    % {"period": _years(service.retention_days)}
                ),
            )
        )
    return items


def _latest_retention(items: list[ErasureItem]) -> tuple[datetime.date | None, str]:
    """Until when what depends on the cases is kept: as long as the longest-kept case."""
    if any(item.retained_until is None for item in items):
        return None, _("As long as your cases are kept")
    dates = [item.retained_until for item in items if item.retained_until]
    return (max(dates), "") if dates else (None, _("Until your account is closed"))


def _other_records(citizen: Citizen, covered: set[str]) -> list[ErasureItem]:
    """Rows of models linked to the profile that no handler accounts for: kept, with a
    neutral reason, and counted so the officer sees them."""
    items = []
    for model, field_name in linked_relations():
        if model._meta.label in covered:
            continue
        count = model._default_manager.filter(**{field_name: citizen}).count()
        if count:
            items.append(
                ErasureItem(
                    key=f"other:{model._meta.label_lower}",
                    what=str(model._meta.verbose_name_plural).capitalize(),
                    count=count,
                    lawful_basis=PUBLIC_TASK,
                    reason=_("Part of the council's record of its contacts with you."),
                    retention=_("Under the council's retention schedule for these records"),
                )
            )
    return items


def erasure_plan(citizen: Citizen) -> ErasurePlan:
    """What erasing the citizen's data would remove and what it would keep (and why)."""
    citizen = follow_merges(citizen)
    erase: list[ErasureItem] = []
    keep: list[ErasureItem] = []

    optional = [
        ("profile:date_of_birth", _("Your date of birth"), citizen.date_of_birth is not None),
        (
            "profile:accessibility_needs",
            _("The accessibility needs you told us about"),
            bool(citizen.accessibility_needs),
        ),
    ]
    for key, what, held in optional:
        if held:
            erase.append(ErasureItem(key=key, what=what, count=1))

    contact_points = _erasable_contact_points(citizen)
    if contact_points:
        erase.append(
            ErasureItem(
                key="contact_points:unconfirmed",
                what=_("Contact details that were never confirmed and are not used"),
                count=len(contact_points),
            )
        )
    addresses = _erasable_addresses(citizen)
    if addresses:
        erase.append(
            ErasureItem(
                key="addresses:unused", what=_("Addresses no case uses"), count=len(addresses)
            )
        )

    cases = _case_items(citizen)
    until, retention = _latest_retention(cases)
    kept_points = citizen.contact_points.count() - len(contact_points)
    if kept_points:
        keep.append(
            ErasureItem(
                key="contact_points:kept",
                what=_("Your confirmed contact details"),
                count=kept_points,
                lawful_basis=PUBLIC_TASK,
                reason=_("To tell you about the records we keep and to let you sign in."),
                retained_until=until,
                retention=retention,
            )
        )
    kept_addresses = citizen.addresses.count() - len(addresses)
    if kept_addresses:
        keep.append(
            ErasureItem(
                key="addresses:kept",
                what=_("Addresses your cases refer to"),
                count=kept_addresses,
                lawful_basis=PUBLIC_TASK,
                reason=_("They are part of the record of those cases."),
                retained_until=until,
                retention=retention,
            )
        )
    keep.extend(cases)
    timeline = TimelineEntry.objects.filter(citizen=citizen).count()
    if timeline:
        keep.append(
            ErasureItem(
                key="timeline",
                what=_("The timeline of your contacts with the council"),
                count=timeline,
                lawful_basis=PUBLIC_TASK,
                reason=_("It records the cases and messages that are kept."),
                retained_until=until,
                retention=retention,
            )
        )
    audit = AuditEvent.objects.filter(person_q(citizen)).aggregate(
        count=models.Count("id"), latest=Max("occurred_at")
    )
    # The erasure itself adds an audit entry: count it in what is kept.
    keep.append(
        ErasureItem(
            key="audit",
            what=_("The log of who looked at or changed your record"),
            count=audit["count"] + 1,
            lawful_basis=LEGAL_OBLIGATION,
            reason=_("The law requires the council to be able to show how it used your data."),
            retained_until=timezone.localdate()
            + datetime.timedelta(days=settings.AUDIT_RETENTION_DAYS),
        )
    )

    covered = set(_CORE_COVERED)
    for handler in erasure_handlers():
        handler_erase, handler_keep = handler.plan(citizen)
        erase.extend(handler_erase)
        keep.extend(handler_keep)
        covered.update(handler.covers)
    keep.extend(_other_records(citizen, covered))
    return ErasurePlan(citizen=citizen, erase=tuple(erase), keep=tuple(keep))


# --- Carrying it out -----------------------------------------------------------------------


def can_carry_out_erasure(user: AbstractBaseUser | AnonymousUser, case: ServiceCase) -> bool:
    """A supervisor or administrator in the team the request sits with (information
    governance), on an erasure request."""
    if not (getattr(user, "is_authenticated", False) and user.is_active and user.is_staff):
        return False
    if case.service.code != ERASURE_SERVICE_CODE:
        return False
    if case.team_id not in user_team_ids(user):
        return False
    return user.groups.filter(name__in=ERASURE_ROLES).exists()


def _summary_lines(plan: ErasurePlan) -> tuple[list[str], list[str]]:
    erased = [f"{item.what} ({item.count})" for item in plan.erase]
    kept = []
    for item in plan.keep:
        until = (
            _("kept until %(date)s") % {"date": item.retained_until.strftime("%d/%m/%Y")}
            if item.retained_until
            else item.retention
        )
        kept.append(f"{item.what}: {item.reason} ({until})" if until else f"{item.what}")
    return erased, kept


def _resolution(plan: ErasurePlan) -> str:
    erased, kept = _summary_lines(plan)
    parts = [_("We have dealt with your request to erase your information.")]
    if erased:
        parts.append(_("We erased:") + "\n" + "\n".join(f"- {line}" for line in erased))
    else:
        parts.append(_("We found no information that we hold only with your consent."))
    parts.append(
        _(
            "We keep the following, because the law requires it or we need it to provide "
            "our services:"
        )
        + "\n"
        + "\n".join(f"- {line}" for line in kept)
    )
    parts.append(
        _(
            "If you are unhappy with how we handled your request, you can complain to the "
            "Information Commissioner's Office (ico.org.uk)."
        )
    )
    return "\n\n".join(parts)


def carry_out_erasure(*, case: ServiceCase, actor: AbstractBaseUser) -> ErasurePlan:
    """Erase what the plan lists, in one transaction: an audit event, a case history entry
    the resident can see with what was erased and kept, and the case resolved with that
    summary as its resolution (so the resident is told the normal way). Returns the plan
    that was carried out."""
    with transaction.atomic():
        case_row = (
            ServiceCase.objects.select_for_update(of=("self",))
            .select_related("service", "citizen")
            .get(pk=case.pk)
        )
        if case_row.service.code != ERASURE_SERVICE_CODE:
            raise ApplicationError("This case is not an erasure request.", code="not_erasure")
        if not case_row.is_open:
            raise ApplicationError(
                f"Erasure request {case_row.reference} has already been dealt with.",
                code="not_open",
            )
        if case_row.citizen is None:
            raise ApplicationError(
                "This erasure request is not linked to a resident's profile.", code="no_citizen"
            )
        if not can_carry_out_erasure(actor, case_row):
            raise ApplicationError(
                "Only a supervisor or administrator of the team handling the request may "
                "carry out an erasure.",
                code="forbidden",
            )
        citizen = Citizen.objects.select_for_update().get(pk=follow_merges(case_row.citizen).pk)
        # In the resident's language: the plan's words become the resolution they receive.
        with translation.override(citizen.preferred_language):
            plan = erasure_plan(citizen)

        citizen.date_of_birth = None
        citizen.accessibility_needs = ""
        citizen.save(update_fields=["date_of_birth", "accessibility_needs", "updated_at"])
        ContactPoint.objects.filter(pk__in=_erasable_contact_points(citizen)).delete()
        Address.objects.filter(pk__in=_erasable_addresses(citizen)).delete()
        for handler in erasure_handlers():
            handler.erase(citizen, case=case_row, actor=actor)

        details = {"case": case_row.reference, **plan.as_dict()}
        audit_record(
            action=AuditEvent.Action.ERASE,
            target=citizen,
            actor=actor,
            citizen=citizen,
            reason=f"Erasure request {case_row.reference}",
            details=details,
        )
        with translation.override(citizen.preferred_language):
            erased, kept = _summary_lines(plan)
            text = (
                _("Erasure carried out.")
                + "\n"
                + "\n".join(
                    [_("Erased:")]
                    + [f"- {line}" for line in erased or [_("nothing")]]
                    + [_("Kept:")]
                    + [f"- {line}" for line in kept]
                )
            )
            resolution = _resolution(plan)
        CaseEvent.objects.create(
            case=case_row,
            kind=CaseEvent.Kind.DETAILS,
            text=text,
            data={"erasure": plan.as_dict()},
            visibility=CaseEvent.Visibility.RESIDENT,
            actor=actor,
            actor_label=actor_label_for(actor, "system"),
        )
        case_transition(
            case=case_row,
            to_status=ServiceCase.Status.RESOLVED,
            expected_version=case_row.version,
            actor=actor,
            resolution=resolution,
        )
    return plan
