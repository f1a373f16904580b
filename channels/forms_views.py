"""Council web forms at /forms/<slug>/: shown, checked, and stored on the ingest pipeline.

A submission is stored like any provider's message (`store_raw_messages`, the JSON kept
raw); the pipeline then resolves the e-mail address or phone number to a citizen and
threads it: a new thread, unless it quotes a case reference (CH-1234) of a thread the
sender takes part in (channels.adapters.webform, channels.services.threading).

What a POST goes through, in order:
1. The Origin header, when a browser sends one, must be this site or one of the form's
   `allowed_origins` (403 otherwise).
2. Size: a body larger than DATA_UPLOAD_MAX_MEMORY_SIZE is refused with a 413 page before
   it is read (or when Django's parser finds it too large); a body that is not an HTML form
   post, or cannot be read, is a 400 page saying why.
3. Per-IP rate limit (`rate_limit_per_hour`, per form, per clock hour) in the Django
   cache, keyed by a salted hash of the address (an IPv6 address by its /64): over it, a
   429 page with Retry-After. Other addresses are unaffected. Counted are stored
   submissions and honeypot hits; a cache outage lets submissions through (logged).
4. The signed token the form page carries (below): missing, forged or older than 24 hours,
   the form is shown again with the answers and a fresh token, status 400, nothing stored.
   A post without a token from an allowed website (a plain HTML form on the council's own
   site, see README "Embedding a form") gets the same page as a check-your-answers step.
5. The honeypot, a hidden field people never see: filled in, the normal thank-you page,
   nothing stored.
6. Each answer is checked (required, length, e-mail, UK phone number in any format, UK
   postcode, choices); errors re-render the form with a summary linking to the fields.
7. Stored with external id "webform:<nonce from the token>": the same page posted twice
   (double click, browser retry) is one message. Sent again with different answers (back
   button, edit, send), the form comes back with a fresh token and says so, rather than
   dropping the new answers as a duplicate.

Why this one view is exempt from Django's CSRF protection, and why that is safe:
CSRF protection stops another website from making a visitor's browser act with the
visitor's own credentials, their session cookie. This form has no credentials to abuse: it
is anonymous, it never reads the session or the signed-in user and it sets no cookie, so a
forged cross-site post achieves nothing its author could not do by filling in the form
themselves. Django's check would, on the other hand, break embedding: it needs a CSRF
cookie, which browsers withhold from iframes on other sites (third-party cookies). The
signed token takes the CSRF token's place where it matters here: every post needs a token
this server issued less than 24 hours ago, and its nonce makes each form page storable
once. The Origin check keeps websites other than the council's from making their visitors'
browsers post the form (spam sent through visitors' addresses, past the per-IP limit).
Only this view is exempt: CsrfViewMiddleware still guards every other POST.

The form page is `never_cache`d: a shared cache serving one page (one token) to everyone
would make every submission after the first a "duplicate".
"""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass, field

from django.conf import settings
from django.core import signing
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, ValidationError
from django.db import transaction
from django.http import HttpRequest, HttpResponse, QueryDict, UnreadablePostError
from django.http.multipartparser import MultiPartParserError
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.clickjacking import xframe_options_exempt
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from channels.adapters import RawInbound
from channels.models import (
    WEBFORM_HONEYPOT_FIELD,
    WEBFORM_TOKEN_FIELD,
    InboundMessage,
    WebForm,
    WebFormField,
    normalise_origin,
)
from channels.services.ingest import store_raw_messages
from citizenhub.normalise import normalise_email, normalise_phone, normalise_postcode
from citizenhub.ratelimit import HourlyLimit, address_hash, client_address

logger = logging.getLogger(__name__)

TOKEN_MAX_AGE_SECONDS = 24 * 60 * 60
_SIGNER = signing.TimestampSigner(salt="channels.webform.token")
_FORM_CONTENT_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
_TICKED = frozenset({"yes", "on", "true", "1"})
_AUTOCOMPLETE = {"email": "email", "phone": "tel", "postcode": "postal-code"}
_NAME_AUTOCOMPLETE = {"name": "name", "full_name": "name"}


# --- Tokens, addresses and the rate limit ---------------------------------------------------


def _new_token(webform: WebForm) -> str:
    return _SIGNER.sign(f"{webform.pk}:{secrets.token_urlsafe(16)}")


class _TokenProblem(Exception):
    pass


def _nonce(webform: WebForm, token: str) -> str:
    """The token's nonce, or _TokenProblem saying, for the resident, what is wrong."""
    if not token:
        raise _TokenProblem(
            "We could not send your form because it did not come from our form page. "
            "Check your answers, then send the form again."
        )
    try:
        value = _SIGNER.unsign(token, max_age=TOKEN_MAX_AGE_SECONDS)
    except signing.SignatureExpired:
        raise _TokenProblem(
            "This form was open for more than 24 hours, so for your security it was not "
            "sent. Check your answers, then send the form again."
        ) from None
    except signing.BadSignature:
        value = ""
    form_id, _, nonce = value.partition(":")
    if form_id != str(webform.pk) or not nonce:
        raise _TokenProblem(
            "We could not send your form because the page was not valid. Check your "
            "answers, then send the form again."
        )
    return nonce


def _rate_limit(webform: WebForm) -> HourlyLimit:
    return HourlyLimit(scope=f"channels:webform:{webform.pk}", per_hour=webform.rate_limit_per_hour)


# --- Answers -------------------------------------------------------------------------------


@dataclass
class FieldView:
    """One question as the template shows it: value, hint, error and their ids."""

    definition: WebFormField
    value: str = ""
    checked: bool = False
    error: str = ""
    choices: list[tuple[str, bool]] = field(default_factory=list)

    @property
    def input_id(self) -> str:
        return f"field-{self.definition.name}"

    @property
    def hint_id(self) -> str:
        return f"{self.input_id}-hint"

    @property
    def error_id(self) -> str:
        return f"{self.input_id}-error"

    @property
    def describedby(self) -> str:
        ids = [self.hint_id] if self.definition.help_text else []
        if self.error:
            ids.append(self.error_id)
        return " ".join(ids)

    @property
    def autocomplete(self) -> str:
        name = self.definition.name
        return _AUTOCOMPLETE.get(self.definition.type) or _NAME_AUTOCOMPLETE.get(name, "")


def _one_line(value: str) -> str:
    return " ".join(value.split())


def _multi_line(value: str) -> str:
    return value.replace("\r\n", "\n").replace("\r", "\n").strip()


def _check_answer(definition: WebFormField, raw: str) -> tuple[object, str]:
    """(value to store, error message or "") for one answer."""
    label = definition.label
    if definition.type == "checkbox":
        ticked = raw.strip().lower() in _TICKED
        if definition.required and not ticked:
            return False, f"Select “{label}” to continue"
        return ticked, ""
    text = _multi_line(raw) if definition.type == "textarea" else _one_line(raw)
    if "\x00" in text:
        return text, f"“{label}” contains a character we cannot accept; remove it"
    if not text:
        if not definition.required:
            return "", ""
        return "", {
            "email": "Enter an email address",
            "phone": "Enter a phone number",
            "postcode": "Enter a postcode",
            "select": f"Select an answer for “{label}”",
        }.get(definition.type, f"Enter an answer for “{label}”")
    if definition.max_length and len(text) > definition.max_length:
        return text, f"“{label}” must be {definition.max_length:,} characters or fewer"
    try:
        if definition.type == "email":
            normalise_email(text)
        elif definition.type == "phone":
            normalise_phone(text)
        elif definition.type == "postcode":
            text = normalise_postcode(text).normalised
    except ValidationError:
        return text, {
            "email": "Enter an email address in the correct format, like name@example.com",
            "phone": "Enter a UK phone number, like 01632 960 001 or 07700 900 982, "
            "or an international number starting with +",
            "postcode": "Enter a full UK postcode, like SW1A 1AA",
        }[definition.type]
    if definition.type == "select" and text not in definition.choices:
        return text, f"Select one of the answers for “{label}”"
    return text, ""


def check_answers(webform: WebForm, data: QueryDict) -> tuple[dict[str, object], list[FieldView]]:
    """Check every answer; returns the values to store and the fields with their errors."""
    values: dict[str, object] = {}
    views: list[FieldView] = []
    for definition in webform.field_definitions():
        raw = data.get(definition.name, "")
        value, error = _check_answer(definition, raw if isinstance(raw, str) else "")
        values[definition.name] = value
        views.append(_field_view(definition, value, error))
    # Optional e-mail and phone fields, both left empty: we would have no one to reply to.
    contact = [v for v in views if v.definition.type in ("email", "phone")]
    if contact and not any(values[v.definition.name] or v.error for v in contact):
        contact[0].error = "Enter an email address or a phone number, so that we can reply"
    return values, views


def _field_view(definition: WebFormField, value: object = "", error: str = "") -> FieldView:
    view = FieldView(definition, error=error)
    if definition.type == "checkbox":
        view.checked = bool(value)
    else:
        view.value = str(value or "")
    if definition.type == "select":
        view.choices = [(choice, choice == view.value) for choice in definition.choices]
    return view


def _submission(webform: WebForm, values: dict[str, object], ip_hash: str, origin: str) -> bytes:
    payload = {
        "form": webform.slug,
        "title": webform.title,
        "fields": values,
        "definition": [
            {"name": d.name, "label": d.label, "type": d.type} for d in webform.field_definitions()
        ],
        "submitted_at": timezone.now().isoformat(),
        "ip_hash": ip_hash,
        "origin": origin,
    }
    # Emoji and right-to-left text are kept as the resident wrote them, in UTF-8.
    return json.dumps(payload, ensure_ascii=False).encode("utf-8")


# --- Pages -----------------------------------------------------------------------------------


def _allowed_origins(webform: WebForm) -> list[str]:
    # Checked when the form is saved in the admin; checked again here because whatever ends
    # up in this list is written into a security header.
    origins = webform.allowed_origins if isinstance(webform.allowed_origins, list) else []
    return [o for o in map(normalise_origin, origins) if o]


def _frame_ancestors(webform: WebForm) -> str:
    return " ".join(["'self'", *_allowed_origins(webform)])


def _page(
    request: HttpRequest,
    webform: WebForm,
    template: str,
    context: dict,
    status: int = 200,
) -> HttpResponse:
    context = {
        "council_name": settings.COUNCIL_NAME,
        "webform": webform,
        "form_url": reverse("channels:webform", args=[webform.slug]),
        **context,
    }
    response = render(request, template, context, status=status)
    # Embeddable only by the council's own websites; X-Frame-Options would forbid all.
    response["Content-Security-Policy"] = f"frame-ancestors {_frame_ancestors(webform)}"
    return response


def _form_page(
    request: HttpRequest,
    webform: WebForm,
    fields: list[FieldView] | None = None,
    *,
    notice: str = "",
    status: int = 200,
) -> HttpResponse:
    if fields is None:
        fields = [_field_view(d) for d in webform.field_definitions()]
    errors = [f for f in fields if f.error]
    context = {
        "fields": fields,
        "errors": errors,
        "notice": notice,
        "token": _new_token(webform),
        "token_field": WEBFORM_TOKEN_FIELD,
        "honeypot_field": WEBFORM_HONEYPOT_FIELD,
    }
    return _page(request, webform, "channels/webform.html", context, status)


def _problem(
    request: HttpRequest, webform: WebForm, status: int, title: str, message: str
) -> HttpResponse:
    context = {"problem_title": title, "problem": message}
    return _page(request, webform, "channels/webform_done.html", context, status)


def _thank_you(request: HttpRequest, webform: WebForm) -> HttpResponse:
    return _page(request, webform, "channels/webform_done.html", {})


def _origin_check(request: HttpRequest, webform: WebForm) -> tuple[bool, bool]:
    """(allowed, cross_site) for the request's Origin header."""
    origin = request.META.get("HTTP_ORIGIN")
    if origin is None:
        # Not sent by older browsers on same-origin posts, nor by non-browser clients, which
        # an Origin check could not stop anyway.
        return True, False
    origin = origin.strip().lower()
    if origin == f"{request.scheme}://{request.get_host()}".lower():
        return True, False
    return origin in _allowed_origins(webform), True


def _read_form(request: HttpRequest) -> QueryDict | tuple[int, str, str]:
    """The posted form, or (status, title, message) saying why it cannot be read."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    too_large = (
        413,
        "Your form is too large to send",
        f"Forms can be at most {limit // 1024 if limit else 0:,} KB. Shorten your answers "
        "and send the form again.",
    )
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 400, "Your form could not be read", "The request's Content-Length is not a number."
    if limit is not None and declared > limit:
        return too_large
    if request.content_type not in _FORM_CONTENT_TYPES:
        return (
            400,
            "Your form could not be read",
            "Send the form as an HTML form post "
            "(application/x-www-form-urlencoded or multipart/form-data).",
        )
    try:
        return request.POST
    except RequestDataTooBig:
        return too_large
    except TooManyFieldsSent:
        return 400, "Your form could not be read", "The form sent too many fields."
    except (MultiPartParserError, UnreadablePostError) as exc:
        logger.info("web form post unreadable: %s", exc)
        return 400, "Your form could not be read", "The form's contents were malformed."


def _store(webform: WebForm, nonce: str, raw: bytes) -> bool:
    """Store the submission; True when it is new (False: this page was sent before)."""
    committed: list[bool] = []
    stored = False
    try:
        with transaction.atomic():
            # Registered first, so it runs before the ingest enqueue can fail after commit.
            transaction.on_commit(lambda: committed.append(True))
            batch = store_raw_messages(
                channel=webform.channel,
                raws=[
                    RawInbound(
                        external_id=f"webform:{nonce}",
                        raw=raw,
                        content_type="application/json",
                    )
                ],
            )
            stored = bool(batch.new_ids)
    except Exception:
        if not committed:
            raise  # nothing kept: an outage becomes the 503 page, anything else a 500
        # Stored; only queueing it failed, and the stale-message sweep processes it.
        logger.exception("web form %s: stored, but queueing for processing failed", webform.slug)
    return stored


def _stored_answers(webform: WebForm, nonce: str) -> object:
    raw = (
        InboundMessage.objects.filter(channel=webform.channel, external_id=f"webform:{nonce}")
        .values_list("raw", flat=True)
        .first()
    )
    try:
        return json.loads(bytes(raw))["fields"] if raw is not None else None
    except (ValueError, KeyError, TypeError):
        return None


@csrf_exempt  # Safe here, and only here: see the module docstring.
@xframe_options_exempt
@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def public_form(request: HttpRequest, slug: str) -> HttpResponse:
    webform = get_object_or_404(
        WebForm.objects.select_related("channel"), slug=slug, enabled=True, channel__enabled=True
    )
    if request.method != "POST":
        return _form_page(request, webform)

    allowed, cross_site = _origin_check(request, webform)
    if not allowed:
        return _problem(
            request,
            webform,
            403,
            "This form cannot be sent from that website",
            "Use the form on the council's own website, or open it here and send it again.",
        )
    data = _read_form(request)
    if not isinstance(data, QueryDict):
        return _problem(request, webform, *data)

    ip_hash = address_hash(client_address(request))
    retry_after = _rate_limit(webform).retry_after(ip_hash)
    if retry_after is not None:
        logger.info("web form %s: rate limit reached for %s", webform.slug, ip_hash)
        minutes = max(1, round(retry_after / 60))
        response = _problem(
            request,
            webform,
            429,
            "Too many forms sent",
            f"We have received a lot of forms from your connection in the last hour. Try "
            f"again in {minutes} minute{'s' if minutes != 1 else ''}.",
        )
        response["Retry-After"] = str(retry_after)
        return response

    values, fields = check_answers(webform, data)
    token = data.get(WEBFORM_TOKEN_FIELD, "")
    try:
        nonce = _nonce(webform, token)
    except _TokenProblem as problem:
        if not token and cross_site:
            # A plain HTML form on the council's website: show the answers to send from here.
            return _form_page(
                request, webform, fields, notice="Check your answers, then send the form."
            )
        return _form_page(request, webform, fields, notice=str(problem), status=400)

    if data.get(WEBFORM_HONEYPOT_FIELD, ""):
        logger.info("web form %s: honeypot filled by %s; not stored", webform.slug, ip_hash)
        _rate_limit(webform).count(ip_hash)
        return _thank_you(request, webform)
    if any(f.error for f in fields):
        return _form_page(request, webform, fields)

    origin = request.META.get("HTTP_ORIGIN", "") if cross_site else ""
    if _store(webform, nonce, _submission(webform, values, ip_hash, origin)):
        _rate_limit(webform).count(ip_hash)
    elif _stored_answers(webform, nonce) != values:
        # This page was sent before with other answers (back button, edit, send again):
        # the token is spent, but the new answers must not be dropped without a word.
        return _form_page(
            request,
            webform,
            fields,
            notice="This form was already sent with different answers. To send these "
            "answers too, check them, then send the form again.",
        )
    return _thank_you(request, webform)
