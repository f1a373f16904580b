"""The IMAP mailbox channel: poll folders by UID + UIDVALIDITY cursor, never by date.

Settings (Channel.settings): host, port (993, or 143 without ssl), ssl (true), username,
password_env (secret), folders (["INBOX"]), mark_seen (false), batch_size (500 per folder
per poll), timeout (seconds, 30).

The cursor of each folder is {"uidvalidity", "last_uid"} under key "imap:<folder>". This
adapter only reads cursors; the polling service writes them in the transaction that stores
the messages, so a crash between fetch and store re-fetches rather than loses mail.
"""

from __future__ import annotations

import datetime
import email.utils
import logging
from email.parser import BytesHeaderParser
from email.policy import compat32

from imapclient import IMAPClient

from channels.adapters import FetchResult, RawInbound, register_adapter
from channels.adapters.email_base import EmailAdapter
from channels.email.parsing import external_id_for
from channels.models import ChannelCursor

logger = logging.getLogger(__name__)

BODY_PEEK = b"BODY.PEEK[]"  # does not set \Seen, unlike BODY[]
BODY = b"BODY[]"  # the key the server answers BODY.PEEK[] with
INTERNALDATE = b"INTERNALDATE"
DELIVERY_HEADERS = ("Delivered-To", "X-Original-To")


def cursor_key(folder: str) -> str:
    return f"imap:{folder}"


@register_adapter
class ImapAdapter(EmailAdapter):
    kind = "email-imap"
    polls = True

    def fetch(self) -> FetchResult:
        channel = self.channel
        use_ssl = bool(channel.setting("ssl", True))
        port = int(channel.setting("port", 993 if use_ssl else 143))
        folders = channel.setting("folders", None) or ["INBOX"]
        if isinstance(folders, str):
            folders = [folders]
        folders = [str(folder) for folder in folders]
        # Read before connecting: a missing secret is a configuration error, not an outage.
        password = channel.secret("password")
        cursors = {
            cursor.key: cursor.state
            for cursor in ChannelCursor.objects.filter(
                channel=channel, key__in=[cursor_key(folder) for folder in folders]
            )
        }
        messages: list[RawInbound] = []
        new_cursors: list[tuple[str, dict]] = []
        # The context manager logs out, or just closes the socket if logging out fails.
        with IMAPClient(
            str(channel.setting("host")),
            port=port,
            ssl=use_ssl,
            timeout=float(channel.setting("timeout", 30)),
        ) as client:
            client.normalise_times = False  # keep INTERNALDATE's zone, so it is aware
            client.login(str(channel.setting("username", "")), password)
            for folder in folders:
                found, state = self._fetch_folder(client, folder, cursors.get(cursor_key(folder)))
                messages.extend(found)
                new_cursors.append((cursor_key(folder), state))
        return FetchResult(messages=messages, cursors=new_cursors)

    def _fetch_folder(
        self, client: IMAPClient, folder: str, cursor: dict | None
    ) -> tuple[list[RawInbound], dict]:
        mark_seen = bool(self.channel.setting("mark_seen", False))
        batch_size = max(int(self.channel.setting("batch_size", 500)), 1)
        # EXAMINE (read-only) unless asked to mark messages read: nothing in the mailbox changes.
        selected = client.select_folder(folder, readonly=not mark_seen)
        uidvalidity = int(selected[b"UIDVALIDITY"])
        last_uid = 0
        if cursor and cursor.get("uidvalidity") == uidvalidity:
            last_uid = int(cursor.get("last_uid", 0))
        elif cursor:
            # UIDs from before mean nothing now: read the whole folder again. The store step
            # recognises messages it already has by Message-ID or content hash.
            logger.warning(
                "channel %s folder %s: UIDVALIDITY changed from %s to %s, resyncing",
                self.channel.slug,
                folder,
                cursor.get("uidvalidity"),
                uidvalidity,
            )
        # "n:*" always matches the highest UID, even when it is below n.
        uids = sorted(uid for uid in client.search(["UID", f"{last_uid + 1}:*"]) if uid > last_uid)
        batch = uids[:batch_size]
        messages: list[RawInbound] = []
        if batch:
            fetched = client.fetch(batch, [BODY_PEEK, INTERNALDATE])
            for uid in batch:
                data = fetched.get(uid)
                if data is None or BODY not in data:
                    # Expunged between SEARCH and FETCH: gone from the mailbox for good.
                    continue
                messages.append(self._raw_inbound(data[BODY], data.get(INTERNALDATE)))
            if mark_seen:
                client.add_flags(batch, [b"\\Seen"], silent=True)
            last_uid = batch[-1]
        return messages, {"uidvalidity": uidvalidity, "last_uid": last_uid}

    def _raw_inbound(self, raw: bytes, internal_date: object) -> RawInbound:
        received_at = None
        if isinstance(internal_date, datetime.datetime) and internal_date.tzinfo is not None:
            received_at = internal_date
        return RawInbound(
            external_id=external_id_for(raw),
            raw=raw,
            recipients=self._recipients(raw),
            received_at=received_at,
        )

    def _recipients(self, raw: bytes) -> tuple[str, ...]:
        """The mailbox's own address and the addresses the delivering server recorded."""
        recipients = [self.channel.address] if self.channel.address else []
        header_end = raw.find(b"\r\n\r\n")
        if header_end < 0:
            header_end = raw.find(b"\n\n")
        headers = BytesHeaderParser(policy=compat32).parsebytes(
            raw if header_end < 0 else raw[:header_end]
        )
        for name in DELIVERY_HEADERS:
            for value in headers.get_all(name) or []:
                address = email.utils.parseaddr(str(value))[1].strip()
                if "@" in address and address.lower() not in {r.lower() for r in recipients}:
                    recipients.append(address)
        return tuple(recipients)
