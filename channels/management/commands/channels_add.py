"""`manage.py channels_add`: create or update a channel account from the command line."""

from __future__ import annotations

import json
import os

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.validators import validate_slug
from django.db import transaction

from channels.adapters import registered_kinds
from channels.models import Channel
from channels.services.accounts import (
    ENV_SUFFIX,
    channel_settings_problems,
    kind_error,
)
from channels.services.outbound import release_queued_outbound


# Words that mark a setting as a secret; matched against the parts of the key
# ("imap_password", "api-key", "accessToken") so "keywords" or "monkey" are not caught.
def _reject_constant(name: str) -> None:
    raise ValueError(name)  # NaN and Infinity are not JSON; keep such values as text


def parse_setting(pair: str) -> tuple[str, object]:
    """`key=value` with the value read as JSON when it is JSON (42, true, ["a"]), else text."""
    key, sep, text = pair.partition("=")
    key = key.strip()
    if not sep or not key:
        raise CommandError(f"--set expects key=value, got {pair!r}.")
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except ValueError:
        value = text
    return key, value


class Command(BaseCommand):
    help = (
        "Create a channel (or change one with --update). Secrets are never stored: set "
        "<name>_env=ENV_VAR_NAME and put the secret in that environment variable."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("kind", help="Channel kind, e.g. email-smtp or email-imap.")
        parser.add_argument("slug", help="Short unique name used in URLs and metrics.")
        parser.add_argument("--name", help="Name staff see (default: the slug).")
        parser.add_argument("--address", help="The address residents write to or see.")
        parser.add_argument(
            "--poll-interval", type=int, dest="poll_interval", help="Seconds between polls."
        )
        parser.add_argument(
            "--disabled",
            action="store_true",
            help="Create the channel switched off (with --update: switch it off).",
        )
        parser.add_argument(
            "--enabled",
            action="store_true",
            help="With --update: switch the channel on and release its queued replies.",
        )
        parser.add_argument(
            "--set",
            dest="provider_settings",
            action="extend",
            nargs="+",
            default=[],
            metavar="KEY=VALUE",
            help="Provider setting; the value is read as JSON when it parses, else as text.",
        )
        parser.add_argument(
            "--unset",
            action="extend",
            nargs="+",
            default=[],
            metavar="KEY",
            help="With --update: remove a provider setting.",
        )
        parser.add_argument(
            "--update", action="store_true", help="Change an existing channel instead."
        )

    def handle(self, *args, **options) -> None:
        kind, slug = options["kind"], options["slug"]
        problem = kind_error(kind, registered_kinds())
        if problem:
            raise CommandError(problem)
        try:
            validate_slug(slug)
        except ValidationError as exc:
            raise CommandError(f"Slug {slug!r}: {' '.join(exc.messages)}") from None
        if options["poll_interval"] is not None and options["poll_interval"] < 1:
            raise CommandError("--poll-interval must be at least 1 second.")
        if options["enabled"] and options["disabled"]:
            raise CommandError("Use either --enabled or --disabled, not both.")
        new_settings = dict(parse_setting(pair) for pair in options["provider_settings"])
        problems = channel_settings_problems(new_settings)
        if problems:
            raise CommandError("\n".join(problems))
        if options["update"]:
            channel, released = self._update(kind, slug, new_settings, options)
            self.stdout.write(self.style.SUCCESS(f"Updated channel {channel.slug}."))
            if released:
                self.stdout.write(f"{released} queued message(s) released for sending.")
        else:
            if options["enabled"] or options["unset"]:
                raise CommandError("--enabled and --unset only apply with --update.")
            channel = self._create(kind, slug, new_settings, options)
            self.stdout.write(self.style.SUCCESS(f"Created channel {channel.slug} ({kind})."))
        self._warn_missing_variables(channel)

    def _create(self, kind: str, slug: str, values: dict, options: dict) -> Channel:
        with transaction.atomic():
            if Channel.objects.filter(slug=slug).exists():
                raise CommandError(
                    f"A channel with slug {slug!r} already exists; add --update to change it."
                )
            channel = Channel(
                kind=kind,
                slug=slug,
                name=options["name"] or slug,
                address=options["address"] or "",
                enabled=not options["disabled"],
                settings=values,
            )
            if options["poll_interval"] is not None:
                channel.poll_interval_seconds = options["poll_interval"]
            channel.full_clean()
            channel.save()
        return channel

    def _update(self, kind: str, slug: str, values: dict, options: dict) -> tuple[Channel, int]:
        released = 0
        with transaction.atomic():
            channel = Channel.objects.select_for_update().filter(slug=slug).first()
            if channel is None:
                raise CommandError(f"No channel with slug {slug!r}; leave out --update to add it.")
            if channel.kind != kind:
                raise CommandError(
                    f"Channel {slug!r} is of kind {channel.kind!r}; a channel's kind cannot "
                    "change (its messages and threads belong to that provider). Add a new "
                    "channel instead."
                )
            was_enabled = channel.enabled
            if options["name"] is not None:
                channel.name = options["name"]
            if options["address"] is not None:
                channel.address = options["address"]
            if options["poll_interval"] is not None:
                channel.poll_interval_seconds = options["poll_interval"]
            if options["disabled"]:
                channel.enabled = False
            if options["enabled"]:
                channel.enabled = True
            merged = {k: v for k, v in channel.settings.items() if k not in options["unset"]}
            merged.update(values)
            channel.settings = merged
            channel.full_clean()
            channel.save()
            if channel.enabled and not was_enabled:
                released = release_queued_outbound(channel=channel)
        return channel, released

    def _warn_missing_variables(self, channel: Channel) -> None:
        # Workers may run with another environment than this shell: a warning, not an error.
        for key, variable in sorted(channel.settings.items()):
            if key.endswith(ENV_SUFFIX) and not os.environ.get(str(variable)):
                self.stderr.write(
                    self.style.WARNING(
                        f"Note: {variable} (for {key}) is not set in this environment; the "
                        "processes that poll and send must have it."
                    )
                )
