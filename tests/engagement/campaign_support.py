"""Helpers for the campaign tests: officers in their roles, a topic with confirmed
subscribers (the real fan-out counts them), and campaigns at each step of the lifecycle."""

from __future__ import annotations

from django.utils import timezone

from citizenhub.models import ContactPoint
from citizenhub.staff.access import COMMS_OFFICER, SUPERVISOR, ensure_staff_groups
from engagement import campaigns
from engagement.models import Campaign, Subscription, Topic
from tests.factories import CitizenFactory, EmailContactPointFactory, StaffUserFactory


def officer(role: str = COMMS_OFFICER, **fields):
    groups = ensure_staff_groups()
    user = StaffUserFactory(**fields)
    user.groups.add(groups[role])
    return user


def comms_officer(**fields):
    return officer(COMMS_OFFICER, **fields)


def supervisor_officer(**fields):
    return officer(SUPERVISOR, **fields)


def topic(slug: str = "recycling") -> Topic:
    return Topic.objects.get_or_create(
        slug=slug,
        defaults={"name": slug.title(), "consent_wording": f"Send me news about {slug}."},
    )[0]


def subscriber(for_topic: Topic, *, channel: str = "email", phone: str = "", **citizen_fields):
    """A resident with a confirmed subscription to the topic on the channel."""
    citizen = CitizenFactory(**citizen_fields)
    if channel == "email":
        EmailContactPointFactory(citizen=citizen)
    else:
        ContactPoint.objects.create(
            citizen=citizen,
            kind=ContactPoint.Kind.PHONE,
            value=phone,
            normalised=phone,
            match_key=phone,
            is_primary=True,
            verification_level=ContactPoint.VerificationLevel.CONFIRMED,
            source=ContactPoint.Source.PORTAL,
        )
    Subscription.objects.create(
        citizen=citizen,
        topic=for_topic,
        channel=channel,
        status=Subscription.Status.ACTIVE,
        confirmed_at=timezone.now(),
        source="portal",
    )
    return citizen


def draft(author, **fields) -> Campaign:
    """A complete e-mail draft to the recycling topic (which has no subscribers yet)."""
    values = {
        "title": "Bin day changes",
        "topics": [topic()],
        "channels": ["email"],
        "email_subject": "Your bin day, {{ given_name }}",
        "email_text": "Hello {{ given_name }}, bins now go out on Tuesdays.",
    }
    values.update(fields)
    return campaigns.campaign_create(officer=author, **values)


def submitted(author, **fields) -> Campaign:
    campaign = draft(author, **fields)
    if not Subscription.objects.filter(topic__in=campaign.topics.all()).exists():
        subscriber(campaign.topics.first())
    return campaigns.campaign_submit(campaign=campaign, officer=author)


def approved(author, approver, **fields) -> Campaign:
    campaign = submitted(author, **fields)
    return campaigns.campaign_approve(campaign=campaign, officer=approver)
