"""allauth's account forms with our labels, hints and error messages (GOV.UK wording, in
our translation catalogue), and the portal's contact details forms."""

from __future__ import annotations

import phonenumbers
from allauth.account import forms as allauth_forms
from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from citizenhub.models import ContactPoint
from citizenhub.normalise import _OFCOM_DRAMA_MOBILE as OFCOM_DRAMA_MOBILE
from citizenhub.normalise import normalise_identity

EMAIL_FORMAT = _("Enter an email address in the correct format, like name@example.com")


def _relabel(form: forms.Form, **fields: tuple) -> None:
    """Set (label, hint, required message, autocomplete) of the named fields that exist."""
    for name, (label, hint, required, autocomplete) in fields.items():
        field = form.fields.get(name)
        if field is None:
            continue
        field.label = label
        field.help_text = hint
        field.error_messages["required"] = required
        if name == "email" or name == "login":
            field.error_messages["invalid"] = EMAIL_FORMAT
        # Labels say what to type; allauth's placeholders would repeat them.
        field.widget.attrs.pop("placeholder", None)
        if autocomplete:
            field.widget.attrs["autocomplete"] = autocomplete


NEW_PASSWORD_HINT = _("At least 8 characters. Do not use a password you use anywhere else.")
# The new password and its confirmation, as every form that sets a password asks for them.
NEW_PASSWORD_FIELDS = {
    "password1": (_("New password"), NEW_PASSWORD_HINT, _("Enter a new password"), "new-password"),
    "password2": (
        _("Confirm your new password"),
        "",
        _("Confirm your new password"),
        "new-password",
    ),
}


class ResidentLoginForm(allauth_forms.LoginForm):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        _relabel(
            self,
            login=(_("Email address"), "", _("Enter your email address"), "email"),
            password=(_("Password"), "", _("Enter your password"), "current-password"),
            remember=(_("Keep me signed in on this device"), "", "", ""),
        )


class ResidentSignupForm(allauth_forms.SignupForm):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        _relabel(
            self,
            email=(
                _("Email address"),
                _("We will send you a link to confirm it."),
                _("Enter your email address"),
                "email",
            ),
            password1=(
                _("Create a password"),
                NEW_PASSWORD_HINT,
                _("Create a password"),
                "new-password",
            ),
            password2=(_("Confirm your password"), "", _("Confirm your password"), "new-password"),
        )


class ResidentResetPasswordForm(allauth_forms.ResetPasswordForm):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        _relabel(
            self,
            email=(
                _("Email address"),
                _("The address you sign in with."),
                _("Enter your email address"),
                "email",
            ),
        )


class ResidentResetPasswordKeyForm(allauth_forms.ResetPasswordKeyForm):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        _relabel(
            self,
            **NEW_PASSWORD_FIELDS,
        )


class ResidentChangePasswordForm(allauth_forms.ChangePasswordForm):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        _relabel(
            self,
            oldpassword=(
                _("Current password"),
                "",
                _("Enter your current password"),
                "current-password",
            ),
            **NEW_PASSWORD_FIELDS,
        )


class ResidentSetPasswordForm(allauth_forms.SetPasswordForm):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        _relabel(
            self,
            **NEW_PASSWORD_FIELDS,
        )


class ResidentAddEmailForm(allauth_forms.AddEmailForm):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        _relabel(
            self,
            email=(
                _("New email address"),
                _("We will send a link to this address. You sign in with it once you confirm it."),
                _("Enter your new email address"),
                "email",
            ),
        )


# --- Contact details (/my/contact/) -------------------------------------------------------


def is_uk_mobile(normalised: str) -> bool:
    """Whether an E.164 number is a UK (GB) mobile, the only numbers the portal texts codes
    to: no landlines (they cannot read a text), premium rate or foreign numbers (a code
    sent there costs the council, or earns whoever owns the number). Ofcom's drama range
    counts as mobile, as the normaliser treats it."""
    try:
        number = phonenumbers.parse(normalised, None)
    except phonenumbers.NumberParseException:
        return False
    if number.country_code == 44 and OFCOM_DRAMA_MOBILE.fullmatch(str(number.national_number)):
        return True
    return (
        phonenumbers.region_code_for_number(number) == "GB"
        and phonenumbers.number_type(number) == phonenumbers.PhoneNumberType.MOBILE
    )


UK_MOBILE_FORMAT = _("Enter a UK mobile number, like 07700 900 982")


class AddPhoneForm(forms.Form):
    phone = forms.CharField(
        label=_("Mobile phone number"),
        help_text=_("For example, 07700 900 982. We will text you a code to confirm it."),
        max_length=40,
        error_messages={"required": _("Enter a mobile phone number")},
        widget=forms.TextInput(attrs={"autocomplete": "tel", "type": "tel"}),
    )

    def clean_phone(self) -> str:
        value = self.cleaned_data["phone"]
        try:
            identity = normalise_identity(ContactPoint.Kind.PHONE, value, field="phone")
        except ValidationError:
            raise ValidationError(
                _("Enter a phone number in the correct format, like 07700 900 982"),
                code="invalid",
            ) from None
        if not is_uk_mobile(identity.normalised):
            raise ValidationError(UK_MOBILE_FORMAT, code="not_uk_mobile")
        return value


class VerificationCodeForm(forms.Form):
    code = forms.CharField(
        label=_("Code"),
        help_text=_(
            "The 6-digit code in the text message we sent you. It expires after 10 minutes."
        ),
        max_length=20,
        error_messages={"required": _("Enter the code from the text message")},
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )


class ContactPreferenceForm(forms.Form):
    """How the council writes to the resident about their requests."""

    preferred_channel = forms.ChoiceField(
        label=_("How should we contact you about your requests?"),
        help_text=_("We reply to a message in the way you sent it. This is for everything else."),
        choices=[("email", _("Email")), ("sms", _("Text message"))],
        widget=forms.RadioSelect,
        error_messages={"required": _("Select how we should contact you")},
    )
