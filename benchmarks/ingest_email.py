"""E-mail ingest end to end: store_raw_messages and the ingest it triggers, against a raw COPY.

Imported by run.py after Django is set up. Without REDIS_URL, Celery runs tasks eagerly, so
each `store_raw_messages` call runs the ingest tasks it enqueues in this process once its
transaction commits: the timing covers storing, parsing, resolving senders, routing,
threading and recording the timeline. COPY of the same raw bytes into a bare table is what
the database alone allows on this machine, so the ratio says what the pipeline costs.
"""

from __future__ import annotations

import base64
import datetime
import email.header
import email.utils
import io
import logging
import multiprocessing
import os
import quopri
import random
import struct
import tempfile
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import DatabaseError, connection, connections, transaction
from django.test.utils import override_settings

from benchmarks.common import BenchmarkError, report, scaled, timed
from channels.adapters import RawInbound, registered_kinds
from channels.email.parsing import external_id_for
from channels.models import (
    Attachment,
    Channel,
    InboundMessage,
    RoutingRule,
    Thread,
    ThreadParticipant,
)
from channels.services.ingest import store_raw_messages
from citizenhub.celery import app as celery_app
from citizenhub.models import Citizen, ContactPoint, TimelineEntry
from citizenhub.normalise import normalise_email

NAME = "ingest_email"
MESSAGES = 20_000
KNOWN_SENDERS = 800
UNKNOWN_SENDERS = 6_000
KNOWN_SHARE = 0.20
REPLY_SHARE = 0.10
HTML_SHARE = 0.30
ATTACHMENT_SHARE = 0.10
NO_MESSAGE_ID_SHARE = 0.02
# Messages per store_raw_messages call, as a receiver or poller hands them over.
STORE_CHUNK = 1_000
# Fixed seed: every run stores the same messages, so runs on different commits compare.
SEED = 20_251_127
START = datetime.datetime(2026, 11, 2, 8, 0, tzinfo=datetime.UTC)

CONTACT = "contact@northmoor.example"
PLANNING = "planning@northmoor.example"
BARE_TABLE = "bench_bare_raw"
COPY_SQL = f"COPY {BARE_TABLE} (external_id, raw) FROM STDIN WITH (FORMAT binary)"

_GIVEN = (
    "Aled",
    "Bethan",
    "Chloe",
    "Dafydd",
    "Emma",
    "Farah",
    "Gareth",
    "Priya",
    "Siân",
    "Rhodri",
    "Zoë",
    "Tomasz",
    "Ngozi",
    "Mei",
    "Owain",
    "Ffion",
)
_FAMILY = (
    "Jones",
    "Williams",
    "Davies",
    "Evans",
    "Khan",
    "Thomas",
    "Roberts",
    "Smith",
    "Hughes",
    "O'Brien",
    "Nowak",
    "Okafor",
    "Chen",
    "Llewellyn",
    "Price",
    "Morgan",
)
_DOMAINS = (
    "example.org",
    "example.com",
    "mail.example.net",
    "post.example.co.uk",
    "ebost.example.cymru",
)
_STREETS = (
    "Ash Grove",
    "Heol y Felin",
    "Station Road",
    "Ffordd Pen-y-bryn",
    "Church Lane",
    "Stryd Fawr",
    "Mill Street",
    "Maes-y-coed",
)
_SUBJECTS = (
    "Missed bin collection on {street}",
    "Pothole outside {number} {street}",
    "Council tax direct debit date",
    "Fly-tipping behind {street}",
    "Planning application {number}/2026 objection",
    "Street light out on {street}",
    "Recycling box request",
    "Noise from a neighbour on {street}",
    "Blue Badge renewal",
    "Library card renewal",
    "Cais am fin ailgylchu newydd",
    "Parking permit for {number} {street}",
)
_PROSE = (
    "the council bin collection was missed again this week on our street and the "
    "neighbours have noticed too please could someone arrange for the crew to come back "
    "before the weekend because the food waste is starting to smell I have lived here for "
    "twelve years and this has never happened so often the pothole is getting deeper and "
    "a cyclist nearly came off yesterday evening the street light has been out since "
    "Tuesday which makes the walk home from the bus stop feel unsafe diolch am eich help "
    "gyda hyn rwy'n byw yn y tŷ ar y gornel ac mae'r sbwriel yn dal i fod ar y palmant "
    "I paid £120 by card at the café in the library and would like a receipt my reference "
    "number is on the letter you sent in October the recycling box was taken by the wind "
    "and I need a new one the planning application next door would block our light"
)
_WORDS = tuple(_PROSE.split())
_SIGNATURES = (
    "\n-- \n{name}\n{number} {street}\n",
    "\nSent from my iPhone\n",
    "\nKind regards,\n{name}\n",
    "\nDiolch,\n{name}\n",
    "\n",
)


@dataclass(frozen=True)
class _Sender:
    address: str
    name: str
    known: bool


@dataclass(frozen=True)
class _Generated:
    raws: list[RawInbound]
    # external id of a reply -> external id of the message it answers
    replies: dict[str, str]
    senders: dict[str, _Sender]  # external id -> sender
    known_senders: list[_Sender]
    raw_bytes: int


def _senders(rng: random.Random, count: int, prefix: str, known: bool) -> list[_Sender]:
    senders = []
    for index in range(count):
        given, family = rng.choice(_GIVEN), rng.choice(_FAMILY)
        local = f"{given}.{family}.{prefix}{index}".replace("'", "").lower()
        local = local.encode("ascii", "ignore").decode() or f"resident{index}"
        senders.append(_Sender(f"{local}@{rng.choice(_DOMAINS)}", f"{given} {family}", known))
    return senders


def _paragraphs(rng: random.Random, size: int) -> str:
    """About `size` characters of resident-like prose in paragraphs of wrapped lines."""
    words: list[str] = []
    length = 0
    while length < size:
        word = rng.choice(_WORDS)
        words.append(word)
        length += len(word) + 1
    lines, line = [], []
    for count, word in enumerate(words, 1):
        line.append(word)
        if len(line) >= 12:
            lines.append(" ".join(line))
            line = []
        if count % 60 == 0:
            lines.append("")
    if line:
        lines.append(" ".join(line))
    return "\n".join(lines)


def _encode_name(name: str) -> str:
    if name.isascii():
        return f'"{name}"'
    return email.header.Header(name, "utf-8").encode()


def _header_block(headers: Sequence[tuple[str, str]]) -> str:
    return "".join(f"{name}: {value}\r\n" for name, value in headers)


def _crlf(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\n", "\r\n")


def _text_part(text: str, rng: random.Random) -> tuple[str, str]:
    """(Content-Transfer-Encoding, encoded body) for UTF-8 text: 8bit or quoted-printable."""
    if rng.random() < 0.3:
        encoded = quopri.encodestring(text.encode("utf-8")).decode("ascii")
        return "quoted-printable", _crlf(encoded)
    return "8bit", _crlf(text)


def _html(text: str) -> str:
    paragraphs = "".join(
        f'<p style="margin:0 0 1em">{block.replace(chr(10), "<br>")}</p>\n'
        for block in text.split("\n\n")
    )
    return (
        "<html><head><style>p{font-family:Arial}</style></head><body>\n"
        f'<div dir="ltr">{paragraphs}</div>\n'
        '<img src="https://tracker.example.net/pixel.gif" width="1" height="1">\n'
        "</body></html>\n"
    )


def _transport_headers(rng: random.Random, sender: _Sender, sent: datetime.datetime) -> list:
    """What MTAs put on a message before it reaches us: Received, DKIM, authentication."""
    domain = sender.address.split("@")[1]
    stamp = email.utils.format_datetime(sent)
    hops = [
        (
            "Received",
            f"from mail-{rng.randrange(10**6):06d}.{domain} (mail-{rng.randrange(10**6):06d}."
            f"{domain} [192.0.2.{rng.randint(1, 254)}])\r\n\tby mx.northmoor.example (Postfix) "
            f"with ESMTPS id {rng.randbytes(5).hex().upper()}\r\n\tfor <{CONTACT}>; {stamp}",
        )
        for _ in range(rng.randint(1, 3))
    ]
    signature = base64.b64encode(rng.randbytes(rng.choice((128, 256)))).decode("ascii")
    folded = "\r\n\t ".join(signature[i : i + 70] for i in range(0, len(signature), 70))
    body_hash = base64.b64encode(rng.randbytes(32)).decode("ascii")
    return [
        ("Return-Path", f"<{sender.address}>"),
        ("Delivered-To", CONTACT),
        *hops,
        (
            "Authentication-Results",
            f"mx.northmoor.example; dkim=pass header.d={domain};\r\n\tspf=pass "
            f"smtp.mailfrom={sender.address}; dmarc=pass header.from={domain}",
        ),
        (
            "DKIM-Signature",
            f"v=1; a=rsa-sha256; c=relaxed/relaxed; d={domain}; s=s{rng.randint(1, 9)};\r\n\t"
            f"h=from:to:subject:date:message-id:mime-version;\r\n\tbh={body_hash};\r\n\t"
            f"b={folded}",
        ),
    ]


def _message(
    rng: random.Random,
    index: int,
    sender: _Sender,
    subject: str,
    message_id: str,
    parent: _Earlier | None,
) -> tuple[bytes, str]:
    """One e-mail as an MTA hands it over (CRLF line ends, 1-20 kB, some MIME variety),
    and its plain text."""
    # Log-uniform between 1 and 20 kB: many short messages, a long tail of long ones.
    size = int(1_000 * 20 ** rng.random())
    html = rng.random() < HTML_SHARE
    attachment = rng.random() < ATTACHMENT_SHARE
    sent = START + datetime.timedelta(seconds=index * 7)
    headers = [
        *_transport_headers(rng, sender, sent),
        ("From", f"{_encode_name(sender.name)} <{sender.address}>"),
        ("To", PLANNING if "Planning" in subject else CONTACT),
        ("Subject", subject),
        ("Date", email.utils.format_datetime(sent)),
    ]
    if message_id:
        headers.append(("Message-ID", f"<{message_id}>"))
    quoted = ""
    if parent is not None:
        headers.append(("In-Reply-To", f"<{parent.message_id}>"))
        references = (*parent.references, parent.message_id)[-10:]
        headers.append(("References", " ".join(f"<{ref}>" for ref in references)))
        quoted = "\n".join(f"> {line}" for line in parent.body.splitlines()[:30])
        quoted = (
            f"\nOn {email.utils.format_datetime(sent - datetime.timedelta(days=1))}, "
            f"Northmoor Council wrote:\n{quoted}\n"
        )
    headers.append(("MIME-Version", "1.0"))
    head = _header_block(headers)

    # What is left of the size after the headers goes to the text, its HTML twin (about
    # 1.3 times as long) and the attachment.
    left = max(200, size - len(head) - len(quoted) - 300)
    picture = b""
    if attachment:
        picture = b"\x89PNG\r\n\x1a\n" + rng.randbytes(max(200, min(3_000, left // 3)))
        left = max(200, left - len(picture) * 4 // 3)
    street, number = rng.choice(_STREETS), rng.randint(1, 240)
    body = _paragraphs(rng, left * 10 // 23 if html else left)
    body += rng.choice(_SIGNATURES).format(name=sender.name, street=street, number=number)
    body += quoted

    encoding, encoded = _text_part(body, rng)
    text_headers = (
        f'Content-Type: text/plain; charset="utf-8"\r\nContent-Transfer-Encoding: {encoding}\r\n'
    )
    if not html and not attachment:
        return (head + text_headers + "\r\n" + encoded).encode("utf-8"), body
    parts = []
    if html:
        html_encoding, html_encoded = _text_part(_html(body), rng)
        alternative = (
            f"--alt-{index}\r\n{text_headers}\r\n{encoded}\r\n"
            f'--alt-{index}\r\nContent-Type: text/html; charset="utf-8"\r\n'
            f"Content-Transfer-Encoding: {html_encoding}\r\n\r\n{html_encoded}\r\n"
            f"--alt-{index}--\r\n"
        )
        alt_headers = f'Content-Type: multipart/alternative; boundary="alt-{index}"\r\n'
        if not attachment:
            return (head + alt_headers + "\r\n" + alternative).encode("utf-8"), body
        parts.append(alt_headers + "\r\n" + alternative)
    else:
        parts.append(text_headers + "\r\n" + encoded)
    encoded_picture = base64.encodebytes(picture).decode("ascii").replace("\n", "\r\n")
    parts.append(
        f'Content-Type: image/png; name="photo-{index}.png"\r\n'
        "Content-Transfer-Encoding: base64\r\n"
        f'Content-Disposition: attachment; filename="photo-{index}.png"\r\n\r\n' + encoded_picture
    )
    mixed = "".join(f"--mix-{index}\r\n{part}\r\n" for part in parts) + f"--mix-{index}--\r\n"
    head += f'Content-Type: multipart/mixed; boundary="mix-{index}"\r\n'
    return (head + "\r\n" + mixed).encode("utf-8"), body


@dataclass(frozen=True)
class _Earlier:
    """An earlier message that a later one can answer."""

    external_id: str
    message_id: str
    references: tuple[str, ...]
    sender: _Sender
    subject: str
    body: str


def generate(count: int) -> _Generated:
    """`count` e-mails from a fixed seed: 20 % from known senders, 10 % replies."""
    rng = random.Random(SEED)
    known = _senders(rng, scaled(KNOWN_SENDERS), "k", known=True)
    unknown = _senders(rng, scaled(UNKNOWN_SENDERS), "u", known=False)
    raws: list[RawInbound] = []
    replies: dict[str, str] = {}
    senders: dict[str, _Sender] = {}
    answerable: list[_Earlier] = []
    raw_bytes = 0
    for index in range(count):
        parent = None
        if answerable and rng.random() < REPLY_SHARE:
            # The resident answers one of their recent messages (or our reply to it).
            parent = answerable[rng.randrange(max(0, len(answerable) - 3_000), len(answerable))]
            sender = parent.sender
            subject = (
                parent.subject if parent.subject.startswith("Re: ") else f"Re: {parent.subject}"
            )
        else:
            sender = rng.choice(known) if rng.random() < KNOWN_SHARE else rng.choice(unknown)
            subject = rng.choice(_SUBJECTS).format(
                street=rng.choice(_STREETS), number=rng.randint(1, 240)
            )
        with_id = parent is not None or rng.random() >= NO_MESSAGE_ID_SHARE
        message_id = f"{index}.{SEED}@{sender.address.split('@')[1]}" if with_id else ""
        # The case of the address differs between messages of one sender: matching ignores it.
        shown = (
            sender
            if rng.random() < 0.9
            else _Sender(sender.address.capitalize(), sender.name, sender.known)
        )
        data, body = _message(rng, index, shown, subject, message_id, parent)
        external_id = external_id_for(data)
        raws.append(
            RawInbound(
                external_id=external_id,
                raw=data,
                recipients=(PLANNING if "Planning" in subject else CONTACT,),
                received_at=START + datetime.timedelta(seconds=index * 7 + 3),
            )
        )
        raw_bytes += len(data)
        senders[external_id] = sender
        if parent is not None:
            replies[external_id] = parent.external_id
        if message_id:
            references = (*parent.references, parent.message_id)[-10:] if parent else ()
            answerable.append(
                _Earlier(external_id, message_id, references, sender, subject, body[:1500])
            )
    return _Generated(raws, replies, senders, known, raw_bytes)


def _reset() -> None:
    """Empty every table the pipeline writes, so each run starts from the same state."""
    tables = [
        model._meta.db_table
        for model in (
            Attachment,
            ThreadParticipant,
            InboundMessage,
            Thread,
            RoutingRule,
            TimelineEntry,
            ContactPoint,
        )
    ]
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        # CASCADE: other apps' rows that point at messages, threads or citizens go too.
        cursor.execute(
            f"TRUNCATE {', '.join(quote(t) for t in tables)}, {quote(Citizen._meta.db_table)}, "
            f"{quote(Channel._meta.db_table)} RESTART IDENTITY CASCADE"
        )
    _checkpoint()


def _checkpoint() -> None:
    try:
        # Otherwise the previous writer's WAL may be checkpointed during the next one's run.
        with connection.cursor() as cursor:
            cursor.execute("CHECKPOINT")
    except DatabaseError as exc:
        print(f"{NAME}: CHECKPOINT skipped ({exc.__class__.__name__})")


def _set_up(known: Sequence[_Sender]) -> Channel:
    """The mailbox, a few routing rules and the known senders' profiles (not timed)."""
    channel = Channel.objects.create(
        kind=Channel.Kind.EMAIL_SMTP,
        slug="bench-contact",
        name="Benchmark contact centre mailbox",
        address=CONTACT,
    )
    RoutingRule.objects.bulk_create(
        [
            RoutingRule(
                name="Planning mailbox",
                priority=10,
                recipient_contains="planning@",
                department="Planning",
                service_code="PLN-001",
            ),
            RoutingRule(
                name="Bins",
                priority=20,
                keywords="bin,recycling,ailgylchu",
                department="Waste and Recycling",
                service_code="WST-001",
            ),
            RoutingRule(
                name="Roads",
                priority=30,
                keywords="pothole,street light",
                department="Highways",
                service_code="HWY-001",
            ),
            RoutingRule(
                name="Council tax",
                priority=40,
                keywords="council tax",
                department="Revenues",
                service_code="REV-001",
            ),
        ]
    )
    citizens = Citizen.objects.bulk_create(
        Citizen(given_name=s.name.split(" ")[0], family_name=s.name.split(" ", 1)[1]) for s in known
    )
    points = []
    for citizen, sender in zip(citizens, known, strict=True):
        identity = normalise_email(sender.address)
        points.append(
            ContactPoint(
                citizen=citizen,
                kind=ContactPoint.Kind.EMAIL,
                value=sender.address,
                normalised=identity.normalised,
                match_key=identity.match_key,
                is_primary=True,
            )
        )
    ContactPoint.objects.bulk_create(points)
    return channel


def _copy_buffer(raws: Sequence[RawInbound]) -> io.BytesIO:
    """The rows in COPY's binary format: (external_id text, raw bytea)."""
    buffer = io.BytesIO()
    write = buffer.write
    write(b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0))
    pack = struct.Struct("!hi").pack
    pack_length = struct.Struct("!i").pack
    for raw in raws:
        external_id = raw.external_id.encode("utf-8")
        write(pack(2, len(external_id)))
        write(external_id)
        write(pack_length(len(raw.raw)))
        write(raw.raw)
    write(struct.pack("!h", -1))
    buffer.seek(0)
    return buffer


def _copy_bare(raws: Sequence[RawInbound]) -> float:
    """Seconds to COPY the raw messages, in STORE_CHUNK slices, into a bare table."""
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {BARE_TABLE}")
        cursor.execute(f"CREATE TABLE {BARE_TABLE} (id bigserial, external_id text, raw bytea)")
    _checkpoint()
    with timed() as copy, transaction.atomic(), connection.cursor() as cursor:
        for start in range(0, len(raws), STORE_CHUNK):
            cursor.copy_expert(COPY_SQL, _copy_buffer(raws[start : start + STORE_CHUNK]))
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*), coalesce(sum(length(raw)), 0) FROM {BARE_TABLE}")
        rows, size = cursor.fetchone()
        cursor.execute(f"DROP TABLE {BARE_TABLE}")
    expected = sum(len(raw.raw) for raw in raws)
    if rows != len(raws) or size != expected:
        raise BenchmarkError(
            f"COPY stored {rows} rows / {size} bytes, expected {len(raws)} / {expected}"
        )
    return copy.seconds


def _check(generated: _Generated, channel: Channel) -> dict[str, int]:
    """Everything the pipeline must have done; raises BenchmarkError otherwise."""
    count = len(generated.raws)
    problems = []
    statuses = Counter(
        InboundMessage.objects.filter(channel=channel).values_list("status", flat=True)
    )
    if statuses != {InboundMessage.Status.PROCESSED: count}:
        problems.append(f"message statuses {dict(statuses)}, expected {count} processed")
    source_type = ContentType.objects.get_for_model(InboundMessage)
    entries = TimelineEntry.objects.filter(source_type=source_type, kind="message_in").count()
    if entries != count:
        problems.append(f"{entries} timeline entries for {count} messages")
    rows = dict(
        InboundMessage.objects.filter(channel=channel).values_list("external_id", "thread_id")
    )
    citizens = dict(
        InboundMessage.objects.filter(channel=channel).values_list("external_id", "citizen_id")
    )
    strays = [eid for eid, parent in generated.replies.items() if rows[eid] != rows[parent]]
    if strays:
        problems.append(f"{len(strays)} of {len(generated.replies)} replies missed their thread")
    threads = Thread.objects.filter(channel=channel).count()
    if threads != count - len(generated.replies):
        problems.append(f"{threads} threads, expected {count - len(generated.replies)}")
    # One profile per sender, whatever the case of the address: owners never split.
    owners: dict[str, set[int]] = {}
    for eid, sender in generated.senders.items():
        owners.setdefault(sender.address, set()).add(citizens[eid])
    split = [address for address, ids in owners.items() if len(ids) != 1]
    if split:
        problems.append(f"{len(split)} senders spread over several profiles, e.g. {split[0]}")
    known_ids = set(
        ContactPoint.objects.filter(
            match_key__in=[normalise_email(s.address).match_key for s in generated.known_senders]
        ).values_list("citizen_id", flat=True)
    )
    known_messages = sum(1 for s in generated.senders.values() if s.known)
    landed_on_known = sum(
        1 for eid, s in generated.senders.items() if s.known and citizens[eid] in known_ids
    )
    if landed_on_known != known_messages:
        problems.append(
            f"{known_messages - landed_on_known} messages from known senders missed their profile"
        )
    provisional = Citizen.objects.filter(status=Citizen.Status.PROVISIONAL).count()
    unknown_senders = len({s.address for s in generated.senders.values() if not s.known})
    if provisional != unknown_senders:
        problems.append(f"{provisional} provisional profiles for {unknown_senders} unknown senders")
    if problems:
        raise BenchmarkError("; ".join(problems))
    return {
        "threads": threads,
        "replies": len(generated.replies),
        "known_sender_messages": known_messages,
        "provisional_profiles": provisional,
        "attachments": Attachment.objects.count(),
    }


def _processes() -> int:
    """BENCH_INGEST_PROCESSES (default 2): how many processes share the work, as workers do.

    The target is for the 2-core machine, which runs one ingest worker process per core;
    set 1 to see a single process."""
    raw = os.environ.get("BENCH_INGEST_PROCESSES", "").strip() or "2"
    if not raw.isdigit() or int(raw) < 1:
        raise BenchmarkError(f"BENCH_INGEST_PROCESSES must be a whole number from 1, got {raw!r}")
    return int(raw)


def _store_all(channel: Channel, raws: Sequence[RawInbound]) -> None:
    for start in range(0, len(raws), STORE_CHUNK):
        store_raw_messages(channel=channel, raws=raws[start : start + STORE_CHUNK])


def _store_in_processes(channel: Channel, generated: _Generated, processes: int) -> None:
    """The same work split over forked processes, each with its own database connection;
    a sender's messages stay in one process, so a reply never races what it answers."""
    shares: list[list[RawInbound]] = [[] for _ in range(processes)]
    for raw in generated.raws:
        sender = generated.senders[raw.external_id].address
        shares[zlib.crc32(sender.encode()) % processes].append(raw)
    connections.close_all()  # each child opens its own
    context = multiprocessing.get_context("fork")
    children = [context.Process(target=_store_all, args=(channel, share)) for share in shares]
    for child in children:
        child.start()
    for child in children:
        child.join()
    failed = [child.exitcode for child in children if child.exitcode]
    if failed:
        raise BenchmarkError(f"{len(failed)} of {processes} ingest processes failed: {failed}")


def run() -> None:
    count = scaled(MESSAGES)
    processes = _processes()
    if not celery_app.conf.task_always_eager:
        raise BenchmarkError("Celery must run tasks eagerly here (REDIS_URL unset)")
    generated = generate(count)
    raws = generated.raws
    batch_size = settings.CHANNELS_INGEST_BATCH_SIZE

    _reset()
    channel = _set_up(generated.known_senders)
    # What a long-running worker has done long before: import every provider adapter.
    registered_kinds()
    _checkpoint()
    task_log = logging.getLogger("celery.app.trace")
    task_log_level = task_log.level
    task_log.setLevel(logging.WARNING)  # a line per eager task would drown the result
    with (
        tempfile.TemporaryDirectory(prefix="bench-media-") as media,
        override_settings(MEDIA_ROOT=media),
    ):
        # Timed from raw bytes to processed messages: store_raw_messages commits each chunk,
        # and its on_commit hook runs the ingest tasks right here (Celery is eager).
        with timed() as pipeline:
            if processes == 1:
                _store_all(channel, raws)
            else:
                _store_in_processes(channel, generated, processes)
        checked = _check(generated, channel)
    task_log.setLevel(task_log_level)
    copy_seconds = _copy_bare(raws)
    _reset()

    pipeline_rate = pipeline.rate(count)
    copy_rate = count / copy_seconds if copy_seconds > 0 else float("inf")
    ratio = pipeline_rate / copy_rate
    average = generated.raw_bytes / count
    report(
        NAME,
        f"{NAME}: pipeline {pipeline_rate:,.0f} msgs/s, COPY {copy_rate:,.0f} rows/s, "
        f"ratio {ratio:.3f} ({count:,} e-mails, {average / 1024:.1f} kB average, "
        f"ingest batch {batch_size}, {processes} process{'es' if processes > 1 else ''})",
        {
            "messages": count,
            "raw_bytes": generated.raw_bytes,
            "ingest_batch_size": batch_size,
            "store_chunk": STORE_CHUNK,
            "processes": processes,
            "pipeline_seconds": round(pipeline.seconds, 3),
            "pipeline_msgs_per_s": round(pipeline_rate),
            "copy_seconds": round(copy_seconds, 3),
            "copy_rows_per_s": round(copy_rate),
            "ratio": round(ratio, 4),
            **checked,
        },
    )
