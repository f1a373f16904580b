"""The consent ledger: append-only through every code path (model, queryset, and on
PostgreSQL a trigger), current state derived from it, and merges that move it."""

import datetime

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from citizenhub.models import Citizen, TimelineEntry
from citizenhub.services import citizen_create, citizen_merge, citizen_unmerge
from engagement.models import ConsentRecord, LedgerIsAppendOnly
from engagement.services import current_consents, has_consent, record_consent
from tests.factories import CitizenFactory, StaffUserFactory, UserFactory

pytestmark = pytest.mark.django_db

on_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the trigger exists on PostgreSQL only"
)


def consent(citizen, action="given", purpose="residents-newsletter", at=None, **extra):
    return record_consent(
        citizen=citizen,
        purpose=purpose,
        channel="email",
        action=action,
        wording="Send me the monthly residents' newsletter by e-mail",
        wording_version="2026-1",
        source=extra.pop("source", "portal"),
        occurred_at=at,
        **extra,
    )


class TestAppendOnlyInPython:
    def test_saving_an_existing_record_is_refused(self):
        record = consent(CitizenFactory())
        record.wording = "Something else"
        with pytest.raises(LedgerIsAppendOnly):
            record.save()
        assert ConsentRecord.objects.get().wording.startswith("Send me")

    def test_deleting_a_record_is_refused(self):
        record = consent(CitizenFactory())
        with pytest.raises(LedgerIsAppendOnly):
            record.delete()
        with pytest.raises(LedgerIsAppendOnly):
            ConsentRecord.objects.filter(pk=record.pk).delete()
        with pytest.raises(LedgerIsAppendOnly):
            ConsentRecord.objects.all().delete()
        assert ConsentRecord.objects.count() == 1

    @pytest.mark.parametrize(
        "changes",
        [{"action": "withdrawn"}, {"wording": "x"}, {"citizen_id": 1, "action": "given"}, {}],
    )
    def test_queryset_updates_are_refused(self, changes):
        consent(CitizenFactory())
        with pytest.raises(LedgerIsAppendOnly):
            ConsentRecord.objects.update(**changes)
        assert ConsentRecord.objects.get().action == "given"

    def test_bulk_update_and_update_or_create_are_refused(self):
        record = consent(CitizenFactory())
        record.action = "withdrawn"
        with pytest.raises(LedgerIsAppendOnly):
            ConsentRecord.objects.bulk_update([record], ["action"])
        with pytest.raises(LedgerIsAppendOnly):
            ConsentRecord.objects.update_or_create(pk=record.pk, defaults={"action": "withdrawn"})
        assert ConsentRecord.objects.get().action == "given"

    def test_deleting_the_profile_is_refused_while_it_has_a_ledger(self):
        citizen = CitizenFactory()
        consent(citizen)
        with pytest.raises(IntegrityError), transaction.atomic():
            citizen.delete()
        assert ConsentRecord.objects.filter(citizen=citizen).count() == 1

    def test_deleting_the_recording_account_keeps_the_record_and_its_label(self):
        officer = StaffUserFactory(username="officer-jo")
        record = consent(CitizenFactory(), actor=officer, source="staff")
        officer.delete()
        record = ConsentRecord.objects.get(pk=record.pk)
        assert record.actor_id is None and record.actor_label == "user:officer-jo"


@on_postgresql
class TestAppendOnlyInTheDatabase:
    """Even SQL that bypasses Django cannot edit or delete the ledger."""

    def _sql(self, statement, params):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(statement, params)

    def test_update_and_delete_are_refused_by_the_trigger(self):
        record = consent(CitizenFactory())
        with pytest.raises(IntegrityError, match="append-only"):
            self._sql(
                "UPDATE engagement_consentrecord SET action = 'withdrawn' WHERE id = %s",
                [record.pk],
            )
        with pytest.raises(IntegrityError, match="append-only"):
            self._sql(
                "UPDATE engagement_consentrecord SET occurred_at = now() WHERE id = %s", [record.pk]
            )
        with pytest.raises(IntegrityError, match="append-only"):
            self._sql("DELETE FROM engagement_consentrecord WHERE id = %s", [record.pk])
        assert ConsentRecord.objects.get().action == "given"

    def test_moving_to_another_profile_and_forgetting_an_account_are_allowed(self):
        officer, other_officer = StaffUserFactory(), StaffUserFactory()
        record = consent(CitizenFactory(), actor=officer, source="staff")
        other = CitizenFactory()
        self._sql(
            "UPDATE engagement_consentrecord SET citizen_id = %s WHERE id = %s",
            [other.pk, record.pk],
        )
        with pytest.raises(IntegrityError, match="append-only"):
            self._sql(
                "UPDATE engagement_consentrecord SET actor_id = %s WHERE id = %s",
                [other_officer.pk, record.pk],
            )
        self._sql("UPDATE engagement_consentrecord SET actor_id = NULL WHERE id = %s", [record.pk])
        record = ConsentRecord.objects.get(pk=record.pk)
        assert record.citizen_id == other.pk and record.actor_id is None


class TestCurrentState:
    def test_the_latest_record_of_each_purpose_wins(self):
        citizen = CitizenFactory()
        now = timezone.now()
        consent(citizen, "given", at=now - datetime.timedelta(days=3))
        consent(citizen, "withdrawn", at=now - datetime.timedelta(days=2))
        consent(citizen, "given", purpose="research-panel", at=now - datetime.timedelta(days=1))
        state = current_consents(citizen)
        assert state[("residents-newsletter", "email")].action == "withdrawn"
        assert state[("research-panel", "email")].action == "given"
        assert not has_consent(citizen, "residents-newsletter", "email")
        assert has_consent(citizen, "research-panel", "email")
        assert ConsentRecord.objects.count() == 3  # the history is all there

    def test_each_record_reaches_the_resident_s_timeline(self):
        citizen = CitizenFactory()
        consent(citizen)
        entry = TimelineEntry.objects.get(citizen=citizen)
        assert entry.kind == "consent" and entry.visibility == "resident"
        assert "Residents" in entry.summary

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("purpose", "Not A Slug!"),
            ("channel", "carrier-pigeon"),
            ("action", "maybe"),
            ("source", "rumour"),
            ("wording", "   "),
            ("wording_version", ""),
            ("lawful_basis", "because"),
        ],
    )
    def test_bad_input_is_refused_and_nothing_saved(self, field, value):
        from django.core.exceptions import ValidationError

        arguments = {
            "citizen": CitizenFactory(),
            "purpose": "residents-newsletter",
            "channel": "email",
            "action": "given",
            "wording": "Send me the newsletter",
            "wording_version": "1",
            "source": "portal",
            field: value,
        }
        with pytest.raises(ValidationError) as caught:
            record_consent(**arguments)
        assert field in caught.value.message_dict
        assert not ConsentRecord.objects.exists()

    def test_a_malformed_ip_address_is_dropped_not_stored(self):
        record = consent(CitizenFactory(), ip_address="not-an-ip")
        assert record.ip_address is None
        assert consent(CitizenFactory(), ip_address="2001:db8::1").ip_address == "2001:db8::1"


class TestMerge:
    def _pair(self):
        survivor = citizen_create(given_name="Megan", family_name="Jones")
        duplicate = citizen_create(given_name="Meg", family_name="Jones")
        return survivor, duplicate

    def test_merge_moves_the_ledger_and_unmerge_moves_it_back(self):
        survivor, duplicate = self._pair()
        now = timezone.now()
        kept = consent(
            survivor, "given", purpose="research-panel", at=now - datetime.timedelta(days=5)
        )
        moved = consent(duplicate, "given", at=now - datetime.timedelta(days=4))
        merge = citizen_merge(
            survivor=survivor, duplicate=duplicate, by=StaffUserFactory(), reason="Same person"
        )
        assert set(ConsentRecord.objects.filter(citizen=survivor).values_list("pk", flat=True)) == {
            kept.pk,
            moved.pk,
        }
        assert has_consent(survivor, "residents-newsletter", "email")
        citizen_unmerge(merge=merge, by=StaffUserFactory(), reason="Different people")
        assert list(
            ConsentRecord.objects.filter(citizen=duplicate).values_list("pk", flat=True)
        ) == [moved.pk]
        assert list(
            ConsentRecord.objects.filter(citizen=survivor).values_list("pk", flat=True)
        ) == [kept.pk]
        # Every record still says exactly what it said.
        assert ConsentRecord.objects.get(pk=moved.pk).wording == moved.wording

    def test_a_merge_never_turns_an_opt_out_into_consent(self):
        survivor, duplicate = self._pair()
        now = timezone.now()
        consent(duplicate, "withdrawn", at=now - datetime.timedelta(days=10))
        consent(survivor, "given", at=now - datetime.timedelta(days=1))  # later, other profile
        officer = StaffUserFactory()
        merge = citizen_merge(
            survivor=survivor, duplicate=duplicate, by=officer, reason="Same person"
        )
        assert not has_consent(survivor, "residents-newsletter", "email")
        latest = current_consents(survivor)[("residents-newsletter", "email")]
        assert latest.wording.startswith("Profiles merged") and latest.source == "staff"
        assert latest.actor == officer
        assert merge.snapshot["engagement"]["merge_withdrawals"] == [latest.pk]
        # Undoing the merge returns the duplicate's lines; the withdrawal stays (append-only).
        citizen_unmerge(merge=merge, by=StaffUserFactory(), reason="Different people")
        assert not has_consent(survivor, "residents-newsletter", "email")
        assert current_consents(duplicate)[("residents-newsletter", "email")].action == "withdrawn"

    def test_a_later_withdrawal_needs_no_extra_line(self):
        survivor, duplicate = self._pair()
        now = timezone.now()
        consent(survivor, "given", at=now - datetime.timedelta(days=10))
        consent(duplicate, "withdrawn", at=now - datetime.timedelta(days=1))
        citizen_merge(
            survivor=survivor, duplicate=duplicate, by=StaffUserFactory(), reason="Same person"
        )
        assert ConsentRecord.objects.count() == 2
        assert not has_consent(survivor, "residents-newsletter", "email")


def test_consent_cannot_be_recorded_for_an_erased_profile():
    from citizenhub.errors import ApplicationError

    citizen = CitizenFactory(status=Citizen.Status.ERASED)
    with pytest.raises(ApplicationError):
        consent(citizen)
    assert not ConsentRecord.objects.exists()
    assert UserFactory()  # the factory still works after the refusal (no broken transaction)
