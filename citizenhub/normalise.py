"""Normalising identities (e-mail, phone, social handles, postcodes) for storage and matching.

Every function returns a `NormalisedIdentity` or raises Django's ValidationError keyed by the
field name, so forms, the API and the ingest pipeline report bad input the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

import idna
import phonenumbers
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

MAX_EMAIL_LENGTH = 254


@dataclass(frozen=True)
class NormalisedIdentity:
    normalised: str  # canonical form, used for sending and display
    match_key: str  # what identity matching compares


def _invalid(field: str, message: str, code: str = "invalid") -> ValidationError:
    return ValidationError({field: ValidationError(message, code=code)})


def normalise_email(value: str, *, field: str = "email") -> NormalisedIdentity:
    """Trim, IDNA-encode and lower-case the domain; the match key also lower-cases the local part.

    The local part keeps its case for sending (RFC 5321 lets servers treat it as
    case-sensitive), but no council mailbox provider does, so matching ignores it.
    """
    if not isinstance(value, str):
        raise _invalid(field, "Enter an e-mail address as text.")
    candidate = value.strip()
    if candidate.startswith("mailto:"):
        candidate = candidate[len("mailto:") :]
    if candidate.count("@") != 1:
        raise _invalid(field, f"{value!r} is not an e-mail address: it needs exactly one @.")
    local, domain = candidate.split("@")
    if not local or not domain:
        raise _invalid(field, f"{value!r} is not an e-mail address: a part is missing.")
    try:
        ascii_domain = idna.encode(domain.rstrip("."), uts46=True).decode("ascii").lower()
    except idna.IDNAError:
        raise _invalid(field, f"{value!r} has a domain that is not valid.") from None
    normalised = f"{local}@{ascii_domain}"
    if len(normalised) > MAX_EMAIL_LENGTH:
        raise _invalid(field, f"E-mail addresses can be at most {MAX_EMAIL_LENGTH} characters.")
    try:
        validate_email(normalised)
    except ValidationError:
        raise _invalid(field, f"{value!r} is not a valid e-mail address.") from None
    return NormalisedIdentity(normalised=normalised, match_key=f"{local.lower()}@{ascii_domain}")


_PHONE_JUNK = re.compile(r"[\s().\-/]")
# Ofcom reserves 07700 900000-900999 for drama and testing. libphonenumber calls them invalid,
# but training systems, demos and our tests use them, so they are accepted as mobiles.
_OFCOM_DRAMA_MOBILE = re.compile(r"7700900\d{3}")


def _is_acceptable(number: phonenumbers.PhoneNumber) -> bool:
    if phonenumbers.is_valid_number(number):
        return True
    return number.country_code == 44 and bool(
        _OFCOM_DRAMA_MOBILE.fullmatch(str(number.national_number))
    )


def normalise_phone(
    value: str, *, field: str = "phone", region: str | None = None
) -> NormalisedIdentity:
    """Parse a phone number written in any common form into E.164 ("+447700900123").

    "07700 900123", "+44 7700 900123", "0044 7700 900123" and "447700900123" all give the
    same number: the last form (country code without "+", as SMS providers send it) is
    tried only when the national reading is not a valid number.
    """
    if not isinstance(value, str):
        raise _invalid(field, "Enter a phone number as text.")
    region = region or settings.PHONE_DEFAULT_REGION
    compact = _PHONE_JUNK.sub("", value.strip())
    if not compact or len(compact) > 20 or not re.fullmatch(r"\+?\d+", compact):
        raise _invalid(field, f"{value!r} is not a phone number: use digits, spaces and +.")
    candidates = [compact]
    if compact.isdigit() and not compact.startswith("0"):
        candidates.append(f"+{compact}")
    for candidate in candidates:
        try:
            number = phonenumbers.parse(candidate, region)
        except phonenumbers.NumberParseException:
            continue
        if _is_acceptable(number):
            e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
            return NormalisedIdentity(normalised=e164, match_key=e164)
    raise _invalid(field, f"{value!r} is not a valid phone number.")


_X_HANDLE = re.compile(r"[A-Za-z0-9_]{1,15}")
_FACEBOOK_ID = re.compile(r"\d{5,25}|[A-Za-z0-9.]{5,50}")
_MASTODON_USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,63}")


def normalise_x_handle(value: str, *, field: str = "x") -> NormalisedIdentity:
    """X handles: leading @ optional, case-insensitive, 1-15 letters, digits or underscores."""
    if not isinstance(value, str):
        raise _invalid(field, "Enter an X handle as text.")
    handle = value.strip()
    for prefix in ("https://x.com/", "https://twitter.com/"):
        if handle.lower().startswith(prefix):
            handle = handle[len(prefix) :].strip("/")
    handle = handle.removeprefix("@")
    if not _X_HANDLE.fullmatch(handle):
        raise _invalid(field, f"{value!r} is not an X handle (1-15 letters, digits or _).")
    return NormalisedIdentity(normalised=f"@{handle}", match_key=handle.lower())


def normalise_facebook_id(value: str, *, field: str = "facebook") -> NormalisedIdentity:
    """Facebook page-scoped ids are digits; usernames are letters, digits and dots."""
    if not isinstance(value, str):
        raise _invalid(field, "Enter a Facebook id as text.")
    ident = value.strip().removeprefix("@")
    if not _FACEBOOK_ID.fullmatch(ident):
        raise _invalid(field, f"{value!r} is not a Facebook id or username.")
    return NormalisedIdentity(normalised=ident, match_key=ident.lower())


def normalise_mastodon_handle(
    value: str, *, field: str = "mastodon", default_instance: str | None = None
) -> NormalisedIdentity:
    """Mastodon accounts are user@instance; "@user@instance", profile URLs and a bare "@user"
    (with the council's own instance given) all normalise to "@user@instance"."""
    if not isinstance(value, str):
        raise _invalid(field, "Enter a Mastodon account as text.")
    raw = value.strip()
    if raw.lower().startswith(("https://", "http://")):
        parts = urlsplit(raw)
        path = parts.path.strip("/")
        if not path.startswith("@") or "/" in path:
            raise _invalid(field, f"{value!r} is not a Mastodon profile address.")
        user, instance = path[1:], parts.hostname or ""
    else:
        pieces = raw.removeprefix("@").split("@")
        if len(pieces) == 1:
            user, instance = pieces[0], default_instance or ""
        elif len(pieces) == 2:
            user, instance = pieces
        else:
            raise _invalid(field, f"{value!r} is not a Mastodon account (user@instance).")
    if not instance:
        raise _invalid(field, f"{value!r} needs its instance, e.g. @{user}@mastodon.social.")
    if not _MASTODON_USER.fullmatch(user):
        raise _invalid(field, f"{value!r} has a user name Mastodon does not allow.")
    try:
        ascii_instance = idna.encode(instance.rstrip("."), uts46=True).decode("ascii").lower()
    except idna.IDNAError:
        raise _invalid(field, f"{value!r} has an instance that is not a valid domain.") from None
    if "." not in ascii_instance:
        raise _invalid(field, f"{value!r} has an instance that is not a domain.")
    return NormalisedIdentity(
        normalised=f"@{user}@{ascii_instance}", match_key=f"{user.lower()}@{ascii_instance}"
    )


# The UK postcode formats (A9 9AA, A99 9AA, A9A 9AA, AA9 9AA, AA99 9AA, AA9A 9AA) and the
# special GIR 0AA; letters in the inward code exclude C, I, K, M, O and V.
_POSTCODE = re.compile(
    r"(?P<outward>GIR|[A-PR-UWYZ](?:\d[A-HJKPSTUW\d]?|[A-HK-Y]\d[ABEHMNPRVWXY\d]?))"
    r"(?P<inward>\d[ABD-HJLNP-UW-Z]{2})"
)


def normalise_postcode(value: str, *, field: str = "postcode") -> NormalisedIdentity:
    """UK postcodes in upper case with one space before the inward code ("SW1A 1AA")."""
    if not isinstance(value, str):
        raise _invalid(field, "Enter a postcode as text.")
    compact = re.sub(r"\s+", "", value).upper()
    match = _POSTCODE.fullmatch(compact)
    if not match or (match["outward"] == "GIR" and match["inward"] != "0AA"):
        raise _invalid(field, f"{value!r} is not a UK postcode (for example SW1A 1AA).")
    normalised = f"{match['outward']} {match['inward']}"
    return NormalisedIdentity(normalised=normalised, match_key=normalised)


def normalise_postal_address(value: str, *, field: str = "postal") -> NormalisedIdentity:
    """A one-line postal address must end in a UK postcode; matching ignores case and spacing."""
    if not isinstance(value, str) or not value.strip():
        raise _invalid(field, "Enter a postal address.")
    lines = [part.strip() for part in re.split(r"[,\n]", value) if part.strip()]
    postcode = normalise_postcode(lines[-1], field=field).normalised if lines else ""
    if len(lines) < 2:
        raise _invalid(field, "A postal address needs at least a first line and a postcode.")
    body = ", ".join(lines[:-1])
    key = re.sub(r"[^a-z0-9]+", " ", body.lower()).strip()
    return NormalisedIdentity(normalised=f"{body}, {postcode}", match_key=f"{postcode}|{key}")


def normalise_identity(
    kind: str, value: str, *, field: str | None = None, default_instance: str | None = None
) -> NormalisedIdentity:
    """Normalise a contact point value of the given ContactPoint.Kind."""
    field = field or kind
    if kind == "email":
        return normalise_email(value, field=field)
    if kind == "phone":
        return normalise_phone(value, field=field)
    if kind == "x":
        return normalise_x_handle(value, field=field)
    if kind == "facebook":
        return normalise_facebook_id(value, field=field)
    if kind == "mastodon":
        return normalise_mastodon_handle(value, field=field, default_instance=default_instance)
    if kind == "postal":
        return normalise_postal_address(value, field=field)
    raise _invalid("kind", f"{kind!r} is not a kind of contact point we know.")
