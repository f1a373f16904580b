"""`manage.py smtp_inbound`: the built-in SMTP receiver for one e-mail channel."""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from channels.models import Channel
from channels.smtp_receiver import DEFAULT_DB_THREADS, SmtpReceiver


class Command(BaseCommand):
    help = (
        "Receive e-mail over SMTP for one email-smtp channel and store each message raw "
        "before answering 250 (451 while the database is unavailable, so senders retry). "
        "Put it behind the council's mail relay; it does no authentication or TLS itself. "
        "Stops cleanly on SIGTERM or Ctrl-C."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="Address to listen on.")
        parser.add_argument("--port", type=int, default=2525, help="Port to listen on.")
        parser.add_argument(
            "--channel", required=True, help="Slug of the email-smtp channel mail is stored for."
        )
        parser.add_argument(
            "--db-threads",
            type=int,
            default=DEFAULT_DB_THREADS,
            help="Threads (and at most as many database connections) storing messages.",
        )
        parser.add_argument(
            "--grace",
            type=float,
            default=30.0,
            help="Seconds to let messages being stored finish when asked to stop.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["verbosity"] < 2:
            # aiosmtpd logs every SMTP command at INFO, senders' addresses included; our own
            # line per stored message is enough unless asked for more (-v 2).
            logging.getLogger("mail.log").setLevel(logging.WARNING)
        channel = self._channel(options["channel"])
        if options["db_threads"] < 1:
            raise CommandError("--db-threads must be at least 1.")
        host, port = options["host"], options["port"]
        receiver = SmtpReceiver(channel, host=host, port=port, db_threads=options["db_threads"])
        stop = threading.Event()
        previous = {
            signum: signal.signal(signum, lambda *_: stop.set())
            for signum in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            try:
                receiver.start()
            except OSError as exc:
                raise CommandError(f"Cannot listen on {host}:{port}: {exc}") from exc
            self.stdout.write(
                f"Receiving e-mail for channel {channel.slug} ({channel.address or 'no address'}) "
                f"on {host}:{port}. Stop with Ctrl-C or SIGTERM."
            )
            self.stdout.flush()
            try:
                while not stop.wait(timeout=1):
                    pass
                self.stdout.write("Stopping the SMTP receiver...")
                self.stdout.flush()
            finally:
                receiver.stop(grace_seconds=options["grace"])
            self.stdout.write("SMTP receiver stopped.")
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    @staticmethod
    def _channel(slug: str) -> Channel:
        channel = Channel.objects.filter(slug=slug).first()
        if channel is None:
            known = ", ".join(
                Channel.objects.filter(kind=Channel.Kind.EMAIL_SMTP).values_list("slug", flat=True)
            )
            raise CommandError(
                f"No channel with slug {slug!r}. "
                + (f"email-smtp channels: {known}." if known else "There is no email-smtp channel.")
            )
        if channel.kind != Channel.Kind.EMAIL_SMTP:
            raise CommandError(
                f"Channel {slug!r} is a {channel.kind} channel; smtp_inbound receives for "
                "email-smtp channels only."
            )
        if not channel.enabled:
            raise CommandError(f"Channel {slug!r} is disabled; enable it before receiving for it.")
        return channel
