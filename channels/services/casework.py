"""Casework from conversations: opening and linking cases, assigning and closing threads, and
the hooks that keep a case and its conversations in step.

- A routing rule with `opens_case` opens a case for each new thread it routes.
- A resident's message on a thread linked to a case is recorded in the case history, and a
  case waiting on the resident goes back to "in progress" (as Zendesk and Zammad reopen a
  ticket when the customer answers). A resolved or closed case is *not* reopened: the
  thread reappears in the inbox and an officer decides, so that SLA figures are not
  rewritten by a "thank you".
- Resolving a case sends the resolution to the resident, in their preferred language,
  through the case's latest conversation, or starts a conversation on their preferred
  channel (then e-mail) when it has none, or notes in the case history why nothing could
  be sent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import translation
from django.utils.translation import gettext

from channels.models import Channel, InboundMessage, OutboundMessage, Thread
from channels.services.outbound import start_conversation, thread_reply
from channels.services.routing import RoutingDecision
from citizenhub.errors import ApplicationError
from citizenhub.models import CaseEvent, ChannelKind, Citizen, Service, ServiceCase
from citizenhub.services.audit import audit_record
from citizenhub.services.cases import (
    DESCRIPTION_LIMIT,
    TITLE_LIMIT,
    case_add_note,
    case_record_message,
    case_resident_update,
    open_case,
)
from citizenhub.services.identity import follow_merges

logger = logging.getLogger(__name__)

Actor = AbstractBaseUser | AnonymousUser | None
EMAIL_KINDS = (Channel.Kind.EMAIL_SMTP, Channel.Kind.EMAIL_IMAP, Channel.Kind.EMAIL_WEBHOOK)
SMS_KINDS = (Channel.Kind.SMS_NOTIFY, Channel.Kind.SMS_TWILIO)
INBOX_LABEL = "inbox"


def _locked_thread(thread: Thread) -> Thread:
    return (
        Thread.objects.select_for_update(of=("self",))
        .select_related("channel", "citizen", "team", "case")
        .get(pk=thread.pk)
    )


def _people_messages(thread: Thread):
    return thread.inbound_messages.exclude(
        classification=InboundMessage.Classification.DUPLICATE
    ).defer("raw", "body_html")


def message_text(message: InboundMessage | None) -> str:
    """What the resident wrote in a message: the new part, without quotes and signature."""
    if message is None:
        return ""
    return (message.summary_text or message.body_text or "").strip()


def _attach(thread: Thread, case: ServiceCase) -> None:
    """The thread follows its case: the case's team's inbox, the case's service (which
    decides who may read it when the service is sensitive)."""
    thread.case = case
    thread.team = case.team
    thread.service_code = case.service.code
    thread.department = case.service.department[:100]
    thread.save(update_fields=["case", "team", "service_code", "department"])


def open_case_from_thread(
    *,
    thread: Thread,
    service: Service,
    title: str,
    actor: Actor,
    message: InboundMessage | None = None,
    description: str | None = None,
    actor_label: str = INBOX_LABEL,
) -> ServiceCase:
    """Open a case for the thread's resident from their conversation and link the two.

    The description defaults to the text of `message`, else of the thread's first message
    from the resident (the one that usually says what the problem is).
    """
    with transaction.atomic():
        locked = _locked_thread(thread)
        if locked.case_id is not None:
            raise ApplicationError(
                f"This conversation is already linked to case {locked.case.reference}.",
                code="already_linked",
            )
        if message is None:
            message = _people_messages(locked).order_by("received_at", "pk").first()
        elif message.thread_id != locked.pk:
            raise ApplicationError("That message is not part of this conversation.")
        if description is None:
            description = message_text(message)[:DESCRIPTION_LIMIT]
        case = open_case(
            service=service,
            title=title,
            description=description,
            citizen=locked.citizen,
            actor=actor,
            actor_label=actor_label,
            source_channel=locked.channel.timeline_channel,
        )
        _attach(locked, case)
        case_record_message(
            case=case,
            kind=CaseEvent.Kind.LINKED,
            text=f"Opened from conversation {locked.reference} ({locked.channel.name}).",
            data={"thread": locked.pk, "message": message.pk if message else None},
            actor=actor,
            actor_label=actor_label,
        )
    return case


def link_thread_to_case(
    *, thread: Thread, case: ServiceCase, actor: Actor, actor_label: str = INBOX_LABEL
) -> Thread:
    """Link a conversation to an existing case of the same resident (or an anonymous case).

    A conversation belongs to one case: linking it elsewhere is refused rather than silently
    moving the history of one case to another.
    """
    with transaction.atomic():
        locked = _locked_thread(thread)
        case = ServiceCase.objects.select_related("service", "team", "citizen").get(pk=case.pk)
        if locked.case_id == case.pk:
            raise ApplicationError(
                f"This conversation is already linked to case {case.reference}.",
                code="already_linked",
            )
        if locked.case_id is not None:
            raise ApplicationError(
                f"This conversation is already linked to case {locked.case.reference}.",
                code="already_linked",
            )
        if case.anonymised_at is not None:
            raise ApplicationError(
                f"Case {case.reference} was anonymised after its retention period.",
                code="anonymised",
            )
        if case.citizen_id is not None and (
            follow_merges(case.citizen).pk != follow_merges(locked.citizen).pk
        ):
            # The case's replies would go to this conversation's sender: never mix people.
            raise ApplicationError(
                f"Case {case.reference} is about another resident.", code="other_citizen"
            )
        _attach(locked, case)
        case_record_message(
            case=case,
            kind=CaseEvent.Kind.LINKED,
            text=f"Conversation {locked.reference} ({locked.channel.name}) linked.",
            data={"thread": locked.pk},
            actor=actor,
            actor_label=actor_label,
        )
    return locked


def thread_assign(*, thread: Thread, assignee: AbstractBaseUser | None, actor: Actor) -> Thread:
    """Give the conversation to an officer (the actor, or a member of its team) or nobody."""
    with transaction.atomic():
        locked = _locked_thread(thread)
        if assignee is not None:
            if not (assignee.is_active and assignee.is_staff):
                raise ApplicationError(
                    f"{assignee.get_username()} is not an active officer.", code="not_staff"
                )
            is_actor = actor is not None and assignee.pk == getattr(actor, "pk", None)
            if (
                not is_actor
                and locked.team_id is not None
                and not locked.team.members.filter(pk=assignee.pk).exists()
            ):
                raise ApplicationError(
                    f"{assignee.get_username()} is not in the team “{locked.team.name}”.",
                    code="not_in_team",
                )
        before = locked.assigned_to_id
        if before == getattr(assignee, "pk", None):
            return locked
        locked.assigned_to = assignee
        locked.save(update_fields=["assigned_to"])
        audit_record(
            action="update",
            target=locked,
            actor=actor,
            actor_label=INBOX_LABEL,
            citizen=locked.citizen,
            details={"assigned_to": {"before": before, "after": getattr(assignee, "pk", None)}},
        )
    return locked


def _set_status(thread: Thread, status: str, actor: Actor) -> Thread:
    with transaction.atomic():
        locked = _locked_thread(thread)
        if locked.status == status:
            return locked
        before = locked.status
        locked.status = status
        locked.save(update_fields=["status"])
        audit_record(
            action="update",
            target=locked,
            actor=actor,
            actor_label=INBOX_LABEL,
            citizen=locked.citizen,
            details={"status": {"before": before, "after": status}},
        )
    return locked


def thread_mark_done(*, thread: Thread, actor: Actor) -> Thread:
    """Take the conversation out of the open inbox; the resident's next message reopens it."""
    return _set_status(thread, Thread.Status.DONE, actor)


def thread_reopen(*, thread: Thread, actor: Actor) -> Thread:
    return _set_status(thread, Thread.Status.OPEN, actor)


# --- Hooks ---------------------------------------------------------------------------------


def on_inbound_messages_processed(
    sender: object,
    message_ids: Collection[int],
    routing: Mapping[int, RoutingDecision] | None = None,
    new_thread_ids: Collection[int] = frozenset(),
    **kwargs: object,
) -> None:
    """Inside the ingest transaction: open cases for new threads routed by a rule that opens
    cases, and record residents' messages on threads linked to a case.

    One query finds every message of the batch that needs either (whatever the batch size);
    the work per message happens only for those. Nothing here may fail the batch: each
    case change runs in its own savepoint, and a refusal is logged and left to the inbox.
    """
    routing = routing or {}
    condition = Q(thread__case__isnull=False)
    if new_thread_ids and any(d.opens_case for d in routing.values()):
        condition |= Q(thread_id__in=list(new_thread_ids))
    rows = list(
        InboundMessage.objects.filter(condition, pk__in=list(message_ids))
        .exclude(classification=InboundMessage.Classification.DUPLICATE)
        .select_related("thread__channel", "thread__citizen", "thread__case")
        .defer("raw", "body_html")
        .order_by("received_at", "pk")
    )
    if not rows:
        return
    to_open: dict[int, tuple[InboundMessage, RoutingDecision]] = {}
    updates: list[InboundMessage] = []
    seen_threads: set[int] = set()
    for message in rows:
        thread = message.thread
        first_of_thread = thread.pk not in seen_threads
        seen_threads.add(thread.pk)
        if thread.case_id is not None:
            updates.append(message)
        elif first_of_thread and thread.pk in new_thread_ids:
            # The thread was routed by its first message's decision (ThreadAssigner).
            decision = routing.get(message.pk)
            if decision is not None and decision.opens_case and decision.service_code:
                to_open[thread.pk] = (message, decision)
    if to_open:
        _auto_open_cases(to_open)
    if updates:
        _record_resident_updates(updates)


def _auto_open_cases(to_open: dict[int, tuple[InboundMessage, RoutingDecision]]) -> None:
    codes = {decision.service_code for _message, decision in to_open.values()}
    services = {s.code: s for s in Service.objects.select_related("team").filter(code__in=codes)}
    for message, decision in to_open.values():
        thread = message.thread
        service = services.get(decision.service_code)
        if service is None or not service.is_active:
            logger.warning(
                "routing rule %s names service %r, which is %s: thread %s stays in the inbox "
                "without a case",
                decision.rule_id,
                decision.service_code,
                "unknown" if service is None else "no longer offered",
                thread.pk,
            )
            continue
        title = (thread.subject or message_text(message) or service.name)[:TITLE_LIMIT]
        try:
            with transaction.atomic():
                open_case_from_thread(
                    thread=thread,
                    service=service,
                    title=title,
                    actor=None,
                    actor_label=f"routing rule {decision.rule_id}",
                    message=message,
                )
        except Exception:
            # The savepoint is rolled back; the message stays processed, in the inbox.
            logger.exception(
                "could not open a case for thread %s (routing rule %s)", thread.pk, decision.rule_id
            )


def _record_resident_updates(messages: list[InboundMessage]) -> None:
    for message in messages:
        case = message.thread.case
        try:
            with transaction.atomic():
                case_resident_update(
                    case=case,
                    text=message_text(message) or message.subject or "(empty message)",
                    data={"thread": message.thread_id, "message": message.pk},
                    actor=None,
                    at=message.received_at,
                )
        except Exception:
            logger.exception("could not record message %s on case %s", message.pk, case.reference)


def resolution_text(case: ServiceCase) -> str:
    """The message that tells the resident their case is resolved, in their language."""
    with translation.override(_language_of(case.citizen)):
        return gettext(
            "Your request %(reference)s (%(service)s) has been resolved.\n\n"
            "%(resolution)s\n\n"
            "If there is anything more we can do, reply to this message."
        ) % {
            "reference": case.reference,
            "service": case.service.name,
            "resolution": case.resolution.strip(),
        }


def resolution_subject(case: ServiceCase) -> str:
    with translation.override(_language_of(case.citizen)):
        return gettext("Your request %(reference)s has been resolved") % {
            "reference": case.reference
        }


def _language_of(citizen: Citizen | None) -> str:
    language = getattr(citizen, "preferred_language", "") or ""
    return language if language in dict(settings.LANGUAGES) else settings.LANGUAGE_CODE


def first_email_channel() -> Channel | None:
    return Channel.objects.filter(enabled=True, kind__in=EMAIL_KINDS).order_by("pk").first()


def first_sms_channel() -> Channel | None:
    return Channel.objects.filter(enabled=True, kind__in=SMS_KINDS).order_by("pk").first()


def on_case_status_changed(
    sender: object,
    case: ServiceCase,
    from_status: str,
    to_status: str,
    actor: Actor = None,
    **kwargs: object,
) -> None:
    """Send a resolved case's resolution to the resident and record it in the history.

    Where the case has a conversation, the answer goes there (the resident wrote that way).
    Otherwise (reported on the portal, at the desk, by phone) a conversation is started on
    the resident's preferred channel, then on e-mail. Runs inside the resolving
    transaction, so the queued message (an outbox row) commits with the resolution or not
    at all; the task sends it after commit. When nothing can be sent (no address, no
    channel) the resolution still stands and a staff note says why.
    """
    if to_status != ServiceCase.Status.RESOLVED or not case.resolution.strip():
        return
    user = actor if getattr(actor, "is_authenticated", False) else None
    outbound, problem = _send_resolution(case, user)
    if outbound is not None:
        case_record_message(
            case=case,
            kind=CaseEvent.Kind.REPLY,
            text=outbound.body_text,
            data={
                "thread": outbound.thread_id,
                "outbound": outbound.pk,
                "channel": outbound.channel.slug,
            },
            actor=actor,
            actor_label=INBOX_LABEL,
        )
        return
    case_add_note(
        case=case,
        text=f"The resolution could not be sent to the resident: {problem}",
        actor=None,
        actor_label=INBOX_LABEL,
    )


def _attempt(send: Callable[[], OutboundMessage]) -> tuple[OutboundMessage | None, str]:
    """Run one way of sending in a savepoint: (outbound, "") or (None, why it was refused)."""
    try:
        with transaction.atomic():
            return send(), ""
    except ApplicationError as exc:
        return None, exc.message
    except ValidationError as exc:
        return None, "; ".join(exc.messages)


def _send_resolution(
    case: ServiceCase, user: AbstractBaseUser | None
) -> tuple[OutboundMessage | None, str]:
    body = resolution_text(case)
    problems: list[str] = []
    thread = (
        Thread.objects.filter(case=case)
        .select_related("channel", "citizen")
        .order_by("-last_message_at", "-pk")
        .first()
    )
    if thread is not None:
        outbound, problem = _attempt(lambda: thread_reply(thread=thread, body=body, by=user))
        if outbound is not None:
            return outbound, ""
        problems.append(f"on conversation {thread.reference}: {problem}")
    else:
        problems.append("no conversation is linked to the case;")
    citizen: Citizen | None = case.citizen
    if citizen is None:
        problems.append("the case is anonymous, so there is nobody else to write to.")
        return None, " ".join(problems)
    channels = _channels_for(citizen)
    if not any(channel.kind in EMAIL_KINDS for channel in channels):
        problems.append("no e-mail channel is enabled.")
    subject = resolution_subject(case)
    for channel in channels:
        outbound, problem = _attempt(
            lambda channel=channel: start_conversation(
                citizen=citizen,
                channel=channel,
                subject=subject,
                body=body,
                by=user,
                case=case,
                team=case.team,
                service_code=case.service.code,
                department=case.service.department,
            )
        )
        if outbound is not None:
            return outbound, ""
        problems.append(f"on {channel.name}: {problem}")
    return None, " ".join(problems)


def _channels_for(citizen: Citizen) -> list[Channel]:
    """Where to start a conversation with the resident, in order: their preferred channel
    (a text message if they chose one and an SMS channel is enabled), then e-mail."""
    channels = []
    if citizen.preferred_channel == ChannelKind.SMS:
        sms = first_sms_channel()
        if sms is not None:
            channels.append(sms)
    email = first_email_channel()
    if email is not None:
        channels.append(email)
    return channels
