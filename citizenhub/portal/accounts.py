"""allauth's account adapter for the portal: our wording of its messages (so they are in
our translation catalogue, plain English and Welsh), and where people land after signing in."""

from __future__ import annotations

from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from django.conf import settings
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

MY_ACCOUNT_URL = "/my/"
STAFF_HOME_URL = "/staff/"


class ResidentAccountAdapter(DefaultAccountAdapter):
    # Every message a resident can meet, in GOV.UK's style. With enumeration prevention on,
    # none of them says whether an address has an account.
    error_messages = {
        **DefaultAccountAdapter.error_messages,
        "account_inactive": _("This account has been closed. Contact us if you need help."),
        "cannot_remove_primary_email": _("You cannot remove the email address you sign in with."),
        "duplicate_email": _("This email address is already on your account."),
        "email_password_mismatch": _("Enter a correct email address and password."),
        "enter_current_password": _("Enter your current password."),
        "incorrect_code": _("The code is not right. Check it and try again."),
        "incorrect_password": _("The password is not right."),
        "invalid_or_expired_key": _("This link has expired or has already been used."),
        "invalid_login": _("Enter a correct email address and password."),
        "invalid_password_reset": _(
            "This password reset link has expired or has already been used. Ask for a new one."
        ),
        "too_many_login_attempts": _(
            "You have tried to sign in too many times. Wait 5 minutes and try again."
        ),
        "unverified_primary_email": _("Confirm your email address first."),
        "same_as_current": _("The new email address must be different from the current one."),
        "rate_limited": _("You have done this too many times. Wait a few minutes and try again."),
    }

    def get_login_redirect_url(self, request: HttpRequest) -> str:
        # An explicit ?next= is honoured by allauth before this is asked.
        return STAFF_HOME_URL if request.user.is_staff else MY_ACCOUNT_URL

    def send_mail(self, template_prefix: str, email: str, context: dict[str, Any]) -> None:
        # Our e-mail templates (templates/account/email/) sign off with the council's name;
        # the subject is rendered without the request, so context processors do not add it.
        # allauth sends during the resident's request, so the e-mail is in their language.
        super().send_mail(
            template_prefix, email, {"council_name": settings.COUNCIL_NAME, **context}
        )
