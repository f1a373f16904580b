"""Duplicate profiles: the suggestions list, the side-by-side comparison with merge and "not the
same person", and the merge record with unmerge.

Everyone who may read profiles (`citizenhub.view_citizen`) sees these pages; only officers
with `citizenhub.merge_citizen` (supervisors) can merge, unmerge or rule a pair out. Every
write goes through a service, and a service's refusal is shown as the form's error with
nothing changed.
"""

from __future__ import annotations

import datetime
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from django.apps import apps
from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.formats import date_format
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods

from citizenhub import duplicates
from citizenhub.errors import ApplicationError
from citizenhub.models import (
    Address,
    AuditEvent,
    Citizen,
    CitizenMerge,
    ContactPoint,
    DuplicateCandidate,
    ServiceCase,
    TimelineEntry,
)
from citizenhub.services.duplicates import (
    duplicate_dismiss,
    duplicate_dismiss_pair,
    duplicate_merge,
)
from citizenhub.services.merge import MERGEABLE_FIELDS, citizen_merge, citizen_unmerge
from citizenhub.staff.access import staff_required
from citizenhub.staff.merge_forms import CompareProfilesForm, DismissForm, MergeForm, UnmergeForm

PAGE_SIZE = 25
VIEW_PERMISSION = "citizenhub.view_citizen"
MERGE_PERMISSION = "citizenhub.merge_citizen"
# Case statuses that still need work, for the "open cases" count beside each profile.
_FINISHED_CASE_STATUSES = (ServiceCase.Status.RESOLVED, ServiceCase.Status.CLOSED)


def _not_allowed(request: HttpRequest, message: str) -> HttpResponse:
    return render(
        request,
        "staff/duplicates/not_allowed.html",
        {"staff_section": "duplicates", "message": message},
        status=403,
    )


def _cannot_view(request: HttpRequest) -> HttpResponse | None:
    if request.user.has_perm(VIEW_PERMISSION):
        return None
    return _not_allowed(request, _("Your role cannot see residents' profiles."))


def _cannot_decide(request: HttpRequest) -> HttpResponse | None:
    if request.user.has_perm(MERGE_PERMISSION):
        return None
    return _not_allowed(
        request,
        _("Only officers allowed to merge profiles (supervisors) can merge, unmerge or rule out."),
    )


# --- the list of suggestions ---------------------------------------------------------------


def likelihood(score: float) -> str:
    """A score as officers read it: "87%", never a misleading "100%" or "0%"."""
    if score >= 0.995:
        return _("over 99%")
    if score < 0.01:
        return _("under 1%")
    return f"{round(score * 100)}%"


@dataclass
class SuggestionRow:
    candidate: DuplicateCandidate
    likelihood: str
    strong: bool
    evidence_for: list[str]
    evidence_against: list[str]


def _evidence(reasons: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    for_, against = [], []
    for reason in reasons if isinstance(reasons, list) else []:
        text = str(reason.get("text", "")) if isinstance(reason, dict) else ""
        weight = reason.get("weight", 0) if isinstance(reason, dict) else 0
        if text:
            (for_ if weight >= 0 else against).append(text)
    return for_, against


@require_GET
@staff_required
def duplicate_list(request: HttpRequest) -> HttpResponse:
    if refusal := _cannot_view(request):
        return refusal
    suggestions = (
        DuplicateCandidate.objects.filter(
            status=DuplicateCandidate.Status.OPEN,
            citizen_a__status__in=duplicates.LIVE_STATUSES,
            citizen_b__status__in=duplicates.LIVE_STATUSES,
        )
        .select_related("citizen_a", "citizen_b")
        .order_by("-score", "pk")
    )
    page = Paginator(suggestions, PAGE_SIZE).get_page(request.GET.get("page"))
    rows = []
    for candidate in page.object_list:
        evidence_for, evidence_against = _evidence(candidate.reasons)
        rows.append(
            SuggestionRow(
                candidate=candidate,
                likelihood=likelihood(candidate.score),
                strong=candidate.score >= duplicates.STRONG_THRESHOLD,
                evidence_for=evidence_for,
                evidence_against=evidence_against,
            )
        )
    base = reverse("staff:duplicates")
    return render(
        request,
        "staff/duplicates/list.html",
        {
            "staff_section": "duplicates",
            "page": page,
            "rows": rows,
            "previous_url": f"{base}?page={page.previous_page_number()}"
            if page.has_previous()
            else "",
            "next_url": f"{base}?page={page.next_page_number()}" if page.has_next() else "",
        },
    )


# --- comparing two profiles -----------------------------------------------------------------


@dataclass
class ProfileColumn:
    """One profile's side of the comparison."""

    side: str
    citizen: Citizen
    contact_points: list[ContactPoint] = field(default_factory=list)
    addresses: list[Address] = field(default_factory=list)
    cases_total: int = 0
    cases_open: int = 0
    timeline_total: int = 0


@dataclass
class FieldRow:
    name: str
    label: str
    value_a: str
    value_b: str
    differs: bool
    input_name: str = ""
    chosen: str = ""
    errors: list[str] = field(default_factory=list)


def _display(citizen: Citizen, name: str) -> str:
    value = getattr(citizen, name)
    if value in ("", None):
        return ""
    if name == "date_of_birth":
        return date_format(value, "j F Y")
    display = getattr(citizen, f"get_{name}_display", None)
    return str(display()) if display else str(value)


def _load_columns(a: Citizen, b: Citizen) -> tuple[ProfileColumn, ProfileColumn]:
    """Both profiles' contact points, addresses and counts: four queries whatever their size."""
    columns = {a.pk: ProfileColumn("a", a)}
    columns.setdefault(b.pk, ProfileColumn("b", b))
    ids = list(columns)
    for point in ContactPoint.objects.filter(citizen_id__in=ids).order_by(
        "removed_at", "kind", "-is_primary", "pk"
    ):
        columns[point.citizen_id].contact_points.append(point)
    for address in Address.objects.filter(citizen_id__in=ids).order_by("-is_primary", "pk"):
        columns[address.citizen_id].addresses.append(address)
    for row in (
        ServiceCase.objects.filter(citizen_id__in=ids)
        .values("citizen_id")
        .annotate(
            total=Count("pk"), still_open=Count("pk", filter=~Q(status__in=_FINISHED_CASE_STATUSES))
        )
    ):
        columns[row["citizen_id"]].cases_total = row["total"]
        columns[row["citizen_id"]].cases_open = row["still_open"]
    for row in (
        TimelineEntry.objects.filter(citizen_id__in=ids)
        .values("citizen_id")
        .annotate(total=Count("pk"))
    ):
        columns[row["citizen_id"]].timeline_total = row["total"]
    column_a = columns[a.pk]
    column_b = columns[b.pk] if b.pk != a.pk else ProfileColumn("b", b, **_copy(column_a))
    return column_a, column_b


def _copy(column: ProfileColumn) -> dict[str, Any]:
    return {
        "contact_points": column.contact_points,
        "addresses": column.addresses,
        "cases_total": column.cases_total,
        "cases_open": column.cases_open,
        "timeline_total": column.timeline_total,
    }


def _facts(column: ProfileColumn) -> duplicates.ProfileFacts:
    citizen = column.citizen
    return duplicates.profile_facts(
        citizen_id=citizen.pk,
        given_name=citizen.given_name,
        family_name=citizen.family_name,
        date_of_birth=citizen.date_of_birth,
        addresses=[(ad.uprn, ad.postcode, ad.line1, ad.line2) for ad in column.addresses],
        contact_points=[
            (cp.kind, cp.match_key, cp.normalised, cp.removed_at is not None)
            for cp in column.contact_points
        ],
    )


def _default_survivor(column_a: ProfileColumn, column_b: ProfileColumn) -> str:
    """Suggest keeping the profile that is confirmed, signed in, used more and older."""

    def rank(column: ProfileColumn) -> tuple[Any, ...]:
        citizen = column.citizen
        return (
            citizen.status == Citizen.Status.ACTIVE,
            citizen.user_id is not None,
            column.timeline_total + column.cases_total,
            -citizen.created_at.timestamp(),
        )

    return "b" if rank(column_b) > rank(column_a) else "a"


def _merge_form_initial(
    column_a: ProfileColumn, column_b: ProfileColumn, differing: list[str]
) -> dict[str, str]:
    survivor = _default_survivor(column_a, column_b)
    keep = {"a": column_a.citizen, "b": column_b.citizen}
    other = "b" if survivor == "a" else "a"
    initial = {"survivor": survivor}
    for name in differing:
        # As citizen_merge does by default: the survivor's value, unless it has none.
        empty = getattr(keep[survivor], name) in ("", None)
        initial[f"keep_{name}"] = other if empty else survivor
    return initial


def _candidate_for(a: Citizen, b: Citizen) -> DuplicateCandidate | None:
    if a.pk == b.pk:
        return None
    first, second = duplicates.ordered_pair(a, b)
    return DuplicateCandidate.objects.filter(citizen_a=first, citizen_b=second).first()


def _review(
    request: HttpRequest, a: Citizen, b: Citizen, candidate: DuplicateCandidate | None
) -> HttpResponse:
    """The comparison page, for a suggestion or for any two profiles, and its two actions."""
    if request.method == "POST" and (refusal := _cannot_decide(request)):
        return refusal
    column_a, column_b = _load_columns(a, b)
    differing = [name for name in MERGEABLE_FIELDS if getattr(a, name) != getattr(b, name)]
    initial = _merge_form_initial(column_a, column_b, differing)
    merge_form = MergeForm(prefix="merge", differing_fields=differing, initial=initial)
    dismiss_form = DismissForm(prefix="dismiss")
    status = 200
    action_error = ""
    if request.method == "POST":
        action = request.POST.get("action")
        if action == "merge":
            merge_form = MergeForm(
                request.POST, prefix="merge", differing_fields=differing, initial=initial
            )
            if merge_form.is_valid():
                try:
                    merge = _merge(request, a, b, candidate, merge_form)
                except ApplicationError as exc:
                    merge_form.add_error(None, exc.message)
                    status = exc.status_code
                else:
                    messages.success(
                        request,
                        _("Profiles merged: %(survivor)s now has the records of both.")
                        % {"survivor": merge.survivor.display_name},
                    )
                    return redirect("staff:merge-detail", merge_id=merge.pk)
            else:
                status = 400
        elif action == "dismiss":
            dismiss_form = DismissForm(request.POST, prefix="dismiss")
            if dismiss_form.is_valid():
                reason = dismiss_form.cleaned_data["reason"]
                try:
                    if candidate is not None and candidate.status == DuplicateCandidate.Status.OPEN:
                        duplicate_dismiss(candidate=candidate, by=request.user, reason=reason)
                    else:
                        duplicate_dismiss_pair(first=a, second=b, by=request.user, reason=reason)
                except ApplicationError as exc:
                    dismiss_form.add_error(None, exc.message)
                    status = exc.status_code
                else:
                    messages.success(
                        request,
                        _("Recorded: %(a)s and %(b)s are not the same person.")
                        % {"a": a.display_name, "b": b.display_name},
                    )
                    return redirect("staff:duplicates")
            else:
                status = 400
        else:
            action_error = _("Choose to merge the profiles, or that they are not the same person.")
            status = 400

    field_rows = []
    for name in MERGEABLE_FIELDS:
        row = FieldRow(
            name=name,
            label=str(Citizen._meta.get_field(name).verbose_name).capitalize(),
            value_a=_display(a, name),
            value_b=_display(b, name),
            differs=name in differing,
        )
        if row.differs:
            bound = merge_form[f"keep_{name}"]
            row.input_name, row.chosen = bound.html_name, str(bound.value() or "")
            row.errors = list(bound.errors)
        field_rows.append(row)

    evidence = None
    if a.pk != b.pk and a.is_live and b.is_live:
        evidence = duplicates.score_pair(_facts(column_a), _facts(column_b))
    context = {
        "staff_section": "duplicates",
        "candidate": candidate,
        "column_a": column_a,
        "column_b": column_b,
        "field_rows": field_rows,
        "merge_form": merge_form,
        "dismiss_form": dismiss_form,
        "survivor_choice": str(merge_form["survivor"].value() or ""),
        "action_error": action_error,
        "evidence": evidence,
        "evidence_likelihood": likelihood(evidence.score) if evidence else "",
        "candidate_likelihood": likelihood(candidate.score) if candidate else "",
        "evidence_for": [lvl.text for lvl in evidence.evidence if lvl.weight >= 0]
        if evidence
        else [],
        "evidence_against": [lvl.text for lvl in evidence.evidence if lvl.weight < 0]
        if evidence
        else [],
        "strong_threshold": duplicates.STRONG_THRESHOLD,
        "can_decide": request.user.has_perm(MERGE_PERMISSION),
        "has_errors": bool(merge_form.errors or dismiss_form.errors or action_error),
    }
    return render(request, "staff/duplicates/review.html", context, status=status)


def _merge(
    request: HttpRequest,
    a: Citizen,
    b: Citizen,
    candidate: DuplicateCandidate | None,
    form: MergeForm,
) -> CitizenMerge:
    survivor, duplicate = (a, b) if form.cleaned_data["survivor"] == "a" else (b, a)
    arguments = {
        "survivor": survivor,
        "by": request.user,
        "reason": form.cleaned_data["reason"],
        "field_choices": form.field_choices(),
    }
    if candidate is not None and candidate.status == DuplicateCandidate.Status.OPEN:
        return duplicate_merge(candidate=candidate, **arguments)
    # Any two profiles, or a pair ruled out earlier that an officer now merges after all.
    return citizen_merge(duplicate=duplicate, **arguments)


@require_http_methods(["GET", "POST"])
@staff_required
def duplicate_review(request: HttpRequest, candidate_id: int) -> HttpResponse:
    if refusal := _cannot_view(request):
        return refusal
    candidate = get_object_or_404(
        DuplicateCandidate.objects.select_related(
            "citizen_a__merged_into", "citizen_b__merged_into", "reviewed_by"
        ),
        pk=candidate_id,
    )
    return _review(request, candidate.citizen_a, candidate.citizen_b, candidate)


@require_http_methods(["GET", "POST"])
@staff_required
def duplicate_compare(request: HttpRequest) -> HttpResponse:
    if refusal := _cannot_view(request):
        return refusal
    context: dict[str, Any] = {"staff_section": "duplicates"}
    if "a" not in request.GET and "b" not in request.GET:
        context["form"] = CompareProfilesForm()
        return render(request, "staff/duplicates/choose.html", context)
    form = CompareProfilesForm(request.GET)
    context["form"] = form
    if not form.is_valid():
        return render(request, "staff/duplicates/choose.html", context, status=400)
    wanted = [form.cleaned_data["a"], form.cleaned_data["b"]]
    found = {
        citizen.public_id: citizen
        for citizen in Citizen.objects.select_related("merged_into").filter(public_id__in=wanted)
    }
    for name, public_id in zip(("a", "b"), wanted, strict=True):
        if public_id not in found:
            form.add_error(name, _("No profile has this reference."))
    if form.errors:
        return render(request, "staff/duplicates/choose.html", context, status=404)
    a, b = found[wanted[0]], found[wanted[1]]
    return _review(request, a, b, _candidate_for(a, b))


# --- the merge record ------------------------------------------------------------------------


@dataclass
class ChoiceRow:
    label: str
    kept_from: str  # "survivor" or "duplicate"
    kept_value: str
    other_value: str


def _snapshot_value(name: str, value: Any) -> str:
    """A field's value as the merge snapshot stored it (JSON), shown as on the profile."""
    if value in ("", None):
        return ""
    field_object = Citizen._meta.get_field(name)
    if field_object.choices:
        return str(dict(field_object.flatchoices).get(value, value))
    if name == "date_of_birth":
        try:
            return date_format(datetime.date.fromisoformat(value), "j F Y")
        except (TypeError, ValueError):
            return str(value)
    return str(value)


@require_http_methods(["GET", "POST"])
@staff_required
def merge_detail(request: HttpRequest, merge_id: int) -> HttpResponse:
    if refusal := _cannot_view(request):
        return refusal
    merge = get_object_or_404(
        CitizenMerge.objects.select_related("survivor", "duplicate", "merged_by", "unmerged_by"),
        pk=merge_id,
    )
    form = UnmergeForm()
    status = 200
    if request.method == "POST":
        if refusal := _cannot_decide(request):
            return refusal
        form = UnmergeForm(request.POST)
        if form.is_valid():
            try:
                citizen_unmerge(merge=merge, by=request.user, reason=form.cleaned_data["reason"])
            except ApplicationError as exc:
                form.add_error(None, exc.message)
                status = exc.status_code
            else:
                messages.success(
                    request,
                    _("Merge undone: %(survivor)s and %(duplicate)s are separate profiles again.")
                    % {
                        "survivor": merge.survivor.display_name,
                        "duplicate": merge.duplicate.display_name,
                    },
                )
                return redirect("staff:merge-detail", merge_id=merge.pk)
        else:
            status = 400

    snapshot = merge.snapshot if isinstance(merge.snapshot, dict) else {}
    choice_rows = []
    for name in MERGEABLE_FIELDS:
        side = merge.field_choices.get(name)
        if side not in ("survivor", "duplicate"):
            continue
        other = "duplicate" if side == "survivor" else "survivor"
        choice_rows.append(
            ChoiceRow(
                label=str(Citizen._meta.get_field(name).verbose_name).capitalize(),
                kept_from=side,
                kept_value=_snapshot_value(name, snapshot.get(side, {}).get(name)),
                other_value=_snapshot_value(name, snapshot.get(other, {}).get(name)),
            )
        )
    moved: dict[str, int] = defaultdict(int)
    for label, by_field in (snapshot.get("moved") or {}).items():
        try:
            model = apps.get_model(label)
        except (LookupError, ValueError):
            continue
        moved[str(model._meta.verbose_name_plural).capitalize()] += sum(
            len(ids) for ids in by_field.values()
        )
    unmerge_event = None
    if merge.unmerged_at is not None:
        unmerge_event = (
            AuditEvent.objects.filter(
                action=AuditEvent.Action.UNMERGE, citizen=merge.survivor, details__merge_id=merge.pk
            )
            .order_by("-occurred_at")
            .first()
        )
    return render(
        request,
        "staff/duplicates/merge_detail.html",
        {
            "staff_section": "duplicates",
            "merge": merge,
            "choice_rows": choice_rows,
            "moved": sorted(moved.items()),
            "unmerge_event": unmerge_event,
            "form": form,
            "can_decide": request.user.has_perm(MERGE_PERMISSION),
        },
        status=status,
    )
