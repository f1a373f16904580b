"""A year of the demo council's contact, replayed through the real ingest pipeline.

Some of the demo residents (and a few people the council has never heard of) get in touch
over the year before DEMO_NOW, on every channel. Each message is generated exactly as its
provider delivers it: an RFC 5322 e-mail, a GOV.UK Notify received-text callback, a Twilio
form post, a Mastodon mention notification, an X mention with its author, a Facebook
Messenger event or Page comment, a web form submission as the form view stores it. They are
stored with `store_raw_messages` and processed by `ingest_inbound_messages`, so resolving,
threading, routing and timelines are the pipeline's own work, not imitations of it.

Replay is in time order: messages up to each staff reply are stored and processed, then the
reply is written with `thread_reply` and marked sent at its historical time, so a resident's
"thanks" afterwards threads onto the council's reply as it would have then.

Repeatable. Every sender's history comes from a random stream seeded with who they are, so it
is the same whatever the number of residents, and every provider id (Message-ID, Notify id,
status id, ...) is derived from it. A second run finds every message's external id and every
reply's Message-ID already present and adds nothing; a run with more residents adds only the
history of the new ones.

Below HISTORY_MIN_RESIDENTS residents there is no history: a council that small is one to
test with (the residents seeder's tests check its timelines entry by entry), not one to show.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import html
import json
import logging
import random
import unicodedata
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from typing import TextIO
from urllib.parse import urlencode

from django.conf import settings
from django.db import transaction
from django.db.models import OuterRef, Subquery
from tqdm import tqdm

from channels.adapters import RawInbound
from channels.adapters.social_base import json_bytes
from channels.email.parsing import external_id_for
from channels.models import Channel, InboundMessage, OutboundMessage, Thread, WebForm
from channels.services.ingest import ingest_inbound_messages, store_raw_messages
from channels.services.outbound import thread_reply
from citizenhub.demo_data import (
    DEMO_NOW,
    LONDON,
    OTHER_FAMILY_NAMES,
    OTHER_GIVEN_NAMES,
    STREETS,
    WELSH_FAMILY_NAMES,
    WELSH_GIVEN_NAMES,
    ResidentPlan,
    plan_residents,
)
from citizenhub.errors import ApplicationError
from citizenhub.models import Citizen, ContactPoint, Language, TimelineEntry
from citizenhub.normalise import normalise_phone
from citizenhub.services import record_timeline_entry

HISTORY_MIN_RESIDENTS = 100
HISTORY_SHARE = 0.3  # residents who get in touch through a channel during the year
STRANGERS_PER_RESIDENTS = 10  # one unknown sender for every ten residents
# Unknown senders texting come from NANP's fictional 555-0100..0199: one number each.
MAX_STRANGERS = 90
REPLY_SHARE = 0.3  # conversations a member of staff answered in writing
CHASER_SHARE = 0.2  # unanswered conversations the resident chased
THANKS_SHARE = 0.4  # answered conversations the resident answered back
# Conversations quiet for this long before DEMO_NOW have been dealt with.
DONE_AFTER = datetime.timedelta(days=21)
QUERY_CHUNK = 500  # ids per IN (...) query, well inside SQLite's parameter limit

# Identities no demo resident is ever planned with (citizenhub.demo_data), so a larger seed
# can never find an unknown sender's profile holding a resident's address.
STRANGER_EMAIL_DOMAINS = ("proton.example", "hotmail.example")
STRANGER_MASTODON_INSTANCE = "mstdn.example"
COUNCIL_MASTODON_ACCOUNT_ID = "109000000000000001"
# Our replies' Message-IDs are fixed, not CHANNELS_MESSAGE_ID_DOMAIN's: a later run must find
# them whatever host it runs on, or it would write every reply again.
REPLY_MESSAGE_ID_DOMAIN = "citizenhub.northmoor.example"
X_EPOCH_MS = 1288834974657
STAFF = ("Jo Evans", "Sam Okafor", "Rhian Pritchard", "Mark Taylor", "Priya Shah")
# The council's Facebook posts people comment under.
FACEBOOK_POSTS = (
    "Christmas and New Year bin collection dates",
    "Roadworks on Station Road from Monday",
    "Have your say on the new Northmoor Local Plan",
    "Storm warning: sandbags available at the depot",
)


# --- what people write about ---------------------------------------------------------------


@dataclass(frozen=True)
class Topic:
    """Something residents get in touch about, in their words and the council's."""

    subject: str
    email: str  # the middle of an e-mail; may use {number} and {street}
    text: str  # a text, a post or a chat message
    reply: str  # what staff answer
    weight: int
    form_category: str = ""  # reported on the report-a-problem form under this choice
    mailbox: str = ""  # the e-mail channel kind of the department's own mailbox
    welsh: tuple[str, str, str] | None = None  # (subject, message, reply) in Welsh


TOPICS = (
    Topic(
        "Green bin not collected",
        "Our green bin at {number} {street} wasn't collected this week. It was out by 7am as "
        "usual and the neighbours' bins were emptied. Could the crew come back for it please?",
        "Hi, our bin wasn't collected at {number} {street} today. Can someone come back for it?",
        "Sorry about that. We've logged the missed collection and the crew will come back to "
        "{street} within 2 working days.",
        9,
        form_category="Missed bin collection",
    ),
    Topic(
        "Recycling collection missed again",
        "The recycling collection on {street} has been missed for the second week running. "
        "The blue boxes are still out on the pavement.",
        "Recycling collection missed on {street} again this week, boxes still out",
        "Thanks for letting us know. The recycling crew will return to {street} on Thursday.",
        6,
        form_category="Missed bin collection",
    ),
    Topic(
        "Fly-tipping behind the garages on {street}",
        "Someone has dumped a mattress, a fridge and several black bags behind the garages on "
        "{street}. It has been there since the weekend and children play there.",
        "Rubbish dumped behind the garages on {street}: mattress, fridge and bags since Saturday",
        "Thank you for reporting this. An enforcement officer will inspect the site and we'll "
        "clear it within 5 working days.",
        4,
        form_category="Fly-tipping",
    ),
    Topic(
        "Pothole outside {number} {street}",
        "There is a deep pothole in the road outside {number} {street}, about the size of a "
        "dinner plate. A cyclist nearly came off there this morning.",
        "Big pothole outside {number} {street}, a cyclist nearly came off this morning",
        "Thank you. Our inspector has assessed the pothole on {street} as category 2; it is "
        "scheduled for repair within 28 days.",
        7,
        form_category="Pothole or damaged road",
    ),
    Topic(
        "Street light out on {street}",
        "The street light opposite {number} {street} has been out for over a week. It's very "
        "dark walking home from the bus stop.",
        "The street light opposite {number} {street} has been out for a week",
        "Thanks, we've raised a fault with our lighting contractor. Most repairs are done "
        "within 10 working days.",
        4,
        form_category="Street light not working",
        welsh=(
            "Golau stryd wedi diffodd ar {street}",
            "Mae'r golau stryd gyferbyn â rhif {number} {street} wedi diffodd ers wythnos.",
            "Diolch, rydym wedi rhoi gwybod i'n contractwr goleuadau. Caiff y rhan fwyaf o "
            "namau eu trwsio o fewn 10 diwrnod gwaith.",
        ),
    ),
    Topic(
        "Council Tax Direct Debit",
        "I'd like to start paying my Council Tax by Direct Debit from next month. What do I "
        "need to do? My address is {number} {street}.",
        "How do I pay my council tax by direct debit?",
        "You can set up a Direct Debit online at northmoor.example/counciltax, or send us your "
        "Council Tax account number and we'll post you a form.",
        4,
        mailbox=Channel.Kind.EMAIL_WEBHOOK,
        welsh=(
            "Treth gyngor: Debyd Uniongyrchol",
            "Hoffwn dalu fy nhreth gyngor drwy Ddebyd Uniongyrchol o fis nesaf. Beth sydd "
            "angen i mi ei wneud?",
            "Gallwch drefnu Debyd Uniongyrchol ar-lein yn northmoor.example/trethgyngor, neu "
            "anfonwch rif eich cyfrif treth gyngor a byddwn yn postio ffurflen atoch.",
        ),
    ),
    Topic(
        "Single person discount",
        "My partner moved out last month, so I now live on my own at {number} {street}. Can I "
        "get the single person discount on my Council Tax?",
        "I live on my own now, can I get single person discount on my council tax?",
        "Yes: we've applied the 25% single person discount from the date you moved, and a new "
        "Council Tax bill is on its way.",
        4,
        mailbox=Channel.Kind.EMAIL_WEBHOOK,
    ),
    Topic(
        "Council Tax reminder",
        "I've had a Council Tax reminder for {number} {street}, but I paid the instalment last "
        "week. Could you check please?",
        "Got a council tax reminder but I paid last week, can you check?",
        "We've checked your account: your payment arrived after the reminder was printed, so "
        "there is nothing more to pay this month.",
        3,
        mailbox=Channel.Kind.EMAIL_WEBHOOK,
    ),
    Topic(
        "Damp and mould in the back bedroom",
        "The back bedroom at {number} {street} has black mould coming through the wall again, "
        "and my son has asthma. Please can someone come and look at it?",
        "Mould is back in the bedroom at {number} {street}, my son has asthma. Can someone come?",
        "We're sorry to hear this. A surveyor will contact you within 5 working days to book an "
        "inspection.",
        3,
        form_category="Damp or mould in a council home",
        mailbox=Channel.Kind.EMAIL_IMAP,
    ),
    Topic(
        "Joining the housing register",
        "We are a family of four in a two-bedroom flat and would like to join the housing "
        "register. How do we apply?",
        "How do we apply to join the housing register?",
        "You can apply online at northmoor.example/housing; we've also posted you the "
        "application pack.",
        2,
        mailbox=Channel.Kind.EMAIL_IMAP,
    ),
    Topic(
        "Garden waste subscription",
        "How do I renew our garden waste subscription for next year?",
        "How do I renew the garden waste subscription?",
        "You can renew at northmoor.example/gardenwaste; the permit for 2026/27 costs £45.",
        3,
    ),
    Topic(
        "Dog barking next door",
        "The dog next door barks for most of the day while its owners are at work. It has been "
        "going on for months and I work from home.",
        "Neighbour's dog barks all day every day, what can I do?",
        "We're sorry you're dealing with this. We've sent you noise diary sheets to fill in for "
        "two weeks; an officer will review them.",
        2,
        form_category="Noise",
    ),
    Topic(
        "Postal vote",
        "Could you send me a postal vote application form? I'm working away a lot this year.",
        "Can I get a postal vote form sent to me?",
        "We've posted you a postal vote application form; it needs to reach us 11 working days "
        "before polling day.",
        2,
    ),
    Topic(
        "Renewing a Blue Badge",
        "My mother's Blue Badge runs out next month. How do we renew it, and what do we need?",
        "How do we renew my mum's blue badge?",
        "You can renew at northmoor.example/bluebadge. You'll need a recent photo and proof of "
        "address.",
        2,
    ),
)
FORM_TOPICS = tuple(topic for topic in TOPICS if topic.form_category)
EMAIL_KINDS = (Channel.Kind.EMAIL_SMTP, Channel.Kind.EMAIL_IMAP, Channel.Kind.EMAIL_WEBHOOK)
SMS_KINDS = (Channel.Kind.SMS_NOTIFY, Channel.Kind.SMS_TWILIO)

GREETINGS = ("Hello,", "Hi,", "Dear Sir or Madam,", "Good morning,")
SIGN_OFFS = ("Thanks", "Kind regards", "Many thanks", "Regards")
CHASER = "I got in touch about this on {date} but haven't heard back. Is there any update?"
CHASER_SHORT = "Any update on this please?"
THANKS = "Thank you, that's sorted now."
THANKS_SHORT = "Thanks, all sorted now"
WELSH_CHASER = "Cysylltais am hyn ar {date} ond dw i ddim wedi clywed dim. Oes unrhyw newyddion?"
WELSH_THANKS = "Diolch, mae wedi'i drefnu nawr."


# --- who writes, and what gets replayed ---------------------------------------------------


@dataclass(frozen=True)
class Sender:
    key: str  # stable for this person: every provider id they get is derived from it
    name: str
    email: str = ""
    phone: str = ""  # as they would type it into a form
    mastodon: str = ""  # "@user@instance"
    x: str = ""  # "@Handle"
    street: str = "Northmoor Road"
    number: int = 1
    postcode: str = ""
    welsh: bool = False

    @property
    def first_name(self) -> str:
        return self.name.split(" ")[0]

    @property
    def e164(self) -> str:
        return normalise_phone(self.phone).normalised if self.phone else ""

    def kinds(self) -> list[str]:
        """The channel kinds this person can write through."""
        kinds = []
        if self.email:
            kinds += EMAIL_KINDS
        if self.phone:
            kinds += SMS_KINDS
        if self.email or self.phone:
            kinds.append(Channel.Kind.WEBFORM)
        if self.mastodon:
            kinds.append(Channel.Kind.MASTODON)
        if self.x:
            kinds.append(Channel.Kind.X)
        return [*kinds, Channel.Kind.FACEBOOK]


@dataclass(frozen=True)
class PlannedMessage:
    at: datetime.datetime
    channel_kind: str
    raw: RawInbound


@dataclass(frozen=True)
class PlannedReply:
    at: datetime.datetime
    channel_kind: str  # of the message it answers
    answers: str  # that message's external id
    body: str
    message_id: str
    provider_message_id: str


Event = PlannedMessage | PlannedReply


@dataclass(frozen=True)
class HistoryCounts:
    messages: int
    replies: int


@dataclass(frozen=True)
class _Conversation:
    key: str
    kind: str
    sender: Sender
    topic: Topic
    welsh: bool
    start: datetime.datetime
    public: bool  # a Mastodon mention rather than a direct message, a Facebook comment

    def fill(self, text: str) -> str:
        return text.format(street=self.sender.street, number=self.sender.number)

    @property
    def subject(self) -> str:
        return self.fill(self.topic.welsh[0] if self.welsh else self.topic.subject)

    @property
    def message(self) -> str:
        """The message in full, as an e-mail or a form would carry it."""
        return self.fill(self.topic.welsh[1] if self.welsh else self.topic.email)

    @property
    def short(self) -> str:
        """The message as a text or a post."""
        return self.fill(self.topic.welsh[1] if self.welsh else self.topic.text)

    @property
    def reply(self) -> str:
        return self.fill(self.topic.welsh[2] if self.welsh else self.topic.reply)


# --- small deterministic helpers -----------------------------------------------------------


def _digest(*parts: object) -> bytes:
    return hashlib.sha256("/".join(str(part) for part in parts).encode()).digest()


def _hex(*parts: object, length: int = 32) -> str:
    return _digest(*parts).hex()[:length]


def _digits(*parts: object, length: int) -> str:
    number = int.from_bytes(_digest(*parts)[:10], "big") % (9 * 10 ** (length - 1))
    return str(10 ** (length - 1) + number)


def _token(*parts: object, length: int = 22) -> str:
    return base64.urlsafe_b64encode(_digest(*parts)).decode("ascii").rstrip("=")[:length]


def _ascii(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return "".join(ch for ch in folded.lower() if ch.isalnum())


def _utc(moment: datetime.datetime) -> datetime.datetime:
    # Messages reach the pipeline in UTC, as providers' clocks and timezone.now() give them.
    return moment.astimezone(datetime.UTC)


def _iso_ms(moment: datetime.datetime) -> str:
    """A time as Mastodon, X and Facebook write it: 2026-05-14T11:15:30.000Z."""
    return _utc(moment).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _mastodon_id(moment: datetime.datetime, *key: object) -> str:
    # Mastodon's ids: milliseconds since 1970 in the high bits, a sequence in the low 16.
    milliseconds = int(moment.timestamp() * 1000)
    return str((milliseconds << 16) + int.from_bytes(_digest(*key)[:2], "big"))


def _tweet_id(moment: datetime.datetime, *key: object) -> str:
    # X's snowflakes: milliseconds since X's epoch above 22 bits of machine and sequence.
    milliseconds = int(moment.timestamp() * 1000) - X_EPOCH_MS
    return str((milliseconds << 22) + int.from_bytes(_digest(*key)[:3], "big") % (1 << 22))


def _at(day: datetime.date, minutes: int, seconds: int) -> datetime.datetime:
    return datetime.datetime.combine(
        day, datetime.time(minutes // 60, minutes % 60, seconds), LONDON
    )


def _waking_moment(rng: random.Random) -> datetime.datetime:
    """A moment in the year before DEMO_NOW, at an hour people write to the council."""
    day = DEMO_NOW.date() - datetime.timedelta(days=rng.randint(1, 365))
    return _at(day, rng.randint(7 * 60, 22 * 60 + 59), rng.randint(0, 59))


def _office_moment_after(rng: random.Random, moment: datetime.datetime) -> datetime.datetime:
    """When staff answer: office hours on a weekday, up to two working days later."""
    day = moment.date() + datetime.timedelta(days=rng.randint(0, 2))
    earliest = 8 * 60 + 30
    if day == moment.date():
        earliest = max(earliest, moment.hour * 60 + moment.minute + 20)
    while day.weekday() >= 5 or earliest > 17 * 60:
        day += datetime.timedelta(days=1)
        earliest = 8 * 60 + 30
    return _at(day, rng.randint(earliest, 17 * 60), rng.randint(0, 59))


def _chunks(items: Sequence, size: int) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# --- the payloads, as each provider delivers them -------------------------------------------


class _Payloads:
    """Raw inbound messages for the demo's channels, exactly as their providers send them."""

    def __init__(self, channels: Mapping[str, Channel], webform: WebForm) -> None:
        self.channels = channels
        self.form = webform
        mastodon = channels[Channel.Kind.MASTODON]
        self.mastodon_instance = str(mastodon.setting("instance_domain"))
        self.mastodon_account = mastodon.address.removeprefix("@").split("@")[0]
        x = channels[Channel.Kind.X]
        self.x_user_id = str(x.setting("user_id"))
        self.x_username = x.address.removeprefix("@")
        self.page_id = str(channels[Channel.Kind.FACEBOOK].setting("page_id"))

    def address(self, kind: str) -> str:
        return self.channels[kind].address

    # --- e-mail ---

    def email_id(self, sender: Sender, *key: object) -> str:
        return f"{_hex(*key, length=24)}@mail.{sender.email.rsplit('@', 1)[1].lower()}"

    def reply_id(self, *key: object) -> str:
        return f"demo.{_hex(*key, length=24)}@{REPLY_MESSAGE_ID_DOMAIN}"

    def email(
        self,
        kind: str,
        sender: Sender,
        *,
        at: datetime.datetime,
        subject: str,
        body: str,
        message_id: str,
        references: Sequence[str] = (),
        with_html: bool = False,
    ) -> RawInbound:
        mailbox = self.address(kind)
        message = EmailMessage(policy=SMTP)
        if kind == Channel.Kind.EMAIL_IMAP:
            message["Delivered-To"] = mailbox  # what the IMAP adapter reads recipients from
        message["From"] = Address(display_name=sender.name, addr_spec=sender.email)
        message["To"] = Address(display_name="Northmoor District Council", addr_spec=mailbox)
        message["Subject"] = subject
        message["Date"] = format_datetime(at)
        message["Message-ID"] = f"<{message_id}>"
        if references:
            message["In-Reply-To"] = f"<{references[-1]}>"
            message["References"] = " ".join(f"<{reference}>" for reference in references)
        message.set_content(body)
        if with_html:
            paragraphs = "".join(
                f"<p>{html.escape(part).replace(chr(10), '<br>')}</p>"
                for part in body.split("\n\n")
            )
            message.add_alternative(f"<html><body>{paragraphs}</body></html>", subtype="html")
            message.set_boundary(f"=_{_hex(message_id, length=28)}")  # else random
        raw = message.as_bytes()
        # As the SMTP receiver, the IMAP poller and the Mailgun webhook each store it.
        return RawInbound(external_id_for(raw), raw, recipients=(mailbox,), received_at=_utc(at))

    # --- text messages ---

    def notify(self, sender: Sender, *, at: datetime.datetime, text: str, key: str) -> RawInbound:
        provider_id = str(uuid.UUID(bytes=_digest("notify", key)[:16], version=4))
        payload = {
            "id": provider_id,
            "source_number": sender.e164.removeprefix("+"),
            "destination_number": self.address(Channel.Kind.SMS_NOTIFY).replace(" ", ""),
            "message": text,
            "date_received": _utc(at).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        }
        return RawInbound(
            f"notify:{provider_id}",
            json.dumps(payload).encode(),
            content_type="application/json",
            received_at=_utc(at),
        )

    def twilio(self, sender: Sender, *, at: datetime.datetime, text: str, key: str) -> RawInbound:
        sid = f"SM{_hex('twilio', key)}"
        country = "GB" if sender.e164.startswith("+44") else "US"
        account = str(self.channels[Channel.Kind.SMS_TWILIO].setting("account_sid"))
        # Twilio's field order; it sends no timestamp, so received_at is the only time.
        fields = [
            ("ToCountry", "GB"), ("ToState", ""), ("SmsMessageSid", sid), ("NumMedia", "0"),
            ("ToCity", ""), ("FromZip", ""), ("SmsSid", sid), ("FromState", ""),
            ("SmsStatus", "received"), ("FromCity", ""), ("Body", text),
            ("FromCountry", country), ("To", self.address(Channel.Kind.SMS_TWILIO)),
            ("ToZip", ""), ("NumSegments", "1"), ("MessageSid", sid), ("AccountSid", account),
            ("From", sender.e164), ("ApiVersion", "2010-04-01"),
        ]  # fmt: skip
        return RawInbound(
            f"twilio:{sid}",
            urlencode(fields).encode("ascii"),
            content_type="application/x-www-form-urlencoded",
            received_at=_utc(at),
        )

    # --- social: stored as the adapters store what they fetch or are sent (json_bytes) ---

    def mastodon(
        self,
        sender: Sender,
        *,
        at: datetime.datetime,
        text: str,
        key: str,
        public: bool,
        in_reply_to: tuple[str, str] | None = None,  # (status id, account id)
    ) -> RawInbound:
        user, instance = sender.mastodon.removeprefix("@").split("@")
        local = instance == self.mastodon_instance
        account_id = _digits("mastodon-account", sender.key, length=18)
        status_id = _mastodon_id(at, "mastodon-status", key)
        remote_id = _mastodon_id(at, "mastodon-remote-status", key)
        council_url = f"https://{self.mastodon_instance}/@{self.mastodon_account}"
        mention = (
            f'<span class="h-card" translate="no"><a href="{council_url}" '
            f'class="u-url mention">@<span>{self.mastodon_account}</span></a></span>'
        )
        account = {
            "id": account_id,
            "username": user,
            "acct": user if local else f"{user}@{instance}",
            "display_name": sender.name,
            "locked": False,
            "bot": False,
            "discoverable": True,
            "group": False,
            "created_at": "2023-01-09T00:00:00.000Z",
            "note": "",
            "url": f"https://{instance}/@{user}",
            "uri": f"https://{instance}/users/{user}",
            "avatar": f"https://{self.mastodon_instance}/avatars/original/missing.png",
            "avatar_static": f"https://{self.mastodon_instance}/avatars/original/missing.png",
            "header": f"https://{self.mastodon_instance}/headers/original/missing.png",
            "header_static": f"https://{self.mastodon_instance}/headers/original/missing.png",
            "followers_count": int(_digits("followers", sender.key, length=3)) % 400,
            "following_count": int(_digits("following", sender.key, length=3)) % 300,
            "statuses_count": int(_digits("statuses", sender.key, length=4)) % 3000,
            "last_status_at": _utc(at).date().isoformat(),
            "emojis": [],
            "fields": [],
        }
        status = {
            "id": status_id,
            "created_at": _iso_ms(at),
            "in_reply_to_id": in_reply_to[0] if in_reply_to else None,
            "in_reply_to_account_id": in_reply_to[1] if in_reply_to else None,
            "sensitive": False,
            "spoiler_text": "",
            "visibility": "public" if public else "direct",
            "language": "cy" if sender.welsh else "en",
            "uri": f"https://{instance}/users/{user}/statuses/{remote_id}",
            "url": f"https://{instance}/@{user}/{remote_id}",
            "replies_count": 0,
            "reblogs_count": 0,
            "favourites_count": 0,
            "edited_at": None,
            "content": f"<p>{mention} {html.escape(text)}</p>",
            "reblog": None,
            "account": account,
            "media_attachments": [],
            "mentions": [
                {
                    "id": COUNCIL_MASTODON_ACCOUNT_ID,
                    "username": self.mastodon_account,
                    "url": council_url,
                    "acct": self.mastodon_account,
                }
            ],
            "tags": [],
            "emojis": [],
            "card": None,
            "poll": None,
        }
        notification_id = _digits("mastodon-notification", key, length=8)
        notification = {
            "id": notification_id,
            "type": "mention",
            "created_at": _iso_ms(at),
            "group_key": f"ungrouped-{notification_id}",
            "account": account,
            "status": status,
        }
        return RawInbound(
            f"mastodon:{status_id}",
            json_bytes(notification),
            content_type="application/json",
            received_at=_utc(at),
        )

    def x(
        self,
        sender: Sender,
        *,
        at: datetime.datetime,
        text: str,
        key: str,
        replying_to: str | None = None,
        conversation: str | None = None,
    ) -> RawInbound:
        tweet_id = _tweet_id(at, "x", key)
        author_id = _digits("x-user", sender.key, length=19)
        tweet = {
            "edit_history_tweet_ids": [tweet_id],
            "author_id": author_id,
            "conversation_id": conversation or tweet_id,
            "created_at": _iso_ms(at),
            # A tweet starting with @handle is, to X, a reply to that account.
            "in_reply_to_user_id": author_id if replying_to else self.x_user_id,
            # X escapes &, < and > in tweet text.
            "text": f"@{self.x_username} {html.escape(text, quote=False)}",
            "id": tweet_id,
        }
        if replying_to:
            tweet["referenced_tweets"] = [{"type": "replied_to", "id": replying_to}]
        user = {"id": author_id, "name": sender.name, "username": sender.x.removeprefix("@")}
        payload = {"data": tweet, "includes": {"users": [user]}}
        return RawInbound(
            f"x:{tweet_id}",
            json_bytes(payload),
            content_type="application/json",
            received_at=_utc(at),
        )

    def facebook_message(
        self, sender: Sender, *, at: datetime.datetime, text: str, key: str
    ) -> RawInbound:
        mid = f"m_{_token('facebook-mid', key, length=43)}"
        event = {
            "sender": {"id": _digits("facebook-psid", sender.key, length=16)},
            "recipient": {"id": self.page_id},
            "timestamp": int(at.timestamp() * 1000),
            "message": {"mid": mid, "text": text},
        }
        return RawInbound(
            f"fb:{mid}",
            json_bytes(event),
            content_type="application/json",
            received_at=_utc(at),
        )

    def facebook_comment(
        self,
        sender: Sender,
        *,
        at: datetime.datetime,
        text: str,
        key: str,
        post: str,
        parent: str | None = None,
    ) -> RawInbound:
        post_number = _digits("facebook-post", post, length=16)
        post_id = f"{self.page_id}_{post_number}"
        comment_id = f"{post_number}_{_digits('facebook-comment', key, length=16)}"
        change = {
            "field": "feed",
            "value": {
                "from": {
                    "id": _digits("facebook-user", sender.key, length=16),
                    "name": sender.name,
                },
                "post": {
                    "status_type": "mobile_status_update",
                    "is_published": True,
                    "updated_time": _utc(at).strftime("%Y-%m-%dT%H:%M:%S+0000"),
                    "permalink_url": f"https://www.facebook.com/{self.page_id}/posts/{post_number}",
                    "promotion_status": "inactive",
                    "id": post_id,
                },
                "message": text,
                "post_id": post_id,
                "comment_id": comment_id,
                "created_time": int(at.timestamp()),
                "item": "comment",
                "parent_id": parent or post_id,
                "verb": "add",
            },
        }
        return RawInbound(
            f"fb-comment:{comment_id}",
            json_bytes(change),
            content_type="application/json",
            received_at=_utc(at),
        )

    # --- web form ---

    def webform(
        self,
        sender: Sender,
        *,
        at: datetime.datetime,
        topic: Topic,
        details: str,
        key: str,
        with_phone: bool,
    ) -> RawInbound:
        """A submission as channels.forms_views stores it, answers already checked."""
        answers = {
            "category": topic.form_category,
            "location": f"{sender.number} {sender.street}",
            "postcode": sender.postcode,
            "details": details,
            "name": sender.name,
            "email": sender.email,
            "phone": sender.phone if with_phone or not sender.email else "",
            "case_reference": "",
        }
        definitions = self.form.field_definitions()
        payload = {
            "form": self.form.slug,
            "title": self.form.title,
            "fields": {d.name: answers.get(d.name, "") for d in definitions},
            "definition": [{"name": d.name, "label": d.label, "type": d.type} for d in definitions],
            "submitted_at": _utc(at).isoformat(),
            "ip_hash": _hex("ip", sender.key),
            "origin": "",
        }
        return RawInbound(
            f"webform:{_token('webform-nonce', key)}",
            json.dumps(payload, ensure_ascii=False).encode("utf-8"),
            content_type="application/json",
            received_at=_utc(at),
        )


# --- planning the year ----------------------------------------------------------------------


class _Planner:
    """Each sender's conversations: their messages, staff replies and answers to those."""

    def __init__(self, payloads: _Payloads) -> None:
        self.payloads = payloads

    def resident(self, plan: ResidentPlan) -> list[Event]:
        rng = random.Random(f"northmoor-history/resident/{plan.index}")  # noqa: S311 - demo data
        if rng.random() >= HISTORY_SHARE or not plan.contact_points:
            return []
        first = {kind: value for kind, value in reversed(plan.contact_points)}  # of each kind
        address = plan.address
        sender = Sender(
            key=f"resident-{plan.index}",
            name=f"{plan.given_name} {plan.family_name}",
            email=first.get(ContactPoint.Kind.EMAIL, ""),
            phone=first.get(ContactPoint.Kind.PHONE, ""),
            mastodon=first.get(ContactPoint.Kind.MASTODON, ""),
            x=first.get(ContactPoint.Kind.X, ""),
            street=address.street if address else rng.choice(STREETS)[0],
            number=address.number if address else rng.randint(1, 20),
            postcode=address.postcode if address else "",
            welsh=plan.preferred_language == Language.WELSH,
        )
        conversations = 1 + (rng.random() < 0.5) + (rng.random() < 0.2)
        events = []
        for number in range(conversations):
            kind = self._choose_kind(rng, sender)
            events += self._conversation(
                rng, f"{sender.key}/{number}", kind, sender, choose_mailbox=True
            )
        return events

    def stranger(self, index: int) -> list[Event]:
        """Someone the council has no record of, on each channel kind in turn."""
        rng = random.Random(f"northmoor-history/stranger/{index}")  # noqa: S311 - demo data
        kinds = [kind for kind in Channel.Kind.values if kind != Channel.Kind.STAFF]
        kind = kinds[index % len(kinds)]
        welsh = rng.random() < 0.15
        given = rng.choice(WELSH_GIVEN_NAMES if welsh else OTHER_GIVEN_NAMES)
        family = rng.choice(WELSH_FAMILY_NAMES if welsh else OTHER_FAMILY_NAMES)
        street, highest = rng.choice(STREETS)
        identity: dict[str, str] = {}
        if kind in SMS_KINDS:
            identity["phone"] = f"+1 202 555 {100 + index:04d}"
        elif kind == Channel.Kind.MASTODON:
            identity["mastodon"] = f"@{_ascii(given)}{index}@{STRANGER_MASTODON_INSTANCE}"
        elif kind == Channel.Kind.X:
            identity["x"] = f"@{_ascii(given)[:8].title()}_{index:02d}x"
        elif kind != Channel.Kind.FACEBOOK:
            domain = STRANGER_EMAIL_DOMAINS[index % len(STRANGER_EMAIL_DOMAINS)]
            identity["email"] = f"{_ascii(given)}.{_ascii(family)}{index}@{domain}"
        sender = Sender(
            key=f"stranger-{index}",
            name=f"{given} {family}",
            street=street,
            number=rng.randint(1, highest),
            welsh=welsh,
            **identity,
        )
        return self._conversation(rng, sender.key, kind, sender, choose_mailbox=False)

    @staticmethod
    def _choose_kind(rng: random.Random, sender: Sender) -> str:
        available = sender.kinds()
        families = [
            (Channel.Kind.EMAIL_SMTP, 5),
            (Channel.Kind.SMS_NOTIFY, 3),
            (Channel.Kind.WEBFORM, 2),
            (Channel.Kind.MASTODON, 4),
            (Channel.Kind.X, 4),
            (Channel.Kind.FACEBOOK, 1),
        ]
        options = [(kind, weight) for kind, weight in families if kind in available]
        kind = rng.choices([k for k, _ in options], weights=[w for _, w in options])[0]
        if kind == Channel.Kind.SMS_NOTIFY and rng.random() < 0.35:
            return Channel.Kind.SMS_TWILIO
        return kind

    def _conversation(
        self,
        rng: random.Random,
        key: str,
        kind: str,
        sender: Sender,
        *,
        choose_mailbox: bool,
    ) -> list[Event]:
        topics = FORM_TOPICS if kind == Channel.Kind.WEBFORM else TOPICS
        topic = rng.choices(topics, weights=[topic.weight for topic in topics])[0]
        if choose_mailbox and kind in EMAIL_KINDS:
            # Most write to the contact centre; some know the department's own mailbox.
            if topic.mailbox and rng.random() < 0.6:
                kind = topic.mailbox
            else:
                kind = rng.choices(EMAIL_KINDS, weights=[8, 1, 1])[0]
        public_share = {
            Channel.Kind.MASTODON: 0.75,
            Channel.Kind.X: 1.0,
            Channel.Kind.FACEBOOK: 0.3,
        }
        conversation = _Conversation(
            key=key,
            kind=kind,
            sender=sender,
            topic=topic,
            welsh=sender.welsh and topic.welsh is not None and rng.random() < 0.6,
            start=_waking_moment(rng),
            public=rng.random() < public_share.get(kind, 0.0),
        )
        write = _ConversationWriter(self.payloads, rng, conversation)
        events: list[Event] = [write.first()]
        reply_at = _office_moment_after(rng, conversation.start)
        if rng.random() < REPLY_SHARE and reply_at <= DEMO_NOW:
            reply = write.reply(reply_at)
            events.append(reply)
            thanks_at = reply_at + datetime.timedelta(minutes=rng.randint(30, 30 * 60))
            if rng.random() < THANKS_SHARE and thanks_at <= DEMO_NOW:
                events += write.thanks(thanks_at, reply)
        elif rng.random() < CHASER_SHARE:
            # A text more than 72 hours on starts a new conversation: chase within two days.
            hours = (20, 48) if kind in SMS_KINDS else (96, 288)
            chaser_at = conversation.start + datetime.timedelta(hours=rng.randint(*hours))
            if chaser_at <= DEMO_NOW:
                events += write.chaser(chaser_at)
        return events


def _sent_id(kind: str, at: datetime.datetime, key: str) -> str:
    """What a provider answered when it took a reply (for e-mail, our own Message-ID)."""
    if kind in (Channel.Kind.SMS_NOTIFY, Channel.Kind.WEBFORM):  # a form's texts go by Notify
        return str(uuid.UUID(bytes=_digest("notify-sent", key)[:16], version=4))
    if kind == Channel.Kind.SMS_TWILIO:
        return f"SM{_hex('twilio-sent', key)}"
    if kind == Channel.Kind.MASTODON:
        return _mastodon_id(at, "mastodon-sent", key)  # the council's direct status
    if kind == Channel.Kind.X:
        return f"dm:{_digits('x-dm', key, length=19)} reply:{_tweet_id(at, 'x-sent', key)}"
    return f"m_{_token('facebook-sent', key, length=43)}"  # Facebook's Send API


class _ConversationWriter:
    """One conversation's messages in its channel's format."""

    def __init__(self, payloads: _Payloads, rng: random.Random, conversation: _Conversation):
        self.payloads = payloads
        self.rng = rng
        self.c = conversation
        self.first_message: PlannedMessage | None = None
        self.first_email_id = ""
        self.post = rng.choice(FACEBOOK_POSTS)
        self.greeting = "Helo," if conversation.welsh else rng.choice(GREETINGS)
        self.sign_off = "Diolch" if conversation.welsh else rng.choice(SIGN_OFFS)
        self.with_html = rng.random() < 0.3

    # --- what each kind sends ---

    def _message(
        self, role: str, at: datetime.datetime, text: str, *, public: bool | None = None, **extra
    ) -> PlannedMessage:
        c, p = self.c, self.payloads
        public = c.public if public is None else public
        key = f"{c.key}/{role}"
        kind = c.kind
        if kind in SMS_KINDS:
            write = p.notify if kind == Channel.Kind.SMS_NOTIFY else p.twilio
            raw = write(c.sender, at=at, text=text, key=key)
        elif kind == Channel.Kind.MASTODON:
            raw = p.mastodon(c.sender, at=at, text=text, key=key, public=public, **extra)
        elif kind == Channel.Kind.X:
            raw = p.x(c.sender, at=at, text=text, key=key, **extra)
        elif kind == Channel.Kind.FACEBOOK and public:
            raw = p.facebook_comment(c.sender, at=at, text=text, key=key, post=self.post, **extra)
        elif kind == Channel.Kind.FACEBOOK:
            raw = p.facebook_message(c.sender, at=at, text=text, key=key)
        else:
            raise ValueError(f"no short message on {kind}")
        return PlannedMessage(at, kind, raw)

    def _letter(self, text: str) -> str:
        return f"{self.greeting}\n\n{text}\n\n{self.sign_off},\n{self.c.sender.first_name}\n"

    def _is_email(self) -> bool:
        return self.c.kind in EMAIL_KINDS

    def first(self) -> PlannedMessage:
        c = self.c
        if self._is_email():
            self.first_email_id = self.payloads.email_id(c.sender, c.key, "first")
            raw = self.payloads.email(
                c.kind,
                c.sender,
                at=c.start,
                subject=c.subject,
                body=self._letter(c.message),
                message_id=self.first_email_id,
                with_html=self.with_html,
            )
            self.first_message = PlannedMessage(c.start, c.kind, raw)
        elif c.kind == Channel.Kind.WEBFORM:
            raw = self.payloads.webform(
                c.sender,
                at=c.start,
                topic=c.topic,
                details=c.message,
                key=f"{c.key}/first",
                with_phone=bool(c.sender.phone) and self.rng.random() < 0.4,
            )
            self.first_message = PlannedMessage(c.start, c.kind, raw)
        else:
            self.first_message = self._message("first", c.start, c.short)
        return self.first_message

    def chaser(self, at: datetime.datetime) -> list[PlannedMessage]:
        c, first = self.c, self.first_message
        date = f"{c.start.day} {c.start:%B}"
        if self._is_email():
            text = (WELSH_CHASER if c.welsh else CHASER).format(date=date)
            quoted = "\n".join(f"> {line}" for line in self._letter(c.message).splitlines())
            body = (
                f"{self.greeting}\n\n{text}\n\n{self.sign_off},\n{c.sender.first_name}\n\n"
                f"On {c.start:%a, %d %b %Y at %H:%M}, {c.sender.name} <{c.sender.email}> "
                f"wrote:\n{quoted}\n"
            )
            raw = self.payloads.email(
                c.kind,
                c.sender,
                at=at,
                subject=f"Re: {c.subject}",
                body=body,
                message_id=self.payloads.email_id(c.sender, c.key, "chaser"),
                references=[self.first_email_id],
            )
            return [PlannedMessage(at, c.kind, raw)]
        if c.kind == Channel.Kind.WEBFORM:
            return []  # a second form is a new report, not a reply
        text = "Oes unrhyw newyddion am hyn?" if c.welsh else CHASER_SHORT
        extra: dict = {}
        if c.kind == Channel.Kind.MASTODON:
            status = json.loads(first.raw.raw)["status"]
            extra["in_reply_to"] = (status["id"], status["account"]["id"])
        elif c.kind == Channel.Kind.X:
            tweet_id = json.loads(first.raw.raw)["data"]["id"]
            extra = {"replying_to": tweet_id, "conversation": tweet_id}
        elif c.kind == Channel.Kind.FACEBOOK and c.public:
            extra["parent"] = json.loads(first.raw.raw)["value"]["comment_id"]
        return [self._message("chaser", at, text, **extra)]

    def reply(self, at: datetime.datetime) -> PlannedReply:
        c, p = self.c, self.payloads
        key = f"{c.key}/reply"
        staff = self.rng.choice(STAFF)
        by_email = self._is_email() or (c.kind == Channel.Kind.WEBFORM and c.sender.email)
        if by_email:
            closing = (
                "Cofion,\n{staff}\nGwasanaethau Cwsmeriaid, Cyngor Dosbarth Northmoor"
                if c.welsh
                else "Kind regards,\n{staff}\nCustomer Services, Northmoor District Council"
            )
            greeting = "Annwyl" if c.welsh else "Dear"
            body = (
                f"{greeting} {c.sender.first_name},\n\n{c.reply}\n\n{closing.format(staff=staff)}"
            )
        elif c.kind in (*SMS_KINDS, Channel.Kind.WEBFORM):
            body = f"{c.reply} Northmoor Council"
        elif c.kind == Channel.Kind.FACEBOOK and not c.public:
            body = c.reply  # a Messenger message comes without the sender's name
        else:
            body = f"Hi {c.sender.first_name}, {c.reply[0].lower()}{c.reply[1:]}"
        message_id = p.reply_id(key)
        return PlannedReply(
            at=at,
            channel_kind=c.kind,
            answers=self.first_message.raw.external_id,
            body=body,
            message_id=message_id,
            provider_message_id=message_id if by_email else _sent_id(c.kind, at, key),
        )

    def thanks(self, at: datetime.datetime, reply: PlannedReply) -> list[PlannedMessage]:
        c = self.c
        if self._is_email() or (c.kind == Channel.Kind.WEBFORM and c.sender.email):
            # A web form's reply came by e-mail from the contact centre: answered there.
            kind = c.kind if self._is_email() else Channel.Kind.EMAIL_SMTP
            references = [self.first_email_id] if self.first_email_id else []
            quoted = "\n".join(f"> {line}" for line in reply.body.splitlines())
            text = WELSH_THANKS if c.welsh else THANKS
            subject = c.subject if self._is_email() else self.payloads.form.title
            raw = self.payloads.email(
                kind,
                c.sender,
                at=at,
                subject=f"Re: {subject}",
                body=(
                    f"{text}\n\n{c.sender.first_name}\n\n"
                    f"On {reply.at:%a, %d %b %Y at %H:%M}, Northmoor District Council wrote:\n"
                    f"{quoted}\n"
                ),
                message_id=self.payloads.email_id(c.sender, c.key, "thanks"),
                references=[*references, reply.message_id],
            )
            return [PlannedMessage(at, kind, raw)]
        text = "Diolch!" if c.welsh else THANKS_SHORT
        if c.kind in SMS_KINDS:
            return [self._message("thanks", at, text)]
        if c.kind == Channel.Kind.MASTODON:
            return [
                self._message(
                    "thanks",
                    at,
                    text,
                    public=False,  # an answer to a direct status is direct too
                    in_reply_to=(reply.provider_message_id, COUNCIL_MASTODON_ACCOUNT_ID),
                )
            ]
        if c.kind == Channel.Kind.FACEBOOK and not c.public:
            return [self._message("thanks", at, text)]
        # X replies go by direct message, which the X channel does not read; a private reply
        # to a Facebook comment is answered in Messenger, under an id the comment did not use.
        return []


# --- replaying it --------------------------------------------------------------------------


def plan_history(
    *,
    residents: Iterable[ResidentPlan],
    strangers: int,
    channels: Mapping[str, Channel],
    webform: WebForm,
) -> list[Event]:
    """Every message and staff reply of these residents and the first `strangers` unknown
    senders (stranger i writes on the i-th channel kind), in no particular order."""
    planner = _Planner(_Payloads(channels, webform))
    events: list[Event] = []
    for plan in residents:
        events += planner.resident(plan)
    for index in range(strangers):
        events += planner.stranger(index)
    return events


def _present_public_ids(plans: Sequence[ResidentPlan]) -> set[uuid.UUID]:
    present: set[uuid.UUID] = set()
    for chunk in _chunks([plan.public_id for plan in plans], QUERY_CHUNK):
        present.update(
            Citizen.objects.filter(public_id__in=chunk).values_list("public_id", flat=True)
        )
    return present


def _not_seeded(events: list[Event], channels: Mapping[str, Channel]) -> list[Event]:
    """The events a previous run has not already written."""
    wanted: dict[str, list[str]] = defaultdict(list)
    for event in events:
        if isinstance(event, PlannedMessage):
            wanted[event.channel_kind].append(event.raw.external_id)
    stored: set[tuple[str, str]] = set()
    for kind, external_ids in wanted.items():
        for chunk in _chunks(external_ids, QUERY_CHUNK):
            found = InboundMessage.objects.filter(
                channel=channels[kind], external_id__in=chunk
            ).values_list("external_id", flat=True)
            stored.update((kind, external_id) for external_id in found)
    reply_ids = [event.message_id for event in events if isinstance(event, PlannedReply)]
    replied: set[str] = set()
    for chunk in _chunks(reply_ids, QUERY_CHUNK):
        replied.update(
            OutboundMessage.objects.filter(message_id__in=chunk).values_list(
                "message_id", flat=True
            )
        )
    return [
        event
        for event in events
        if (
            (event.channel_kind, event.raw.external_id) not in stored
            if isinstance(event, PlannedMessage)
            else event.message_id not in replied
        )
    ]


def _store_and_ingest(
    waiting: Mapping[str, list[RawInbound]], channels: Mapping[str, Channel]
) -> list[int]:
    new_ids: list[int] = []
    for kind, raws in waiting.items():
        new_ids += store_raw_messages(channel=channels[kind], raws=raws).new_ids
    # Oldest first across channels, so that a reply is threaded after what it answers.
    ordered: list[tuple] = []
    for chunk in _chunks(new_ids, QUERY_CHUNK):
        ordered += InboundMessage.objects.filter(pk__in=chunk).values_list("received_at", "pk")
    ids = [pk for _received_at, pk in sorted(ordered)]
    for chunk in _chunks(ids, settings.CHANNELS_INGEST_BATCH_SIZE):
        ingest_inbound_messages(chunk)
    return new_ids


def _write_reply(event: PlannedReply, channels: Mapping[str, Channel]) -> int | None:
    """Write one staff reply as thread_reply queues it, then record that the provider took
    it back then (there is no provider to send it through now). Returns its thread's id."""
    thread = (
        Thread.objects.select_related("channel")
        .filter(
            inbound_messages__channel=channels[event.channel_kind],
            inbound_messages__external_id=event.answers,
        )
        .first()
    )
    if thread is None:  # the message it answers failed to process: nothing to answer
        return None
    last_message_at = thread.last_message_at
    try:
        outbound = thread_reply(thread=thread, body=event.body, by=None)
    except ApplicationError:  # the resident's address was removed since: leave it unanswered
        return None
    OutboundMessage.objects.filter(pk=outbound.pk).update(
        message_id=event.message_id,
        status=OutboundMessage.Status.SENT,
        attempts=1,
        last_error="",
        provider_message_id=event.provider_message_id,
        created_at=event.at,
        sent_at=event.at,
    )
    # What send_outbound records once a provider has taken a message.
    record_timeline_entry(
        citizen=outbound.citizen,
        kind=TimelineEntry.Kind.MESSAGE_OUT,
        occurred_at=event.at,
        summary=f"{outbound.subject}: {event.body}" if outbound.subject else event.body,
        channel=thread.channel.timeline_channel,
        department=thread.department,
        visibility=TimelineEntry.Visibility.RESIDENT,
        source=outbound,
    )
    # thread_reply stamps the real "now"; the reply belongs where it happened.
    Thread.objects.filter(pk=thread.pk).update(last_message_at=max(last_message_at, event.at))
    return thread.pk


def _settle_threads(thread_ids: Iterable[int]) -> None:
    """Threads start when their first message came, and those quiet for weeks are done."""
    first_message = (
        InboundMessage.objects.filter(thread=OuterRef("pk"))
        .order_by("received_at")
        .values("received_at")[:1]
    )
    for chunk in _chunks(sorted(thread_ids), QUERY_CHUNK):
        Thread.objects.filter(pk__in=chunk).update(created_at=Subquery(first_message))
        Thread.objects.filter(pk__in=chunk, last_message_at__lt=DEMO_NOW - DONE_AFTER).update(
            status=Thread.Status.DONE
        )


def _quiet_task_logs_after_commit() -> Callable[[], None]:
    """Hide the "task succeeded" lines of the tasks that run once the seed commits.

    Every store and every reply enqueues its task on commit (run in-process without Redis),
    and each finds its work done already: messages processed, replies sent. Hundreds of
    log lines saying so would bury seed_demo's summary. Callbacks run in the order they
    were registered, so these two bracket all of the enqueues; failures are errors and
    still show.
    """
    trace = logging.getLogger("celery.app.trace")
    level = trace.level
    transaction.on_commit(lambda: trace.setLevel(logging.WARNING))
    return lambda: transaction.on_commit(lambda: trace.setLevel(level), robust=True)


def seed_history(
    *,
    residents: int,
    channels: Mapping[str, Channel],
    webform: WebForm,
    progress: TextIO | None = None,
) -> HistoryCounts:
    """Replay the year's contact of the first `residents` demo residents (those present) and
    of unknown senders, skipping whatever an earlier run wrote."""
    if residents < HISTORY_MIN_RESIDENTS:
        return HistoryCounts(0, 0)
    plans = plan_residents(residents)
    present = _present_public_ids(plans)
    events = plan_history(
        residents=[plan for plan in plans if plan.public_id in present],
        strangers=min(MAX_STRANGERS, residents // STRANGERS_PER_RESIDENTS),
        channels=channels,
        webform=webform,
    )
    pending = sorted(_not_seeded(events, channels), key=lambda event: event.at)
    if not pending:
        return HistoryCounts(0, 0)
    restore_task_logs = _quiet_task_logs_after_commit()
    bar = tqdm(
        pending,
        desc="Demo contact history",
        unit=" events",
        file=progress,
        disable=True if progress is None else None,  # None: hide when not a terminal
    )
    waiting: dict[str, list[RawInbound]] = defaultdict(list)
    stored: list[int] = []
    touched: set[int] = set()
    replies = 0
    for event in bar:
        if isinstance(event, PlannedMessage):
            waiting[event.channel_kind].append(event.raw)
            continue
        stored += _store_and_ingest(waiting, channels)
        waiting.clear()
        thread_id = _write_reply(event, channels)
        if thread_id is not None:
            touched.add(thread_id)
            replies += 1
    stored += _store_and_ingest(waiting, channels)
    for chunk in _chunks(stored, QUERY_CHUNK):
        touched.update(
            InboundMessage.objects.filter(pk__in=chunk, thread__isnull=False).values_list(
                "thread_id", flat=True
            )
        )
    _settle_threads(touched)
    restore_task_logs()
    return HistoryCounts(messages=len(stored), replies=replies)
