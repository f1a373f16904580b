"""The demo council's portal accounts: residents of the demo who have signed up, so the
residents' portal can be tried at once with cases, messages and history of their own.

Each account is linked to an existing demo resident, chosen by a fixed rule (the most cases,
then the oldest profile) among those who read the account's language, so a second run finds
the same people. One of them reads Welsh, to show the portal and messages in Cymraeg.
"""

from __future__ import annotations

from dataclasses import dataclass

from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.db.models import Count, Q

from citizenhub.demo_casework import DEMO_PASSWORD
from citizenhub.models import Citizen, ContactPoint


@dataclass(frozen=True)
class DemoPortalAccount:
    username: str
    language: str
    description: str


DEMO_PORTAL_ACCOUNTS = (
    DemoPortalAccount("demo.resident", "en", "resident with open and past cases"),
    DemoPortalAccount("demo.preswylydd", "cy", "resident who reads Welsh"),
)


def _candidate(language: str) -> Citizen | None:
    """The demo resident with an e-mail address, no account yet and the most cases, among
    those who read `language`."""
    return (
        Citizen.objects.filter(
            status=Citizen.Status.ACTIVE, user__isnull=True, preferred_language=language
        )
        .filter(contact_points__kind=ContactPoint.Kind.EMAIL, contact_points__removed_at=None)
        .annotate(case_count=Count("cases", filter=Q(cases__anonymised_at=None), distinct=True))
        .order_by("-case_count", "created_at", "pk")
        .first()
    )


def ensure_demo_portal_accounts(*, password: str = DEMO_PASSWORD) -> int:
    """Give the demo's portal residents their accounts (only those missing); returns how
    many were created."""
    User = get_user_model()
    existing = set(
        User.objects.filter(username__in=[a.username for a in DEMO_PORTAL_ACCOUNTS]).values_list(
            "username", flat=True
        )
    )
    missing = [account for account in DEMO_PORTAL_ACCOUNTS if account.username not in existing]
    if not missing:
        return 0
    hashed = make_password(password)
    created = 0
    for account in missing:
        citizen = _candidate(account.language)
        if citizen is None:
            continue
        email_point = (
            citizen.contact_points.filter(kind=ContactPoint.Kind.EMAIL, removed_at=None)
            .order_by("-is_primary", "pk")
            .first()
        )
        # allauth compares sign-in addresses lower-cased.
        email = email_point.normalised.lower()
        user = User.objects.create(
            username=account.username,
            email=email,
            first_name=citizen.given_name,
            last_name=citizen.family_name,
            password=hashed,
        )
        EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
        citizen.user = user
        citizen.save(update_fields=["user", "updated_at"])
        email_point.verification_level = ContactPoint.VerificationLevel.CONFIRMED
        email_point.save(update_fields=["verification_level"])
        created += 1
    return created


def demo_portal_logins() -> str:
    """The residents' portal logins, for demo_staff to print."""
    User = get_user_model()
    users = {
        user.username: user
        for user in User.objects.filter(username__in=[a.username for a in DEMO_PORTAL_ACCOUNTS])
    }
    lines = ["\nResidents' portal logins (same password; sign in at /accounts/login/):"]
    for account in DEMO_PORTAL_ACCOUNTS:
        user = users.get(account.username)
        if user is not None:
            lines.append(f"  {user.email}  {account.description}")
    return "\n".join(lines) + "\n"
