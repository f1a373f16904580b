"""The staff campaign pages at /staff/campaigns/: who may see and do what, the forms and their
refusals (4xx with the reason, nothing saved), query counts, preview, review and analytics."""

from __future__ import annotations

import re
import uuid

import pytest
from django.urls import reverse

from engagement import campaigns
from engagement.models import Campaign, CampaignResponse, ContactRule, Delivery
from tests.engagement.campaign_support import (
    approved,
    comms_officer,
    draft,
    submitted,
    subscriber,
    supervisor_officer,
    topic,
)
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db
Status = Campaign.Status


@pytest.fixture(autouse=True)
def fresh_rate_limits(settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": f"campaign-pages-{uuid.uuid4()}",
        }
    }


@pytest.fixture
def author():
    return comms_officer(first_name="Ceri", last_name="Morgan")


@pytest.fixture
def author_client(client, author):
    client.force_login(author)
    return client


@pytest.fixture
def approver():
    return comms_officer(first_name="Dafydd")


@pytest.fixture
def started(monkeypatch):
    handed: list[int] = []
    monkeypatch.setattr(campaigns, "_enqueue_send", handed.append)
    return handed


def _form_data(**overrides):
    data = {
        "title": "Spring clean volunteers",
        "message_class": "informational",
        "topics": [str(topic().pk)],
        "channels": ["email", "sms"],
        "email_subject": "Help us, {{ given_name }}",
        "email_text": "Join the spring clean.",
        "email_html": "",
        "sms_text": "Join the spring clean! Reply HELP. Stop: {{ unsubscribe_url }}",
        "asks_response": "on",
        "response_keyword": "help",
        "action": "save",
    }
    data.update(overrides)
    return data


# --- Who may come in -------------------------------------------------------------------------


def test_anonymous_people_are_sent_to_sign_in(client):
    response = client.get(reverse("campaigns:list"))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_residents_and_other_staff_are_refused(client, caseworker):
    client.force_login(UserFactory())
    assert client.get(reverse("campaigns:list")).status_code == 403
    client.force_login(caseworker)
    assert client.get(reverse("campaigns:list")).status_code == 403
    assert client.get(reverse("campaigns:new")).status_code == 403


def test_a_supervisor_reads_and_approves_but_does_not_write(client, author):
    campaign = submitted(author)
    client.force_login(supervisor_officer())
    assert client.get(reverse("campaigns:list")).status_code == 200
    assert client.get(reverse("campaigns:new")).status_code == 403
    page = client.get(reverse("campaigns:detail", args=[campaign.pk]))
    assert "Review and approve" in page.content.decode()
    response = client.post(reverse("campaigns:review", args=[campaign.pk]), {"decision": "approve"})
    assert response.status_code == 302
    assert Campaign.objects.get().status == Status.APPROVED


# --- The list --------------------------------------------------------------------------------


def test_list_shows_counts_by_status_in_few_queries(
    author_client, author, approver, django_assert_max_num_queries
):
    for n in range(3):
        draft(author, title=f"Draft {n}")
    submitted(author, title="Waiting")
    approved(author, approver, title="Ready")
    with django_assert_max_num_queries(8):
        response = author_client.get(reverse("campaigns:list"))
    body = response.content.decode()
    assert response.status_code == 200
    assert "Draft (3)" in body and "Waiting for approval (1)" in body and "Approved (1)" in body
    with django_assert_max_num_queries(8):
        response = author_client.get(reverse("campaigns:list"), {"status": "draft"})
    body = response.content.decode()
    assert "Draft 0" in body and "Waiting</a>" not in body
    # A status that does not exist shows them all rather than an error.
    assert author_client.get(reverse("campaigns:list"), {"status": "<x>"}).status_code == 200
    assert author_client.get(reverse("campaigns:list"), {"page": "9999"}).status_code == 200


# --- Writing ---------------------------------------------------------------------------------


def test_write_a_campaign_and_see_its_problems(author_client):
    response = author_client.post(reverse("campaigns:new"), _form_data())
    campaign = Campaign.objects.get()
    assert (
        response.status_code == 302 and response["Location"] == f"/staff/campaigns/{campaign.pk}/"
    )
    assert campaign.channels == ["email", "sms"] and campaign.response_keyword == "HELP"
    page = author_client.get(response["Location"]).content.decode()
    # Nobody subscribed yet: the page says so before anyone submits it.
    assert "Nobody would receive this campaign" in page


def test_detail_page_query_count(author_client, author, django_assert_max_num_queries):
    campaign = draft(
        author, channels=["email", "sms"], sms_text="Bins on Tuesday. Stop: {{ unsubscribe_url }}"
    )
    for _ in range(5):
        subscriber(topic())
    with django_assert_max_num_queries(14):
        response = author_client.get(reverse("campaigns:detail", args=[campaign.pk]))
    body = response.content.decode()
    assert "5 residents, before contact rules" in body
    # The opt-out link counts: it is part of every text sent.
    assert re.search(r"\d+ characters, sent as GSM-7: [12] segments?\.", body)


def test_check_shows_the_sms_segments_and_saves_nothing(author_client):
    welsh = "Dewch i’r ŵyl " * 10
    response = author_client.post(
        reverse("campaigns:new"), _form_data(action="check", sms_text=welsh)
    )
    body = response.content.decode()
    assert response.status_code == 200
    assert "sent as UCS-2: 3 segments" in body
    assert "ŵ" in body and "’" in body
    assert not Campaign.objects.exists()
    response = author_client.post(
        reverse("campaigns:new"), _form_data(action="check", sms_text="x" * 700)
    )
    assert "5 segments; the limit is 3" in response.content.decode()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"title": ""}, "This field is required"),
        ({"topics": ["999999"]}, "Select a valid choice"),
        ({"topics": ["x"]}, "is not a valid value"),
        ({"channels": ["fax"]}, "Select a valid choice"),
        ({"message_class": "urgent"}, "Select a valid choice"),
        ({"response_keyword": "<script>"}, "one word of 2 to 32"),
        ({"languages": ["fr"]}, "Select a valid choice"),
        ({"version": "abc"}, "Enter a whole number"),
    ],
)
def test_bad_input_is_a_form_error_and_nothing_is_saved(author_client, overrides, message):
    response = author_client.post(reverse("campaigns:new"), _form_data(**overrides))
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Campaign.objects.exists()


def test_edit_a_draft_and_conflicts(author_client, author):
    campaign = draft(author)
    url = reverse("campaigns:edit", args=[campaign.pk])
    assert "Bin day changes" in author_client.get(url).content.decode()
    response = author_client.post(url, _form_data(title="Renamed", version="1"))
    assert response.status_code == 302
    stale = author_client.post(url, _form_data(title="Stale", version="1"))
    assert stale.status_code == 409 and "was changed since you opened it" in stale.content.decode()
    assert Campaign.objects.get().title == "Renamed"


def test_submit_refusal_shows_every_reason(author_client, author):
    campaign = draft(author, email_subject="", channels=["email", "sms"], sms_text="")
    response = author_client.post(reverse("campaigns:submit", args=[campaign.pk]))
    body = response.content.decode()
    assert response.status_code == 400
    assert "write the e-mail subject" in body and "write the text message" in body
    assert Campaign.objects.get().status == Status.DRAFT


def test_submit_then_the_author_cannot_approve(author_client, author):
    campaign = draft(author)
    subscriber(topic())
    response = author_client.post(reverse("campaigns:submit", args=[campaign.pk]))
    assert response.status_code == 302
    page = author_client.get(reverse("campaigns:detail", args=[campaign.pk])).content.decode()
    assert "you wrote or changed it, so you cannot" in page
    response = author_client.post(
        reverse("campaigns:review", args=[campaign.pk]), {"decision": "approve"}
    )
    assert response.status_code == 403
    assert "A second officer must approve" in response.content.decode()
    assert Campaign.objects.get().status == Status.AWAITING_APPROVAL


def test_review_refuse_needs_a_reason(client, author, approver):
    campaign = submitted(author)
    client.force_login(approver)
    url = reverse("campaigns:review", args=[campaign.pk])
    assert client.get(url).status_code == 200
    response = client.post(url, {"decision": "refuse", "reason": ""})
    assert response.status_code == 400 and "This field is required" in response.content.decode()
    assert client.post(url, {"decision": "maybe"}).status_code == 400
    response = client.post(url, {"decision": "refuse", "reason": "Too long for a text."})
    assert response.status_code == 302
    client.force_login(author)
    page = client.get(reverse("campaigns:detail", args=[campaign.pk])).content.decode()
    assert "Refused by Dafydd" in page and "Too long for a text." in page


def test_schedule_and_send_now(client, author, approver, started):
    campaign = approved(author, approver)
    client.force_login(author)
    url = reverse("campaigns:schedule", args=[campaign.pk])
    response = client.post(url, {"date": "2001-01-01", "time": "09:00"})
    assert (
        response.status_code == 400 and "Choose a time in the future" in response.content.decode()
    )
    assert client.post(url, {"date": "31/02/2099", "time": "25:00"}).status_code == 400
    assert client.post(url, {"date": "2099-05-01", "time": "09:30"}).status_code == 302
    assert Campaign.objects.get().scheduled_for.year == 2099
    response = client.post(reverse("campaigns:start", args=[campaign.pk]))
    assert response.status_code == 302
    assert Campaign.objects.get().status == Status.SENDING


def test_test_send_from_the_page(author_client, author, mailoutbox):
    campaign = draft(author)
    url = reverse("campaigns:test-send", args=[campaign.pk])
    assert author_client.post(url, {"channel": "email"}).status_code == 302
    assert [m.to for m in mailoutbox] == [[author.email]]
    response = author_client.post(url, {"channel": "sms", "to_phone": ""})
    assert (
        response.status_code == 400 and "Enter your work mobile number" in response.content.decode()
    )
    # SMS is not a channel of this campaign.
    response = author_client.post(url, {"channel": "sms", "to_phone": "07700 900999"})
    assert response.status_code == 400
    assert len(mailoutbox) == 1


def test_cancel_from_the_page(author_client, author):
    campaign = draft(author)
    response = author_client.post(reverse("campaigns:cancel", args=[campaign.pk]), {"reason": ""})
    assert response.status_code == 302
    assert Campaign.objects.get().status == Status.CANCELLED
    again = author_client.post(reverse("campaigns:cancel", args=[campaign.pk]), {"reason": ""})
    assert again.status_code == 400


def test_unknown_campaign_is_404_and_wrong_method_405(author_client):
    assert author_client.get(reverse("campaigns:detail", args=[999999])).status_code == 404
    assert author_client.get(reverse("campaigns:submit", args=[1])).status_code == 405


# --- Preview ---------------------------------------------------------------------------------


def test_preview_as_a_named_sample_resident(author_client, author):
    campaign = draft(
        author,
        channels=["email", "sms"],
        email_html="<p>Hi {{ given_name }}</p><script>alert(1)</script>",
        sms_text="Hi {{ given_name }}, bins on Tuesday",
    )
    url = reverse("campaigns:preview", args=[campaign.pk])
    body = author_client.get(
        url, {"given_name": "Gwenllïan", "family_name": "Ŵyn"}
    ).content.decode()
    assert "Hi Gwenllïan, bins on Tuesday" in body
    assert "sent as UCS-2" in body  # the name's ï is not in GSM-7
    # The officer's HTML is shown only inside a sandboxed frame, escaped into srcdoc.
    assert 'sandbox=""' in body
    assert "<script>alert(1)</script>" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body


# --- Analytics -------------------------------------------------------------------------------


def test_analytics_has_a_chart_and_the_same_figures_in_tables(
    client, author, approver, started, django_assert_max_num_queries
):
    campaign = approved(author, approver, asks_response=True, response_keyword="HELP")
    for _ in range(2):
        subscriber(topic())
    campaign = campaigns.campaign_start(campaign=campaign)
    rule = ContactRule.objects.create(name="Bereavement hold", kind="sensitive_case_hold")
    first = Delivery.objects.filter(campaign=campaign).first()
    Delivery.objects.filter(pk=first.pk).update(
        status="suppressed", rule=rule, reason="Open bereavement case"
    )
    CampaignResponse.objects.create(campaign=campaign, channel="sms", text="HELP")
    client.force_login(supervisor_officer())
    with django_assert_max_num_queries(12):
        response = client.get(reverse("campaigns:analytics", args=[campaign.pk]))
    body = response.content.decode()
    assert response.status_code == 200
    assert 'data-insight-chart="campaign-chart-data"' in body
    assert 'id="campaign-chart-data"' in body and "chart.umd.js" in body
    assert "Bereavement hold" in body and "Open bereavement case" in body
    assert "3 deliveries in all." in body
    assert "1 response." in body
    figures = response.context["figures"]
    assert figures["status_rows"] == [["Waiting to be sent", 2], ["Not sent (a contact rule)", 1]]
