"""The residents' portal pages for the browser tests: every portal route from the URL
configuration, a concrete address for each (or the reason it has none), and a resident with
something on every page (cases, a photo, a conversation, a phone number, consents, staff
views of their record, a data request)."""

from __future__ import annotations

import datetime
import io
from collections.abc import Callable
from dataclasses import dataclass

from allauth.account.forms import default_token_generator
from allauth.account.models import EmailAddress, EmailConfirmationHMAC
from allauth.account.utils import user_pk_to_url_str
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from tests.conftest import make_resident
from tests.factories import StaffUserFactory, UserFactory

PASSWORD = "correct-horse-battery-staple"

# Who a page is for: the browser context it is loaded in.
SIGNED_OUT = "signed-out"
RESIDENT = "resident"
# A resident with an authenticator app and recovery codes: the pages that manage them.
MFA_RESIDENT = "mfa-resident"

# Not portal pages: staff and admin screens, machine endpoints, and Django's own POST-only
# language view (the portal's toggle posts to /language/, which is tested as a journey).
NOT_PORTAL_PREFIXES = (
    "staff/",
    "admin/",
    "api/",
    "hooks/",
    "healthz",
    "readyz",
    "metrics",
    "i18n/",
    "static/",
    "media/",
)


def portal_routes() -> dict[str, str]:
    """{view name with namespaces: route} for every route of the portal."""
    found: dict[str, str] = {}

    def walk(patterns, prefix: str, namespace: str) -> None:
        for entry in patterns:
            route = prefix + str(entry.pattern)
            if isinstance(entry, URLResolver):
                ns = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
                walk(entry.url_patterns, route, ns)
            elif isinstance(entry, URLPattern) and not route.startswith(NOT_PORTAL_PREFIXES):
                assert entry.name, f"portal URL {route!r} has no name"
                found[f"{namespace}{entry.name}"] = route

    walk(get_resolver().url_patterns, "", "")
    return found


# Portal routes that have no page of their own to load, and why.
EXCLUDED: dict[str, str] = {
    "portal:set-language": "POST only (the language toggle): covered by the no-JavaScript journey",
    "portal:attachment": "an image file, not a page (served only to its owner and staff)",
    "portal:my-data-export-json": "a JSON download, not a page",
    "portal:my-contact-send-code": "POST only (send a new code): redirects to the verify page",
    "portal:my-case-update": "POST only: its error state is the case page after an empty "
    "submission (state 'case-update-error'); the no-JavaScript journey adds information",
    "portal:my-case-reopen": "POST only: answers with the case page (reopen form covered on "
    "the resolved case's page)",
    "account_confirm_login_code": "sign-in by e-mailed code is not enabled: the page only "
    "redirects to sign-in",
    "mfa_download_recovery_codes": "a text file download, not a page",
    "mfa_reauthenticate_webauthn": "needs a registered security key (a real WebAuthn "
    "credential made by a device)",
    "mfa_edit_webauthn": "needs a registered security key (a real WebAuthn credential)",
    "mfa_remove_webauthn": "needs a registered security key (a real WebAuthn credential)",
    "mfa_authenticate": "only exists half-way through signing in: checked as a state while "
    "the resident with an authenticator app signs in",
    "portal:report-done": "shows only the report this browser has just made: checked as a "
    "state after a real report",
}


@dataclass(frozen=True)
class PortalPage:
    slug: str  # names the screenshot: portal-<lang>-<slug>
    route: str  # view name
    path: str
    who: str
    status: int = 200


@dataclass
class PortalWorld:
    """A resident with something on every page, and the values that fill URL parameters."""

    resident: object
    mfa_resident: object
    mfa_secret: str
    open_case: object
    resolved_case: object
    erasure_case: object
    thread: object
    phone: object
    pending_phone: object  # a ContactVerification
    report_service: object  # reportable by anyone
    signed_in_only_service: object  # reporting needs an account
    webform_slug: str
    follow_token: str
    preference_token: str  # /preferences/<token>/ (no sign-in)
    unsubscribe_token: str  # /unsubscribe/<token>/ for the newsletter by e-mail
    confirm_token: str  # /subscriptions/confirm/<token>/ of a waiting subscription
    email_confirmation_key: str
    password_reset_path: str


def jpeg_bytes(colour: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), colour).save(buffer, format="JPEG")
    return buffer.getvalue()


def build_world() -> PortalWorld:
    """Needs the phone code sender replaced (the texted_codes fixture): a code is sent."""
    from channels.models import Channel, InboundMessage, OutboundMessage, Thread, WebForm
    from citizenhub import gdpr
    from citizenhub.catalogue import load_service_catalogue
    from citizenhub.models import Service, Team
    from citizenhub.services.attachments import attach_file
    from citizenhub.services.audit import audit_record
    from citizenhub.services.cases import case_transition, open_case
    from citizenhub.services.citizens import contact_point_add
    from citizenhub.services.report_followers import case_request_follow, follow_token_make
    from citizenhub.services.verification import send_verification_code
    from engagement import tokens
    from engagement.models import Topic
    from engagement.purposes import ensure_standard_topics, purpose_for
    from engagement.services import record_consent
    from engagement.subscriptions import confirm_subscription, subscribe

    load_service_catalogue()
    resident = make_resident(email="rhian.evans@example.org")
    citizen = resident.citizen
    pothole = Service.objects.get(code="pothole")
    noise = Service.objects.get(code="noise")

    case = open_case(
        service=pothole,
        title="Pothole outside 4 Mill Lane",
        description="A deep pothole by the bus stop; cyclists swerve round it.",
        citizen=citizen,
        postcode="NM1 4AB",
        location_text="Outside 4 Mill Lane, by the bus stop",
    )
    attach_file(
        case=case,
        uploaded_file=SimpleUploadedFile("pothole.jpg", jpeg_bytes(), content_type="image/jpeg"),
        citizen=citizen,
        user=resident,
    )
    resolved = open_case(
        service=noise,
        title="Loud music at night",
        description="Music from the flat above until 3 am.",
        citizen=citizen,
    )
    resolved = case_transition(
        case=resolved,
        to_status="resolved",
        expected_version=None,
        resolution="We spoke to the tenant, who agreed to keep the volume down after 11 pm.",
    )

    mailbox = Channel.objects.create(kind="email-smtp", slug="contact", name="Contact centre")
    thread = Thread.objects.create(
        channel=mailbox,
        citizen=citizen,
        subject="Bin not emptied",
        case=case,
        last_message_at=timezone.now(),
    )
    InboundMessage.objects.create(
        channel=mailbox,
        thread=thread,
        citizen=citizen,
        external_id="e2e-portal-1",
        raw=b"Subject: Bin not emptied\r\n\r\nOur bin was not emptied.",
        status="processed",
        classification="message",
        subject=thread.subject,
        body_text="Our green bin was not emptied on Tuesday.",
        received_at=timezone.now() - datetime.timedelta(hours=2),
    )
    OutboundMessage.objects.create(
        channel=mailbox,
        thread=thread,
        citizen=citizen,
        to_value=resident.email,
        subject=f"Re: {thread.subject}",
        body_text="Sorry about that: the crew will come back tomorrow.",
        status="sent",
    )

    # A number the council was told about but nobody has confirmed (given over the phone),
    # and one the resident typed in and was texted a code for (not on the profile yet).
    phone = contact_point_add(
        citizen=citizen,
        kind="phone",
        value="07700 900123",
        source="portal",
        verification_level="asserted",
    )
    pending_phone = send_verification_code(
        citizen=citizen, kind="phone", value="07700 900789", language="en"
    )
    newsletter = purpose_for("residents-newsletter", "email")
    record_consent(
        citizen=citizen,
        purpose=newsletter.slug,
        channel=newsletter.channel,
        action="given",
        wording=str(newsletter.wording),
        wording_version=newsletter.wording_version,
        source="portal",
        actor=resident,
    )

    # Topics: the newsletter subscribed and confirmed, climate news waiting for confirmation.
    ensure_standard_topics()
    newsletter_topic = Topic.objects.get(slug="residents-newsletter")
    climate = Topic.objects.create(
        slug="climate-news",
        name="Climate and nature news",
        kind=Topic.Kind.THEME,
        consent_wording="Send me news about climate and nature projects",
        consent_wording_version="1",
    )
    subscription = subscribe(
        citizen=citizen, topic=newsletter_topic, channel="email", source="portal", actor=resident
    )
    confirm_subscription(subscription_id=subscription.pk)
    waiting = subscribe(
        citizen=citizen, topic=climate, channel="email", source="portal", actor=resident
    )

    officer = StaffUserFactory(first_name="Priya", last_name="Shah")
    Team.objects.get(slug="highways").members.add(officer)
    audit_record(action="view", target=citizen, actor=officer, reason="Phone call about a case")
    audit_record(action="view", target=case, actor=officer, citizen=citizen)

    erasure = gdpr.open_data_request(
        citizen=citizen,
        service_code=gdpr.ERASURE_SERVICE_CODE,
        explanation="Please delete my newsletter details.",
        actor=resident,
    ).case

    # Someone reported a pothole without signing in and gave an address to follow it.
    anonymous_case = open_case(
        service=pothole, title="Pothole on Station Road", description="By the level crossing."
    )
    follow_token = follow_token_make(
        case_request_follow(case=anonymous_case, email="passer.by@example.net")
    )

    webforms = Channel.objects.create(kind="webform", slug="web", name="Website forms")
    webform = WebForm(
        channel=webforms,
        slug="tell-us",
        title="Tell us about a problem",
        introduction="Tell us about a problem in your street.",
        fields=[
            {"name": "full_name", "label": "Your name", "type": "text", "required": True},
            {"name": "email", "label": "Email address", "type": "email"},
            {"name": "details", "label": "Describe the problem", "type": "textarea"},
        ],
        success_message="Thank you. We will be in touch within 5 working days.",
    )
    webform.full_clean()
    webform.save()

    mfa_resident = make_resident(email="dafydd.jones@example.org", given_name="Dafydd")
    secret = generate_totp_secret()
    TOTP.activate(mfa_resident, secret)
    RecoveryCodes.activate(mfa_resident)

    # Someone who signed up and has not clicked the link in the e-mail yet.
    newcomer = UserFactory(email="newcomer@example.org")
    address = EmailAddress.objects.create(
        user=newcomer, email=newcomer.email, verified=False, primary=True
    )
    confirmation_key = EmailConfirmationHMAC(address).key
    # Someone who asked for a password reset.
    forgetful = make_resident(email="forgetful@example.org", given_name="Owain")
    reset_path = reverse(
        "account_reset_password_from_key",
        kwargs={
            "uidb36": user_pk_to_url_str(forgetful),
            "key": default_token_generator.make_token(forgetful),
        },
    )

    return PortalWorld(
        resident=resident,
        mfa_resident=mfa_resident,
        mfa_secret=secret,
        open_case=case,
        resolved_case=resolved,
        erasure_case=erasure,
        thread=thread,
        phone=phone,
        pending_phone=pending_phone,
        report_service=pothole,
        signed_in_only_service=noise,
        webform_slug=webform.slug,
        follow_token=follow_token,
        preference_token=tokens.preference_token(citizen.pk),
        unsubscribe_token=tokens.unsubscribe_token(
            tokens.UnsubscribeTarget(citizen.pk, newsletter_topic.pk, "email")
        ),
        confirm_token=tokens.confirm_token(waiting.pk),
        email_confirmation_key=confirmation_key,
        password_reset_path=reset_path,
    )


# For each portal route: the pages (slug, path, who[, status]) it has, from the world.
PageSpec = tuple  # (slug, path, who) or (slug, path, who, status)
ROUTES: dict[str, Callable[[PortalWorld], list[PageSpec]]] = {
    # Public pages
    "portal:home": lambda w: [("home", "/", SIGNED_OUT), ("home-signed-in", "/", RESIDENT)],
    "portal:services": lambda w: [("services", "/services/", SIGNED_OUT)],
    "portal:service": lambda w: [
        ("service", reverse("portal:service", args=[w.report_service.code]), SIGNED_OUT)
    ],
    "portal:report": lambda w: [
        ("report-choose", "/report/", SIGNED_OUT),
        ("report-describe", f"/report/?service={w.report_service.code}", RESIDENT),
        (
            "report-describe-anonymous",
            f"/report/?service={w.report_service.code}",
            SIGNED_OUT,
        ),
        (
            "report-sign-in-needed",
            f"/report/?service={w.signed_in_only_service.code}",
            SIGNED_OUT,
        ),
    ],
    # The link e-mailed to the address given with an anonymous report; and a broken one.
    "portal:report-confirm": lambda w: [
        (
            "report-follow-confirm",
            reverse("portal:report-confirm", args=[w.follow_token]),
            SIGNED_OUT,
        ),
        (
            "report-follow-invalid-link",
            reverse("portal:report-confirm", args=["not-a-real-link"]),
            SIGNED_OUT,
            404,
        ),
    ],
    "channels:webform": lambda w: [
        ("web-form", reverse("channels:webform", args=[w.webform_slug]), SIGNED_OUT)
    ],
    # My account
    "portal:my-account": lambda w: [("my-account", "/my/", RESIDENT)],
    "portal:my-security": lambda w: [("my-security", "/my/security/", RESIDENT)],
    "portal:my-contact": lambda w: [("my-contact", "/my/contact/", RESIDENT)],
    "portal:my-contact-preference": lambda w: [
        ("my-contact-preference", "/my/contact/preference/", RESIDENT)
    ],
    "portal:my-contact-add-phone": lambda w: [
        ("my-contact-add-phone", "/my/contact/phone/add/", RESIDENT)
    ],
    "portal:my-contact-verify": lambda w: [
        (
            "my-contact-verify",
            reverse("portal:my-contact-verify", args=[w.pending_phone.pk]),
            RESIDENT,
        )
    ],
    "portal:my-contact-remove": lambda w: [
        ("my-contact-remove", reverse("portal:my-contact-remove", args=[w.phone.pk]), RESIDENT)
    ],
    "portal:my-cases": lambda w: [("my-cases", "/my/cases/", RESIDENT)],
    "portal:my-case": lambda w: [
        ("my-case-open", reverse("portal:my-case", args=[w.open_case.reference]), RESIDENT),
        ("my-case-resolved", reverse("portal:my-case", args=[w.resolved_case.reference]), RESIDENT),
    ],
    "my-messages:list": lambda w: [("my-messages", "/my/messages/", RESIDENT)],
    "my-messages:thread": lambda w: [
        ("my-messages-thread", reverse("my-messages:thread", args=[w.thread.pk]), RESIDENT)
    ],
    "my-preferences:index": lambda w: [("my-preferences", "/my/preferences/", RESIDENT)],
    # Links in messages, opened without signing in.
    "engagement:preferences": lambda w: [
        (
            "preferences-by-link",
            reverse("engagement:preferences", args=[w.preference_token]),
            SIGNED_OUT,
        ),
        ("preferences-bad-link", reverse("engagement:preferences", args=["nope"]), SIGNED_OUT, 404),
    ],
    "engagement:unsubscribe": lambda w: [
        ("unsubscribe", reverse("engagement:unsubscribe", args=[w.unsubscribe_token]), SIGNED_OUT)
    ],
    "engagement:confirm": lambda w: [
        ("confirm-subscription", reverse("engagement:confirm", args=[w.confirm_token]), SIGNED_OUT)
    ],
    "portal:my-data": lambda w: [("my-data", "/my/data/", RESIDENT)],
    "portal:my-data-export": lambda w: [("my-data-export", "/my/data/export/", RESIDENT)],
    "portal:my-data-views": lambda w: [("my-data-views", "/my/data/views/", RESIDENT)],
    "portal:my-data-request": lambda w: [
        ("my-data-request-access", "/my/data/requests/subject-access/", RESIDENT),
        # An erasure request is already open: the page says so instead of the form.
        ("my-data-request-erasure-open", "/my/data/requests/erasure/", RESIDENT),
    ],
    "portal:my-data-request-received": lambda w: [
        (
            "my-data-request-received",
            reverse("portal:my-data-request-received", args=["erasure", w.erasure_case.reference]),
            RESIDENT,
        )
    ],
    # Accounts (allauth)
    "account_login": lambda w: [("sign-in", "/accounts/login/", SIGNED_OUT)],
    "account_logout": lambda w: [("sign-out", "/accounts/logout/", RESIDENT)],
    "account_inactive": lambda w: [("account-inactive", "/accounts/inactive/", SIGNED_OUT)],
    "account_signup": lambda w: [("sign-up", "/accounts/signup/", SIGNED_OUT)],
    "account_reauthenticate": lambda w: [("reauthenticate", "/accounts/reauthenticate/", RESIDENT)],
    "account_email": lambda w: [("email-addresses", "/accounts/email/", RESIDENT)],
    "account_email_verification_sent": lambda w: [
        ("email-verification-sent", "/accounts/confirm-email/", SIGNED_OUT)
    ],
    "account_confirm_email": lambda w: [
        (
            "email-confirm",
            reverse("account_confirm_email", args=[w.email_confirmation_key]),
            SIGNED_OUT,
        )
    ],
    "account_change_password": lambda w: [
        ("password-change", "/accounts/password/change/", RESIDENT)
    ],
    # The resident has a password: allauth sends them on to "change password".
    "account_set_password": lambda w: [("password-set", "/accounts/password/set/", RESIDENT)],
    "account_reset_password": lambda w: [
        ("password-reset", "/accounts/password/reset/", SIGNED_OUT)
    ],
    "account_reset_password_done": lambda w: [
        ("password-reset-done", "/accounts/password/reset/done/", SIGNED_OUT)
    ],
    "account_reset_password_from_key": lambda w: [
        ("password-reset-from-key", w.password_reset_path, SIGNED_OUT)
    ],
    "account_reset_password_from_key_done": lambda w: [
        ("password-reset-from-key-done", "/accounts/password/reset/key/done/", SIGNED_OUT)
    ],
    # Two-factor authentication (allauth.mfa)
    "mfa_index": lambda w: [
        ("mfa-index", "/accounts/2fa/", RESIDENT),
        ("mfa-index-with-app", "/accounts/2fa/", MFA_RESIDENT),
    ],
    "mfa_reauthenticate": lambda w: [
        ("mfa-reauthenticate", "/accounts/2fa/reauthenticate/", MFA_RESIDENT)
    ],
    "mfa_activate_totp": lambda w: [
        ("mfa-totp-activate", "/accounts/2fa/totp/activate/", RESIDENT)
    ],
    "mfa_deactivate_totp": lambda w: [
        ("mfa-totp-deactivate", "/accounts/2fa/totp/deactivate/", MFA_RESIDENT)
    ],
    "mfa_view_recovery_codes": lambda w: [
        ("mfa-recovery-codes", "/accounts/2fa/recovery-codes/", MFA_RESIDENT)
    ],
    "mfa_generate_recovery_codes": lambda w: [
        ("mfa-recovery-codes-generate", "/accounts/2fa/recovery-codes/generate/", MFA_RESIDENT)
    ],
    "mfa_list_webauthn": lambda w: [("mfa-webauthn", "/accounts/2fa/webauthn/", RESIDENT)],
    "mfa_add_webauthn": lambda w: [("mfa-webauthn-add", "/accounts/2fa/webauthn/add/", RESIDENT)],
}


def portal_pages(world: PortalWorld) -> list[PortalPage]:
    pages = []
    for route, specs in ROUTES.items():
        for spec in specs(world):
            slug, path, who, *status = spec
            pages.append(PortalPage(slug, route, path, who, *(status or [200])))
    return pages
