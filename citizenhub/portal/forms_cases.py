"""Forms of the resident's case pages: add information to a case, reopen a resolved one."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from citizenhub.models import ServiceCase

REOPEN_REASON_MAX_CHARS = 2000


def case_update_refusal(case: ServiceCase) -> str | None:
    """Why the resident cannot add information to the case, or None if they can. Only open
    cases take new information: on a resolved case the resident reopens it (with a reason)
    or reports the problem again, so officers are not left with words nobody reads."""
    if case.anonymised_at is not None:
        return gettext("This case has been archived and can no longer be updated.")
    if not case.is_open:
        return gettext(
            "This case is closed. If the problem is not fixed, reopen the case or report it again."
        )
    return None


def _limited_text(value: str, *, limit: int, empty: str, too_long: str) -> str:
    value = (value or "").strip()
    if not value:
        raise forms.ValidationError(empty, code="required")
    if len(value) > limit:
        raise forms.ValidationError(too_long, code="max_length")
    return value


class CaseUpdateForm(forms.Form):
    """What the resident wants to add to their case. The limit is checked here (not by the
    field's max_length) so the message says the limit in the resident's words."""

    text = forms.CharField(
        label=_("Add information or reply"),
        help_text=_("For example, what has changed or an answer to our question."),
        widget=forms.Textarea(attrs={"rows": 5, "class": "govuk-textarea"}),
        required=False,
        strip=True,
    )

    def __init__(self, *args: object, case: ServiceCase | None = None, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.case = case

    def clean(self) -> dict:
        cleaned = super().clean()
        refusal = case_update_refusal(self.case) if self.case is not None else None
        if refusal:
            raise forms.ValidationError(refusal, code="closed")
        return cleaned

    def clean_text(self) -> str:
        limit = settings.PORTAL_CASE_UPDATE_MAX_CHARS
        return _limited_text(
            self.cleaned_data.get("text", ""),
            limit=limit,
            empty=_("Enter the information you want to add"),
            too_long=_("The information must be %(limit)s characters or fewer") % {"limit": limit},
        )


class CaseReopenForm(forms.Form):
    reason = forms.CharField(
        label=_("Why does this case need to be reopened?"),
        help_text=_("Tell us what is still wrong."),
        widget=forms.Textarea(attrs={"rows": 4, "class": "govuk-textarea"}),
        required=False,
        strip=True,
    )

    def clean_reason(self) -> str:
        return _limited_text(
            self.cleaned_data.get("reason", ""),
            limit=REOPEN_REASON_MAX_CHARS,
            empty=_("Enter why the case needs to be reopened"),
            too_long=_("The reason must be %(limit)s characters or fewer")
            % {"limit": REOPEN_REASON_MAX_CHARS},
        )
