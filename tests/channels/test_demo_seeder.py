"""The channels demo seeder: the `contact` mailbox `make demo` receives on, and routing rules."""

import pytest
from django.core.management import call_command

from channels.demo import DEMO_ROUTING_RULES, seed_demo_channels
from channels.models import Channel, RoutingRule, Thread
from channels.services.ingest import store_raw_messages
from citizenhub.demo import DemoOptions
from tests.channels.conftest import eml, raw_email

pytestmark = pytest.mark.django_db


def snapshot() -> tuple:
    return (
        list(Channel.objects.values("slug", "kind", "enabled", "address", "settings")),
        list(
            RoutingRule.objects.order_by("priority").values(
                "name", "priority", "keywords", "department", "service_code", "channel"
            )
        ),
    )


def test_seeding_twice_gives_one_mailbox_and_the_same_rules():
    first = seed_demo_channels(DemoOptions(residents=0))
    before = snapshot()
    second = seed_demo_channels(DemoOptions(residents=0))

    assert snapshot() == before
    assert first == second == {"channels": 1, "routing rules": len(DEMO_ROUTING_RULES)}
    channel = Channel.objects.get()
    assert (channel.slug, channel.kind, channel.address) == (
        "contact",
        "email-smtp",
        "contact@northmoor.example",
    )
    assert (channel.setting("smtp_host"), channel.setting("smtp_port")) == ("127.0.0.1", 1025)
    assert RoutingRule.objects.count() == len(DEMO_ROUTING_RULES)


def test_seeding_again_repairs_a_mailbox_the_demo_could_not_receive_on():
    seed_demo_channels(DemoOptions(residents=0))
    Channel.objects.filter(slug="contact").update(enabled=False, kind="email-imap")
    seed_demo_channels(DemoOptions(residents=0))
    channel = Channel.objects.get()
    assert channel.enabled and channel.kind == "email-smtp"


def test_seed_demo_runs_it(settings):
    settings.DEBUG = True
    call_command("seed_demo", residents=0, quiet=True)
    assert Channel.objects.filter(slug="contact", enabled=True).exists()


def test_a_missed_bin_email_is_routed_to_waste_and_recycling(django_capture_on_commit_callbacks):
    seed_demo_channels(DemoOptions(residents=0))
    channel = Channel.objects.get(slug="contact")
    with django_capture_on_commit_callbacks(execute=True):
        store_raw_messages(channel=channel, raws=[raw_email(eml("simple.eml"))])
    thread = Thread.objects.get()
    assert (thread.department, thread.service_code) == ("Waste & Recycling", "WR-MISSED")
