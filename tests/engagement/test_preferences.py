"""The preference centre at /my/preferences/, the consents in the data export, and the
consents panel on the staff citizen page."""

import pytest
from django.test import Client

from citizenhub.gdpr import export_citizen_data
from citizenhub.staff.access import ADMINISTRATOR, ensure_staff_groups
from engagement.models import ConsentRecord
from engagement.services import has_consent, record_consent
from tests.factories import StaffUserFactory

pytestmark = pytest.mark.django_db
URL = "/my/preferences/"
NEWSLETTER = "residents-newsletter:email"
RESEARCH = "research-panel:email"


def test_signed_out_visitors_are_sent_to_sign_in(client):
    response = client.get(URL)
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_the_page_offers_each_purpose_unticked_at_first(resident_client):
    response = resident_client.get(URL)
    assert response.status_code == 200
    page = response.content.decode()
    assert "Send me the monthly residents’ newsletter by e-mail" in page
    assert f'value="{NEWSLETTER}"' in page and "checked" not in page
    assert "You have not given or withdrawn any consent yet." in page
    assert "<title>My preferences – " in page


def test_giving_and_withdrawing_are_one_submit_each(resident_client, resident):
    citizen = resident.citizen
    response = resident_client.post(
        URL, {"consents": [NEWSLETTER, RESEARCH]}, REMOTE_ADDR="198.51.100.7"
    )
    assert response.status_code == 302
    given = ConsentRecord.objects.filter(citizen=citizen)
    assert given.count() == 2
    record = given.get(purpose="residents-newsletter")
    assert record.action == "given" and record.source == "portal"
    assert record.wording == "Send me the monthly residents’ newsletter by e-mail"
    assert record.wording_version == "2026-1" and record.ip_address == "198.51.100.7"
    assert record.actor == resident and record.lawful_basis == "consent"

    page = resident_client.get(URL).content.decode()
    assert page.count("checked") == 2

    # Withdrawing one: untick it and save; only the change is recorded.
    resident_client.post(URL, {"consents": [RESEARCH]})
    assert ConsentRecord.objects.filter(citizen=citizen).count() == 3
    assert not has_consent(citizen, "residents-newsletter", "email")
    assert has_consent(citizen, "research-panel", "email")

    # Saving without changes writes nothing.
    resident_client.post(URL, {"consents": [RESEARCH]})
    assert ConsentRecord.objects.filter(citizen=citizen).count() == 3


def test_a_made_up_purpose_is_a_form_error_and_saves_nothing(resident_client, resident):
    response = resident_client.post(URL, {"consents": [NEWSLETTER, "sell-my-data:email"]})
    assert response.status_code == 400
    page = response.content.decode()
    assert "Choose from the options shown." in page
    assert "<title>Error: My preferences" in page
    assert 'class="govuk-error-summary"' in page
    assert not ConsentRecord.objects.exists()


def test_a_post_without_csrf_token_is_refused(resident):
    client = Client(enforce_csrf_checks=True)
    client.force_login(resident)
    assert client.post(URL, {"consents": [NEWSLETTER]}).status_code == 403
    assert not ConsentRecord.objects.exists()


def test_the_history_shows_only_the_resident_s_own_ledger(
    resident_client, resident, other_resident
):
    record_consent(
        citizen=other_resident.citizen,
        purpose="research-panel",
        channel="email",
        action="given",
        wording="Other resident's words",
        wording_version="1",
        source="portal",
    )
    resident_client.post(URL, {"consents": [NEWSLETTER]})
    page = resident_client.get(URL).content.decode()
    assert "Other resident" not in page
    assert page.count('<tr class="govuk-table__row">') == 2  # header + one line


def test_the_export_has_the_current_state_and_the_full_ledger(resident_client, resident):
    resident_client.post(URL, {"consents": [NEWSLETTER]})
    resident_client.post(URL, {"consents": []})
    section = export_citizen_data(resident.citizen)["sections"]["consents"]
    assert [row["action"] for row in section["data"]["history"]] == ["Withdrawn", "Given"]
    assert section["data"]["current"][0]["action"] == "Withdrawn"
    assert section["data"]["history"][1]["recorded_by"] == "You"
    assert "newsletter" in section["data"]["history"][1]["wording"]


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
