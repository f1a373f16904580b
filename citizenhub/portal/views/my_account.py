"""/my/: the resident's account home, and their contact details (add a mobile number and
confirm it with a texted code, remove an address or number).

Every query goes through request.citizen (resident_required): another resident's contact
point or pending number is simply not found. A typed number is only a pending claim
(ContactVerification) until its code comes back; see citizenhub.services.verification.
Adding a number answers the same whoever holds it ("we have sent a code ... if it can
receive texts"), so the page never tells whether the council knows a number: a number on
another real profile is refused only after the code was typed, that is, only to someone
who holds the phone.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods, require_POST

from citizenhub.errors import ApplicationError
from citizenhub.models import Citizen, ContactPoint, ContactVerification
from citizenhub.normalise import normalise_identity
from citizenhub.portal.access import resident_required
from citizenhub.portal.forms_account import (
    AddPhoneForm,
    ContactPreferenceForm,
    VerificationCodeForm,
    is_uk_mobile,
)
from citizenhub.portal.registry import my_sections
from citizenhub.services.accounts import login_email_match_key, resident_contact_point_remove
from citizenhub.services.citizens import citizen_set_preferred_channel
from citizenhub.services.verification import (
    check_verification_code,
    send_verification_code,
    too_many_wrong_codes_message,
    wrong_codes_blocked_today,
)

PROVEN = (ContactPoint.VerificationLevel.CONFIRMED, ContactPoint.VerificationLevel.STAFF_CHECKED)


@dataclass(frozen=True)
class HomeSection:
    order: int
    title: str
    description: str
    url: str


# The core's own sections of /my/, sorted among those the apps register.
_CORE_SECTIONS = (
    (
        10,
        gettext_lazy("My cases"),
        gettext_lazy(
            "Problems you reported and requests you made: where they are, and what happened."
        ),
        "/my/cases/",
    ),
    (
        50,
        gettext_lazy("Contact details"),
        gettext_lazy("Your email addresses and phone numbers, and whether they are confirmed."),
        "portal:my-contact",
    ),
    (
        80,
        gettext_lazy("My data"),
        gettext_lazy(
            "Download what the council holds about you, see who looked at your record, "
            "or ask us to delete it."
        ),
        "/my/data/",
    ),
    (
        90,
        gettext_lazy("Sign-in and security"),
        gettext_lazy(
            "Change your email address or password, and set up two-factor authentication."
        ),
        "portal:my-security",
    ),
)


def _url(name_or_path: str) -> str | None:
    if name_or_path.startswith("/"):
        return name_or_path
    try:
        return reverse(name_or_path)
    except NoReverseMatch:
        return None  # a section whose app is not installed


def _home_sections() -> list[HomeSection]:
    sections = [
        HomeSection(order, str(title), str(description), url)
        for order, title, description, target in _CORE_SECTIONS
        if (url := _url(target))
    ]
    sections += [
        HomeSection(section.order, str(section.title), str(section.description), url)
        for section in my_sections()
        if (url := _url(section.url_name))
    ]
    return sorted(sections, key=lambda section: section.order)


@resident_required
def home(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "portal/my/home.html",
        {"citizen": request.citizen, "sections": _home_sections()},
    )


@resident_required
def security(request: HttpRequest) -> HttpResponse:
    return render(request, "portal/my/security.html", {"citizen": request.citizen})


# --- Contact details ----------------------------------------------------------------------


def _live_points(citizen: Citizen, kind: str) -> list[ContactPoint]:
    return list(
        citizen.contact_points.filter(kind=kind, removed_at__isnull=True).order_by(
            "-is_primary", "created_at", "pk"
        )
    )


@resident_required
def contact(request: HttpRequest) -> HttpResponse:
    phones = _live_points(request.citizen, ContactPoint.Kind.PHONE)
    return render(
        request,
        "portal/my/contact.html",
        {
            "emails": _live_points(request.citizen, ContactPoint.Kind.EMAIL),
            "phones": phones,
            "login_match_key": login_email_match_key(request.user),
            "proven_levels": PROVEN,
            # A number on the profile but not proven (given to staff, or one that texted
            # us) is confirmed like a new one: a code to it from the add page.
            "confirmable_ids": {
                point.pk
                for point in phones
                if point.verification_level not in PROVEN and is_uk_mobile(point.normalised)
            },
        },
    )


def _pending_verification(request: HttpRequest, verification_id: int) -> ContactVerification:
    """The resident's own pending number; anyone else's is 404, like one that does not exist."""
    verification = (
        request.citizen.contact_verifications.filter(pk=verification_id)
        .select_related("citizen")
        .first()
    )
    if verification is None:
        raise Http404
    return verification


def _send_code(request: HttpRequest, *, value: str) -> ContactVerification | None:
    """Send a code for `value`; the same answer whoever holds the number (see the module)."""
    try:
        verification = send_verification_code(
            citizen=request.citizen,
            kind=ContactPoint.Kind.PHONE,
            value=value,
            language=request.citizen.preferred_language,
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return None
    messages.success(
        request,
        _("We have sent a code to %(number)s if it can receive texts.")
        % {"number": verification.normalised},
    )
    return verification


def _already_confirmed(citizen: Citizen, value: str) -> bool:
    """The number is confirmed on the resident's own profile (their data: no leak)."""
    identity = normalise_identity(ContactPoint.Kind.PHONE, value, field="phone")
    return citizen.contact_points.filter(
        kind=ContactPoint.Kind.PHONE,
        match_key=identity.match_key,
        removed_at__isnull=True,
        verification_level__in=PROVEN,
    ).exists()


@resident_required
@require_http_methods(["GET", "POST"])
def add_phone(request: HttpRequest) -> HttpResponse:
    """Type a number, get a code. Nothing is saved on the profile until the code comes back,
    and the answer is the same whether the number is unknown, on a provisional profile or
    on someone else's: only the holder of the phone can go further."""
    form = AddPhoneForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        value = form.cleaned_data["phone"]
        if _already_confirmed(request.citizen, value):
            messages.success(request, _("This number is already confirmed."))
            return redirect("portal:my-contact")
        verification = _send_code(request, value=value)
        if verification is not None:
            return redirect("portal:my-contact-verify", verification_id=verification.pk)
        return redirect("portal:my-contact")
    return render(request, "portal/my/contact_add_phone.html", {"form": form})


@resident_required
@require_http_methods(["GET", "POST"])
def verify_phone(request: HttpRequest, verification_id: int) -> HttpResponse:
    verification = _pending_verification(request, verification_id)
    if _already_confirmed(request.citizen, verification.value):
        return redirect("portal:my-contact")  # done already (the back button, say)
    form = VerificationCodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            check_verification_code(
                verification=verification, code=form.cleaned_data["code"], by=request.user
            )
        except ApplicationError as exc:
            form.add_error("code", exc.message)
        else:
            messages.success(
                request, _("%(number)s is confirmed.") % {"number": verification.normalised}
            )
            return redirect("portal:my-contact")
    blocked_today = wrong_codes_blocked_today(request.citizen)
    return render(
        request,
        "portal/my/contact_verify.html",
        {
            "form": form,
            "verification": verification,
            # Too many wrong codes today: say so instead of offering the form again.
            "blocked_message": too_many_wrong_codes_message() if blocked_today else "",
        },
    )


@resident_required
@require_POST
def send_code(request: HttpRequest, verification_id: int) -> HttpResponse:
    """A new code for a pending number: the old page's id, a new code's page."""
    verification = _pending_verification(request, verification_id)
    renewed = _send_code(request, value=verification.value)
    return redirect("portal:my-contact-verify", verification_id=(renewed or verification).pk)


@resident_required
@require_http_methods(["GET", "POST"])
def remove(request: HttpRequest, pk: int) -> HttpResponse:
    point = request.citizen.contact_points.filter(
        pk=pk, removed_at__isnull=True, kind__in=(ContactPoint.Kind.EMAIL, ContactPoint.Kind.PHONE)
    ).first()
    if point is None:
        raise Http404
    is_login_email = (
        point.kind == ContactPoint.Kind.EMAIL
        and point.match_key == login_email_match_key(request.user)
    )
    error = ""
    if request.method == "POST":
        try:
            resident_contact_point_remove(
                citizen=request.citizen, contact_point=point, by=request.user
            )
        except ApplicationError as exc:
            error = exc.message
        else:
            messages.success(
                request, _("%(value)s has been removed.") % {"value": point.normalised}
            )
            return redirect("portal:my-contact")
    return render(
        request,
        "portal/my/contact_remove.html",
        {"point": point, "is_login_email": is_login_email, "error": error},
        status=400 if error else 200,
    )


@resident_required
def contact_preference(request: HttpRequest) -> HttpResponse:
    """Choose e-mail or text message for the council's messages about requests."""
    citizen = request.citizen
    if request.method == "POST":
        form = ContactPreferenceForm(request.POST)
        if form.is_valid():
            try:
                citizen_set_preferred_channel(
                    citizen=citizen,
                    channel=form.cleaned_data["preferred_channel"],
                    actor=request.user,
                )
            except ValidationError as exc:
                for message in exc.message_dict.get("preferred_channel", exc.messages):
                    form.add_error("preferred_channel", message)
            else:
                messages.success(request, _("We will contact you the way you chose."))
                return redirect("portal:my-contact")
    else:
        form = ContactPreferenceForm(
            initial={"preferred_channel": citizen.preferred_channel or "email"}
        )
    return render(request, "portal/my/contact_preference.html", {"form": form})
