"""Pages reached from links in messages, without signing in: the preference page, one-click
unsubscribe (RFC 8058) and subscription confirmation. The signed token in the link is the
only authority (engagement.tokens).

GET never changes anything: mail scanners and link previews follow links. Confirming and
the preference page's save are forms with a CSRF token; unsubscribing is a POST without one,
because mail clients send the RFC 8058 one-click POST (body "List-Unsubscribe=One-Click")
with no cookie and no token.

A link that cannot work gets a GOV.UK page, never a 500, and changes nothing:
- 404 when it is forged, damaged, or names nothing we know (a deleted topic, an erased
  profile): to whoever holds it, there is no such page;
- 410 Gone when it was good but is not any more: expired, or replaced (a confirmation link
  older than an unsubscribe or a newer request). The page says how to get a new one.
Using a good link twice is not an error: confirming or unsubscribing again says it is done.
"""

from __future__ import annotations

import datetime

from django.core import signing
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from citizenhub.errors import ApplicationError
from citizenhub.models import ChannelKind, Citizen
from citizenhub.services.identity import follow_merges
from engagement import tokens
from engagement.models import ConsentRecord, Subscription, Topic
from engagement.subscriptions import (
    channel_label,
    confirm_subscription,
    confirmation_problem,
    preference_choices,
    topic_title,
)
from engagement.subscriptions import (
    unsubscribe as unsubscribe_service,
)
from engagement.views_portal import PreferencesForm, choice_rows, client_ip, save_preferences

ONE_CLICK_BODY = ("List-Unsubscribe", "One-Click")
_STATUS = {"invalid": 404, "not_found": 404, "expired": 410, "superseded": 410, "topic_closed": 410}


def _link_problem(request: HttpRequest, problem: str) -> HttpResponse:
    return render(
        request,
        "engagement/public/link_problem.html",
        {"problem": problem},
        status=_STATUS.get(problem, 404),
    )


def _bad_token(request: HttpRequest, exc: tokens.BadToken) -> HttpResponse:
    return _link_problem(request, "expired" if exc.expired else "invalid")


def _live_citizen(citizen_id: int) -> Citizen | None:
    citizen = Citizen.objects.filter(pk=citizen_id).first()
    if citizen is None:
        return None
    citizen = follow_merges(citizen)
    return citizen if citizen.is_live else None


def link_issued_at(token: str) -> datetime.datetime | None:
    """When a token (already verified) was signed: Django signatures carry the time, in
    base 62 between the last two colons."""
    try:
        seconds = signing.b62_decode(token.rsplit(":", 2)[1])
    except (IndexError, ValueError):
        return None
    return datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC)


# --- /preferences/<token>/ -------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
def preferences(request: HttpRequest, token: str) -> HttpResponse:
    try:
        citizen_id = tokens.preference_citizen_id(token)
    except tokens.BadToken as exc:
        return _bad_token(request, exc)
    citizen = _live_citizen(citizen_id)
    if citizen is None:
        return _link_problem(request, "not_found")
    choices = preference_choices(citizen)
    status = 200
    if request.method == "POST":
        form = PreferencesForm(request.POST, choices=choices)
        if form.is_valid() and save_preferences(
            request, citizen=citizen, form=form, source=ConsentRecord.Source.WEB_FORM
        ):
            return redirect(request.path)
        status = 400
    else:
        form = PreferencesForm(choices=choices)
    return render(
        request,
        "engagement/public/preferences.html",
        {"form": form, "groups": choice_rows(form), "channels": choices.channels},
        status=status,
    )


# --- /unsubscribe/<token>/ -------------------------------------------------------------------


def _topics_left(
    citizen: Citizen, topic: Topic | None, target: tokens.UnsubscribeTarget
) -> list[Topic]:
    """What the link stops: its topic and, when it came in a campaign's message, every topic
    of that campaign the resident hears about on the channel (a bulletin sent to several
    topics reached them through each: leaving one alone, the next bulletin would come
    through another). Empty: every non-essential message on the channel."""
    if topic is None:
        return []
    leaving = [topic]
    if target.campaign_id is not None:
        leaving += list(
            Topic.objects.filter(
                campaigns__pk=target.campaign_id,
                subscriptions__citizen=citizen,
                subscriptions__channel=target.channel,
                subscriptions__status__in=(
                    Subscription.Status.ACTIVE,
                    Subscription.Status.PENDING,
                ),
            )
            .exclude(pk=topic.pk)
            .distinct()
            .order_by("name", "pk")
        )
    return leaving


def _titles(topics: list[Topic]) -> str:
    titles = [topic_title(topic) for topic in topics]
    if len(titles) < 2:
        return "".join(titles)
    # A list of topic names: "Bin collections, Recycling and Roadworks".
    return _("%(topics)s and %(last_topic)s") % {
        "topics": ", ".join(titles[:-1]),
        "last_topic": titles[-1],
    }


def _unsubscribe_question(topics: list[Topic], channel: str) -> str:
    if not topics:
        return _("Unsubscribe from all council updates by %(channel)s?") % {
            "channel": channel_label(channel).lower()
        }
    return _("Unsubscribe from %(topic)s by %(channel)s?") % {
        "topic": _titles(topics),
        "channel": channel_label(channel).lower(),
    }


@csrf_exempt  # RFC 8058: mail clients POST without a cookie or token; the signature is it.
@require_http_methods(["GET", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    try:
        target = tokens.unsubscribe_target(token)
    except tokens.BadToken as exc:
        return _bad_token(request, exc)
    citizen = _live_citizen(target.citizen_id)
    topic = None
    if target.topic_id is not None:
        topic = Topic.objects.filter(pk=target.topic_id).first()
    if (
        citizen is None
        or (target.topic_id is not None and topic is None)
        or target.channel not in ChannelKind.values
    ):
        return _link_problem(request, "not_found")
    leaving = _topics_left(citizen, topic, target)
    question = _unsubscribe_question(leaving, target.channel)
    context = {
        "question": question,
        "topic": topic,
        "topic_title": _titles(leaving),
        "channel": channel_label(target.channel).lower(),
        "preferences_url": tokens.preferences_url(citizen.pk),
    }
    if request.method == "GET":
        return render(request, "engagement/public/unsubscribe.html", context)
    if request.POST.get("from_page"):
        wording = question
    else:
        wording = "One-click unsubscribe (RFC 8058) from the link in a message"
    if target.campaign_id is not None:
        wording = f"{wording} [campaign {target.campaign_id}]"
    result = unsubscribe_service(
        citizen=citizen,
        topics=leaving,
        channel=target.channel,
        source=ConsentRecord.Source.WEB_FORM,
        ip_address=client_ip(request),
        wording=wording,
        actor_label="resident (by the unsubscribe link in a message)",
    )
    return render(
        request,
        "engagement/public/unsubscribed.html",
        {**context, "already": not result.changed},
    )


# --- /subscriptions/confirm/<token>/ ---------------------------------------------------------


@require_http_methods(["GET", "POST"])
def confirm(request: HttpRequest, token: str) -> HttpResponse:
    try:
        subscription_id = tokens.confirm_subscription_id(token)
    except tokens.BadToken as exc:
        return _bad_token(request, exc)
    issued_at = link_issued_at(token)
    subscription = (
        Subscription.objects.select_related("topic", "citizen").filter(pk=subscription_id).first()
    )
    if subscription is None or not subscription.citizen.is_live:
        return _link_problem(request, "not_found")
    context = {
        "subscription": subscription,
        "topic_title": topic_title(subscription.topic),
        "channel": channel_label(subscription.channel).lower(),
        "preferences_url": tokens.preferences_url(subscription.citizen_id),
    }
    if request.method == "GET":
        if subscription.status == Subscription.Status.ACTIVE:
            return render(request, "engagement/public/confirmed.html", {**context, "already": True})
        problem = confirmation_problem(subscription, link_issued_at=issued_at)
        if problem is not None:
            return _link_problem(request, problem)
        return render(request, "engagement/public/confirm.html", context)
    try:
        subscription, confirmed_now = confirm_subscription(
            subscription_id=subscription.pk,
            link_issued_at=issued_at,
            ip_address=client_ip(request),
        )
    except ApplicationError as exc:
        return _link_problem(request, exc.code)
    return render(
        request, "engagement/public/confirmed.html", {**context, "already": not confirmed_now}
    )
