"""The preference centre at /my/preferences/: the public topics, grouped by kind, with a box
per channel the resident can receive on; one form subscribes where a box is ticked (a link
to confirm is sent: double opt-in) and unsubscribes where one is unticked (at once:
withdrawing is as easy as giving); below, the consent ledger's history."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods

from citizenhub.errors import ApplicationError
from citizenhub.models import Citizen
from citizenhub.portal.access import resident_required
from engagement.models import ConsentRecord, Topic
from engagement.services import purpose_titles
from engagement.subscriptions import (
    PreferenceChoices,
    apply_preference_choices,
    channel_label,
    preference_choices,
)

HISTORY_SHOWN = 50
GROUP_HEADINGS = {
    Topic.Kind.SERVICE: gettext_lazy("Council services"),
    Topic.Kind.WARD: gettext_lazy("Your area"),
    Topic.Kind.THEME: gettext_lazy("News and themes"),
}


class PreferencesForm(forms.Form):
    """One checkbox list whose values are "<topic slug>:<channel>", offered per topic."""

    subscriptions = forms.MultipleChoiceField(
        required=False,
        error_messages={"invalid_choice": gettext_lazy("Choose from the options shown.")},
    )

    def __init__(self, *args, choices: PreferenceChoices, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.preference_choices = choices
        self.fields["subscriptions"].choices = [(value, value) for value in choices.offered()]

    def chosen(self) -> set[str]:
        return set(self.cleaned_data["subscriptions"])


def client_ip(request: HttpRequest) -> str | None:
    # REMOTE_ADDR as the deployment's proxy settings leave it; never a header a client sets.
    return request.META.get("REMOTE_ADDR")


def choice_rows(form: PreferencesForm) -> list[dict]:
    """What the template shows: per kind, per topic, a box per channel with its state."""
    choices = form.preference_choices
    ticked = set(form.data.getlist("subscriptions")) if form.is_bound else choices.chosen_now()
    groups = []
    for kind, topics in choices.groups:
        rows = []
        for choice in topics:
            boxes = [
                {
                    "value": choices.value(choice, channel),
                    "id": f"subscription-{choice.topic.pk}-{channel}",
                    "channel": channel_label(channel),
                    "state": choice.states[channel],
                    "checked": choices.value(choice, channel) in ticked,
                }
                for channel in choices.channels
            ]
            rows.append({"choice": choice, "boxes": boxes})
        groups.append({"heading": GROUP_HEADINGS.get(kind, kind), "rows": rows})
    return groups


def save_message(request: HttpRequest, changes) -> None:
    if changes.subscribed:
        messages.success(
            request,
            _(
                "Your choices have been saved. We have sent you a link to confirm each new "
                "subscription: you will get nothing until you confirm."
            ),
        )
    elif changes.changed:
        messages.success(request, _("Your choices have been saved."))
    else:
        messages.info(request, _("You did not change anything."))


def save_preferences(
    request: HttpRequest, *, citizen: Citizen, form: PreferencesForm, source: str
) -> bool:
    """Apply a valid form; False (with the reason on the form) when it cannot be."""
    try:
        changes = apply_preference_choices(
            citizen=citizen,
            choices=form.preference_choices,
            chosen=form.chosen(),
            source=source,
            actor=request.user if request.user.is_authenticated else None,
            ip_address=client_ip(request),
        )
    except ApplicationError as exc:
        form.add_error(None, exc.message)
        return False
    save_message(request, changes)
    return True


@require_http_methods(["GET", "POST"])
@resident_required
def preferences(request: HttpRequest) -> HttpResponse:
    citizen = request.citizen
    choices = preference_choices(citizen)
    status = 200
    if request.method == "POST":
        form = PreferencesForm(request.POST, choices=choices)
        if form.is_valid() and save_preferences(
            request, citizen=citizen, form=form, source=ConsentRecord.Source.PORTAL
        ):
            return redirect("my-preferences:index")
        status = 400
    else:
        form = PreferencesForm(choices=choices)
    history = list(
        ConsentRecord.objects.filter(citizen=citizen).order_by("-occurred_at", "-id")[
            : HISTORY_SHOWN + 1
        ]
    )
    titles = purpose_titles({record.purpose for record in history})
    for record in history:
        record.purpose_title = titles[record.purpose]
        record.channel_label = channel_label(record.channel)
    return render(
        request,
        "engagement/portal/preferences.html",
        {
            "form": form,
            "groups": choice_rows(form),
            "channels": [channel_label(channel) for channel in choices.channels],
            "has_phone": "sms" in choices.channels,
            "history": history[:HISTORY_SHOWN],
            "more_history": len(history) > HISTORY_SHOWN,
            "given": ConsentRecord.Action.GIVEN,
        },
        status=status,
    )
