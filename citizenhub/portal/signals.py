"""allauth's signals, turned into the portal's account services: a verified e-mail address
gives the account its resident profile (or adds the address to it)."""

from __future__ import annotations

import logging
from typing import Any

from allauth.account.signals import email_confirmed
from django.dispatch import receiver
from django.http import HttpRequest

from citizenhub.services.accounts import account_email_confirmed

logger = logging.getLogger(__name__)


@receiver(email_confirmed, dispatch_uid="citizenhub.portal.email_confirmed")
def link_profile_on_email_confirmed(
    sender: Any, request: HttpRequest | None, email_address: Any, **kwargs: Any
) -> None:
    user = email_address.user
    # Officers' accounts are for staff work; they get no resident profile by signing in.
    if user.is_staff:
        return
    language = getattr(request, "LANGUAGE_CODE", "") or "en"
    account_email_confirmed(user=user, email=email_address.email, language=language[:2])
