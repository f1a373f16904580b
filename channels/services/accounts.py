"""Channel accounts: the rules for their settings, and switching them on and off."""

from __future__ import annotations

import re
from collections.abc import Iterable

from django.db import transaction

from channels.models import Channel
from channels.services.outbound import release_queued_outbound

SECRET_WORDS = frozenset(
    {"password", "passwd", "passphrase", "token", "secret", "key", "apikey", "credentials"}
)
ENV_SUFFIX = "_env"
ENV_VARIABLE_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")


def looks_like_secret(key: str) -> bool:
    """True for a settings key that would hold a secret itself rather than name a variable."""
    if key.endswith(ENV_SUFFIX):
        return False
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", key)  # accessToken -> access Token
    parts = {part for part in re.split(r"[^a-z0-9]+", spaced.lower()) if part}
    return bool(parts & SECRET_WORDS)


def channel_settings_problems(values: dict) -> list[str]:
    """Why these channel settings must not be saved: secrets in clear, bad `_env` names.

    Channel.settings is readable by anyone with admin or database access and ends up in
    backups; a secret belongs in the environment, and the setting names the variable.
    """
    problems = []
    for key, value in values.items():
        if looks_like_secret(key):
            problems.append(
                f"'{key}' looks like a secret and is never stored in the channel's settings. "
                f"Put the secret in an environment variable and use "
                f"{key}{ENV_SUFFIX}=ENV_VAR_NAME instead."
            )
        elif key.endswith(ENV_SUFFIX) and not (
            isinstance(value, str) and ENV_VARIABLE_NAME.match(value)
        ):
            problems.append(
                f"'{key}' must name an environment variable (capitals, digits and _, "
                f"e.g. IMAP_PASSWORD), not hold the secret itself."
            )
    return problems


def kind_error(kind: str, available: list[str]) -> str | None:
    listed = ", ".join(available) or "none"
    if kind not in Channel.Kind.values:
        return f"Unknown channel kind {kind!r}. Kinds available: {listed}."
    if kind not in available:
        return (
            f"Channels of kind {kind!r} cannot be added yet: its provider adapter is not "
            f"built. Kinds available: {listed}."
        )
    return None


def _enqueue_poll(channel_id: int) -> None:
    from channels.tasks import poll_channel

    poll_channel.delay(channel_id)


def channels_enable(*, channel_ids: Iterable[int]) -> tuple[int, int]:
    """Switch channels on and release their queued replies. Returns (switched, released).

    Also for channels already on: replies left queued after their retries ran out go out
    now. Sending is idempotent, so releasing twice never sends twice.
    """
    ids = list(channel_ids)
    with transaction.atomic():
        channels = list(Channel.objects.select_for_update().filter(pk__in=ids))
        switched = Channel.objects.filter(pk__in=ids, enabled=False).update(enabled=True)
        released = sum(release_queued_outbound(channel=channel) for channel in channels)
    return switched, released


def channels_disable(*, channel_ids: Iterable[int]) -> int:
    """Switch channels off; their replies stay queued until they are enabled again."""
    return Channel.objects.filter(pk__in=list(channel_ids), enabled=True).update(enabled=False)


def channels_clear_backoff(*, channel_ids: Iterable[int], polling_kinds: set[str]) -> int:
    """Clear back-off, release queued replies and poll enabled polling channels now.

    The failure count stays: it is history, and a success resets it. Returns how many polls
    were started.
    """
    ids = list(channel_ids)
    polled = 0
    with transaction.atomic():
        channels = list(Channel.objects.select_for_update().filter(pk__in=ids))
        Channel.objects.filter(pk__in=ids).update(backoff_until=None)
        for channel in channels:
            if not channel.enabled:
                continue
            release_queued_outbound(channel=channel)
            if channel.kind in polling_kinds:
                transaction.on_commit(lambda pk=channel.pk: _enqueue_poll(pk))
                polled += 1
    return polled
