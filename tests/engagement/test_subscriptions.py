"""Subscriptions with double opt-in (engagement.subscriptions): pending until confirmed by
the link sent, consent in the ledger only on confirmation, unsubscribing in one step and
idempotent, unconfirmed requests lapsing, and merges that never turn an opt-out into a
subscription."""

from __future__ import annotations

import datetime
import re

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.utils import timezone

from channels.models import Channel, OutboundMessage
from citizenhub.errors import ApplicationError
from citizenhub.models import Citizen, ContactPoint, TimelineEntry
from citizenhub.services import citizen_create, citizen_merge, citizen_unmerge
from citizenhub.staff.access import ADMINISTRATOR, ensure_staff_groups
from engagement import subscription_tasks
from engagement.models import ConsentRecord, Subscription, Topic
from engagement.purposes import ensure_standard_topics
from engagement.services import current_consents, has_consent, record_consent
from engagement.subscriptions import (
    active_subscriptions,
    confirm_subscription,
    consenting_q,
    expire_pending_subscriptions,
    merged_subscription_state,
    subscribe,
    unsubscribe,
)
from tests.factories import StaffUserFactory
from tests.fakes.notify import DEFAULT_TEMPLATE_ID, FakeNotify

pytestmark = pytest.mark.django_db

LINK = re.compile(r"http://testserver/subscriptions/confirm/([^/\s]+)/")


def make_topic(slug: str = "bins", **fields) -> Topic:
    defaults = {
        "name": "Bin collections",
        "kind": Topic.Kind.SERVICE,
        "consent_wording": "Send me updates about bin collections.",
        "consent_wording_version": "3",
    }
    return Topic.objects.create(slug=slug, **{**defaults, **fields})


@pytest.fixture(autouse=True)
def site(settings):
    settings.SITE_URL = "http://testserver"


@pytest.fixture
def topic() -> Topic:
    return make_topic()


def sub(citizen, topic, channel="email", **kwargs) -> Subscription:
    return subscribe(citizen=citizen, topic=topic, channel=channel, source="portal", **kwargs)


def confirmed(citizen, topic, channel="email") -> Subscription:
    pending = sub(citizen, topic, channel)
    subscription, _ = confirm_subscription(subscription_id=pending.pk)
    return subscription


def with_email(citizen: Citizen, address: str) -> Citizen:
    ContactPoint.objects.create(
        citizen=citizen,
        kind="email",
        value=address,
        normalised=address,
        match_key=address,
        verification_level="asserted",
    )
    return citizen


# --- Subscribing ---------------------------------------------------------------------------


class TestSubscribe:
    def test_a_request_waits_and_the_link_goes_out_but_no_consent_yet(
        self, resident, topic, django_capture_on_commit_callbacks
    ):
        citizen = resident.citizen
        before = timezone.now()
        with django_capture_on_commit_callbacks(execute=True):
            subscription = sub(citizen, topic)
        assert subscription.status == "pending" and subscription.source == "portal"
        expected = before + datetime.timedelta(days=7)
        assert expected <= subscription.confirm_by <= expected + datetime.timedelta(minutes=1)
        assert not ConsentRecord.objects.exists()  # consent is given by confirming
        assert not active_subscriptions(topic_ids=[topic.pk], channel="email").exists()

        [message] = mail.outbox
        assert message.to == [resident.email]
        assert message.subject == "Confirm you want updates about Bin collections"
        assert LINK.search(message.body)
        html, mimetype = message.alternatives[0]
        assert mimetype == "text/html" and LINK.search(html)
        entry = TimelineEntry.objects.get(citizen=citizen, kind="subscription")
        assert "waiting for confirmation" in entry.summary and entry.visibility == "resident"

    def test_asking_again_soon_changes_nothing_and_sends_nothing_more(
        self, resident, topic, django_capture_on_commit_callbacks
    ):
        with django_capture_on_commit_callbacks(execute=True):
            first = sub(resident.citizen, topic)
        with django_capture_on_commit_callbacks(execute=True):
            again = sub(resident.citizen, topic)
        assert again.pk == first.pk and again.requested_at == first.requested_at
        assert len(mail.outbox) == 1
        # Later, the link is sent once more and the request keeps its start.
        hour = datetime.timedelta(hours=1)
        Subscription.objects.filter(pk=first.pk).update(
            requested_at=first.requested_at - hour, confirm_by=first.confirm_by - hour
        )
        with django_capture_on_commit_callbacks(execute=True):
            later = sub(resident.citizen, topic)
        assert len(mail.outbox) == 2 and later.requested_at < first.requested_at
        assert later.confirm_by > first.confirm_by
        with django_capture_on_commit_callbacks(execute=True):
            sub(resident.citizen, topic)  # just re-sent: not again
        assert len(mail.outbox) == 2

    def test_subscribing_when_subscribed_is_a_no_op(self, resident, topic):
        subscription = confirmed(resident.citizen, topic)
        assert sub(resident.citizen, topic).status == "active"
        assert (
            Subscription.objects.get(pk=subscription.pk).confirmed_at == subscription.confirmed_at
        )
        assert ConsentRecord.objects.count() == 1

    def test_sms_needs_a_confirmed_mobile_number(self, resident, topic):
        citizen = resident.citizen
        ContactPoint.objects.create(
            citizen=citizen,
            kind="phone",
            value="07700 900123",
            normalised="+447700900123",
            match_key="+447700900123",
            verification_level="asserted",
        )
        with pytest.raises(ApplicationError) as refused:
            sub(citizen, topic, "sms")
        assert refused.value.code == "no_address"
        assert not Subscription.objects.exists()

    def test_bad_input_is_refused_and_saves_nothing(self, resident, topic):
        with pytest.raises(ValidationError):
            sub(resident.citizen, topic, "fax")
        with pytest.raises(ValidationError):
            subscribe(citizen=resident.citizen, topic=topic, channel="email", source="carrier")
        topic.is_active = False
        topic.save()
        with pytest.raises(ApplicationError):
            sub(resident.citizen, topic)
        erased = with_email(Citizen.objects.create(status="erased"), "gone@example.org")
        with pytest.raises(ApplicationError):
            sub(erased, make_topic("other"))
        assert not Subscription.objects.exists()

    def test_the_confirmation_text_goes_through_notify_without_the_link_stored(
        self, resident, topic, monkeypatch, django_capture_on_commit_callbacks
    ):
        citizen = resident.citizen
        ContactPoint.objects.create(
            citizen=citizen,
            kind="phone",
            value="07700 900123",
            normalised="+447700900123",
            match_key="+447700900123",
            verification_level="confirmed",
        )
        with FakeNotify() as notify:
            monkeypatch.setenv("TEST_E1_NOTIFY_KEY", notify.api_key)
            channel = Channel.objects.create(
                kind="sms-notify",
                slug="notify",
                name="Notify",
                settings={
                    "api_key_env": "TEST_E1_NOTIFY_KEY",
                    "api_base_url": notify.base_url,
                    "template_id": DEFAULT_TEMPLATE_ID,
                },
            )
            with django_capture_on_commit_callbacks(execute=True):
                subscription = sub(citizen, topic, "sms")
            [text] = notify.sent
        assert text.phone_number == "+447700900123"
        token = LINK.search(text.body).group(1)
        outbound = OutboundMessage.objects.get()
        assert outbound.channel == channel and outbound.thread is None
        assert outbound.status == "sent" and token not in outbound.body_text
        assert "(link removed)" in outbound.body_text
        assert subscription.status == "pending" and not mail.outbox


# --- Confirming ----------------------------------------------------------------------------


class TestConfirm:
    def test_confirming_activates_and_records_consent_with_the_topic_words(self, resident, topic):
        pending = sub(resident.citizen, topic)
        subscription, now = confirm_subscription(
            subscription_id=pending.pk, ip_address="203.0.113.9"
        )
        assert now and subscription.status == "active" and subscription.confirmed_at
        record = ConsentRecord.objects.get()
        assert (record.purpose, record.channel, record.action) == ("bins", "email", "given")
        assert record.wording == "Send me updates about bin collections."
        assert record.wording_version == "3" and record.source == "portal"
        assert record.ip_address == "203.0.113.9"
        assert has_consent(resident.citizen, "bins", "email")
        assert list(active_subscriptions(topic_ids=[topic.pk], channel="email")) == [subscription]

    def test_confirming_twice_is_a_no_op(self, resident, topic):
        pending = sub(resident.citizen, topic)
        confirm_subscription(subscription_id=pending.pk)
        subscription, now = confirm_subscription(subscription_id=pending.pk)
        assert not now and subscription.status == "active"
        assert ConsentRecord.objects.count() == 1

    def test_an_expired_request_cannot_be_confirmed(self, resident, topic):
        pending = sub(resident.citizen, topic)
        Subscription.objects.filter(pk=pending.pk).update(
            confirm_by=timezone.now() - datetime.timedelta(seconds=1)
        )
        with pytest.raises(ApplicationError) as refused:
            confirm_subscription(subscription_id=pending.pk)
        assert refused.value.code == "expired"
        assert Subscription.objects.get(pk=pending.pk).status == "pending"
        assert not ConsentRecord.objects.exists()

    def test_an_old_link_never_confirms_after_a_later_unsubscribe(self, resident, topic):
        pending = sub(resident.citizen, topic)
        issued = timezone.now() - datetime.timedelta(seconds=5)  # the first link
        Subscription.objects.filter(pk=pending.pk).update(
            requested_at=issued - datetime.timedelta(seconds=1)
        )
        unsubscribe(citizen=resident.citizen, topic=topic, channel="email", source="portal")
        with pytest.raises(ApplicationError) as refused:
            confirm_subscription(subscription_id=pending.pk, link_issued_at=issued)
        assert refused.value.code == "superseded"
        # Asking again: the old link still does not work; only the new request's does.
        sub(resident.citizen, topic)
        with pytest.raises(ApplicationError):
            confirm_subscription(subscription_id=pending.pk, link_issued_at=issued)
        assert Subscription.objects.get(pk=pending.pk).status == "pending"
        _, now = confirm_subscription(subscription_id=pending.pk, link_issued_at=timezone.now())
        assert now

    def test_an_unknown_subscription_is_not_found(self):
        with pytest.raises(ApplicationError) as refused:
            confirm_subscription(subscription_id=987654)
        assert refused.value.code == "not_found"


# --- Unsubscribing -------------------------------------------------------------------------


class TestUnsubscribe:
    def test_unsubscribing_withdraws_consent_and_again_is_a_no_op(self, resident, topic):
        citizen = resident.citizen
        confirmed(citizen, topic)
        result = unsubscribe(
            citizen=citizen, topic=topic, channel="email", source="web_form", wording="Stop?"
        )
        assert result.changed
        subscription = Subscription.objects.get()
        assert subscription.status == "unsubscribed" and subscription.unsubscribed_at
        withdrawal = current_consents(citizen)[("bins", "email")]
        assert withdrawal.action == "withdrawn" and withdrawal.wording == "Stop?"
        assert withdrawal.wording_version == "3" and withdrawal.source == "web_form"
        assert not active_subscriptions(topic_ids=[topic.pk], channel="email").exists()
        counts = (ConsentRecord.objects.count(), TimelineEntry.objects.count())

        again = unsubscribe(citizen=citizen, topic=topic, channel="email", source="web_form")
        assert not again.changed
        assert (ConsentRecord.objects.count(), TimelineEntry.objects.count()) == counts
        assert Subscription.objects.get().unsubscribed_at == subscription.unsubscribed_at

    def test_without_a_topic_every_subscription_on_the_channel_stops(self, resident, topic):
        citizen = resident.citizen
        other = make_topic("events", name="Events", kind="theme")
        confirmed(citizen, topic)
        sub(citizen, other)  # pending: stopped too
        ensure_standard_topics()
        record_consent(  # given before topics existed: withdrawn too
            citizen=citizen,
            purpose="residents-newsletter",
            channel="email",
            action="given",
            wording="Send me the newsletter",
            wording_version="2026-1",
            source="portal",
        )
        result = unsubscribe(citizen=citizen, channel="email", source="web_form")
        assert len(result.subscriptions) == 2 and len(result.withdrawn) == 2
        assert set(Subscription.objects.values_list("status", flat=True)) == {"unsubscribed"}
        assert not has_consent(citizen, "residents-newsletter", "email")
        assert not has_consent(citizen, "bins", "email")

    def test_another_channel_is_untouched(self, resident, topic):
        citizen = resident.citizen
        confirmed(citizen, topic)
        assert not unsubscribe(citizen=citizen, channel="sms", source="web_form").changed
        assert Subscription.objects.get().status == "active"


# --- Lapsing and audiences -----------------------------------------------------------------


def test_unconfirmed_requests_lapse_and_nothing_else_changes(resident, other_resident, topic):
    overdue = sub(resident.citizen, topic)
    waiting = sub(other_resident.citizen, topic)
    active = confirmed(resident.citizen, make_topic("events", name="Events"))
    Subscription.objects.filter(pk=overdue.pk).update(
        confirm_by=timezone.now() - datetime.timedelta(minutes=1)
    )
    assert subscription_tasks.expire_pending_subscriptions.delay().get() == 1
    lapsed = Subscription.objects.get(pk=overdue.pk)
    assert lapsed.status == "unsubscribed" and lapsed.unsubscribed_at is None  # not an opt-out
    assert Subscription.objects.get(pk=waiting.pk).status == "pending"
    assert Subscription.objects.get(pk=active.pk).status == "active"
    assert expire_pending_subscriptions() == 0
    assert TimelineEntry.objects.filter(summary__contains="lapsed").count() == 1
    with pytest.raises(ApplicationError):
        confirm_subscription(subscription_id=overdue.pk)


def test_pending_and_unsubscribed_subscribers_are_never_in_an_audience(
    resident, other_resident, topic
):
    third = with_email(citizen_create(given_name="Ann", family_name="Lee"), "ann@example.org")
    confirmed(resident.citizen, topic)
    sub(other_resident.citizen, topic)
    confirmed(third, topic)
    unsubscribe(citizen=third, topic=topic, channel="email", source="portal")
    audience = active_subscriptions(topic_ids=[topic.pk], channel="email")
    assert list(audience.values_list("citizen_id", flat=True)) == [resident.citizen.pk]
    assert list(
        Citizen.objects.filter(consenting_q(topic_ids=[topic.pk], channel="email")).distinct()
    ) == [resident.citizen]


# --- Merging -------------------------------------------------------------------------------


def _state(status, *, requested=0, confirmed=None, unsubscribed=None) -> Subscription:
    now = timezone.now()
    days = datetime.timedelta(days=1)
    return Subscription(
        status=status,
        requested_at=now - requested * days,
        confirm_by=now + 7 * days - requested * days,
        confirmed_at=None if confirmed is None else now - confirmed * days,
        unsubscribed_at=None if unsubscribed is None else now - unsubscribed * days,
        source="portal",
    )


def active(days_ago: int) -> Subscription:
    return _state("active", requested=days_ago, confirmed=days_ago)


def unsubscribed(confirmed_days_ago: int, unsubscribed_days_ago: int) -> Subscription:
    return _state(
        "unsubscribed",
        requested=confirmed_days_ago,
        confirmed=confirmed_days_ago,
        unsubscribed=unsubscribed_days_ago,
    )


def pending(days_ago: int, unsubscribed_days_ago: int | None = None) -> Subscription:
    return _state("pending", requested=days_ago, unsubscribed=unsubscribed_days_ago)


def lapsed(days_ago: int) -> Subscription:
    return _state("unsubscribed", requested=days_ago)


@pytest.mark.parametrize(
    ("survivor", "duplicate", "expected"),
    [
        # Active on both, or active and nothing: active.
        (active(9), active(3), "active"),
        (active(9), None, "active"),
        # An unsubscribe on one profile wins, whether it came before or after the other
        # profile's subscription.
        (active(2), unsubscribed(20, 10), "unsubscribed"),
        (unsubscribed(20, 10), active(2), "unsubscribed"),
        (active(20), unsubscribed(9, 1), "unsubscribed"),
        # Asking again after unsubscribing is still only a request: the opt-out stands.
        (active(20), pending(1, unsubscribed_days_ago=5), "pending"),
        # A request that lapsed is not an opt-out.
        (active(20), lapsed(30), "active"),
        (pending(1), lapsed(30), "pending"),
        (pending(1), active(5), "active"),
        (unsubscribed(30, 3), lapsed(20), "unsubscribed"),
    ],
)
def test_the_merge_rule(survivor, duplicate, expected):
    assert merged_subscription_state(survivor, duplicate)["status"] == expected
    assert merged_subscription_state(duplicate, survivor)["status"] == expected


def test_a_ledger_withdrawal_on_either_side_is_an_opt_out():
    active = _state("active", requested=3, confirmed=3)
    assert merged_subscription_state(active, None, survivor_withdrawn=True)["status"] == (
        "unsubscribed"
    )
    assert merged_subscription_state(None, active, survivor_withdrawn=True)["status"] == (
        "unsubscribed"
    )


class TestMergeProfiles:
    def _pair(self):
        survivor = with_email(
            citizen_create(given_name="Megan", family_name="Jones"), "m@example.org"
        )
        duplicate = with_email(
            citizen_create(given_name="Meg", family_name="Jones"), "meg@example.org"
        )
        return survivor, duplicate

    def test_a_later_subscription_on_the_other_profile_does_not_undo_an_opt_out(self, topic):
        survivor, duplicate = self._pair()
        confirmed(duplicate, topic)
        unsubscribe(citizen=duplicate, topic=topic, channel="email", source="portal")
        survivor_sub = confirmed(survivor, topic)  # later, on the other profile
        officer = StaffUserFactory()
        merge = citizen_merge(survivor=survivor, duplicate=duplicate, by=officer, reason="Same")

        [kept] = Subscription.objects.filter(topic=topic)
        assert kept.pk == survivor_sub.pk and kept.citizen == survivor
        assert kept.status == "unsubscribed"
        assert not has_consent(survivor, "bins", "email")  # the ledger agrees
        assert not active_subscriptions(topic_ids=[topic.pk], channel="email").exists()

        # Undoing the merge gives the duplicate its own subscription back; the survivor
        # stays opted out (its ledger keeps the merge's withdrawal) until it subscribes.
        citizen_unmerge(merge=merge, by=officer, reason="Different people")
        restored = Subscription.objects.get(citizen=duplicate, topic=topic)
        assert restored.status == "unsubscribed" and restored.unsubscribed_at
        assert Subscription.objects.get(pk=survivor_sub.pk).status == "unsubscribed"

    def test_two_active_subscriptions_become_one_active(self, topic):
        survivor, duplicate = self._pair()
        confirmed(survivor, topic)
        confirmed(duplicate, topic)
        other = make_topic("events", name="Events")
        moved = confirmed(duplicate, other)
        citizen_merge(survivor=survivor, duplicate=duplicate, by=None, reason="Same person")
        assert list(
            Subscription.objects.filter(citizen=survivor).values_list("topic__slug", "status")
        ) in (
            [("bins", "active"), ("events", "active")],
            [("events", "active"), ("bins", "active")],
        )
        assert Subscription.objects.get(pk=moved.pk).citizen == survivor
        assert not Subscription.objects.filter(citizen=duplicate).exists()

    def test_the_duplicates_subscription_moves_unsubscribed_where_the_survivor_withdrew(
        self, topic
    ):
        survivor, duplicate = self._pair()
        record_consent(
            citizen=survivor,
            purpose="bins",
            channel="email",
            action="withdrawn",
            wording="Told the contact centre: no more bin updates",
            wording_version="3",
            source="staff",
        )
        moved = confirmed(duplicate, topic)
        merge = citizen_merge(survivor=survivor, duplicate=duplicate, by=None, reason="Same")
        moved = Subscription.objects.get(pk=moved.pk)
        assert moved.citizen == survivor and moved.status == "unsubscribed"
        assert not has_consent(survivor, "bins", "email")
        citizen_unmerge(merge=merge, by=None, reason="Different people")
        assert Subscription.objects.get(pk=moved.pk).status == "active"  # its own again


# --- The staff 360 panel -------------------------------------------------------------------


class TestStaffPanel:
    def _officer(self, group):
        officer = StaffUserFactory()
        officer.groups.add(ensure_staff_groups()[group])
        return officer

    def test_an_administrator_sees_subscriptions_with_their_status(self, client, resident, topic):
        confirmed(resident.citizen, topic)
        sub(resident.citizen, make_topic("events", name="Events"))
        client.force_login(self._officer(ADMINISTRATOR))
        page = client.get(f"/staff/citizens/{resident.citizen.public_id}/").content.decode()
        assert 'id="panel-subscriptions"' in page
        assert "Bin collections" in page and "Subscribed" in page
        assert "Waiting for confirmation" in page

    def test_a_caseworker_does_not(self, client, caseworker, resident, topic):
        confirmed(resident.citizen, topic)
        client.force_login(caseworker)
        page = client.get(f"/staff/citizens/{resident.citizen.public_id}/").content.decode()
        assert 'id="panel-subscriptions"' not in page
