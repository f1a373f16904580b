"""The campaign lifecycle (engagement.campaigns): refusals with reasons before approval, four
eyes, scheduling and starting, preview and test send; SMS segment counting; personalisation."""

from __future__ import annotations

import datetime
import uuid

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from citizenhub.errors import ApplicationError, ConflictError
from citizenhub.models import ContactPoint
from engagement import campaigns
from engagement.models import Campaign, Delivery
from engagement.personalise import personalise, unknown_placeholders
from engagement.sms_segments import GSM7, UCS2, sms_length, sms_length_problem
from tests.engagement.campaign_support import (
    approved,
    comms_officer,
    draft,
    officer,
    submitted,
    subscriber,
    supervisor_officer,
    topic,
)
from tests.factories import CitizenFactory

pytestmark = pytest.mark.django_db
Status = Campaign.Status


@pytest.fixture
def author():
    return comms_officer(first_name="Ceri", last_name="Morgan")


@pytest.fixture
def approver():
    return comms_officer()


@pytest.fixture(autouse=True)
def fresh_rate_limits(settings):
    # Test sends are counted per officer id in the cache; ids repeat between tests.
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": f"campaign-tests-{uuid.uuid4()}",
        }
    }


@pytest.fixture
def started(monkeypatch):
    """Campaign ids handed to sending (engagement.tasks.send_campaign), after commit."""
    handed: list[int] = []
    monkeypatch.setattr(campaigns, "_enqueue_send", handed.append)
    return handed


# --- SMS segments ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "encoding", "units", "segments"),
    [
        ("", GSM7, 0, 0),
        ("a" * 160, GSM7, 160, 1),
        ("a" * 161, GSM7, 161, 2),  # 153 per part once split
        ("a" * 306, GSM7, 306, 2),
        ("a" * 307, GSM7, 307, 3),
        ("€" * 80, GSM7, 160, 1),  # the extension table counts twice
        ("€" * 81, GSM7, 162, 2),
        ("[x]" * 40, GSM7, 200, 2),
        ("ŵ" + "a" * 69, UCS2, 70, 1),  # one Welsh circumflex switches to UCS-2
        ("ŵ" + "a" * 70, UCS2, 71, 2),  # 67 per part
        ("ŵ" + "a" * 133, UCS2, 134, 2),
        ("ŵ" + "a" * 134, UCS2, 135, 3),
        ("Diolch 😀", UCS2, 9, 1),  # an emoji is two UTF-16 units
        ("😀" * 35, UCS2, 70, 1),
        ("😀" * 36, UCS2, 72, 2),
    ],
)
def test_sms_segment_counting(text, encoding, units, segments):
    length = sms_length(text)
    assert (length.encoding, length.units, length.segments) == (encoding, units, segments)


def test_sms_length_names_the_characters_that_force_ucs2():
    length = sms_length("Croeso i Gŵyl y Gwanwyn – dewch â ffrind")
    assert length.encoding == UCS2
    assert set(length.non_gsm_characters) == {"ŵ", "–", "â"}
    assert sms_length("Café £5 @ 10:00 {ok} ~ €").encoding == GSM7


def test_sms_over_the_segment_limit_is_refused_with_the_count(settings):
    settings.ENGAGEMENT_SMS_MAX_SEGMENTS = 3
    assert sms_length_problem(sms_length("a" * 459)) == ""
    problem = sms_length_problem(sms_length("a" * 460))
    assert "4 segments" in problem and "limit is 3" in problem
    welsh = sms_length_problem(sms_length("ŵ" * 202))
    assert "UCS-2" in welsh and "ŵ" in welsh
    settings.ENGAGEMENT_SMS_MAX_SEGMENTS = 10
    assert "918" in sms_length_problem(sms_length("a" * 919))


# --- Personalisation -------------------------------------------------------------------------


def test_personalise_replaces_known_placeholders_only():
    citizen = CitizenFactory.build(given_name="Siân", family_name="Lloyd")
    text = "Hi {{ given_name }} {{family_name}}, {{ full_name }}! {{ secret_key }} {% debug %}"
    out = personalise(text, citizen=citizen, html=False, links={})
    assert out == "Hi Siân Lloyd, Siân Lloyd! {{ secret_key }} {% debug %}"
    assert unknown_placeholders(text) == ["secret_key"]


def test_personalise_escapes_values_in_html_and_fills_links():
    citizen = CitizenFactory.build(given_name='<script>alert("x")</script>', family_name="")
    out = personalise(
        '<p>Dear {{ given_name }}</p><a href="{{ unsubscribe_url }}">Unsubscribe</a>',
        citizen=citizen,
        html=True,
        links={"unsubscribe_url": 'https://council.example/u/a"b'},
    )
    assert "<script>" not in out
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in out
    assert 'href="https://council.example/u/a&quot;b"' in out
    plain = personalise("{{ given_name }}", citizen=citizen, html=False)
    assert plain == '<script>alert("x")</script>'


def test_personalise_without_a_given_name_still_greets():
    citizen = CitizenFactory.build(given_name="", family_name="")
    assert personalise("Dear {{ given_name }},", citizen=citizen, html=False) == "Dear resident,"


# --- Writing and submitting ------------------------------------------------------------------


def test_create_and_update_a_draft_with_versions(author):
    campaign = draft(author)
    assert campaign.status == Status.DRAFT and campaign.version == 1
    updated = campaigns.campaign_update(
        campaign=campaign, expected_version=1, officer=author, title="Bin day moves"
    )
    assert updated.version == 2 and updated.title == "Bin day moves"
    with pytest.raises(ConflictError):
        campaigns.campaign_update(
            campaign=campaign, expected_version=1, officer=author, title="Stale change"
        )
    assert Campaign.objects.get().title == "Bin day moves"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"channels": ["fax"]}, "channels"),
        ({"segment": {"tags": ["x"]}}, "segment"),
        ({"message_class": "urgent"}, "message_class"),
        ({"response_keyword": "two words"}, "response_keyword"),
        ({"email_subject": "Bcc: everyone\nHello"}, "email_subject"),
        ({"title": ""}, "title"),
    ],
)
def test_bad_fields_are_refused_and_nothing_changes(author, changes, field):
    campaign = draft(author)
    with pytest.raises(ValidationError) as caught:
        campaigns.campaign_update(campaign=campaign, expected_version=1, officer=author, **changes)
    assert field in caught.value.message_dict
    assert Campaign.objects.get().version == 1


def test_only_comms_officers_write_campaigns(caseworker):
    with pytest.raises(ApplicationError) as caught:
        draft(caseworker)
    assert caught.value.code == "forbidden"
    assert not Campaign.objects.exists()


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"channels": []}, "Choose at least one channel"),
        ({"email_subject": ""}, "write the e-mail subject"),
        ({"email_text": ""}, "write the plain-text version"),
        ({"channels": ["email", "sms"], "sms_text": ""}, "write the text message"),
        ({"channels": ["sms"], "sms_text": "x" * 480}, "segments; the limit is 3"),
        ({"email_text": "Hi {{ first_name }}"}, "unknown placeholders ({{ first_name }})"),
        ({"topics": []}, "Choose at least one topic"),
    ],
)
def test_submit_refuses_missing_content_with_the_reason(author, fields, reason):
    campaign = draft(author, **fields)
    subscriber(topic())
    with pytest.raises(ApplicationError) as caught:
        campaigns.campaign_submit(campaign=campaign, officer=author)
    assert caught.value.code == "not_ready"
    assert any(reason in problem for problem in caught.value.extra["problems"])
    assert Campaign.objects.get().status == Status.DRAFT


def test_submit_refuses_an_empty_audience(author):
    campaign = draft(author)  # nobody subscribed to the topic
    with pytest.raises(ApplicationError) as caught:
        campaigns.campaign_submit(campaign=campaign, officer=author)
    assert caught.value.extra["problems"] == [
        "Nobody would receive this campaign: no resident matches its topics, channels and "
        "segment. Widen the segment or choose other topics."
    ]
    # Subscribers on another channel do not count for an e-mail campaign.
    subscriber(topic(), channel="sms", phone="+447700900123")
    with pytest.raises(ApplicationError):
        campaigns.campaign_submit(campaign=campaign, officer=author)
    subscriber(topic())
    assert campaigns.campaign_submit(campaign=campaign, officer=author).status == (
        Status.AWAITING_APPROVAL
    )


def test_sms_count_includes_the_personalised_name(author, settings):
    settings.ENGAGEMENT_SMS_MAX_SEGMENTS = 1
    campaign = draft(author, channels=["sms"], sms_text="a" * 150 + " {{ given_name }}")
    # "Alex" (the sample resident) takes it to 155 characters: one segment.
    assert campaigns.sms_length_of(campaign).segments == 1
    campaign.sms_text = "a" * 156 + " {{ given_name }}"
    assert campaigns.sms_length_of(campaign).segments == 2
    assert any("limit is 1" in p for p in campaigns.campaign_problems(campaign))


def test_essential_message_may_go_to_a_segment_without_topics(author):
    campaign = draft(author, message_class="essential", topics=[], segment={"languages": ["cy"]})
    CitizenFactory(preferred_language="cy")  # no e-mail address: nobody to reach
    assert campaigns.campaign_problems(campaign)[0].startswith("Nobody would receive")
    reachable = subscriber(topic("roads"), preferred_language="cy")
    assert reachable.preferred_language == "cy"
    assert campaigns.campaign_problems(campaign) == []


def test_drafts_only_are_edited(author, approver):
    campaign = submitted(author)
    with pytest.raises(ApplicationError) as caught:
        campaigns.campaign_update(
            campaign=campaign, expected_version=campaign.version, officer=author, title="Later"
        )
    assert caught.value.code == "illegal_transition"


# --- Four eyes -------------------------------------------------------------------------------


def test_the_author_cannot_approve(author):
    campaign = submitted(author)
    with pytest.raises(ApplicationError) as caught:
        campaigns.campaign_approve(campaign=campaign, officer=author)
    assert caught.value.code == "four_eyes"
    assert Campaign.objects.get().status == Status.AWAITING_APPROVAL


def test_an_officer_who_edited_it_cannot_approve(author, approver):
    campaign = draft(author)
    campaigns.campaign_update(
        campaign=campaign, expected_version=1, officer=approver, email_text="Changed by them."
    )
    subscriber(topic())
    campaign = campaigns.campaign_submit(campaign=campaign, officer=author)
    with pytest.raises(ApplicationError) as caught:
        campaigns.campaign_approve(campaign=campaign, officer=approver)
    assert caught.value.code == "four_eyes"
    third = comms_officer()
    assert campaigns.campaign_approve(campaign=campaign, officer=third).approved_by == third


def test_the_database_refuses_approval_by_the_author(author):
    campaign = submitted(author)
    with pytest.raises(IntegrityError), transaction.atomic():
        Campaign.objects.filter(pk=campaign.pk).update(approved_by=author)


def test_a_supervisor_approves_and_a_caseworker_cannot(author, caseworker):
    campaign = submitted(author)
    with pytest.raises(ApplicationError) as caught:
        campaigns.campaign_approve(campaign=campaign, officer=caseworker)
    assert caught.value.code == "forbidden"
    boss = supervisor_officer()
    campaign = campaigns.campaign_approve(campaign=campaign, officer=boss)
    assert campaign.status == Status.APPROVED and campaign.approved_by == boss


def test_approval_checks_the_audience_again(author, approver):
    campaign = submitted(author)
    ContactPoint.objects.update(removed_at=timezone.now())  # the only subscriber's address goes
    with pytest.raises(ApplicationError) as caught:
        campaigns.campaign_approve(campaign=campaign, officer=approver)
    assert "Nobody would receive" in caught.value.message


def test_refusal_needs_a_reason_and_returns_a_draft(author, approver):
    campaign = submitted(author)
    with pytest.raises(ValidationError):
        campaigns.campaign_refuse(campaign=campaign, officer=approver, reason="  ")
    with pytest.raises(ApplicationError):
        campaigns.campaign_refuse(campaign=campaign, officer=author, reason="Mine")
    campaign = campaigns.campaign_refuse(
        campaign=campaign, officer=approver, reason="Say which wards."
    )
    assert campaign.status == Status.DRAFT
    refusal = campaigns.last_refusal(campaign)
    assert refusal.reason == "Say which wards." and refusal.actor == approver


# --- Scheduling, starting, cancelling --------------------------------------------------------


def test_schedule_needs_approval_and_a_future_time(author, approver):
    campaign = submitted(author)
    soon = timezone.now() + datetime.timedelta(hours=2)
    with pytest.raises(ApplicationError):
        campaigns.campaign_schedule(campaign=campaign, at=soon, officer=author)
    campaign = campaigns.campaign_approve(campaign=campaign, officer=approver)
    with pytest.raises(ValidationError):
        campaigns.campaign_schedule(
            campaign=campaign, at=timezone.now() - datetime.timedelta(minutes=1), officer=author
        )
    with pytest.raises(ValidationError):
        campaigns.campaign_schedule(campaign=campaign, at=soon.replace(tzinfo=None))
    campaign = campaigns.campaign_schedule(campaign=campaign, at=soon, officer=author)
    assert campaign.scheduled_for == soon


def test_start_due_campaigns_starts_only_those_due(author, approver, started, settings):
    due = approved(author, approver, title="Due")
    later = approved(author, approver, title="Later")
    unscheduled = approved(author, approver, title="Waiting for send now")
    now = timezone.now()
    for campaign, hours in ((due, 1), (later, 5)):
        campaigns.campaign_schedule(campaign=campaign, at=now + datetime.timedelta(hours=hours))
    report = campaigns.start_due_campaigns(now + datetime.timedelta(hours=2))
    assert report.started == [due.pk] and report.failed == []
    statuses = dict(Campaign.objects.values_list("pk", "status"))
    assert statuses == {due.pk: "sending", later.pk: "approved", unscheduled.pk: "approved"}
    # on_commit does not run inside the test transaction; the start ran in its own atomic.
    assert Delivery.objects.filter(campaign=due).count() == 1


def test_start_materialises_deliveries_and_hands_over_once(
    author, approver, started, django_capture_on_commit_callbacks
):
    campaign = approved(author, approver)
    subscriber(topic())
    with django_capture_on_commit_callbacks(execute=True):
        campaign = campaigns.campaign_start(campaign=campaign, officer=author)
    assert campaign.status == Status.SENDING and campaign.started_at is not None
    assert Delivery.objects.filter(campaign=campaign, status="pending").count() == 2
    assert started == [campaign.pk]
    with django_capture_on_commit_callbacks(execute=True):
        again = campaigns.campaign_start(campaign=campaign)
    assert again.status == Status.SENDING
    assert started == [campaign.pk]  # idempotent: not handed over twice
    assert Delivery.objects.filter(campaign=campaign).count() == 2


def test_a_failing_start_leaves_the_campaign_approved(author, approver, monkeypatch):
    campaign = approved(author, approver)
    campaigns.campaign_schedule(campaign=campaign, at=timezone.now() + datetime.timedelta(hours=1))

    def broken(**kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr("engagement.fanout.materialise_deliveries", broken)
    report = campaigns.start_due_campaigns(timezone.now() + datetime.timedelta(hours=2))
    assert report.failed == [campaign.pk]
    assert Campaign.objects.get().status == Status.APPROVED


def test_start_needs_approval(author, started):
    campaign = submitted(author)
    with pytest.raises(ApplicationError):
        campaigns.campaign_start(campaign=campaign)
    assert started == [] and not Delivery.objects.exists()


def test_cancel_before_sending_only(author, approver, started):
    campaign = approved(author, approver)
    cancelled = campaigns.campaign_cancel(campaign=campaign, officer=approver, reason="Postponed")
    assert cancelled.status == Status.CANCELLED
    sending = approved(author, approver, title="Second")
    campaigns.campaign_start(campaign=sending)
    with pytest.raises(ApplicationError) as caught:
        campaigns.campaign_cancel(campaign=sending, officer=approver)
    assert "cannot be cancelled" in caught.value.message


# --- Preview and test send -------------------------------------------------------------------


def test_preview_renders_for_a_sample_with_links_that_do_not_work(author):
    campaign = draft(
        author,
        email_html='<p>Hi {{ given_name }}</p><a href="{{ unsubscribe_url }}">Stop</a>',
    )
    rendered = campaigns.render_preview(
        campaign, campaigns.SampleResident(given_name="<b>Bob</b>", family_name="Jones")
    )
    assert rendered.email_subject == "Your bin day, <b>Bob</b>"
    assert "Hi &lt;b&gt;Bob&lt;/b&gt;" in rendered.email_html
    assert "/unsubscribe/preview/" in rendered.email_html


def test_test_send_goes_to_the_officer_only(author):
    campaign = draft(author, email_html="<p>Hello {{ given_name }}</p>")
    destination = campaigns.campaign_test_send(campaign=campaign, officer=author, channel="email")
    assert destination == author.email
    (message,) = mail.outbox
    assert message.to == [author.email]
    assert message.subject == "[TEST] Your bin day, Ceri"
    assert message.alternatives[0][0] == "<p>Hello Ceri</p>"
    with pytest.raises(ValidationError):
        campaigns.campaign_test_send(
            campaign=campaign, officer=author, channel="email", to_email="resident@example.org"
        )
    assert len(mail.outbox) == 1


def test_test_text_is_never_sent_to_a_resident_number(author):
    campaign = draft(author, channels=["email", "sms"], sms_text="Bins on Tuesday")
    subscriber(topic(), channel="sms", phone="+447700900123")
    with pytest.raises(ValidationError) as caught:
        campaigns.campaign_test_send(
            campaign=campaign, officer=author, channel="sms", to_phone="07700 900123"
        )
    assert "resident's record" in str(caught.value)
    with pytest.raises(ValidationError):
        campaigns.campaign_test_send(
            campaign=campaign, officer=author, channel="sms", to_phone="not a number"
        )


def test_test_send_is_rate_limited(author):
    campaign = draft(author)
    limit = campaigns.TEST_SEND_LIMIT.per_hour
    for _ in range(limit):
        campaigns.campaign_test_send(campaign=campaign, officer=author, channel="email")
    with pytest.raises(ApplicationError) as caught:
        campaigns.campaign_test_send(campaign=campaign, officer=author, channel="email")
    assert caught.value.code == "rate_limited"
    assert len(mail.outbox) == limit


def test_officer_roles_decide_who_writes_and_who_approves(caseworker):
    comms, boss = comms_officer(), supervisor_officer()
    assert campaigns.may_edit_campaigns(comms) and campaigns.may_approve_campaigns(comms)
    assert campaigns.may_view_campaigns(boss) and campaigns.may_approve_campaigns(boss)
    assert not campaigns.may_edit_campaigns(boss)
    assert not campaigns.may_view_campaigns(caseworker)
    democracy = officer("democracy officer")
    assert not campaigns.may_view_campaigns(democracy)
