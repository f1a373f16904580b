"""/my/: the resident's account home, and their contact details (add a mobile number and
confirm it with a texted code, remove an address or number).

Every query goes through request.citizen (resident_required): another resident's contact
point id is simply not found. The one exception is a number that sat on a provisional
profile (made when someone texted the council from it): the resident who typed it in this
session may prove it is theirs, which merges that profile into theirs.
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
from citizenhub.models import Citizen, ContactPoint
from citizenhub.normalise import normalise_identity
from citizenhub.portal.access import resident_required
from citizenhub.portal.forms_account import (
    AddPhoneForm,
    ContactPreferenceForm,
    VerificationCodeForm,
)
from citizenhub.portal.registry import my_sections
from citizenhub.services.accounts import login_email_match_key, resident_contact_point_remove
from citizenhub.services.citizens import citizen_set_preferred_channel, contact_point_add
from citizenhub.services.identity import live_contact_point
from citizenhub.services.verification import check_verification_code, send_verification_code

# Numbers on a provisional profile this session may confirm (see the module docstring).
PENDING_PHONES_KEY = "portal_pending_phone_ids"
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
    return render(
        request,
        "portal/my/contact.html",
        {
            "emails": _live_points(request.citizen, ContactPoint.Kind.EMAIL),
            "phones": _live_points(request.citizen, ContactPoint.Kind.PHONE),
            "login_match_key": login_email_match_key(request.user),
            "proven_levels": PROVEN,
        },
    )


def _pending_ids(request: HttpRequest) -> list[int]:
    return list(request.session.get(PENDING_PHONES_KEY, []))


def _phone_to_confirm(request: HttpRequest, pk: int) -> ContactPoint:
    """The resident's own number, or a number on a provisional profile they typed in this
    session; anything else is 404, like a number that does not exist."""
    live = ContactPoint.objects.filter(pk=pk, kind=ContactPoint.Kind.PHONE, removed_at__isnull=True)
    point = live.filter(citizen=request.citizen).first()
    if point is None and pk in _pending_ids(request):
        point = live.filter(
            citizen__status=Citizen.Status.PROVISIONAL, citizen__user__isnull=True
        ).first()
    if point is None:
        raise Http404
    return point


def _send_code(request: HttpRequest, point: ContactPoint) -> bool:
    try:
        send_verification_code(contact_point=point, language=request.citizen.preferred_language)
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return False
    messages.success(
        request, _("We have sent a code to %(number)s.") % {"number": point.normalised}
    )
    return True


def _claim_phone(request: HttpRequest, form: AddPhoneForm) -> ContactPoint | None:
    """The contact point the typed number should be confirmed on, or None with a form error."""
    value = form.cleaned_data["phone"]
    identity = normalise_identity(ContactPoint.Kind.PHONE, value, field="phone")
    existing = live_contact_point(ContactPoint.Kind.PHONE, identity.match_key)
    if existing is not None and existing.citizen_id != request.citizen.pk:
        owner = existing.citizen
        if owner.status == Citizen.Status.PROVISIONAL and owner.user_id is None:
            request.session[PENDING_PHONES_KEY] = [*_pending_ids(request), existing.pk][-5:]
            return existing
        form.add_error(
            "phone",
            _("This number cannot be added online. If it is yours, contact the council."),
        )
        return None
    if existing is not None:
        return existing
    try:
        return contact_point_add(
            citizen=request.citizen,
            kind=ContactPoint.Kind.PHONE,
            value=value,
            source=ContactPoint.Source.PORTAL,
            verification_level=ContactPoint.VerificationLevel.ASSERTED,
            actor=request.user,
        )
    except (ValidationError, ApplicationError):
        # Claimed by someone else between our look and our insert.
        form.add_error(
            "phone",
            _("This number cannot be added online. If it is yours, contact the council."),
        )
        return None


@resident_required
@require_http_methods(["GET", "POST"])
def add_phone(request: HttpRequest) -> HttpResponse:
    form = AddPhoneForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        point = _claim_phone(request, form)
        if point is not None:
            if point.citizen_id == request.citizen.pk and point.verification_level in PROVEN:
                messages.success(request, _("This number is already confirmed."))
                return redirect("portal:my-contact")
            if _send_code(request, point):
                return redirect("portal:my-contact-verify", pk=point.pk)
            return redirect("portal:my-contact")
    return render(request, "portal/my/contact_add_phone.html", {"form": form})


@resident_required
@require_http_methods(["GET", "POST"])
def verify_phone(request: HttpRequest, pk: int) -> HttpResponse:
    point = _phone_to_confirm(request, pk)
    if point.citizen_id == request.citizen.pk and point.verification_level in PROVEN:
        return redirect("portal:my-contact")
    form = VerificationCodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            check_verification_code(
                contact_point=point,
                code=form.cleaned_data["code"],
                for_citizen=request.citizen,
                by=request.user,
            )
        except ApplicationError as exc:
            form.add_error("code", exc.message)
        else:
            request.session[PENDING_PHONES_KEY] = [
                i for i in _pending_ids(request) if i != point.pk
            ]
            messages.success(request, _("%(number)s is confirmed.") % {"number": point.normalised})
            return redirect("portal:my-contact")
    return render(request, "portal/my/contact_verify.html", {"form": form, "point": point})


@resident_required
@require_POST
def send_code(request: HttpRequest, pk: int) -> HttpResponse:
    point = _phone_to_confirm(request, pk)
    _send_code(request, point)
    return redirect("portal:my-contact-verify", pk=point.pk)


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
