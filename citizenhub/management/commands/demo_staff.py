"""Create (or reset) the demo council's staff login and print it. Refuses when DEBUG is off."""

from __future__ import annotations

from allauth.account.models import EmailAddress
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from rest_framework.authtoken.models import Token

from citizenhub.demo_casework import demo_officer_logins, ensure_demo_officers
from citizenhub.demo_portal import demo_portal_logins

DEMO_EMAIL = "demo.officer@northmoor.example"
DEMO_PASSWORD = "northmoor-demo-2026"  # noqa: S105 - printed on purpose; DEBUG-only command


class Command(BaseCommand):
    help = "Create the demo staff login (DEBUG only) and print how to sign in."

    def handle(self, *args, **options) -> None:
        if not settings.DEBUG:
            raise CommandError(
                "demo_staff creates a login with a published password; it only runs with DEBUG=1."
            )
        User = get_user_model()
        with transaction.atomic():
            user, _ = User.objects.get_or_create(
                username="demo.officer", defaults={"email": DEMO_EMAIL}
            )
            user.email = DEMO_EMAIL
            user.first_name, user.last_name = "Demo", "Officer"
            user.is_staff = user.is_superuser = user.is_active = True
            user.set_password(DEMO_PASSWORD)
            user.save()
            EmailAddress.objects.update_or_create(
                user=user, email=DEMO_EMAIL, defaults={"verified": True, "primary": True}
            )
            token, _ = Token.objects.get_or_create(user=user)
            # The role logins (caseworker, supervisor, ...) in their groups and teams.
            ensure_demo_officers(password=DEMO_PASSWORD, reset=True)
        if settings.STAFF_MFA_REQUIRED:
            mfa = (
                "  MFA:      required: the first visit to /staff/ asks for an authenticator app "
                "(TOTP)\n"
            )
        else:
            mfa = (
                "  MFA:      relaxed for the demo (STAFF_MFA_REQUIRED=0); in production "
                "STAFF_MFA_REQUIRED is on by default and staff must set up an authenticator "
                "app (TOTP) before using /staff/ or the API in a browser\n"
            )
        self.stdout.write(
            "\nDemo staff login (demo only, never in production):\n"
            f"  username: demo.officer  (or e-mail {DEMO_EMAIL})\n"
            f"  password: {DEMO_PASSWORD}\n"
            f"{mfa}"
            "  staff:    http://127.0.0.1:8000/staff/  (sign in at /accounts/login/)\n"
            "  admin:    http://127.0.0.1:8000/admin/\n"
            "  API:      http://127.0.0.1:8000/api/v1/citizens/  (sign in at /admin/ first)\n"
            f"  token:    curl -H 'Authorization: Token {token.key}' "
            "http://127.0.0.1:8000/api/v1/citizens/\n"
        )
        self.stdout.write(demo_officer_logins())
        self.stdout.write(demo_portal_logins())
