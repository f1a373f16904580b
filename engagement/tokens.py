"""Signed, expiring tokens in the links of every message the engagement app sends: the
no-login preference page (/preferences/<token>/), one-click unsubscribe
(/unsubscribe/<token>/, RFC 8058) and subscription confirmation (/subscriptions/confirm/).

Tokens are Django signatures (HMAC with SECRET_KEY and a salt per purpose) carrying ids
only, never an address: links end up in logs and forwarded e-mails. A forged, expired or
unknown token is a clear 4xx page, never a 500 (the views check with the *_from_token
functions, which raise BadToken).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.core import signing
from django.urls import reverse

PREFERENCES_SALT = "engagement.preferences"
UNSUBSCRIBE_SALT = "engagement.unsubscribe"
CONFIRM_SALT = "engagement.subscription.confirm"


class BadToken(Exception):
    """The token is forged, damaged or expired."""

    def __init__(self, expired: bool = False) -> None:
        super().__init__("expired" if expired else "invalid")
        self.expired = expired


@dataclass(frozen=True)
class UnsubscribeTarget:
    citizen_id: int
    topic_id: int | None  # None: every non-essential message of the channel
    channel: str
    campaign_id: int | None = None


def _loads(token: str, *, salt: str, max_age: int) -> object:
    try:
        return signing.loads(token, salt=salt, max_age=max_age)
    except signing.SignatureExpired as exc:
        raise BadToken(expired=True) from exc
    except signing.BadSignature as exc:
        raise BadToken() from exc


def preference_token(citizen_id: int) -> str:
    return signing.dumps({"c": citizen_id}, salt=PREFERENCES_SALT, compress=True)


def preference_citizen_id(token: str) -> int:
    data = _loads(token, salt=PREFERENCES_SALT, max_age=settings.ENGAGEMENT_LINK_MAX_AGE)
    if not isinstance(data, dict) or not isinstance(data.get("c"), int):
        raise BadToken()
    return data["c"]


def unsubscribe_token(target: UnsubscribeTarget) -> str:
    payload = {"c": target.citizen_id, "t": target.topic_id, "ch": target.channel}
    if target.campaign_id is not None:
        payload["k"] = target.campaign_id
    return signing.dumps(payload, salt=UNSUBSCRIBE_SALT, compress=True)


def unsubscribe_target(token: str) -> UnsubscribeTarget:
    data = _loads(token, salt=UNSUBSCRIBE_SALT, max_age=settings.ENGAGEMENT_LINK_MAX_AGE)
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("c"), int)
        or not isinstance(data.get("ch"), str)
        or not (data.get("t") is None or isinstance(data.get("t"), int))
        or not (data.get("k") is None or isinstance(data.get("k"), int))
    ):
        raise BadToken()
    return UnsubscribeTarget(data["c"], data.get("t"), data["ch"], data.get("k"))


def confirm_token(subscription_id: int) -> str:
    return signing.dumps({"s": subscription_id}, salt=CONFIRM_SALT, compress=True)


def confirm_subscription_id(token: str) -> int:
    data = _loads(token, salt=CONFIRM_SALT, max_age=settings.ENGAGEMENT_CONFIRMATION_MAX_AGE)
    if not isinstance(data, dict) or not isinstance(data.get("s"), int):
        raise BadToken()
    return data["s"]


def absolute(path: str) -> str:
    """A link for a message: the site's public address (SITE_URL) and the path."""
    return f"{settings.SITE_URL.rstrip('/')}{path}"


def unsubscribe_url(target: UnsubscribeTarget) -> str:
    return absolute(reverse("engagement:unsubscribe", args=[unsubscribe_token(target)]))


def preferences_url(citizen_id: int) -> str:
    return absolute(reverse("engagement:preferences", args=[preference_token(citizen_id)]))


def confirm_url(subscription_id: int) -> str:
    return absolute(reverse("engagement:confirm", args=[confirm_token(subscription_id)]))
