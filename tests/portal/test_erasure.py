"""Erasure requests: the plan (what is erased, what is kept, why and until when), carrying it
out in one transaction by the right officer, and the staff review page."""

import datetime

import pytest
from django.utils import timezone

from citizenhub import gdpr
from citizenhub.catalogue import load_service_catalogue
from citizenhub.errors import ApplicationError
from citizenhub.models import (
    Address,
    AuditEvent,
    CaseEvent,
    Citizen,
    ContactPoint,
    Service,
    ServiceCase,
    Team,
)
from citizenhub.services.cases import case_transition, open_case
from citizenhub.services.erasure import carry_out_erasure, erasure_plan
from citizenhub.staff.access import ensure_staff_groups
from engagement.models import ConsentRecord
from engagement.services import has_consent, record_consent
from tests.factories import AddressFactory, StaffUserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def catalogue(db):
    load_service_catalogue()
    return {service.code: service for service in Service.objects.all()}


@pytest.fixture
def ig_team(catalogue):
    return Team.objects.get(slug="information-governance")


def _officer(group, team=None):
    officer = StaffUserFactory()
    officer.groups.add(ensure_staff_groups()[group])
    if team is not None:
        team.members.add(officer)
    return officer


@pytest.fixture
def ig_supervisor(ig_team):
    return _officer("supervisor", ig_team)


@pytest.fixture
def holdings(resident, catalogue):
    """A resident with something of every kind: optional details, an unconfirmed address
    and contact point, a closed and an open case (one at an address), and a consent."""
    citizen = resident.citizen
    citizen.date_of_birth = datetime.date(1980, 5, 17)
    citizen.accessibility_needs = "Large print"
    citizen.save()
    ContactPoint.objects.create(
        citizen=citizen,
        kind="phone",
        value="07700 900123",
        normalised="+447700900123",
        match_key="+447700900123",
        source="portal",
    )
    home = AddressFactory(citizen=citizen, postcode="NM1 4AB")
    AddressFactory(citizen=citizen, postcode="NM2 9ZZ", is_primary=False)  # used by no case
    bin_case = open_case(
        service=catalogue["missed-bin"], title="Bin missed", citizen=citizen, address=home
    )
    closed_at = timezone.make_aware(datetime.datetime(2026, 3, 2, 12))
    case_transition(
        case=bin_case,
        to_status="resolved",
        expected_version=bin_case.version,
        resolution="Collected.",
    )
    bin_case.refresh_from_db()
    case_transition(
        case=bin_case, to_status="closed", expected_version=bin_case.version, at=closed_at
    )
    noise = open_case(service=catalogue["noise"], title="Loud music", citizen=citizen)
    record_consent(
        citizen=citizen,
        purpose="residents-newsletter",
        channel="email",
        action="given",
        wording="Send me the newsletter",
        wording_version="2026-1",
        source="portal",
        actor=resident,
    )
    request = gdpr.open_data_request(
        citizen=citizen,
        service_code="erasure-request",
        explanation="Please forget me",
        actor=resident,
    ).case
    return {"citizen": citizen, "bin_case": bin_case, "noise": noise, "request": request}


class TestPlan:
    def test_lists_what_is_erased(self, holdings):
        plan = erasure_plan(holdings["citizen"])
        erased = {item.key: item.count for item in plan.erase}
        assert erased == {
            "profile:date_of_birth": 1,
            "profile:accessibility_needs": 1,
            "contact_points:unconfirmed": 1,
            "addresses:unused": 1,
            "consents": 1,
        }

    def test_lists_what_is_kept_with_reason_and_date(self, holdings):
        plan = erasure_plan(holdings["citizen"])
        kept = {item.key: item for item in plan.keep}
        bin_case = kept[f"case:{holdings['bin_case'].reference}"]
        assert bin_case.lawful_basis == "public_task" and bin_case.reason
        assert bin_case.retained_until == datetime.date(2026, 3, 2) + datetime.timedelta(days=730)
        noise = kept[f"case:{holdings['noise'].reference}"]
        assert noise.retained_until is None
        assert noise.retention == "6 years after the case is closed, then anonymised"
        request = kept[f"case:{holdings['request'].reference}"]
        assert request.lawful_basis == "legal_obligation"
        assert kept["audit"].lawful_basis == "legal_obligation" and kept["audit"].retained_until
        assert kept["consent_history"].count == 2  # the line given, and the withdrawal to come
        assert kept["consent_history"].retained_until == timezone.localdate() + datetime.timedelta(
            days=6 * 365
        )
        assert kept["contact_points:kept"].count == 1 and kept["addresses:kept"].count == 1
        assert kept["timeline"].count > 0
        # Everything kept says why, and until when or for how long.
        for item in plan.keep:
            assert item.reason and (item.retained_until or item.retention), item.key

    def test_records_of_apps_without_a_handler_are_listed_as_kept(self, holdings, ig_supervisor):
        from channels.models import LoggedContact

        LoggedContact.objects.create(
            citizen=holdings["citizen"],
            kind="call",
            direction="inbound",
            occurred_at=timezone.now(),
            outcome="resolved",
            notes="Asked about bins",
        )
        kept = {item.key: item for item in erasure_plan(holdings["citizen"]).keep}
        assert kept["other:channels.loggedcontact"].count == 1
        assert kept["other:channels.loggedcontact"].lawful_basis == "public_task"
        carry_out_erasure(case=holdings["request"], actor=ig_supervisor)
        assert LoggedContact.objects.filter(citizen=holdings["citizen"]).count() == 1


class TestCarryingOut:
    def test_erases_keeps_records_and_resolves_the_request(self, holdings, ig_supervisor):
        citizen, request = holdings["citizen"], holdings["request"]
        ledger_before = ConsentRecord.objects.count()
        carry_out_erasure(case=request, actor=ig_supervisor)

        citizen.refresh_from_db()
        assert citizen.date_of_birth is None and citizen.accessibility_needs == ""
        assert citizen.status == Citizen.Status.ACTIVE  # the person is still a resident
        assert list(citizen.contact_points.values_list("kind", flat=True)) == ["email"]
        assert list(citizen.addresses.values_list("postcode", flat=True)) == ["NM1 4AB"]
        assert not has_consent(citizen, "residents-newsletter", "email")
        assert ConsentRecord.objects.count() == ledger_before + 1  # withdrawn, not deleted
        assert ServiceCase.objects.filter(citizen=citizen).count() == 3

        audit = AuditEvent.objects.get(action="erase", citizen=citizen)
        assert audit.actor == ig_supervisor and audit.details["case"] == request.reference
        assert {item["key"] for item in audit.details["erased"]} >= {"consents", "addresses:unused"}

        request.refresh_from_db()
        assert request.status == "resolved"
        assert "We erased:" in request.resolution and "We keep the following" in request.resolution
        assert holdings["bin_case"].reference in request.resolution
        event = request.events.get(kind=CaseEvent.Kind.DETAILS)
        assert event.visibility == "resident" and "Erasure carried out." in event.text
        assert event.data["erasure"]["kept"]

        # The resident is told through the normal path: the resolution in their case history.
        exported = gdpr.export_citizen_data(citizen)["sections"]["cases"]["data"]
        mine = next(case for case in exported if case["reference"] == request.reference)
        assert "We erased:" in mine["resolution"]
        assert any("Erasure carried out." in entry["text"] for entry in mine["history"])

    def test_is_done_once(self, holdings, ig_supervisor):
        carry_out_erasure(case=holdings["request"], actor=ig_supervisor)
        with pytest.raises(ApplicationError, match="already been dealt with"):
            carry_out_erasure(case=holdings["request"], actor=ig_supervisor)
        assert AuditEvent.objects.filter(action="erase").count() == 1

    @pytest.mark.parametrize("who", ["caseworker in the team", "supervisor elsewhere"])
    def test_only_a_supervisor_or_administrator_of_the_team_may(self, holdings, ig_team, who):
        officer = (
            _officer("caseworker", ig_team)
            if who == "caseworker in the team"
            else _officer("supervisor", Team.objects.get(slug="waste"))
        )
        with pytest.raises(ApplicationError, match="supervisor or administrator"):
            carry_out_erasure(case=holdings["request"], actor=officer)
        holdings["citizen"].refresh_from_db()
        assert holdings["citizen"].date_of_birth is not None
        assert has_consent(holdings["citizen"], "residents-newsletter", "email")

    def test_only_erasure_requests(self, holdings, ig_supervisor):
        with pytest.raises(ApplicationError, match="not an erasure request"):
            carry_out_erasure(case=holdings["noise"], actor=ig_supervisor)

    def test_nothing_is_half_done_when_a_step_fails(self, holdings, ig_supervisor, monkeypatch):
        import citizenhub.services.erasure as erasure

        def broken(**kwargs):
            raise RuntimeError("resolution failed")

        monkeypatch.setattr(erasure, "case_transition", broken)
        with pytest.raises(RuntimeError):
            carry_out_erasure(case=holdings["request"], actor=ig_supervisor)
        citizen = Citizen.objects.get(pk=holdings["citizen"].pk)
        assert citizen.date_of_birth is not None
        assert has_consent(citizen, "residents-newsletter", "email")
        assert Address.objects.filter(citizen=citizen).count() == 2
        assert not AuditEvent.objects.filter(action="erase").exists()


class TestStaffPage:
    def _url(self, case):
        return f"/staff/cases/{case.reference}/erasure/"

    def test_the_case_page_links_to_the_review_on_erasure_requests_only(
        self, client, holdings, ig_supervisor
    ):
        client.force_login(ig_supervisor)
        page = client.get(f"/staff/cases/{holdings['request'].reference}/").content.decode()
        assert f'href="{self._url(holdings["request"])}"' in page
        other = client.get(f"/staff/cases/{holdings['noise'].reference}/").content.decode()
        assert 'id="panel-erasure"' not in other
        assert client.get(self._url(holdings["noise"])).status_code == 404

    def test_a_caseworker_sees_the_plan_but_cannot_carry_it_out(self, client, holdings, ig_team):
        caseworker = _officer("caseworker", ig_team)
        client.force_login(caseworker)
        response = client.get(self._url(holdings["request"]))
        assert response.status_code == 200
        page = response.content.decode()
        assert "To be erased" in page and "To be kept" in page
        assert "Carry out erasure" not in page
        assert client.post(self._url(holdings["request"])).status_code == 403
        holdings["citizen"].refresh_from_db()
        assert holdings["citizen"].date_of_birth is not None
        # Looking at the plan is a view of the record, and says why.
        assert AuditEvent.objects.filter(
            actor=caseworker, action="view", reason__startswith="Erasure review"
        ).exists()

    def test_the_supervisor_carries_it_out(self, client, holdings, ig_supervisor):
        client.force_login(ig_supervisor)
        page = client.get(self._url(holdings["request"])).content.decode()
        assert "Carry out erasure" in page
        response = client.post(self._url(holdings["request"]))
        assert response.status_code == 302
        assert response["Location"] == f"/staff/cases/{holdings['request'].reference}/"
        holdings["request"].refresh_from_db()
        assert holdings["request"].status == "resolved"
        # Done: the page says so and offers no button; posting again is a clear error.
        page = client.get(self._url(holdings["request"])).content.decode()
        assert "This request has been dealt with." in page
        again = client.post(self._url(holdings["request"]))
        assert again.status_code == 400 and "already been dealt with" in again.content.decode()

    def test_signed_out_and_non_staff_are_kept_out(self, client, resident, holdings):
        assert client.get(self._url(holdings["request"])).status_code == 302
        client.force_login(resident)
        assert client.post(self._url(holdings["request"])).status_code == 403
