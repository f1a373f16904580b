"""The consents in the data export and the consents panel on the staff citizen page. (The
preference pages themselves: test_preference_pages.py.)"""

import pytest

from citizenhub.gdpr import export_citizen_data
from citizenhub.staff.access import ADMINISTRATOR, ensure_staff_groups
from engagement.models import Topic
from engagement.purposes import ensure_standard_topics
from engagement.services import record_consent
from engagement.subscriptions import confirm_subscription, subscribe, unsubscribe
from tests.factories import StaffUserFactory

pytestmark = pytest.mark.django_db


def test_the_export_has_the_current_state_and_the_full_ledger(resident):
    ensure_standard_topics()
    citizen = resident.citizen
    topic = Topic.objects.get(slug="residents-newsletter")
    pending = subscribe(citizen=citizen, topic=topic, channel="email", source="portal")
    confirm_subscription(subscription_id=pending.pk, actor=resident)
    unsubscribe(citizen=citizen, topic=topic, channel="email", source="portal", actor=resident)
    section = export_citizen_data(citizen)["sections"]["consents"]
    history = section["data"]["history"]
    assert [row["action"] for row in history] == ["Withdrawn", "Given"]
    assert section["data"]["current"][0]["action"] == "Withdrawn"
    assert history[1]["recorded_by"] == "You" and history[1]["purpose"] == "Residents’ newsletter"
    assert "newsletter" in history[1]["wording"]


def test_a_topic_s_name_titles_its_ledger_lines(resident):
    Topic.objects.create(slug="bins", name="Bin collections", consent_wording="Bins.")
    record_consent(
        citizen=resident.citizen,
        purpose="bins",
        channel="email",
        action="given",
        wording="Bins.",
        wording_version="1",
        source="staff",
    )
    [row] = export_citizen_data(resident.citizen)["sections"]["consents"]["data"]["history"]
    assert row["purpose"] == "Bin collections"


class TestStaffPanel:
    def _officer(self, group=None):
        officer = StaffUserFactory()
        if group:
            officer.groups.add(ensure_staff_groups()[group])
        return officer

    def test_an_administrator_sees_the_consents_on_the_citizen_page(self, client, resident):
        record_consent(
            citizen=resident.citizen,
            purpose="residents-newsletter",
            channel="email",
            action="given",
            wording="Send me the newsletter",
            wording_version="2026-1",
            source="portal",
        )
        client.force_login(self._officer(ADMINISTRATOR))
        page = client.get(f"/staff/citizens/{resident.citizen.public_id}/").content.decode()
        assert 'id="panel-consents"' in page
        assert "Residents’ newsletter" in page and "govuk-tag--green" in page

    def test_a_caseworker_does_not(self, client, caseworker, resident):
        client.force_login(caseworker)
        response = client.get(f"/staff/citizens/{resident.citizen.public_id}/")
        assert response.status_code == 200
        assert 'id="panel-consents"' not in response.content.decode()
