"""Demo data for channels: one channel of each kind with offline provider settings, routing
rules, the report-a-problem web form, and a year of contact history through the pipeline.

Offline. Every provider address is loopback: a developer can run a fake provider on the port
(`python -m aiosmtpd -n -l 127.0.0.1:1025` for replies by e-mail), and without one nothing
breaks. The polling channels (IMAP, Mastodon) find nothing listening and back off, showing the
error on the channel's health, as with a real outage; replies wait `queued` with the
provider's error and go out once it answers. Secrets are never in the settings: each is named
by `<key>_env` after a DEMO_... environment variable that the Makefile's DEMO_ENV exports
with a fake value.

X and Twilio are the exceptions: their client libraries only ever talk to api.twitter.com and
api.twilio.com, so no setting can point them at loopback. Their demo channels are switched off
(named "demo: no provider") and DEMO_ENV exports none of their secrets: the demo never sends
anything to those services. Their history is still there, and replies written on them wait,
queued, "until the channel is enabled again".

Staff-logged contact (Channel.Kind.STAFF) has no adapter and no channel here: calls and visits
are LoggedContact rows, and the residents' timelines already carry them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from channels.demo_history import seed_history
from channels.models import Channel, RoutingRule, WebForm
from citizenhub.demo import DemoOptions, SeedCounts, register_demo_seeder

LOOPBACK = "127.0.0.1"
DEMO_CHANNEL_SLUG = "contact"
DEMO_CHANNEL_ADDRESS = "contact@northmoor.example"
# Replies go to a local SMTP sink a developer can run, e.g.
# `python -m aiosmtpd -n -l 127.0.0.1:1025`; without one they wait, queued, and retry.
DEMO_SMTP_SINK = {"smtp_host": LOOPBACK, "smtp_port": 1025}
DEMO_CHANNEL_SETTINGS = {**DEMO_SMTP_SINK, "reply_domain": "northmoor.example"}
# Ports a developer's fake provider listens on.
DEMO_IMAP_PORT = 1143
DEMO_NOTIFY_PORT = 8101
DEMO_MASTODON_PORT = 8103
DEMO_FACEBOOK_PORT = 8105
# The URL the demo's runserver answers on: where a provider would post webhooks.
DEMO_SITE_URL = f"http://{LOOPBACK}:8000"
# A fake provider that accepts the connection but never answers must not hold the in-process
# schedule (run_schedule runs each poll inline) for the production default of 30 seconds.
DEMO_TIMEOUT_SECONDS = 5

NOTIFY_SLUG = "sms"
WEBFORM_CHANNEL_SLUG = "web-forms"
WEBFORM_SLUG = "report-a-problem"


@dataclass(frozen=True)
class DemoChannel:
    slug: str
    kind: str
    name: str
    address: str
    settings: dict = field(default_factory=dict)
    enabled: bool = True


DEMO_CHANNELS: tuple[DemoChannel, ...] = (
    DemoChannel(
        DEMO_CHANNEL_SLUG,
        Channel.Kind.EMAIL_SMTP,
        "Contact centre mailbox",
        DEMO_CHANNEL_ADDRESS,
        DEMO_CHANNEL_SETTINGS,
    ),
    DemoChannel(
        "housing-mailbox",
        Channel.Kind.EMAIL_IMAP,
        "Housing mailbox (IMAP)",
        "housing@northmoor.example",
        {
            "host": LOOPBACK,
            "port": DEMO_IMAP_PORT,
            "ssl": False,
            "username": "housing@northmoor.example",
            "password_env": "DEMO_IMAP_PASSWORD",
            "folders": ["INBOX"],
            "timeout": DEMO_TIMEOUT_SECONDS,
            **DEMO_SMTP_SINK,
            "reply_domain": "northmoor.example",
        },
    ),
    DemoChannel(
        "council-tax-mailbox",
        Channel.Kind.EMAIL_WEBHOOK,
        "Council Tax mailbox (Mailgun)",
        "counciltax@northmoor.example",
        {
            "signing_key_env": "DEMO_MAILGUN_SIGNING_KEY",
            "max_age_seconds": 900,
            **DEMO_SMTP_SINK,
            "reply_domain": "northmoor.example",
        },
    ),
    DemoChannel(
        NOTIFY_SLUG,
        Channel.Kind.SMS_NOTIFY,
        "Text messages (GOV.UK Notify)",
        # Ofcom's drama range, from its far end: demo residents get numbers from the start.
        "07700 900594",
        {
            "callback_token_env": "DEMO_NOTIFY_CALLBACK_TOKEN",
            "api_key_env": "DEMO_NOTIFY_API_KEY",
            "template_id": "8d0a5c7e-6f1b-4c63-9d55-3b1c2f0a9e41",
            "api_base_url": f"http://{LOOPBACK}:{DEMO_NOTIFY_PORT}",
            "send_timeout_seconds": DEMO_TIMEOUT_SECONDS,
        },
    ),
    DemoChannel(
        "sms-twilio",
        Channel.Kind.SMS_TWILIO,
        "Text messages (Twilio) (demo: no provider)",
        "+447700900977",
        {
            "account_sid": "AC5d1e0c9b8a7f6e5d4c3b2a1f0e9d8c7b",
            "auth_token_env": "DEMO_TWILIO_AUTH_TOKEN",
            "webhook_base_url": DEMO_SITE_URL,
            "send_timeout_seconds": DEMO_TIMEOUT_SECONDS,
        },
        enabled=False,
    ),
    DemoChannel(
        "mastodon",
        Channel.Kind.MASTODON,
        "Mastodon @northmoorcouncil",
        "@northmoorcouncil@toot.northmoor.example",
        {
            "api_base_url": f"http://{LOOPBACK}:{DEMO_MASTODON_PORT}",
            # Handles name the instance, not the loopback address the API is reached on.
            "instance_domain": "toot.northmoor.example",
            "access_token_env": "DEMO_MASTODON_ACCESS_TOKEN",
            "timeout": DEMO_TIMEOUT_SECONDS,
        },
    ),
    DemoChannel(
        "x",
        Channel.Kind.X,
        "X @NorthmoorCncl (demo: no provider)",
        "@NorthmoorCncl",
        {
            "user_id": "1580000000000000001",
            "bearer_token_env": "DEMO_X_BEARER_TOKEN",
            "consumer_key_env": "DEMO_X_CONSUMER_KEY",
            "consumer_secret_env": "DEMO_X_CONSUMER_SECRET",
            "access_token_env": "DEMO_X_ACCESS_TOKEN",
            "access_token_secret_env": "DEMO_X_ACCESS_TOKEN_SECRET",
            "timeout": DEMO_TIMEOUT_SECONDS,
        },
        enabled=False,
    ),
    DemoChannel(
        "facebook",
        Channel.Kind.FACEBOOK,
        "Facebook Page",
        "Northmoor District Council",
        {
            "page_id": "104220000000001",
            "app_secret_env": "DEMO_FACEBOOK_APP_SECRET",
            "verify_token_env": "DEMO_FACEBOOK_VERIFY_TOKEN",
            "page_access_token_env": "DEMO_FACEBOOK_PAGE_ACCESS_TOKEN",
            "graph_base_url": f"http://{LOOPBACK}:{DEMO_FACEBOOK_PORT}/v19.0",
            "timeout": DEMO_TIMEOUT_SECONDS,
        },
    ),
    DemoChannel(
        WEBFORM_CHANNEL_SLUG,
        Channel.Kind.WEBFORM,
        "Council website forms",
        "",
        # A form cannot carry a reply: replies go by e-mail or text through these channels.
        {"reply_email_channel": DEMO_CHANNEL_SLUG, "reply_sms_channel": NOTIFY_SLUG},
    ),
)

# (name, keywords, department, service code): the departments and service codes are those
# of the demo residents' timelines (citizenhub.demo_data), so routed mail sits beside them.
DEMO_ROUTING_RULES: tuple[tuple[str, str, str, str], ...] = (
    ("Missed bins", "bin, bins, recycling collection", "Waste & Recycling", "WR-MISSED"),
    ("Fly-tipping", "fly-tipping, fly tipping, dumped", "Waste & Recycling", "WR-FLYTIP"),
    ("Potholes", "pothole", "Highways", "HW-POTHOLE"),
    (
        "Street lights",
        "street light, streetlight, lamp post, golau stryd",
        "Highways",
        "HW-LIGHT",
    ),
    ("Council Tax", "council tax, treth gyngor", "Council Tax", ""),
    ("Damp and mould", "damp, mould, mold", "Housing", "HO-DAMP"),
)

PROBLEM_CATEGORIES = (
    "Missed bin collection",
    "Fly-tipping",
    "Pothole or damaged road",
    "Street light not working",
    "Damp or mould in a council home",
    "Noise",
    "Something else",
)
DEMO_WEBFORM_FIELDS = [
    {
        "name": "category",
        "label": "What is the problem?",
        "type": "select",
        "required": True,
        "choices": list(PROBLEM_CATEGORIES),
    },
    {
        "name": "location",
        "label": "Where is it?",
        "type": "text",
        "required": True,
        "help_text": "A house number and street, or a landmark nearby.",
    },
    {"name": "postcode", "label": "Postcode, if you know it", "type": "postcode"},
    {
        "name": "details",
        "label": "Tell us about the problem",
        "type": "textarea",
        "required": True,
        "max_length": 2000,
    },
    {"name": "name", "label": "Your name", "type": "text", "required": True},
    {
        "name": "email",
        "label": "Email address",
        "type": "email",
        "help_text": "We reply by email if you give one, otherwise by text message.",
    },
    {"name": "phone", "label": "Mobile number", "type": "phone"},
    {
        "name": "case_reference",
        "label": "Reference, if you have one",
        "type": "text",
        "help_text": "For example CH-1234, from an earlier reply about the same problem.",
        "max_length": 20,
    },
]


def _seed_channels() -> dict[str, Channel]:
    channels = {}
    for demo in DEMO_CHANNELS:
        channel, _created = Channel.objects.update_or_create(
            slug=demo.slug,
            defaults={
                "kind": demo.kind,
                "name": demo.name,
                "address": demo.address,
                "enabled": demo.enabled,
                "settings": demo.settings,
            },
        )
        channels[demo.kind] = channel
    return channels


def _seed_routing_rules() -> None:
    for priority, (name, keywords, department, service_code) in enumerate(
        DEMO_ROUTING_RULES, start=1
    ):
        RoutingRule.objects.update_or_create(
            name=name,
            defaults={
                "priority": priority * 10,
                "enabled": True,
                "channel": None,
                "recipient_contains": "",
                "keywords": keywords,
                "department": department,
                "service_code": service_code,
            },
        )


def _seed_webform(channel: Channel) -> WebForm:
    webform, _created = WebForm.objects.update_or_create(
        slug=WEBFORM_SLUG,
        defaults={
            "channel": channel,
            "title": "Report a problem",
            "introduction": (
                "Tell us about a problem in a street or public place, or a repair your "
                "council home needs. We reply within 5 working days."
            ),
            "fields": DEMO_WEBFORM_FIELDS,
            "enabled": True,
            "allowed_origins": [],
        },
    )
    return webform


@register_demo_seeder("channels", order=200)
def seed_demo_channels(options: DemoOptions) -> SeedCounts:
    """The demo's channels, routing rules and web form, then a year of contact history.

    Running it again puts the channels, rules and form back as they are here and adds no
    history it added before.
    """
    channels = _seed_channels()
    _seed_routing_rules()
    webform = _seed_webform(channels[Channel.Kind.WEBFORM])
    history = seed_history(
        residents=options.residents, channels=channels, webform=webform, progress=options.progress
    )
    return {
        "channels": len(DEMO_CHANNELS),
        "routing rules": len(DEMO_ROUTING_RULES),
        "history messages": history.messages,
        "staff replies": history.replies,
    }
