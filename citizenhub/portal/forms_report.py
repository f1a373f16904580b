"""Forms of "Report a problem": choosing the service, then describing the problem, where it
is, photos, and (for an anonymous report) an e-mail address to follow it."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from citizenhub.models import ServiceCase
from citizenhub.normalise import normalise_email, normalise_postcode
from citizenhub.services.attachments import ACCEPTED_IMAGE_TYPES, PreparedImage, prepare_image
from citizenhub.services.cases import DESCRIPTION_LIMIT, TITLE_LIMIT
from citizenhub.staff.case_forms import GovukFormMixin

LOCATION_TEXT_LIMIT = ServiceCase._meta.get_field("location_text").max_length
# The case stores six decimal places (about 10 cm): finer positions are rounded, not refused.
COORDINATE_PLACES = Decimal("0.000001")


class MultiplePhotoInput(forms.FileInput):
    allow_multiple_selected = True


class PhotosField(forms.Field):
    """Up to PORTAL_UPLOAD_MAX_FILES photos from one file input; cleans to PreparedImages,
    each checked by its content and re-encoded (services.attachments.prepare_image)."""

    widget = MultiplePhotoInput

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)
        self.widget.attrs.setdefault("accept", ",".join(ACCEPTED_IMAGE_TYPES))

    def clean(self, data: Any) -> list[PreparedImage]:
        files = [item for item in (data if isinstance(data, list | tuple) else [data]) if item]
        limit = settings.PORTAL_UPLOAD_MAX_FILES
        if len(files) > limit:
            raise ValidationError(
                ngettext(
                    "Choose at most %(limit)d photo.", "Choose at most %(limit)d photos.", limit
                )
                % {"limit": limit},
                code="too_many",
            )
        prepared, problems = [], []
        for uploaded in files:
            if not hasattr(uploaded, "size") or not hasattr(uploaded, "name"):
                problems.append(ValidationError(_("Choose a photo file."), code="invalid"))
                continue
            try:
                prepared.append(prepare_image(uploaded))
            except ValidationError as exc:
                problems.extend(exc.error_list)
        if problems:
            raise ValidationError(problems)
        return prepared


class ChooseServiceForm(forms.Form):
    """The first question: which service. Sent by GET, so the choice is in the address."""

    service = forms.ChoiceField(
        label=_("What do you want to report?"),
        widget=forms.RadioSelect,
        error_messages={
            "required": _("Select what you want to report"),
            "invalid_choice": _("Select what you want to report from the list"),
        },
    )

    def __init__(self, *args: Any, services: list, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["service"].choices = [(service.code, service.name) for service in services]


class ReportForm(GovukFormMixin, forms.Form):
    """What the problem is and where; an anonymous resident may leave an e-mail address."""

    # GOV.UK validates on the server only: no browser "required" bubbles in other styles.
    use_required_attribute = False
    widget_classes = {
        **GovukFormMixin.widget_classes,
        forms.EmailInput: "govuk-input",
        MultiplePhotoInput: "govuk-file-upload",
    }

    title = forms.CharField(
        label=_("Summary (optional)"),
        help_text=_("A few words, for example “Overflowing bin outside the library”."),
        required=False,
        max_length=TITLE_LIMIT,
        error_messages={
            "max_length": _("The summary must be %(limit_value)d characters or fewer"),
        },
    )
    description = forms.CharField(
        label=_("Describe the problem"),
        help_text=_("Tell us what is wrong and anything that will help us put it right."),
        max_length=DESCRIPTION_LIMIT,
        widget=forms.Textarea(attrs={"rows": 6}),
        error_messages={
            "required": _("Describe the problem"),
            "max_length": _(
                "The description must be %(limit_value)d characters or fewer "
                "(it has %(show_value)d)"
            ),
        },
    )
    postcode = forms.CharField(
        label=_("Postcode (optional if you describe where it is)"),
        help_text=_("The postcode nearest the problem, for example SW1A 1AA."),
        required=False,
        max_length=16,
        widget=forms.TextInput(
            attrs={
                "class": "govuk-input govuk-input--width-10",
                "autocomplete": "postal-code",
                "spellcheck": "false",
            }
        ),
        error_messages={"max_length": _("Enter a real postcode, like SW1A 1AA")},
    )
    location_text = forms.CharField(
        label=_("Where is it? (optional)"),
        help_text=_("A street, a landmark or an address, for example “Opposite 12 Mill Lane”."),
        required=False,
        max_length=LOCATION_TEXT_LIMIT,
        error_messages={
            "max_length": _("Where it is must be %(limit_value)d characters or fewer"),
        },
    )
    latitude = forms.DecimalField(
        label=_("Latitude (optional)"),
        help_text=_("If you know the exact position, in decimal degrees, for example 51.501009."),
        required=False,
        min_value=-90,
        max_value=90,
        widget=forms.TextInput(
            attrs={"class": "govuk-input govuk-input--width-10", "inputmode": "decimal"}
        ),
        error_messages={
            "invalid": _("Latitude must be a number, like 51.501009"),
            "min_value": _("Latitude must be between -90 and 90"),
            "max_value": _("Latitude must be between -90 and 90"),
        },
    )
    longitude = forms.DecimalField(
        label=_("Longitude (optional)"),
        help_text=_("In decimal degrees, for example -0.141588."),
        required=False,
        min_value=-180,
        max_value=180,
        widget=forms.TextInput(
            attrs={"class": "govuk-input govuk-input--width-10", "inputmode": "decimal"}
        ),
        error_messages={
            "invalid": _("Longitude must be a number, like -0.141588"),
            "min_value": _("Longitude must be between -180 and 180"),
            "max_value": _("Longitude must be between -180 and 180"),
        },
    )
    photos = PhotosField(label=_("Photos (optional)"))
    email = forms.CharField(
        label=_("Email address (optional)"),
        help_text=_(
            "We will email you a link: select it to get updates about your report. We will not "
            "share your email address."
        ),
        required=False,
        max_length=320,
        widget=forms.EmailInput(attrs={"autocomplete": "email", "spellcheck": "false"}),
        error_messages={
            "max_length": _("Enter an email address in the correct format, like name@example.com")
        },
    )

    def __init__(self, *args: Any, anonymous: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not anonymous:
            # A signed-in resident follows the report in their account.
            del self.fields["email"]
        limit = settings.PORTAL_UPLOAD_MAX_FILES
        self.fields["photos"].help_text = ngettext(
            "You can add %(limit)d photo: a JPG, PNG or WebP image, smaller than %(size)d MB.",
            "You can add up to %(limit)d photos: JPG, PNG or WebP images, each smaller than "
            "%(size)d MB.",
            limit,
        ) % {"limit": limit, "size": max(1, settings.PORTAL_UPLOAD_MAX_BYTES // (1024 * 1024))}
        for name in ("title", "description", "location_text"):
            # GOV.UK: a maxlength attribute silently cuts off pasted text; the error says it.
            self.fields[name].widget.attrs.pop("maxlength", None)

    def clean_postcode(self) -> str:
        value = self.cleaned_data["postcode"].strip()
        if not value:
            return ""
        try:
            return normalise_postcode(value, field="postcode").normalised
        except ValidationError:
            raise ValidationError(
                _("Enter a real postcode, like SW1A 1AA"), code="invalid"
            ) from None

    def clean_email(self) -> str:
        value = self.cleaned_data["email"].strip()
        if not value:
            return ""
        try:
            return normalise_email(value, field="email").normalised
        except ValidationError:
            raise ValidationError(
                _("Enter an email address in the correct format, like name@example.com"),
                code="invalid",
            ) from None

    def _coordinate(self, name: str) -> Decimal | None:
        value = self.cleaned_data[name]
        return None if value is None else value.quantize(COORDINATE_PLACES)

    def clean_latitude(self) -> Decimal | None:
        return self._coordinate("latitude")

    def clean_longitude(self) -> Decimal | None:
        return self._coordinate("longitude")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        latitude, longitude = cleaned.get("latitude"), cleaned.get("longitude")
        if "latitude" in cleaned and "longitude" in cleaned:
            if latitude is None and longitude is not None:
                self.add_error("latitude", _("Enter the latitude as well as the longitude"))
            elif longitude is None and latitude is not None:
                self.add_error("longitude", _("Enter the longitude as well as the latitude"))
        somewhere = cleaned.get("postcode") or cleaned.get("location_text") or latitude is not None
        if not somewhere and not self.has_error("postcode") and not self.has_error("location_text"):
            self.add_error(
                "postcode", _("Enter the postcode of the problem, or describe where it is")
            )
        return cleaned

    @property
    def summary_title(self) -> str:
        """The case title: the resident's summary, or the start of their description."""
        title = self.cleaned_data.get("title", "").strip()
        if title:
            return title
        first_line = self.cleaned_data["description"].strip().splitlines()[0].strip()
        return first_line if len(first_line) <= 80 else first_line[:79].rstrip() + "…"
