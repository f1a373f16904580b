"""Writing and reading the consent ledger.

Every consent change appends one ConsentRecord; nothing is edited. The current state of a
purpose on a channel is its latest record, so withdrawing is one more line, exactly as easy
as giving.
"""

from __future__ import annotations

import datetime
import ipaddress
import re
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from citizenhub.errors import ApplicationError
from citizenhub.models import ChannelKind, Citizen, CitizenMerge, ServiceCase, TimelineEntry
from citizenhub.services.audit import actor_label_for
from citizenhub.services.erasure import LEGAL_OBLIGATION, ErasureItem
from citizenhub.services.identity import follow_merges
from citizenhub.services.timeline import record_timeline_entry
from engagement.models import ConsentRecord, Subscription, Topic
from engagement.purposes import PURPOSES, purpose_title

Actor = AbstractBaseUser | AnonymousUser | None
ConsentKey = tuple[str, str]  # (purpose, channel)

_SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
WORDING_LIMIT = 5000


def _clean_ip(value: str | None) -> str | None:
    """A valid address or None: the address is evidence, never a reason to refuse."""
    if not value:
        return None
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


def record_consent(
    *,
    citizen: Citizen,
    purpose: str,
    channel: str,
    action: str,
    wording: str,
    wording_version: str,
    source: str,
    lawful_basis: str = ConsentRecord.LawfulBasis.CONSENT,
    actor: Actor = None,
    actor_label: str = "system",
    ip_address: str | None = None,
    occurred_at: datetime.datetime | None = None,
) -> ConsentRecord:
    """Append one line to the ledger (and the citizen's timeline)."""
    errors = {}
    if not _SLUG.match(purpose or "") or len(purpose) > 64:
        errors["purpose"] = f"{purpose!r} is not a purpose slug."
    if channel not in ChannelKind.values:
        errors["channel"] = f"{channel!r} is not a channel."
    if action not in ConsentRecord.Action.values:
        errors["action"] = f"{action!r} is not given or withdrawn."
    if lawful_basis not in ConsentRecord.LawfulBasis.values:
        errors["lawful_basis"] = f"{lawful_basis!r} is not a lawful basis."
    if source not in ConsentRecord.Source.values:
        errors["source"] = f"{source!r} is not a source."
    wording = (wording or "").strip()
    if not wording:
        errors["wording"] = "The exact wording shown is required."
    elif len(wording) > WORDING_LIMIT:
        errors["wording"] = f"The wording must be at most {WORDING_LIMIT:,} characters."
    if not (wording_version or "").strip() or len(wording_version) > 32:
        errors["wording_version"] = "A wording version (up to 32 characters) is required."
    if occurred_at is not None and timezone.is_naive(occurred_at):
        errors["occurred_at"] = "Times must carry a time zone."
    if errors:
        raise ValidationError(errors)
    citizen = follow_merges(citizen)
    if not citizen.is_live:
        raise ApplicationError("Consent cannot be recorded for an erased profile.", code="erased")
    user = actor if actor is not None and getattr(actor, "is_authenticated", False) else None
    with transaction.atomic():
        record = ConsentRecord.objects.create(
            citizen=citizen,
            purpose=purpose,
            channel=channel,
            action=action,
            lawful_basis=lawful_basis,
            wording=wording,
            wording_version=wording_version.strip(),
            source=source,
            actor=user,
            actor_label=actor_label_for(actor, actor_label)[:150],
            occurred_at=occurred_at or timezone.now(),
            ip_address=_clean_ip(ip_address),
        )
        title = purpose_titles([purpose])[purpose]
        record_timeline_entry(
            citizen=citizen,
            kind=TimelineEntry.Kind.CONSENT,
            summary=(
                f"Consent given: {title}"
                if action == ConsentRecord.Action.GIVEN
                else f"Consent withdrawn: {title}"
            ),
            occurred_at=record.occurred_at,
            channel=channel,
            department="Engagement",
            visibility=TimelineEntry.Visibility.RESIDENT,
            source=record,
        )
    return record


def purpose_titles(slugs: list[str] | set[str]) -> dict[str, str]:
    """What each purpose slug is called, for people: the fixed purposes' translated titles,
    else the topic's name, else the slug (a topic removed since). One query."""
    titles = {slug: slug for slug in slugs}
    titles.update(
        Topic.objects.filter(slug__in=[slug for slug in slugs]).values_list("slug", "name")
    )
    for slug in slugs:
        fixed = purpose_title(slug)
        if fixed:
            titles[slug] = str(fixed)
    return titles


def current_consents(citizen: Citizen) -> dict[ConsentKey, ConsentRecord]:
    """The latest record of each (purpose, channel): the current state, from the ledger."""
    latest: dict[ConsentKey, ConsentRecord] = {}
    for record in ConsentRecord.objects.filter(citizen=follow_merges(citizen)).order_by(
        "purpose", "channel", "-occurred_at", "-id"
    ):
        latest.setdefault((record.purpose, record.channel), record)
    return latest


def has_consent(citizen: Citizen, purpose: str, channel: str) -> bool:
    record = current_consents(citizen).get((purpose, channel))
    return record is not None and record.action == ConsentRecord.Action.GIVEN


def set_portal_consents(
    *,
    citizen: Citizen,
    chosen: set[ConsentKey],
    actor: Actor,
    ip_address: str | None = None,
) -> list[ConsentRecord]:
    """The preference centre's one submit: for each purpose offered, record a change only
    where the resident's choice differs from the current state. Returns the new records."""
    written = []
    with transaction.atomic():
        Citizen.objects.select_for_update().filter(pk=citizen.pk).first()
        current = current_consents(citizen)
        for purpose in PURPOSES:
            record = current.get(purpose.key)
            now_given = record is not None and record.action == ConsentRecord.Action.GIVEN
            wanted = purpose.key in chosen
            if wanted == now_given:
                continue
            written.append(
                record_consent(
                    citizen=citizen,
                    purpose=purpose.slug,
                    channel=purpose.channel,
                    action=ConsentRecord.Action.GIVEN if wanted else ConsentRecord.Action.WITHDRAWN,
                    wording=str(purpose.wording),
                    wording_version=purpose.wording_version,
                    lawful_basis=purpose.lawful_basis,
                    source=ConsentRecord.Source.PORTAL,
                    actor=actor,
                    ip_address=ip_address,
                )
            )
    return written


# --- The resident's data export ------------------------------------------------------------


def _recorded_by(record: ConsentRecord, citizen: Citizen) -> str:
    if record.actor_id is not None and record.actor_id == citizen.user_id:
        return _("You")
    if record.source == ConsentRecord.Source.STAFF or (record.actor and record.actor.is_staff):
        return _("Council staff")
    return str(ConsentRecord.Source(record.source).label)


def export_consents(citizen: Citizen) -> dict[str, Any]:
    """The export's "consents" section: the current state and the full ledger."""
    records = list(
        ConsentRecord.objects.filter(citizen=citizen)
        .select_related("actor")
        .order_by("-occurred_at", "-id")
    )
    actions = dict(ConsentRecord.Action.choices)
    bases = dict(ConsentRecord.LawfulBasis.choices)
    channels = dict(ChannelKind.choices)
    titles = purpose_titles({record.purpose for record in records})

    def row(record: ConsentRecord) -> dict[str, Any]:
        return {
            "date": timezone.localtime(record.occurred_at).isoformat(timespec="seconds"),
            "purpose": titles[record.purpose],
            "channel": str(channels.get(record.channel, record.channel)),
            "action": str(actions.get(record.action, record.action)),
            "lawful_basis": str(bases.get(record.lawful_basis, record.lawful_basis)),
            "wording": record.wording,
            "wording_version": record.wording_version,
            "source": str(ConsentRecord.Source(record.source).label),
            "recorded_by": _recorded_by(record, citizen),
            "ip_address": record.ip_address,
        }

    seen: set[ConsentKey] = set()
    current = []
    for record in records:  # newest first: the first of each key is its current state
        if (record.purpose, record.channel) not in seen:
            seen.add((record.purpose, record.channel))
            current.append(row(record))
    return {"current": current, "history": [row(record) for record in records]}


# --- Erasure -------------------------------------------------------------------------------


def _given(citizen: Citizen) -> list[ConsentRecord]:
    return [
        record
        for record in current_consents(citizen).values()
        if record.action == ConsentRecord.Action.GIVEN
    ]


def erasure_plan_consents(citizen: Citizen) -> tuple[list[ErasureItem], list[ErasureItem]]:
    erase, keep = [], []
    given = _given(citizen)
    if given:
        erase.append(
            ErasureItem(
                key="consents",
                what=_("Your consents to be contacted (they are withdrawn)"),
                count=len(given),
            )
        )
    ledger = ConsentRecord.objects.filter(citizen=citizen)
    count = ledger.count() + len(given)
    if count:
        # Kept for the retention period after its latest line: today's withdrawals, if any.
        latest = ledger.order_by("-occurred_at").values_list("occurred_at", flat=True).first()
        start = (
            timezone.localdate() if given or latest is None else timezone.localtime(latest).date()
        )
        keep.append(
            ErasureItem(
                key="consent_history",
                what=_("The history of the consents you gave and withdrew"),
                count=count,
                lawful_basis=LEGAL_OBLIGATION,
                reason=_("The law requires the council to be able to show what you agreed to."),
                retained_until=start
                + datetime.timedelta(days=settings.CONSENT_LEDGER_RETENTION_DAYS),
            )
        )
    return erase, keep


def erase_consents(citizen: Citizen, *, case: ServiceCase, actor: Actor) -> None:
    """Withdraw every consent still given: new ledger lines, the history stays."""
    for record in _given(citizen):
        record_consent(
            citizen=citizen,
            purpose=record.purpose,
            channel=record.channel,
            action=ConsentRecord.Action.WITHDRAWN,
            wording=f"Withdrawn on erasure request {case.reference}: {record.wording}",
            wording_version=record.wording_version,
            lawful_basis=record.lawful_basis,
            source=ConsentRecord.Source.STAFF,
            actor=actor,
        )


def erasure_plan_subscriptions(citizen: Citizen) -> tuple[list[ErasureItem], list[ErasureItem]]:
    count = Subscription.objects.filter(citizen=citizen).count()
    if not count:
        return [], []
    return [
        ErasureItem(
            key="subscriptions",
            what=_("Your subscriptions to council updates (they end)"),
            count=count,
        )
    ], []


def erase_subscriptions(citizen: Citizen, *, case: ServiceCase, actor: Actor) -> None:
    """Subscriptions end with the profile: the rows go (the ledger keeps the history, and
    erase_consents withdraws what was given), and so do campaign messages materialised for
    it but not sent yet."""
    from engagement.subscriptions import SUBSCRIBABLE_CHANNELS, suppress_unsent_campaign_messages

    Subscription.objects.filter(citizen=citizen).delete()
    for channel in SUBSCRIBABLE_CHANNELS:
        suppress_unsent_campaign_messages(
            citizen_id=citizen.pk,
            channel=channel,
            topic_ids=None,
            reason=f"The resident's profile was erased (request {case.reference}).",
        )


# --- Merging profiles ----------------------------------------------------------------------


def reconcile_consents_on_merge(
    *, survivor: Citizen, duplicate: Citizen, merge: CitizenMerge, **_kwargs: Any
) -> None:
    """Receiver of citizen_merging (before rows move): where one profile withdrew a consent
    the other gave, the merged profile ends withdrawn, whichever came later. A merge never
    turns an opt-out into consent. The withdrawal is a new ledger line on the survivor;
    undoing the merge moves the duplicate's lines back but leaves it (the ledger is never
    edited), so the survivor stays opted out until it consents again."""
    survivor_state = current_consents(survivor)
    duplicate_state = current_consents(duplicate)
    written = []
    for key in survivor_state.keys() & duplicate_state.keys():
        actions = {survivor_state[key].action, duplicate_state[key].action}
        if actions != {ConsentRecord.Action.GIVEN, ConsentRecord.Action.WITHDRAWN}:
            continue
        first, second = survivor_state[key], duplicate_state[key]
        given, withdrawn = (
            (first, second) if first.action == ConsentRecord.Action.GIVEN else (second, first)
        )
        if withdrawn.occurred_at > given.occurred_at:
            continue  # the withdrawal is already the latest line once the rows move
        written.append(
            record_consent(
                citizen=survivor,
                purpose=key[0],
                channel=key[1],
                action=ConsentRecord.Action.WITHDRAWN,
                wording=(
                    "Profiles merged: one had withdrawn this consent, so it stays withdrawn. "
                    f"Withdrawn with: {withdrawn.wording}"
                ),
                wording_version=withdrawn.wording_version,
                lawful_basis=withdrawn.lawful_basis,
                source=ConsentRecord.Source.STAFF,
                actor=merge.merged_by,
                actor_label="merge",
            ).pk
        )
    if written:
        merge.snapshot.setdefault("engagement", {})["merge_withdrawals"] = written
