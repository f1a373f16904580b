"""The preference centre at /my/preferences/: what the resident agrees to be contacted
about, changed with one form (withdrawing is as easy as giving), and the ledger's history."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods

from citizenhub.portal.access import resident_required
from engagement.models import ConsentRecord
from engagement.purposes import PURPOSES, purpose_for
from engagement.services import current_consents, set_portal_consents

HISTORY_SHOWN = 50


def _choice_value(slug: str, channel: str) -> str:
    return f"{slug}:{channel}"


class PreferencesForm(forms.Form):
    consents = forms.MultipleChoiceField(
        label=gettext_lazy("What may we contact you about?"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        error_messages={
            "invalid_choice": gettext_lazy("Choose from the options shown."),
        },
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["consents"].choices = [
            (_choice_value(purpose.slug, purpose.channel), purpose.wording) for purpose in PURPOSES
        ]

    def chosen(self) -> set[tuple[str, str]]:
        return {tuple(value.split(":", 1)) for value in self.cleaned_data["consents"]}


def _client_ip(request: HttpRequest) -> str | None:
    # REMOTE_ADDR as the deployment's proxy settings leave it; never a header a client sets.
    return request.META.get("REMOTE_ADDR")


@require_http_methods(["GET", "POST"])
@resident_required
def preferences(request: HttpRequest) -> HttpResponse:
    citizen = request.citizen
    if request.method == "POST":
        form = PreferencesForm(request.POST)
        if form.is_valid():
            written = set_portal_consents(
                citizen=citizen,
                chosen=form.chosen(),
                actor=request.user,
                ip_address=_client_ip(request),
            )
            if written:
                messages.success(request, _("Your choices have been saved."))
            else:
                messages.info(request, _("You did not change anything."))
            return redirect("my-preferences:index")
        status = 400
    else:
        status = 200
        current = current_consents(citizen)
        form = PreferencesForm(
            initial={
                "consents": [
                    _choice_value(*key)
                    for key, record in current.items()
                    if record.action == ConsentRecord.Action.GIVEN
                ]
            }
        )
    history = []
    for record in ConsentRecord.objects.filter(citizen=citizen).order_by("-occurred_at", "-id")[
        : HISTORY_SHOWN + 1
    ]:
        known = purpose_for(record.purpose, record.channel)
        record.purpose_title = known.title if known else record.purpose
        history.append(record)
    return render(
        request,
        "engagement/portal/preferences.html",
        {
            "form": form,
            "history": history[:HISTORY_SHOWN],
            "more_history": len(history) > HISTORY_SHOWN,
            "given": ConsentRecord.Action.GIVEN,
        },
        status=status,
    )
