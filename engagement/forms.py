"""Forms of the staff campaign pages (engagement.staff_views): writing a campaign, the
preview's sample resident, test send, refusal, scheduling and cancelling. The services in
engagement.campaigns check everything again; the forms give the officer field-level errors."""

from __future__ import annotations

import datetime
from typing import Any

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from citizenhub.models import Address, ChannelKind, Service
from citizenhub.staff.case_forms import GovukFormMixin
from citizenhub.ward_names import ward_names
from engagement.campaigns import BODY_LIMIT, CAMPAIGN_CHANNELS, KEYWORD_RE, SUBJECT_LIMIT
from engagement.models import Campaign, MessageClass, Topic
from engagement.personalise import PLACEHOLDERS

CHANNEL_LABELS = {ChannelKind.EMAIL: _("E-mail"), ChannelKind.SMS: _("Text message (SMS)")}
MESSAGE_CLASS_HINTS = {
    MessageClass.ESSENTIAL: _(
        "Service information residents need (bin day changed, road closed at their home). "
        "Goes to everyone in the audience whatever their preferences; contact rules do not "
        "hold it. Never use it to promote anything."
    ),
    MessageClass.INFORMATIONAL: _(
        "News about a topic residents subscribed to. Only confirmed subscribers receive it."
    ),
    MessageClass.PROMOTIONAL: _(
        "Promotes an event, service or campaign. PECR (the Privacy and Electronic "
        "Communications Regulations) allows it only to residents who consented to the topic "
        "on that channel, and every message must let them opt out."
    ),
}


def ward_choices() -> list[tuple[str, str]]:
    """The wards residents live in (from their addresses), named where a lookup knows them."""
    codes = sorted(
        Address.objects.exclude(ward_code="").values_list("ward_code", flat=True).distinct()
    )
    names = ward_names(codes)
    return [(code, f"{names[code]} ({code})" if code in names else code) for code in codes]


def service_choices() -> list[tuple[str, str]]:
    return list(Service.objects.filter(is_active=True).order_by("name").values_list("code", "name"))


class CampaignForm(GovukFormMixin, forms.Form):
    """A campaign draft: what it is, who gets it, and the content per channel."""

    title = forms.CharField(
        label=_("Title"),
        max_length=200,
        help_text=_("For staff only: residents do not see it."),
    )
    message_class = forms.ChoiceField(
        label=_("Message class"),
        choices=MessageClass.choices,
        widget=forms.RadioSelect,
        initial=MessageClass.INFORMATIONAL,
    )
    topics = forms.ModelMultipleChoiceField(
        label=_("Topics"),
        queryset=Topic.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_(
            "The audience is the confirmed subscribers of these topics on the chosen channels. "
            "An essential message without topics goes to everyone matching the segment."
        ),
    )
    channels = forms.MultipleChoiceField(
        label=_("Channels"),
        choices=[(kind, CHANNEL_LABELS[kind]) for kind in CAMPAIGN_CHANNELS],
        widget=forms.CheckboxSelectMultiple,
        required=False,
    )
    ward_codes = forms.MultipleChoiceField(
        label=_("Only residents in these wards"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("Leave all unticked for every ward."),
    )
    languages = forms.MultipleChoiceField(
        label=_("Only residents who prefer these languages"),
        choices=settings.LANGUAGES,
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )
    open_case_services = forms.MultipleChoiceField(
        label=_("Only residents with an open case in these services"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )
    email_subject = forms.CharField(
        label=_("E-mail subject"), max_length=SUBJECT_LIMIT, required=False
    )
    email_text = forms.CharField(
        label=_("E-mail text"),
        max_length=BODY_LIMIT,
        required=False,
        widget=forms.Textarea(attrs={"rows": 10}),
        help_text=_("Every e-mail carries a plain-text version; it is required."),
    )
    email_html = forms.CharField(
        label=_("E-mail HTML (optional)"),
        max_length=BODY_LIMIT,
        required=False,
        widget=forms.Textarea(attrs={"rows": 10, "spellcheck": "false"}),
    )
    sms_text = forms.CharField(
        label=_("Text message"),
        max_length=BODY_LIMIT,
        required=False,
        widget=forms.Textarea(attrs={"rows": 5}),
    )
    asks_response = forms.BooleanField(
        label=_("The campaign asks residents to reply (volunteer call-out, RSVP)"),
        required=False,
    )
    response_keyword = forms.CharField(
        label=_("Reply keyword (optional)"),
        max_length=32,
        required=False,
        help_text=_(
            "A reply containing this word counts as a response, on any channel. Replies to "
            "the campaign's own e-mail or text count without it."
        ),
    )
    version = forms.IntegerField(widget=forms.HiddenInput, required=False, min_value=1)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["topics"].queryset = Topic.objects.filter(is_active=True).order_by("name")
        self.fields["ward_codes"].choices = ward_choices()
        self.fields["open_case_services"].choices = service_choices()
        placeholders = ", ".join("{{ %s }}" % name for name in PLACEHOLDERS)  # noqa: UP031
        self.fields["sms_text"].help_text = _("Placeholders you can use: %(placeholders)s.") % {
            "placeholders": placeholders
        }

    def clean_response_keyword(self) -> str:
        value = self.cleaned_data["response_keyword"].strip()
        if value and not KEYWORD_RE.fullmatch(value):
            raise ValidationError(_("The reply keyword is one word of 2 to 32 letters or digits."))
        return value

    def service_values(self) -> dict[str, Any]:
        """The cleaned data as campaign_create / campaign_update take it."""
        data = self.cleaned_data
        segment = {
            key: list(data[key])
            for key in ("ward_codes", "languages", "open_case_services")
            if data.get(key)
        }
        return {
            "title": data["title"],
            "message_class": data["message_class"],
            "topics": list(data["topics"]),
            "segment": segment,
            "channels": list(data["channels"]),
            "email_subject": data["email_subject"],
            "email_html": data["email_html"],
            "email_text": data["email_text"],
            "sms_text": data["sms_text"],
            "asks_response": data["asks_response"],
            "response_keyword": data["response_keyword"],
        }

    @classmethod
    def initial_for(cls, campaign: Campaign) -> dict[str, Any]:
        segment = campaign.segment or {}
        return {
            "title": campaign.title,
            "message_class": campaign.message_class,
            "topics": list(campaign.topics.all()),
            "channels": campaign.channels,
            "ward_codes": segment.get("ward_codes", []),
            "languages": segment.get("languages", []),
            "open_case_services": segment.get("open_case_services", []),
            "email_subject": campaign.email_subject,
            "email_html": campaign.email_html,
            "email_text": campaign.email_text,
            "sms_text": campaign.sms_text,
            "asks_response": campaign.asks_response,
            "response_keyword": campaign.response_keyword,
            "version": campaign.version,
        }


class SampleResidentForm(GovukFormMixin, forms.Form):
    """Who the preview is addressed to: a made-up resident, so no one's details are shown."""

    given_name = forms.CharField(label=_("Given name"), max_length=150, required=False)
    family_name = forms.CharField(label=_("Family name"), max_length=150, required=False)
    preferred_language = forms.ChoiceField(
        label=_("Language"), choices=settings.LANGUAGES, required=False
    )


class TestSendForm(GovukFormMixin, forms.Form):
    channel = forms.ChoiceField(
        label=_("Send the test by"),
        choices=[(kind, CHANNEL_LABELS[kind]) for kind in CAMPAIGN_CHANNELS],
        widget=forms.RadioSelect,
    )
    to_phone = forms.CharField(
        label=_("Your work mobile number (for a text message)"),
        max_length=32,
        required=False,
        help_text=_("Test e-mails go to your account's e-mail address."),
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("channel") == ChannelKind.SMS and not data.get("to_phone", "").strip():
            self.add_error("to_phone", _("Enter your work mobile number."))
        return data


class RefuseForm(GovukFormMixin, forms.Form):
    reason = forms.CharField(
        label=_("Why is it refused?"),
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("The author sees this and the campaign goes back to a draft."),
    )


class CancelForm(GovukFormMixin, forms.Form):
    reason = forms.CharField(
        label=_("Reason (optional)"),
        max_length=500,
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
    )


class ScheduleForm(GovukFormMixin, forms.Form):
    """A date and a time, in the council's time zone."""

    date = forms.DateField(
        label=_("Date"),
        input_formats=["%Y-%m-%d", "%d/%m/%Y"],
        help_text=_("For example, 2026-04-27 or 27/04/2026."),
        widget=forms.TextInput(attrs={"class": "govuk-input govuk-input--width-10"}),
    )
    time = forms.TimeField(
        label=_("Time"),
        input_formats=["%H:%M"],
        help_text=_("24-hour clock, for example 09:30."),
        widget=forms.TextInput(attrs={"class": "govuk-input govuk-input--width-5"}),
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("date") and data.get("time"):
            at = timezone.make_aware(
                datetime.datetime.combine(data["date"], data["time"]),
                timezone.get_current_timezone(),
            )
            if at <= timezone.now():
                self.add_error("date", _("Choose a time in the future."))
            data["at"] = at
        return data
