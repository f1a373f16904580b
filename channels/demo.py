"""Demo data for channels: the contact centre mailbox `make demo` receives on, and routing rules."""

from __future__ import annotations

from channels.models import Channel, RoutingRule
from citizenhub.demo import DemoOptions, SeedCounts, register_demo_seeder

DEMO_CHANNEL_SLUG = "contact"
DEMO_CHANNEL_ADDRESS = "contact@northmoor.example"
# Replies go to a local SMTP sink a developer can run, e.g.
# `python -m aiosmtpd -n -l 127.0.0.1:1025`; without one they wait, queued, and retry.
DEMO_CHANNEL_SETTINGS = {
    "smtp_host": "127.0.0.1",
    "smtp_port": 1025,
    "reply_domain": "northmoor.example",
}

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


@register_demo_seeder("channels", order=200)
def seed_demo_channels(options: DemoOptions) -> SeedCounts:
    """The `contact` mailbox (the demo's `smtp_inbound` receives for it) and keyword rules.

    Running it again puts them back as they are here and adds nothing.
    """
    Channel.objects.update_or_create(
        slug=DEMO_CHANNEL_SLUG,
        defaults={
            "kind": Channel.Kind.EMAIL_SMTP,
            "name": "Contact centre mailbox",
            "address": DEMO_CHANNEL_ADDRESS,
            "enabled": True,
            "settings": DEMO_CHANNEL_SETTINGS,
        },
    )
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
    return {"channels": 1, "routing rules": len(DEMO_ROUTING_RULES)}
