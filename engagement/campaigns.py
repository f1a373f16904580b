"""The campaign lifecycle: a draft is written, submitted with its problems refused, approved by
a second officer, scheduled or started, fanned out (engagement.fanout) and sent
(engagement.tasks.send_campaign); plus the preview and the test send to the officer.

    draft ──submit──▶ awaiting approval ──approve──▶ approved ──start──▶ sending ─▶ sent
      ▲                     │ refuse (reason)          │ (schedule: start when due)
      └─────────────────────┘                          │
    draft / awaiting approval / approved ──cancel──▶ cancelled

Four eyes: the approver is neither the author nor anyone who edited the content (the
database refuses approved_by = created_by too). Who may do what is decided here, not in the
views, so the API and commands get the same rules:
- write, submit, test-send, schedule, start, cancel: `engagement.change_campaign`
  (comms officers, administrators);
- approve or refuse: `engagement.change_campaign` or the supervisor role, never on a
  campaign one wrote or edited.
Every step is recorded as an AuditEvent on the campaign (details["event"] names it).
"""

from __future__ import annotations

import datetime
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from citizenhub.errors import ApplicationError, ConflictError
from citizenhub.models import AuditEvent, ChannelKind, ContactPoint
from citizenhub.normalise import normalise_phone
from citizenhub.ratelimit import HourlyLimit
from citizenhub.services.audit import audit_record
from citizenhub.staff.access import SUPERVISOR, user_in_group
from engagement.models import Campaign, MessageClass, Topic
from engagement.personalise import (
    PLACEHOLDERS,
    personalise,
    placeholders_in,
    unknown_placeholders,
)
from engagement.sms_segments import SmsLength, sms_length, sms_length_problem
from engagement.tokens import absolute

logger = logging.getLogger(__name__)

Officer = AbstractBaseUser | AnonymousUser
Status = Campaign.Status

CHANGE_PERMISSION = "engagement.change_campaign"
VIEW_PERMISSION = "engagement.view_campaign"

# The channels a campaign carries content for, in the order offered to officers.
CAMPAIGN_CHANNELS = (ChannelKind.EMAIL, ChannelKind.SMS)
SEGMENT_KEYS = ("ward_codes", "languages", "open_case_services")
TITLE_LIMIT = 200
SUBJECT_LIMIT = 200
BODY_LIMIT = 100_000
KEYWORD_RE = re.compile(r"[A-Za-z0-9]{2,32}")
# A test send is one message to the officer; a few an hour is plenty, and a stolen session
# cannot turn it into a way of texting people.
TEST_SEND_LIMIT = HourlyLimit("engagement.campaign.test_send", 20)

CONTENT_FIELDS = (
    "title",
    "message_class",
    "segment",
    "channels",
    "email_subject",
    "email_html",
    "email_text",
    "sms_text",
    "asks_response",
    "response_keyword",
)


# --- Who may do what ------------------------------------------------------------------------


def may_view_campaigns(user: Officer) -> bool:
    return bool(
        user.is_authenticated
        and user.is_staff
        and (user.has_perm(VIEW_PERMISSION) or user_in_group(user, SUPERVISOR))
    )


def may_edit_campaigns(user: Officer) -> bool:
    return bool(user.is_authenticated and user.is_staff and user.has_perm(CHANGE_PERMISSION))


def may_approve_campaigns(user: Officer) -> bool:
    return bool(
        user.is_authenticated
        and user.is_staff
        and (user.has_perm(CHANGE_PERMISSION) or user_in_group(user, SUPERVISOR))
    )


def _require(allowed: bool, what: str) -> None:
    if not allowed:
        raise ApplicationError(f"You do not have permission to {what}.", code="forbidden")


# --- Validation of content ------------------------------------------------------------------


def _clean_segment(value: Any) -> dict[str, list[str]]:
    if value in (None, ""):
        return {}
    if not isinstance(value, dict):
        raise ValidationError({"segment": "The segment must be a mapping of lists."})
    unknown = sorted(set(value) - set(SEGMENT_KEYS))
    if unknown:
        raise ValidationError({"segment": f"Unknown segment filters: {', '.join(unknown)}."})
    cleaned: dict[str, list[str]] = {}
    for key in SEGMENT_KEYS:
        items = value.get(key) or []
        if not isinstance(items, list | tuple) or not all(
            isinstance(item, str) and 0 < len(item) <= 64 for item in items
        ):
            raise ValidationError({"segment": f"“{key}” must be a list of short codes."})
        if items:
            cleaned[key] = sorted(set(items))
    return cleaned


def _clean_channels(value: Any) -> list[str]:
    if not isinstance(value, list | tuple) or not all(isinstance(item, str) for item in value):
        raise ValidationError({"channels": "Choose channels from the list."})
    unknown = [item for item in value if item not in CAMPAIGN_CHANNELS]
    if unknown:
        raise ValidationError({"channels": f"Campaigns cannot be sent by {', '.join(unknown)}."})
    return list(dict.fromkeys(value))


def _clean_text(value: Any, name: str, limit: int) -> str:
    if not isinstance(value, str):
        raise ValidationError({name: "Enter text."})
    if "\x00" in value:
        raise ValidationError({name: "The text contains a character that cannot be stored."})
    if len(value) > limit:
        raise ValidationError({name: f"At most {limit} characters."})
    return value


def _clean_changes(changes: dict[str, Any]) -> dict[str, Any]:
    """Check each field given; refuse unknown fields (a typo must not silently do nothing)."""
    unknown = sorted(set(changes) - set(CONTENT_FIELDS))
    if unknown:
        raise ValidationError(f"Unknown campaign fields: {', '.join(unknown)}.")
    cleaned: dict[str, Any] = {}
    for name, value in changes.items():
        if name == "title":
            value = _clean_text(value, name, TITLE_LIMIT).strip()
            if not value:
                raise ValidationError({"title": "Give the campaign a title."})
        elif name == "message_class":
            if value not in MessageClass.values:
                raise ValidationError({"message_class": "Choose a message class."})
        elif name == "segment":
            value = _clean_segment(value)
        elif name == "channels":
            value = _clean_channels(value)
        elif name == "email_subject":
            value = _clean_text(value, name, SUBJECT_LIMIT).strip()
            if "\n" in value or "\r" in value:
                raise ValidationError({name: "A subject is one line."})
        elif name in ("email_html", "email_text", "sms_text"):
            value = _clean_text(value, name, BODY_LIMIT)
        elif name == "asks_response":
            value = bool(value)
        elif name == "response_keyword":
            value = _clean_text(value, name, 32).strip()
            if value and not KEYWORD_RE.fullmatch(value):
                raise ValidationError(
                    {name: "The reply keyword is one word of 2 to 32 letters or digits."}
                )
            value = value.upper()
        cleaned[name] = value
    return cleaned


def _clean_topics(topics: Iterable[Topic | int] | None) -> list[Topic] | None:
    if topics is None:
        return None
    ids = [topic.pk if isinstance(topic, Topic) else topic for topic in topics]
    if not all(isinstance(pk, int) for pk in ids):
        raise ValidationError({"topics": "Choose topics from the list."})
    found = list(Topic.objects.filter(pk__in=ids, is_active=True))
    if len(found) != len(set(ids)):
        raise ValidationError({"topics": "A chosen topic does not exist or is no longer active."})
    return found


# --- Problems that stop a campaign going for approval ---------------------------------------


@dataclass(frozen=True)
class SampleResident:
    """Who a preview is addressed to when it is not a real resident."""

    given_name: str = "Alex"
    family_name: str = "Jones"
    preferred_language: str = "en"


SAMPLE_RESIDENT = SampleResident()


def sample_links() -> dict[str, str]:
    """Links of the real length, that lead nowhere: previews and test sends must never carry a
    working unsubscribe or preference link for somebody."""
    return {
        "preferences_url": absolute(reverse("engagement:preferences", args=["preview"])),
        "unsubscribe_url": absolute(reverse("engagement:unsubscribe", args=["preview"])),
        "response_url": absolute(reverse("engagement:preferences", args=["preview"])),
    }


def sms_length_of(campaign: Campaign, *, addressee: Any = SAMPLE_RESIDENT) -> SmsLength:
    """The length of the campaign's text message as `addressee` would get it: the names and
    links it contains count too (a long name can add a segment)."""
    return sms_length(
        personalise(campaign.sms_text, citizen=addressee, html=False, links=sample_links())
    )


def audience_count(campaign: Campaign) -> int:
    from engagement import fanout  # E2's part

    return fanout.audience_count(campaign)


def _placeholder_list(names: list[str]) -> str:
    shown = ", ".join("{{ " + name + " }}" for name in names)
    return f"unknown placeholders ({shown}); the known ones are {', '.join(PLACEHOLDERS)}"


@dataclass(frozen=True)
class Readiness:
    problems: list[str]
    audience: int | None  # people reached; None when not counted (other problems first)


def campaign_problems(campaign: Campaign) -> list[str]:
    """Every reason the campaign cannot go for approval (or be approved) as it stands; each
    says what to change. Empty when it may."""
    return campaign_readiness(campaign).problems


def campaign_readiness(campaign: Campaign) -> Readiness:
    """The problems of campaign_problems and, when the content is complete, the audience
    size (counted once, for the page that shows both)."""
    problems: list[str] = []
    channels = list(campaign.channels or [])
    if not channels:
        problems.append("Choose at least one channel to send on.")
    if ChannelKind.EMAIL in channels:
        if not campaign.email_subject.strip():
            problems.append("E-mail is chosen: write the e-mail subject.")
        if not campaign.email_text.strip():
            problems.append(
                "E-mail is chosen: write the plain-text version (every e-mail carries one, "
                "for screen readers and mail programs that do not show HTML)."
            )
        for name, text in (
            ("subject", campaign.email_subject),
            ("HTML", campaign.email_html),
            ("text", campaign.email_text),
        ):
            unknown = unknown_placeholders(text)
            if unknown:
                problems.append(f"The e-mail {name} uses {_placeholder_list(unknown)}.")
    if ChannelKind.SMS in channels:
        if not campaign.sms_text.strip():
            problems.append("Text message is chosen: write the text message.")
        else:
            unknown = unknown_placeholders(campaign.sms_text)
            if unknown:
                problems.append(f"The text message uses {_placeholder_list(unknown)}.")
            too_long = sms_length_problem(sms_length_of(campaign))
            if too_long:
                problems.append(too_long)
            # PECR: every marketing message offers a simple way to refuse. E-mail gets a
            # footer and List-Unsubscribe automatically; a text gets nothing added (a link
            # adds a segment), so the officer must place it.
            if campaign.message_class != MessageClass.ESSENTIAL and (
                "unsubscribe_url" not in placeholders_in(campaign.sms_text)
            ):
                problems.append(
                    "The text message must let residents opt out: add {{ unsubscribe_url }} "
                    "(for example “Stop these texts: {{ unsubscribe_url }}”). Only essential "
                    "service messages may leave it out."
                )
    if campaign.asks_response is False and campaign.response_keyword:
        problems.append("A reply keyword is set but the campaign does not ask for replies.")
    # Only essential messages may go to everyone in a segment; the rest need subscribers.
    if (
        campaign.pk
        and campaign.message_class != MessageClass.ESSENTIAL
        and not campaign.topics.exists()
    ):
        problems.append(
            "Choose at least one topic: only essential service messages may go to "
            "residents who did not subscribe."
        )
    if problems:
        return Readiness(problems, None)
    try:
        reached = audience_count(campaign)
    except ApplicationError as exc:  # a segment or channel the fan-out cannot address
        return Readiness([exc.message], None)
    if reached == 0:
        problems.append(
            "Nobody would receive this campaign: no resident matches its topics, "
            "channels and segment. Widen the segment or choose other topics."
        )
    return Readiness(problems, reached)


# --- Lifecycle ------------------------------------------------------------------------------


def _record(
    campaign: Campaign,
    officer: Officer | None,
    event: str,
    *,
    reason: str = "",
    action: str = AuditEvent.Action.UPDATE,
    **details: Any,
) -> None:
    audit_record(
        action=action,
        target=campaign,
        actor=officer,
        actor_label="system",
        reason=reason,
        details={"event": event, **details},
    )


def _locked(campaign: Campaign, expected_version: int | None = None) -> Campaign:
    locked = Campaign.objects.select_for_update(no_key=True).get(pk=campaign.pk)
    if expected_version is not None and locked.version != expected_version:
        raise ConflictError(
            f"“{locked.title}” was changed since you opened it. Reload it to see the change, "
            "then try again.",
            code="conflict",
            extra={"current_version": locked.version},
        )
    return locked


def _expect_status(campaign: Campaign, allowed: Sequence[str], doing: str) -> None:
    if campaign.status not in allowed:
        raise ApplicationError(
            f"A campaign that is “{Status(campaign.status).label.lower()}” cannot be {doing}.",
            code="illegal_transition",
            extra={"status": campaign.status},
        )


def _save(campaign: Campaign, fields: list[str]) -> None:
    campaign.version += 1
    campaign.save(update_fields=[*fields, "version"])


def campaign_create(
    *,
    officer: Officer,
    title: str,
    message_class: str = MessageClass.INFORMATIONAL,
    topics: Iterable[Topic | int] = (),
    segment: dict[str, Any] | None = None,
    channels: Sequence[str] = (),
    email_subject: str = "",
    email_html: str = "",
    email_text: str = "",
    sms_text: str = "",
    asks_response: bool = False,
    response_keyword: str = "",
) -> Campaign:
    """A new draft written by `officer`."""
    _require(may_edit_campaigns(officer), "write campaigns")
    values = _clean_changes(
        {
            "title": title,
            "message_class": message_class,
            "segment": segment or {},
            "channels": list(channels),
            "email_subject": email_subject,
            "email_html": email_html,
            "email_text": email_text,
            "sms_text": sms_text,
            "asks_response": asks_response,
            "response_keyword": response_keyword,
        }
    )
    chosen_topics = _clean_topics(topics) or []
    with transaction.atomic():
        campaign = Campaign.objects.create(created_by=officer, **values)
        campaign.topics.set(chosen_topics)
        _record(campaign, officer, "created", action=AuditEvent.Action.CREATE)
    return campaign


def campaign_update(
    *,
    campaign: Campaign,
    expected_version: int | None,
    officer: Officer,
    topics: Iterable[Topic | int] | None = None,
    **changes: Any,
) -> Campaign:
    """Change a draft; refused once it went for approval (refusing it brings it back)."""
    _require(may_edit_campaigns(officer), "change campaigns")
    values = _clean_changes(changes)
    chosen_topics = _clean_topics(topics)
    with transaction.atomic():
        row = _locked(campaign, expected_version)
        _expect_status(row, [Status.DRAFT], "changed (only drafts can be)")
        changed = [name for name, value in values.items() if getattr(row, name) != value]
        for name in changed:
            setattr(row, name, values[name])
        topics_changed = chosen_topics is not None and {t.pk for t in chosen_topics} != set(
            row.topics.values_list("pk", flat=True)
        )
        if topics_changed:
            row.topics.set(chosen_topics)
        if changed or topics_changed:
            _save(row, changed)
            _record(
                row,
                officer,
                "edited",
                fields=changed + (["topics"] if topics_changed else []),
            )
    return row


def campaign_submit(*, campaign: Campaign, officer: Officer) -> Campaign:
    """Send a draft for approval, or refuse with every reason it cannot go yet."""
    _require(may_edit_campaigns(officer), "submit campaigns")
    with transaction.atomic():
        row = _locked(campaign)
        _expect_status(row, [Status.DRAFT], "submitted for approval")
        problems = campaign_problems(row)
        if problems:
            raise ApplicationError(
                "The campaign cannot go for approval yet: " + " ".join(problems),
                code="not_ready",
                extra={"problems": problems},
            )
        row.status = Status.AWAITING_APPROVAL
        row.submitted_at = timezone.now()
        _save(row, ["status", "submitted_at"])
        _record(row, officer, "submitted")
    return row


def campaign_writers(campaign: Campaign) -> set[int]:
    """The officers who wrote the campaign's content: its author and everyone who edited it."""
    writers = set(
        AuditEvent.objects.filter(
            target_type=ContentType.objects.get_for_model(Campaign),
            target_id=str(campaign.pk),
            details__event__in=["created", "edited"],
            actor__isnull=False,
        ).values_list("actor_id", flat=True)
    )
    if campaign.created_by_id is not None:
        writers.add(campaign.created_by_id)
    return writers


def _check_second_officer(campaign: Campaign, officer: Officer) -> None:
    _require(may_approve_campaigns(officer), "approve campaigns")
    if officer.pk in campaign_writers(campaign):
        raise ApplicationError(
            "A second officer must approve this campaign: you wrote or edited it.",
            code="four_eyes",
        )


def campaign_approve(*, campaign: Campaign, officer: Officer) -> Campaign:
    """A second officer agrees it may be sent. The checks run again: the audience may have
    gone since it was submitted."""
    with transaction.atomic():
        row = _locked(campaign)
        _expect_status(row, [Status.AWAITING_APPROVAL], "approved")
        _check_second_officer(row, officer)
        problems = campaign_problems(row)
        if problems:
            raise ApplicationError(
                "The campaign cannot be approved: " + " ".join(problems),
                code="not_ready",
                extra={"problems": problems},
            )
        row.status = Status.APPROVED
        row.approved_by = officer
        row.approved_at = timezone.now()
        _save(row, ["status", "approved_by", "approved_at"])
        _record(row, officer, "approved")
    return row


def campaign_refuse(*, campaign: Campaign, officer: Officer, reason: str) -> Campaign:
    """The second officer sends it back to a draft, saying why (the author sees the reason)."""
    reason = _clean_text(reason, "reason", 500).strip()
    if not reason:
        raise ValidationError({"reason": "Say why, so the author knows what to change."})
    with transaction.atomic():
        row = _locked(campaign)
        _expect_status(row, [Status.AWAITING_APPROVAL], "refused")
        _check_second_officer(row, officer)
        row.status = Status.DRAFT
        row.submitted_at = None
        _save(row, ["status", "submitted_at"])
        _record(row, officer, "refused", reason=reason)
    return row


def last_refusal(campaign: Campaign) -> AuditEvent | None:
    """The latest refusal of a campaign, shown to its author while it is a draft again."""
    return (
        AuditEvent.objects.filter(
            target_type=ContentType.objects.get_for_model(Campaign),
            target_id=str(campaign.pk),
            details__event="refused",
        )
        .select_related("actor")
        .order_by("-occurred_at", "-pk")
        .first()
    )


def campaign_schedule(
    *, campaign: Campaign, at: datetime.datetime | None, officer: Officer | None = None
) -> Campaign:
    """Send an approved campaign at `at` (None: no schedule, it waits for "send now")."""
    if officer is not None:
        _require(may_edit_campaigns(officer), "schedule campaigns")
    if at is not None:
        if timezone.is_naive(at):
            raise ValidationError({"at": "Give the time with its time zone."})
        if at <= timezone.now():
            raise ValidationError({"at": "Choose a time in the future."})
    with transaction.atomic():
        row = _locked(campaign)
        _expect_status(row, [Status.APPROVED], "scheduled (approve it first)")
        row.scheduled_for = at
        _save(row, ["scheduled_for"])
        _record(row, officer, "scheduled", at=at.isoformat() if at else None)
    return row


def campaign_cancel(*, campaign: Campaign, officer: Officer | None, reason: str = "") -> Campaign:
    """Stop a campaign before it starts sending. Once sending, deliveries are under way and
    cancelling would leave some residents with the message and others without."""
    if officer is not None:
        _require(may_approve_campaigns(officer), "cancel campaigns")
    reason = _clean_text(reason, "reason", 500).strip()
    with transaction.atomic():
        row = _locked(campaign)
        _expect_status(row, [Status.DRAFT, Status.AWAITING_APPROVAL, Status.APPROVED], "cancelled")
        row.status = Status.CANCELLED
        row.finished_at = timezone.now()
        _save(row, ["status", "finished_at"])
        _record(row, officer, "cancelled", reason=reason)
    return row


def _enqueue_send(campaign_id: int) -> None:
    from engagement import tasks  # E3's part

    tasks.send_campaign.delay(campaign_id)


def campaign_start(*, campaign: Campaign, officer: Officer | None = None) -> Campaign:
    """Materialise the deliveries and hand them to sending. Idempotent: a campaign already
    sending or sent is returned as it is (a beat tick and an officer's "send now" may race;
    the row lock makes one of them the starter)."""
    if officer is not None:
        _require(may_edit_campaigns(officer), "start campaigns")
    from engagement import fanout  # E2's part

    with transaction.atomic():
        row = _locked(campaign)
        if row.status in (Status.SENDING, Status.SENT):
            return row
        _expect_status(row, [Status.APPROVED], "sent (approve it first)")
        result = fanout.materialise_deliveries(campaign=row)
        row.status = Status.SENDING
        row.started_at = timezone.now()
        _save(row, ["status", "started_at"])
        _record(row, officer, "started", deliveries=_result_summary(result))
        transaction.on_commit(lambda: _enqueue_send(row.pk))
    return row


def _result_summary(result: Any) -> dict[str, Any]:
    """The fan-out's counts for the audit line, whatever fields FanoutResult carries."""
    if result is None:
        return {}
    if isinstance(result, dict):
        items = result.items()
    elif hasattr(result, "__dataclass_fields__"):
        items = ((name, getattr(result, name)) for name in result.__dataclass_fields__)
    else:
        return {}
    return {key: value for key, value in items if isinstance(value, int | str | None)}


@dataclass
class StartReport:
    started: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)


def start_due_campaigns(now: datetime.datetime | None = None) -> StartReport:
    """Start every approved campaign whose time has come (the periodic task calls this).
    One failing campaign is logged and left approved (the next tick retries it); it does not
    stop the others."""
    now = now or timezone.now()
    report = StartReport()
    due = list(
        Campaign.objects.filter(status=Status.APPROVED, scheduled_for__lte=now)
        .order_by("scheduled_for", "pk")
        .values_list("pk", flat=True)
    )
    for campaign_id in due:
        try:
            campaign_start(campaign=Campaign(pk=campaign_id))
        except Exception:
            logger.exception("starting scheduled campaign %s failed", campaign_id)
            report.failed.append(campaign_id)
        else:
            report.started.append(campaign_id)
    return report


# --- Preview and test send ------------------------------------------------------------------


@dataclass(frozen=True)
class RenderedCampaign:
    email_subject: str
    email_html: str
    email_text: str
    sms_text: str
    sms_length: SmsLength


def render_preview(campaign: Campaign, addressee: Any = SAMPLE_RESIDENT) -> RenderedCampaign:
    """The campaign as `addressee` (a Citizen or a SampleResident) would receive it, with links
    that lead nowhere."""
    links = sample_links()
    sms = personalise(campaign.sms_text, citizen=addressee, html=False, links=links)
    return RenderedCampaign(
        email_subject=personalise(campaign.email_subject, citizen=addressee, html=False),
        email_html=personalise(campaign.email_html, citizen=addressee, html=True, links=links),
        email_text=personalise(campaign.email_text, citizen=addressee, html=False, links=links),
        sms_text=sms,
        sms_length=sms_length(sms),
    )


def _sms_channel() -> Any:
    from channels.models import Channel

    return (
        Channel.objects.filter(
            kind__in=[Channel.Kind.SMS_NOTIFY, Channel.Kind.SMS_TWILIO], enabled=True
        )
        .order_by("pk")
        .first()
    )


def campaign_test_send(
    *,
    campaign: Campaign,
    officer: Officer,
    channel: str,
    to_email: str | None = None,
    to_phone: str = "",
) -> str:
    """Send the campaign, rendered for a sample resident, to the officer alone; returns where
    it went. E-mail goes only to the officer's own account address; a text message only to a
    number that is not on any resident's record. Never through the campaign's audience."""
    _require(may_edit_campaigns(officer), "test-send campaigns")
    if channel not in (campaign.channels or []):
        raise ValidationError({"channel": "Choose a channel the campaign is sent on."})
    rendered = render_preview(
        campaign,
        SampleResident(
            given_name=getattr(officer, "first_name", "") or SAMPLE_RESIDENT.given_name,
            family_name=getattr(officer, "last_name", "") or SAMPLE_RESIDENT.family_name,
        ),
    )
    if channel == ChannelKind.EMAIL:
        own = (officer.email or "").strip()
        if not own:
            raise ApplicationError(
                "Your account has no e-mail address to send the test to.", code="no_address"
            )
        if to_email and to_email.strip().lower() != own.lower():
            raise ValidationError({"to_email": "Test e-mails go only to your own address."})
        if not (campaign.email_subject and campaign.email_text):
            raise ValidationError({"channel": "Write the e-mail subject and text first."})
        destination = own
    else:
        if not campaign.sms_text:
            raise ValidationError({"channel": "Write the text message first."})
        destination = normalise_phone(to_phone, field="to_phone").normalised
        # Removed numbers too: a number a resident took off their record is still theirs
        # (or passed to someone else), never an officer's test phone.
        if ContactPoint.objects.filter(
            kind=ContactPoint.Kind.PHONE, normalised=destination
        ).exists():
            raise ValidationError(
                {
                    "to_phone": "That number is on a resident's record. Test messages go only "
                    "to your own work phone."
                }
            )
        problem = sms_length_problem(rendered.sms_length)
        if problem:
            raise ValidationError({"channel": problem})
    if TEST_SEND_LIMIT.consume(str(officer.pk)) is not None:
        raise ApplicationError(
            "You have sent many test messages this hour; try again later.", code="rate_limited"
        )
    if channel == ChannelKind.EMAIL:
        _send_test_email(rendered, destination)
    else:
        _send_test_sms(rendered, destination)
    _record(campaign, officer, "test_sent", channel=channel, to=destination)
    return destination


def _send_test_email(rendered: RenderedCampaign, to: str) -> None:
    message = EmailMultiAlternatives(
        subject=f"[TEST] {rendered.email_subject}"[:300],
        body=rendered.email_text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[to],
    )
    if rendered.email_html:
        message.attach_alternative(rendered.email_html, "text/html")
    message.send()


def _send_test_sms(rendered: RenderedCampaign, to: str) -> None:
    from channels.adapters import PermanentSendError, TransientChannelError, adapter_for
    from channels.models import OutboundMessage

    channel = _sms_channel()
    if channel is None:
        raise ApplicationError("No text message channel is enabled.", code="no_channel")
    # Not saved: a test is not a message to a resident and has no citizen; it goes straight
    # through the adapter once, and a failure is shown to the officer.
    outbound = OutboundMessage(channel=channel, to_value=to, body_text=rendered.sms_text)
    try:
        adapter_for(channel).send(outbound)
    except (PermanentSendError, TransientChannelError) as exc:
        raise ApplicationError(f"The test message was not sent: {exc}", code="send_failed") from exc
