"""The built-in SMTP receiver: accepts e-mail for one channel and stores it raw before replying.

A message is answered `250` only once its row is committed, so a crash or a lost database
before that point makes the sending server retry (RFC 5321 queues and retries a 4xx for
days); the retry is harmless because storage is idempotent on (channel, external id).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from django.conf import settings
from django.db import DatabaseError, close_old_connections, connections, transaction

from channels.adapters import RawInbound
from channels.email.parsing import external_id_for
from channels.models import Channel
from channels.services.ingest import store_raw_messages

logger = logging.getLogger(__name__)

ACCEPTED = "250 Message accepted"
DATABASE_UNAVAILABLE = "451 Requested action aborted: database unavailable, try again later"
TEMPORARY_FAILURE = "451 Requested action aborted: local error in processing, try again later"
# Each stored message holds one database connection for a few milliseconds; a handful of
# threads keeps the connection count bounded however many senders are connected.
DEFAULT_DB_THREADS = 4


@dataclass(frozen=True)
class StoreOutcome:
    external_id: str
    new: bool
    # The row is committed but starting its processing failed (the broker, or the in-process
    # ingest in the demo); the message stays `received` and is kept, so we still answer 250.
    enqueue_error: str = ""


class InboundEmailHandler:
    """aiosmtpd handler: stores each message's bytes, exactly as received, for one channel.

    The ORM cannot run on the event loop (SynchronousOnlyOperation), so storing happens on a
    small pool of threads owned by the handler; `close()` closes their database connections.
    """

    def __init__(self, channel: Channel, *, db_threads: int = DEFAULT_DB_THREADS) -> None:
        self.channel = channel
        self.db_threads = db_threads
        self._executor = ThreadPoolExecutor(
            max_workers=db_threads, thread_name_prefix=f"smtp-{channel.slug}-db"
        )
        self._busy = 0
        self._idle = threading.Condition()
        self._closed = False

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        # original_content is always the raw bytes (content may be decoded, and some
        # handlers add headers); the fallback hash must see exactly what the sender sent.
        raw = envelope.original_content or b""
        recipients = tuple(envelope.rcpt_tos)
        with self._idle:
            self._busy += 1
        try:
            loop = asyncio.get_running_loop()
            outcome = await loop.run_in_executor(self._executor, self.store, raw, recipients)
        except DatabaseError as exc:
            logger.warning(
                "channel %s: database unavailable, answered 451 to %s: %r",
                self.channel.slug,
                session.peer,
                exc,
            )
            return DATABASE_UNAVAILABLE
        except Exception:
            # A 5xx would make the sender bounce a resident's e-mail for good; a 451 keeps it
            # queued at the sender until we are fixed.
            logger.exception(
                "channel %s: could not store a message from %s", self.channel.slug, session.peer
            )
            return TEMPORARY_FAILURE
        finally:
            with self._idle:
                self._busy -= 1
                self._idle.notify_all()
        logger.info(
            "channel %s: stored %s message %s (%d bytes, to %s)",
            self.channel.slug,
            "new" if outcome.new else "duplicate",
            outcome.external_id,
            len(raw),
            ", ".join(recipients),
        )
        if outcome.enqueue_error:
            logger.error(
                "channel %s: message %s is stored but its processing did not start: %s",
                self.channel.slug,
                outcome.external_id,
                outcome.enqueue_error,
            )
        return ACCEPTED

    def store(self, raw: bytes, recipients: tuple[str, ...]) -> StoreOutcome:
        """Store one message (runs on a handler thread); returns once the row is committed."""
        close_old_connections()
        try:
            external_id = external_id_for(raw)
            committed = threading.Event()
            try:
                with transaction.atomic():
                    # Registered before store_raw_messages registers its enqueue, so it runs
                    # first at commit: an error from the enqueue then still means "stored".
                    transaction.on_commit(committed.set)
                    stored = store_raw_messages(
                        channel=self.channel,
                        raws=[RawInbound(external_id, raw, recipients=recipients)],
                    )
            except Exception as exc:
                if not committed.is_set():
                    raise
                return StoreOutcome(external_id, new=True, enqueue_error=repr(exc))
            return StoreOutcome(external_id, new=bool(stored.new_ids))
        finally:
            close_old_connections()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no message is being stored; False if still busy after `timeout`."""
        with self._idle:
            return self._idle.wait_for(lambda: self._busy == 0, timeout)

    def close(self) -> None:
        """Finish the stores in progress and close each handler thread's database connection."""
        if self._closed:
            return
        self._closed = True
        barrier = threading.Barrier(self.db_threads)

        def close_connections() -> None:
            connections.close_all()
            # Holding every thread at the barrier makes each of them run this exactly once.
            with suppress(threading.BrokenBarrierError):
                barrier.wait(timeout=10)

        for _ in range(self.db_threads):
            self._executor.submit(close_connections)
        self._executor.shutdown(wait=True)


def smtp_parameters() -> dict:
    """Keyword arguments for aiosmtpd's SMTP class (besides its hostname)."""
    return {
        # Enforced while reading DATA (552), and advertised as SIZE so that senders that
        # declare a size are refused at MAIL FROM, before sending the body.
        "data_size_limit": settings.CHANNELS_SMTP_MAX_MESSAGE_BYTES,
        "decode_data": False,
        "enable_SMTPUTF8": True,
        "ident": "CitizenHub SMTP receiver",
    }


class SmtpReceiver:
    """A running receiver: the listening socket, its event-loop thread and the store threads."""

    def __init__(
        self, channel: Channel, *, host: str, port: int, db_threads: int = DEFAULT_DB_THREADS
    ) -> None:
        self.channel = channel
        self.host = host
        self.port = port
        self.handler = InboundEmailHandler(channel, db_threads=db_threads)
        self.controller = Controller(
            self.handler,
            hostname=host,
            port=port,
            # The name in our greeting; without it aiosmtpd runs socket.getfqdn(), a DNS
            # lookup, for every connection.
            server_hostname=socket.gethostname(),
            **smtp_parameters(),
        )
        self._stopped = False

    def start(self) -> None:
        """Listen; raises OSError when the address cannot be bound."""
        try:
            self.controller.start()
        except BaseException:
            self.handler.close()
            raise

    def stop(self, grace_seconds: float = 30.0) -> None:
        """Stop accepting connections, let messages being stored finish, then shut down.

        A session cut off here never got its 250, so its sender retries: nothing is lost.
        """
        if self._stopped:
            return
        self._stopped = True
        loop, server = self.controller.loop, self.controller.server
        if server is not None and loop.is_running():
            loop.call_soon_threadsafe(server.close)
        if not self.handler.wait_idle(grace_seconds):
            logger.warning(
                "channel %s: stopping with messages still being stored; their senders will retry",
                self.channel.slug,
            )
        self.controller.stop(no_assert=True)
        self.handler.close()
