"""Forms of the unified inbox: the list's filters and the actions on one conversation."""

from __future__ import annotations

import base64
import binascii
import datetime
from typing import Any

from django import forms
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext_lazy as _

from channels.models import Channel, Thread
from channels.selectors import INBOX_DEFAULT_STATUSES
from citizenhub.models import Service, ServiceCase, Team
from citizenhub.services.cases import DESCRIPTION_LIMIT, TITLE_LIMIT

REPLY_LIMIT = 50_000


def encode_cursor(thread: Thread) -> str:
    """The position after `thread` in the inbox order, opaque to the officer."""
    raw = f"{thread.last_message_at.isoformat()}|{thread.pk}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(value: str) -> tuple[datetime.datetime, int] | None:
    try:
        raw = base64.urlsafe_b64decode(value.encode("ascii") + b"==").decode()
        at_text, pk_text = raw.rsplit("|", 1)
        at = parse_datetime(at_text)
        pk = int(pk_text)
    except (ValueError, binascii.Error, UnicodeError):
        return None
    if at is None or at.tzinfo is None or pk < 1:
        return None
    return at, pk


class InboxFilterForm(forms.Form):
    """The inbox filters, read from the query string (GET): every field is optional."""

    ASSIGNED_CHOICES = [
        ("", _("Anyone or nobody")),
        ("unassigned", _("Nobody (unassigned)")),
        ("mine", _("Me")),
    ]

    channel = forms.ModelChoiceField(
        queryset=Channel.objects.order_by("name"),
        to_field_name="slug",
        required=False,
        empty_label=_("All channels"),
        label=_("Channel"),
    )
    team = forms.ModelChoiceField(
        queryset=Team.objects.order_by("name"),
        to_field_name="slug",
        required=False,
        empty_label=_("All teams"),
        label=_("Team"),
    )
    status = forms.MultipleChoiceField(
        choices=Thread.Status.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label=_("Status"),
    )
    assigned = forms.ChoiceField(choices=ASSIGNED_CHOICES, required=False, label=_("Assigned to"))
    after = forms.CharField(required=False, max_length=200, widget=forms.HiddenInput)

    def __init__(self, data: Any = None, **kwargs: Any) -> None:
        data = data.copy() if data is not None else {}
        # No status in the query string (the first visit): the conversations needing work.
        if hasattr(data, "setlist"):
            if not data.getlist("status"):
                data.setlist("status", list(INBOX_DEFAULT_STATUSES))
        elif not data.get("status"):
            data["status"] = list(INBOX_DEFAULT_STATUSES)
        super().__init__(data, **kwargs)

    def clean_after(self) -> tuple[datetime.datetime, int] | None:
        value = self.cleaned_data.get("after") or ""
        if not value:
            return None
        cursor = decode_cursor(value)
        if cursor is None:
            raise forms.ValidationError(
                _("This page link is not valid. Go back to the newest conversations.")
            )
        return cursor


class ReplyForm(forms.Form):
    body = forms.CharField(
        label=_("Your reply"),
        widget=forms.Textarea(attrs={"rows": 6}),
        max_length=REPLY_LIMIT,
        strip=True,
        error_messages={"required": _("Write a reply before sending.")},
    )
    # Where to go after sending: the case page when the reply was written there.
    next = forms.CharField(required=False, max_length=500, widget=forms.HiddenInput)


class AssignForm(forms.Form):
    assignee = forms.ChoiceField(
        label=_("Assign to"), error_messages={"required": _("Choose who to assign it to.")}
    )

    def __init__(self, *args: Any, members: list[Any] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.members = {str(member.pk): member for member in members}
        self.fields["assignee"].choices = [
            ("me", _("Me")),
            *[
                (pk, member.get_full_name() or member.get_username())
                for pk, member in self.members.items()
            ],
            ("nobody", _("Nobody (unassign)")),
        ]

    def assignee_for(self, user: Any) -> Any:
        """The user chosen (None for nobody); call after is_valid()."""
        choice = self.cleaned_data["assignee"]
        if choice == "me":
            return user
        if choice == "nobody":
            return None
        return self.members[choice]


class ThreadStatusForm(forms.Form):
    action = forms.ChoiceField(
        choices=[("done", _("Mark as done")), ("reopen", _("Reopen"))],
        error_messages={"invalid_choice": _("Choose to mark it as done or to reopen it.")},
    )


class OpenCaseForm(forms.Form):
    service = forms.ModelChoiceField(
        queryset=Service.objects.filter(is_active=True).order_by("name"),
        label=_("Service"),
        empty_label=_("Choose a service"),
        error_messages={
            "required": _("Choose the service the case is for."),
            "invalid_choice": _("Choose a service from the list."),
        },
    )
    title = forms.CharField(
        label=_("Title"),
        max_length=TITLE_LIMIT,
        error_messages={"required": _("Give the case a title.")},
    )
    description = forms.CharField(
        label=_("Description"),
        required=False,
        max_length=DESCRIPTION_LIMIT,
        widget=forms.Textarea(attrs={"rows": 5}),
    )


class LinkCaseForm(forms.Form):
    reference = forms.CharField(
        label=_("Case reference"),
        help_text=_("For example, CH-2026-000123"),
        max_length=30,
        error_messages={"required": _("Enter the reference of the case to link.")},
    )

    def clean_reference(self) -> ServiceCase:
        reference = "".join(self.cleaned_data["reference"].split()).upper()
        case = ServiceCase.objects.filter(reference=reference).first()
        if case is None:
            raise forms.ValidationError(
                _("There is no case with the reference %(reference)s. Check it and try again.")
                % {"reference": reference}
            )
        return case
