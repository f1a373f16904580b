"""Campaign analytics' figures, and the 360 panel of messages held back: the rule and the
reason of every suppressed or held delivery, in a constant number of queries."""

from __future__ import annotations

import pytest

from citizenhub.staff.access import ADMINISTRATOR, ensure_staff_groups
from engagement.analytics import campaign_summary
from engagement.fanout import materialise_deliveries
from engagement.models import ContactRule, Delivery
from tests.engagement.test_fanout import add_phone, make_campaign, make_topic, subscriber
from tests.engagement.test_rules import NIGHT
from tests.factories import ServiceCaseFactory, ServiceFactory, StaffUserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def rules():
    care = ContactRule.objects.create(
        name="Sensitive cases", kind="sensitive_case_hold", service_codes=["adult-social-care"]
    )
    quiet = ContactRule.objects.create(
        name="Quiet nights", kind="quiet_hours", quiet_start="21:00", quiet_end="08:00"
    )
    return care, quiet


def fanned_out(rules, extra_cared_for: int = 0):
    """A campaign on e-mail and text: two ordinary residents (one e-mail only), one with an
    open social care case (and `extra_cared_for` more), one who asked not to be contacted;
    fanned out at night."""
    topic = make_topic()
    service = ServiceFactory(code="adult-social-care")
    both = subscriber(topic)
    add_phone(both)
    subscriber(topic, channel="sms", citizen=both)
    subscriber(topic)
    cared_for = []
    for _ in range(1 + extra_cared_for):
        person = subscriber(topic)
        ServiceCaseFactory(citizen=person, service=service)
        cared_for.append(person)
    subscriber(topic, do_not_contact=True)
    campaign = make_campaign(topic, channels=("email", "sms"))
    materialise_deliveries(campaign=campaign, now=NIGHT)
    return campaign, cared_for[0]


def test_the_summary_counts_by_status_channel_rule_and_reason(rules, django_assert_max_num_queries):
    campaign, _ = fanned_out(rules)
    with django_assert_max_num_queries(2):
        summary = campaign_summary(campaign)
    assert summary["total"] == 5
    by_status = {row["status"]: row["count"] for row in summary["by_status"]}
    assert by_status == {status: 0 for status in Delivery.Status.values} | {
        "pending": 2,
        "held": 1,
        "suppressed": 2,
    }
    assert [(row["channel"], row["total"], row["by_status"]) for row in summary["by_channel"]] == [
        ("email", 4, {"pending": 2, "suppressed": 2}),
        ("sms", 1, {"held": 1}),
    ]
    assert {(row["name"], row["held"], row["suppressed"]) for row in summary["by_rule"]} == {
        ("Sensitive cases", 0, 1),
        ("Quiet nights", 1, 0),
        ("Do not contact", 0, 1),
    }
    assert {(row["reason"], row["count"]) for row in summary["by_reason"]} == {
        ("Open adult social care case", 1),
        ("Quiet hours 21:00–08:00: held until 08:00", 1),
        ("Asked not to be contacted", 1),
    }


def test_an_empty_campaign_has_zero_everywhere(rules):
    summary = campaign_summary(make_campaign(make_topic()))
    assert summary["total"] == 0
    assert summary["by_channel"] == summary["by_rule"] == summary["by_reason"] == []


def _officer(role):
    officer = StaffUserFactory()
    officer.groups.add(ensure_staff_groups()[role])
    return officer


def test_the_360_panel_lists_what_was_held_back_and_why(client, rules):
    # Comms officers hold the permission but not the 360 page; administrators have both.
    campaign, cared_for = fanned_out(rules)
    client.force_login(_officer(ADMINISTRATOR))
    page = client.get(f"/staff/citizens/{cared_for.public_id}/").content.decode()
    assert 'id="panel-deliveries-held-back"' in page
    assert "Messages held back" in page
    assert campaign.title in page
    assert "Sensitive cases" in page and "Open adult social care case" in page


def test_the_panel_says_when_nothing_was_held_back(client, rules):
    topic = make_topic()
    resident = subscriber(topic)
    client.force_login(_officer(ADMINISTRATOR))
    page = client.get(f"/staff/citizens/{resident.public_id}/").content.decode()
    assert "No campaign messages have been held back" in page


def test_a_caseworker_does_not_see_the_panel(client, caseworker, rules):
    _, cared_for = fanned_out(rules)
    client.force_login(caseworker)
    response = client.get(f"/staff/citizens/{cared_for.public_id}/")
    assert response.status_code == 200
    assert 'id="panel-deliveries-held-back"' not in response.content.decode()


def test_the_panel_costs_one_query_however_much_was_held_back(rules, django_assert_max_num_queries):
    from engagement.staff_panels_deliveries import citizen_deliveries_panel

    officer = _officer(ADMINISTRATOR)
    _, cared_for = fanned_out(rules)
    request = type("Request", (), {"user": officer})()
    officer.has_perm("engagement.view_delivery")  # the permission cache, loaded once a request
    with django_assert_max_num_queries(1):
        few = citizen_deliveries_panel(request, cared_for)
    assert len(few.context["deliveries"]) == 1 and not few.context["more"]
    for number in range(12):
        Delivery.objects.create(
            campaign=make_campaign(make_topic(f"extra-{number}")),
            citizen=cared_for,
            channel="email",
            status="suppressed",
            rule=rules[0],
            reason="Open adult social care case",
        )
    with django_assert_max_num_queries(1):
        many = citizen_deliveries_panel(request, cared_for)
    assert len(many.context["deliveries"]) == 10 and many.context["more"]
