"""Merging two profiles that both received a campaign on the same channel: the merge goes
through (one delivery per campaign, citizen and channel), and unmerging puts the
duplicate's delivery back as it was."""

from __future__ import annotations

import pytest

from citizenhub.services.merge import citizen_merge, citizen_unmerge
from engagement.models import Campaign, Delivery
from tests.factories import CitizenFactory, StaffUserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def campaign():
    return Campaign.objects.create(
        title="Garden waste renewals",
        channels=["email"],
        email_subject="Renew",
        email_text="Renew now",
        created_by=StaffUserFactory(),
        status=Campaign.Status.SENT,
    )


def test_a_campaign_both_profiles_received_survives_merge_and_unmerge(campaign):
    survivor, duplicate = CitizenFactory(), CitizenFactory()
    kept = Delivery.objects.create(
        campaign=campaign,
        citizen=survivor,
        channel="email",
        to_value="a@example.org",
        status=Delivery.Status.DELIVERED,
    )
    theirs = Delivery.objects.create(
        campaign=campaign,
        citizen=duplicate,
        channel="email",
        to_value="b@example.org",
        status=Delivery.Status.BOUNCED,
        reason="Mailbox full",
    )
    other = Delivery.objects.create(
        campaign=campaign,
        citizen=duplicate,
        channel="sms",
        to_value="+447700900123",
        status=Delivery.Status.SENT,
    )

    merge = citizen_merge(survivor=survivor, duplicate=duplicate, by=None, reason="Same person")

    assert set(Delivery.objects.filter(citizen=survivor).values_list("pk", flat=True)) == {
        kept.pk,
        other.pk,
    }
    assert not Delivery.objects.filter(pk=theirs.pk).exists()

    citizen_unmerge(merge=merge, by=None, reason="Different people after all")

    restored = Delivery.objects.get(pk=theirs.pk)
    assert restored.citizen_id == duplicate.pk
    assert (restored.to_value, restored.status, restored.reason) == (
        "b@example.org",
        Delivery.Status.BOUNCED,
        "Mailbox full",
    )
    assert Delivery.objects.get(pk=other.pk).citizen_id == duplicate.pk
    assert Delivery.objects.get(pk=kept.pk).citizen_id == survivor.pk
