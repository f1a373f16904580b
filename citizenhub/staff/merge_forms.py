"""Forms of the duplicates pages: pick two profiles, merge them field by field, rule them out,
undo a merge. The templates write the GOV.UK markup; these forms only validate."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from citizenhub.services.merge import MERGEABLE_FIELDS

SIDES = (("a", _("Profile A")), ("b", _("Profile B")))
REASON_MAX_LENGTH = 500  # CitizenMerge.reason and AuditEvent.reason hold 500 characters


def _reason_field(label: str, required_message: str) -> forms.CharField:
    return forms.CharField(
        label=label,
        max_length=REASON_MAX_LENGTH,
        strip=True,
        error_messages={
            "required": required_message,
            "max_length": _("The reason must be %(limit_value)d characters or fewer."),
        },
        widget=forms.Textarea,
    )


class CompareProfilesForm(forms.Form):
    """Which two profiles to compare, by the public ids shown on profile pages."""

    a = forms.UUIDField(
        label=_("Profile A reference"),
        error_messages={
            "required": _("Enter the reference of the first profile."),
            "invalid": _("Enter a profile reference like 6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f."),
        },
    )
    b = forms.UUIDField(
        label=_("Profile B reference"),
        error_messages={
            "required": _("Enter the reference of the second profile."),
            "invalid": _("Enter a profile reference like 6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f."),
        },
    )


class MergeForm(forms.Form):
    """Which profile survives, which value each differing field keeps, and why.

    Field choices are made per column ("a" or "b"), not per role, so changing the survivor
    does not silently swap every other choice; `field_choices()` turns them into the
    survivor/duplicate sides that citizen_merge takes.
    """

    survivor = forms.ChoiceField(
        label=_("Which profile should stay?"),
        choices=SIDES,
        widget=forms.RadioSelect,
        error_messages={"required": _("Choose which profile should stay.")},
    )
    reason = _reason_field(
        _("Why are these the same person?"), _("Say why these profiles are the same person.")
    )

    def __init__(self, *args: Any, differing_fields: Sequence[str] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.differing_fields = [name for name in MERGEABLE_FIELDS if name in differing_fields]
        for name in self.differing_fields:
            self.fields[f"keep_{name}"] = forms.ChoiceField(
                choices=SIDES,
                widget=forms.RadioSelect,
                error_messages={"required": _("Choose which value to keep.")},
            )

    def field_choices(self) -> dict[str, str]:
        survivor = self.cleaned_data["survivor"]
        return {
            name: "survivor" if self.cleaned_data[f"keep_{name}"] == survivor else "duplicate"
            for name in self.differing_fields
        }


class DismissForm(forms.Form):
    reason = _reason_field(
        _("Why are these not the same person?"), _("Say why these are not the same person.")
    )


class UnmergeForm(forms.Form):
    reason = _reason_field(
        _("Why should this merge be undone?"), _("Say why this merge should be undone.")
    )
