"""Forms of the staff case pages: the queue's filters, opening a case, and the changes made on
a case page (each change form carries the case `version` the officer was looking at)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.utils.translation import gettext_lazy as _

from citizenhub.models import ChannelKind, Service, ServiceCase, Team
from citizenhub.normalise import normalise_postcode
from citizenhub.services.cases import DESCRIPTION_LIMIT, NOTE_LIMIT, TITLE_LIMIT

QUEUE_SCOPES = (
    ("mine", _("My cases")),
    ("team", _("My teams")),
    ("unassigned", _("Unassigned")),
    ("all", _("All open")),
)
PAGE_SIZE = 50
MAX_PAGE = 10_000


class GovukFormMixin:
    """GOV.UK classes on the widgets, and an error class on fields that have errors."""

    widget_classes = {
        forms.Textarea: "govuk-textarea",
        forms.Select: "govuk-select",
        forms.TextInput: "govuk-input",
        forms.NumberInput: "govuk-input govuk-input--width-4",
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            for widget_type, css in self.widget_classes.items():
                if type(field.widget) is widget_type:
                    field.widget.attrs.setdefault("class", css)

    def full_clean(self) -> None:
        super().full_clean()
        for name in self.errors:
            if name in self.fields:
                widget = self.fields[name].widget
                css = widget.attrs.get("class", "")
                for widget_type, base in self.widget_classes.items():
                    if type(widget) is widget_type:
                        suffix = base.split()[0] + "--error"
                        if suffix not in css:
                            widget.attrs["class"] = f"{css} {suffix}".strip()


def _postcode(value: str) -> str:
    if not value:
        return ""
    try:
        return normalise_postcode(value, field="postcode").normalised
    except ValidationError as exc:
        raise ValidationError(exc.message_dict["postcode"]) from None


class CaseQueueFilterForm(GovukFormMixin, forms.Form):
    """The queue's query string: which queue, optional filters, and the page."""

    scope = forms.ChoiceField(choices=QUEUE_SCOPES, required=False)
    team = forms.ModelChoiceField(
        queryset=Team.objects.order_by("name"),
        required=False,
        to_field_name="slug",
        empty_label=_("Any team"),
        label=_("Team"),
    )
    service = forms.ModelChoiceField(
        queryset=Service.objects.order_by("name"),
        required=False,
        to_field_name="code",
        empty_label=_("Any service"),
        label=_("Service"),
    )
    status = forms.ChoiceField(
        choices=[("", _("Any open status")), *ServiceCase.Status.choices],
        required=False,
        label=_("Status"),
    )
    page = forms.IntegerField(min_value=1, max_value=MAX_PAGE, required=False)

    def clean_scope(self) -> str:
        return self.cleaned_data.get("scope") or "mine"

    def clean_page(self) -> int:
        return self.cleaned_data.get("page") or 1


class CaseOpenForm(GovukFormMixin, forms.Form):
    service = forms.ModelChoiceField(
        queryset=Service.objects.filter(is_active=True).order_by("name"),
        to_field_name="code",
        empty_label=_("Choose a service"),
        label=_("Service"),
        error_messages={"required": _("Choose the service the case is about.")},
    )
    title = forms.CharField(
        max_length=TITLE_LIMIT,
        label=_("Title"),
        help_text=_("A short summary, for example “Green bin not emptied on 3 March”."),
        error_messages={"required": _("Enter a title for the case.")},
    )
    description = forms.CharField(
        max_length=DESCRIPTION_LIMIT,
        required=False,
        widget=forms.Textarea(attrs={"rows": 5}),
        label=_("Description"),
    )
    priority = forms.TypedChoiceField(
        choices=ServiceCase.Priority.choices,
        coerce=int,
        initial=ServiceCase.Priority.NORMAL,
        label=_("Priority"),
    )
    source_channel = forms.ChoiceField(
        choices=[("", _("Not recorded")), *ChannelKind.choices],
        required=False,
        label=_("How did the resident contact the council?"),
    )
    location_text = forms.CharField(
        max_length=300,
        required=False,
        label=_("Location (optional)"),
        help_text=_("Where the problem is, if not at the resident's address."),
    )
    postcode = forms.CharField(
        max_length=10,
        required=False,
        label=_("Postcode of the location (optional)"),
        widget=forms.TextInput(attrs={"class": "govuk-input govuk-input--width-10"}),
    )

    def clean_postcode(self) -> str:
        return _postcode(self.cleaned_data.get("postcode", ""))


class VersionedForm(GovukFormMixin, forms.Form):
    """A change to a case made from the version of it the officer was looking at."""

    version = forms.IntegerField(widget=forms.HiddenInput, min_value=1)


class CaseTransitionForm(VersionedForm):
    status = forms.ChoiceField(choices=ServiceCase.Status.choices, widget=forms.HiddenInput)
    resolution = forms.CharField(
        max_length=DESCRIPTION_LIMIT,
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        label=_("Resolution"),
        help_text=_("The resident receives this text."),
    )
    reason = forms.CharField(
        max_length=NOTE_LIMIT,
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        label=_("Reason"),
        help_text=_("It goes in the case history."),
    )


class CaseAssignForm(VersionedForm):
    assignee = forms.ModelChoiceField(
        queryset=None,
        required=False,
        empty_label=_("Nobody (unassigned)"),
        label=_("Assign to"),
    )

    def __init__(self, *args: Any, members: QuerySet, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["assignee"].queryset = members
        self.fields["assignee"].label_from_instance = lambda user: (
            user.get_full_name() or user.get_username()
        )


class CaseDetailsForm(VersionedForm):
    title = forms.CharField(
        max_length=TITLE_LIMIT,
        label=_("Title"),
        error_messages={"required": _("Enter a title for the case.")},
    )
    description = forms.CharField(
        max_length=DESCRIPTION_LIMIT,
        required=False,
        widget=forms.Textarea(attrs={"rows": 5}),
        label=_("Description"),
    )
    priority = forms.TypedChoiceField(
        choices=ServiceCase.Priority.choices, coerce=int, label=_("Priority")
    )
    location_text = forms.CharField(max_length=300, required=False, label=_("Location"))
    postcode = forms.CharField(
        max_length=10,
        required=False,
        label=_("Postcode of the location"),
        widget=forms.TextInput(attrs={"class": "govuk-input govuk-input--width-10"}),
    )

    def clean_postcode(self) -> str:
        return _postcode(self.cleaned_data.get("postcode", ""))


class CaseNoteForm(GovukFormMixin, forms.Form):
    text = forms.CharField(
        max_length=NOTE_LIMIT,
        widget=forms.Textarea(attrs={"rows": 4}),
        label=_("Internal note"),
        help_text=_("Only council staff see notes; the resident never does."),
        error_messages={"required": _("Enter the note.")},
    )


class CaseLegalHoldForm(GovukFormMixin, forms.Form):
    hold = forms.TypedChoiceField(
        choices=[("1", _("Place")), ("0", _("Lift"))],
        coerce=lambda value: value == "1",
        widget=forms.HiddenInput,
    )
    reason = forms.CharField(
        max_length=NOTE_LIMIT,
        widget=forms.Textarea(attrs={"rows": 3}),
        label=_("Reason"),
        help_text=_("For example the complaint, claim or investigation that needs the case kept."),
        error_messages={"required": _("Say why.")},
    )
