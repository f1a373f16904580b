"""Recording the timeline: one entry per source, validation, bulk recording."""

import datetime

import pytest
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.utils import timezone

from citizenhub.models import TimelineEntry
from citizenhub.services import (
    TimelineEntryData,
    citizen_create,
    citizen_merge,
    record_timeline_entries,
    record_timeline_entry,
)
from tests.factories import AddressFactory, CitizenFactory

pytestmark = pytest.mark.django_db


def test_same_source_and_kind_records_once():
    citizen = CitizenFactory()
    source = AddressFactory(citizen=citizen)  # any model row can be a source
    first = record_timeline_entry(citizen=citizen, kind="note", summary="x", source=source)
    again = record_timeline_entry(citizen=citizen, kind="note", summary="y", source=source)
    other_kind = record_timeline_entry(citizen=citizen, kind="profile", summary="z", source=source)
    assert first.pk == again.pk and other_kind.pk != first.pk
    assert TimelineEntry.objects.count() == 2


def test_entries_for_a_merged_profile_land_on_the_survivor():
    survivor, duplicate = citizen_create(given_name="S"), citizen_create(given_name="D")
    citizen_merge(survivor=survivor, duplicate=duplicate, by=None, reason="same")
    duplicate.refresh_from_db()
    entry = record_timeline_entry(citizen=duplicate, kind="call", summary="Rang about bins")
    assert entry.citizen_id == survivor.pk


def test_long_summaries_are_shortened_and_whitespace_folded():
    entry = record_timeline_entry(citizen=CitizenFactory(), kind="note", summary="word\n\n " * 300)
    assert len(entry.summary) == 500 and entry.summary.endswith("…")
    assert "\n" not in entry.summary


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"kind": "gossip"}, "kind"),
        ({"channel": "fax"}, "channel"),
        ({"visibility": "public"}, "visibility"),
        ({"occurred_at": datetime.datetime(2026, 1, 1, 12, 0)}, "occurred_at"),
    ],
)
def test_bad_entries_are_refused_naming_the_field(overrides, field):
    arguments = {"citizen": CitizenFactory(), "kind": "note", "summary": "s"} | overrides
    with pytest.raises(ValidationError) as exc:
        record_timeline_entry(**arguments)
    assert field in exc.value.message_dict
    assert TimelineEntry.objects.count() == 0


def test_bulk_recording_skips_sources_already_recorded():
    citizen = CitizenFactory()
    source = AddressFactory(citizen=citizen)
    source_type = ContentType.objects.get_for_model(source)
    now = timezone.now()
    rows = [
        TimelineEntryData(
            citizen_id=citizen.pk,
            kind="message_in",
            occurred_at=now,
            summary=f"m{n}",
            channel="sms",
            source_type_id=source_type.pk,
            source_id=str(n),
        )
        for n in range(5)
    ]
    assert record_timeline_entries(rows, batch_size=2) == 5
    assert record_timeline_entries(rows) == 5
    assert TimelineEntry.objects.filter(citizen=citizen).count() == 5
