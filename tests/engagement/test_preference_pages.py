"""The preference pages: /my/preferences/ (signed in) and the no-login pages reached from
links in messages: /preferences/<token>/, one-click unsubscribe (RFC 8058) and the
confirmation page. Forged, expired and replayed links get a clear 4xx page and change
nothing; GET never changes anything."""

from __future__ import annotations

import datetime
import re

import pytest
from django.core import mail, signing
from django.test import Client
from django.utils import timezone

from citizenhub.models import ContactPoint
from engagement import tokens
from engagement.models import ConsentRecord, Subscription, Topic
from engagement.purposes import ensure_standard_topics
from engagement.services import has_consent, record_consent
from engagement.subscriptions import confirm_subscription, subscribe, unsubscribe

pytestmark = pytest.mark.django_db
URL = "/my/preferences/"
BINS = "bins:email"


@pytest.fixture(autouse=True)
def topics(settings):
    settings.SITE_URL = "http://testserver"
    ensure_standard_topics()
    return {
        "bins": Topic.objects.create(
            slug="bins",
            name="Bin collections",
            kind="service",
            description="Collection days and changes.",
            consent_wording="Send me updates about bin collections.",
        ),
        "abbey": Topic.objects.create(
            slug="ward-abbey", name="Abbey ward news", kind="ward", consent_wording="Abbey."
        ),
        "hidden": Topic.objects.create(
            slug="staff-only", name="Internal list", is_public=False, consent_wording="x"
        ),
    }


def path_of(url: str) -> str:
    return url.removeprefix("http://testserver")


def confirm_link_from(message) -> str:
    return re.search(r"http://testserver(/subscriptions/confirm/[^/\s]+/)", message.body).group(1)


def add_confirmed_phone(citizen) -> None:
    ContactPoint.objects.create(
        citizen=citizen,
        kind="phone",
        value="07700 900123",
        normalised="+447700900123",
        match_key="+447700900123",
        verification_level="confirmed",
    )


def signed_long_ago(value: dict, salt: str, monkeypatch) -> str:
    """A token signed far enough in the past to be expired."""
    monkeypatch.setattr(signing.time, "time", lambda: 1_000_000_000.0)
    token = signing.dumps(value, salt=salt, compress=True)
    monkeypatch.undo()
    return token


# --- /my/preferences/ ----------------------------------------------------------------------


class TestMyPreferences:
    def test_signed_out_visitors_are_sent_to_sign_in(self, client):
        response = client.get(URL)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]

    def test_public_topics_by_kind_with_email_only_without_a_confirmed_phone(
        self, resident_client, django_assert_max_num_queries
    ):
        with django_assert_max_num_queries(25):
            response = resident_client.get(URL)
        assert response.status_code == 200
        page = response.content.decode()
        assert "<title>My preferences – " in page
        assert (
            page.index("Council services") < page.index("Your area") < page.index("News and themes")
        )
        assert "Bin collections" in page and "Collection days and changes." in page
        assert "Residents’ newsletter" in page and "Internal list" not in page
        assert f'value="{BINS}"' in page and 'value="bins:sms"' not in page
        assert "checked" not in page and "Not subscribed" in page
        assert "add and confirm your mobile number" in page
        assert "You have not given or withdrawn any consent yet." in page

    def test_a_confirmed_phone_adds_a_text_message_box(self, resident_client, resident):
        add_confirmed_phone(resident.citizen)
        page = resident_client.get(URL).content.decode()
        assert 'value="bins:sms"' in page and "Text message" in page

    def test_ticking_asks_to_confirm_and_nothing_is_consented_until_then(
        self, resident_client, resident, django_capture_on_commit_callbacks
    ):
        with django_capture_on_commit_callbacks(execute=True):
            response = resident_client.post(
                URL, {"subscriptions": [BINS]}, REMOTE_ADDR="198.51.100.7"
            )
        assert response.status_code == 302
        subscription = Subscription.objects.get()
        assert subscription.status == "pending" and subscription.source == "portal"
        assert not ConsentRecord.objects.exists()
        page = resident_client.get(URL).content.decode()
        assert "We have sent you a link to confirm" in page
        assert "Waiting for your confirmation" in page and page.count("checked") == 1

        # The link in the e-mail confirms; consent is recorded with the words shown.
        link = confirm_link_from(mail.outbox[0])
        assert resident_client.post(link, REMOTE_ADDR="198.51.100.8").status_code == 200
        record = ConsentRecord.objects.get()
        assert (record.action, record.purpose, record.ip_address) == (
            "given",
            "bins",
            "198.51.100.8",
        )
        page = resident_client.get(URL).content.decode()
        assert "Subscribed" in page and "Send me updates about bin collections." in page

        # Unticking stops it at once; saving again changes nothing.
        resident_client.post(URL, {"subscriptions": []})
        assert Subscription.objects.get().status == "unsubscribed"
        assert not has_consent(resident.citizen, "bins", "email")
        count = ConsentRecord.objects.count()
        resident_client.post(URL, {"subscriptions": []})
        assert ConsentRecord.objects.count() == count == 2

    def test_consent_given_before_topics_shows_as_subscribed_and_can_be_withdrawn(
        self, resident_client, resident
    ):
        record_consent(
            citizen=resident.citizen,
            purpose="residents-newsletter",
            channel="email",
            action="given",
            wording="Send me the monthly residents’ newsletter by e-mail",
            wording_version="2026-1",
            source="portal",
        )
        page = resident_client.get(URL).content.decode()
        assert 'value="residents-newsletter:email" aria-describedby' in page
        assert page.count("checked") == 1
        resident_client.post(URL, {"subscriptions": []})
        assert not has_consent(resident.citizen, "residents-newsletter", "email")

    def test_a_made_up_choice_is_a_form_error_and_saves_nothing(self, resident_client):
        for value in ("sell-my-data:email", "staff-only:email", "bins:sms", "bins:fax"):
            response = resident_client.post(URL, {"subscriptions": [BINS, value]})
            assert response.status_code == 400
            page = response.content.decode()
            assert "Choose from the options shown." in page
            assert "<title>Error: My preferences" in page and "govuk-error-summary" in page
        assert not Subscription.objects.exists() and not mail.outbox

    def test_a_post_without_csrf_token_is_refused(self, resident):
        client = Client(enforce_csrf_checks=True)
        client.force_login(resident)
        assert client.post(URL, {"subscriptions": [BINS]}).status_code == 403
        assert not Subscription.objects.exists()

    def test_the_history_shows_only_the_residents_own_ledger(
        self, resident_client, resident, other_resident
    ):
        record_consent(
            citizen=other_resident.citizen,
            purpose="bins",
            channel="email",
            action="given",
            wording="Other resident's words",
            wording_version="1",
            source="portal",
        )
        subscription = subscribe(
            citizen=resident.citizen, topic=Topic.objects.get(slug="bins"), channel="email",
            source="portal",
        )  # fmt: skip
        confirm_subscription(subscription_id=subscription.pk)
        page = resident_client.get(URL).content.decode()
        assert "Other resident" not in page
        assert "Bin collections (E-mail)" in page

    def test_without_any_address_the_page_says_how_to_add_one(self, resident_client, resident):
        ContactPoint.objects.filter(citizen=resident.citizen).update(removed_at=timezone.now())
        page = resident_client.get(URL).content.decode()
        assert "add an email address or confirm your mobile number" in page
        assert 'name="subscriptions"' not in page


# --- /preferences/<token>/ -----------------------------------------------------------------


class TestPreferencesByLink:
    def test_the_link_shows_the_choices_without_history_or_addresses(self, client, resident):
        url = path_of(tokens.preferences_url(resident.citizen.pk))
        response = client.get(url)
        assert response.status_code == 200
        page = response.content.decode()
        assert "Choose what we send you" in page and f'value="{BINS}"' in page
        assert resident.email not in page and "consent history" not in page

    def test_saving_with_the_link_subscribes(self, resident, django_capture_on_commit_callbacks):
        client = Client(enforce_csrf_checks=True)
        url = path_of(tokens.preferences_url(resident.citizen.pk))
        page = client.get(url)
        csrf = client.cookies["csrftoken"].value
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(url, {"subscriptions": [BINS], "csrfmiddlewaretoken": csrf})
        assert page.status_code == 200 and response.status_code == 302
        assert response["Location"] == url
        assert Subscription.objects.get().source == "web_form" and len(mail.outbox) == 1
        assert client.post(url, {"subscriptions": []}).status_code == 403  # no CSRF token

    def test_forged_and_expired_links_change_nothing(self, client, resident, monkeypatch):
        forged = tokens.preference_token(resident.citizen.pk)[:-2] + "xx"
        response = client.get(f"/preferences/{forged}/")
        assert response.status_code == 404 and "This link is not valid" in response.content.decode()
        expired = signed_long_ago({"c": resident.citizen.pk}, tokens.PREFERENCES_SALT, monkeypatch)
        response = client.post(f"/preferences/{expired}/", {"subscriptions": [BINS]})
        assert response.status_code == 410
        assert "This link no longer works" in response.content.decode()
        assert client.get(f"/preferences/{tokens.preference_token(987654)}/").status_code == 404
        assert not Subscription.objects.exists()


# --- /unsubscribe/<token>/ -----------------------------------------------------------------


def active(citizen, topic) -> Subscription:
    subscription = subscribe(citizen=citizen, topic=topic, channel="email", source="portal")
    return confirm_subscription(subscription_id=subscription.pk)[0]


class TestUnsubscribeLink:
    def _url(self, citizen, topic=None, campaign_id=None) -> str:
        return path_of(
            tokens.unsubscribe_url(
                tokens.UnsubscribeTarget(
                    citizen.pk, topic.pk if topic else None, "email", campaign_id
                )
            )
        )

    def test_get_asks_and_changes_nothing(self, client, resident, topics):
        active(resident.citizen, topics["bins"])
        response = client.get(self._url(resident.citizen, topics["bins"]))
        assert response.status_code == 200
        page = response.content.decode()
        assert "Unsubscribe from Bin collections by e-mail?" in page
        assert 'name="List-Unsubscribe" value="One-Click"' in page
        assert Subscription.objects.get().status == "active"

    def test_one_click_post_without_csrf_unsubscribes_and_again_is_a_no_op(self, resident, topics):
        active(resident.citizen, topics["bins"])
        mail_client = Client(enforce_csrf_checks=True)  # no cookie, no token: RFC 8058
        url = self._url(resident.citizen, topics["bins"], campaign_id=42)
        response = mail_client.post(
            url,
            "List-Unsubscribe=One-Click",
            content_type="application/x-www-form-urlencoded",
            REMOTE_ADDR="192.0.2.5",
        )
        assert response.status_code == 200
        assert "You have unsubscribed" in response.content.decode()
        assert Subscription.objects.get().status == "unsubscribed"
        withdrawal = ConsentRecord.objects.filter(action="withdrawn").get()
        assert withdrawal.wording.startswith("One-click unsubscribe (RFC 8058)")
        assert "[campaign 42]" in withdrawal.wording and withdrawal.ip_address == "192.0.2.5"
        counts = (ConsentRecord.objects.count(), Subscription.objects.get().unsubscribed_at)

        again = mail_client.post(url, {"List-Unsubscribe": "One-Click"})
        assert again.status_code == 200
        assert "You are already unsubscribed" in again.content.decode()
        assert (ConsentRecord.objects.count(), Subscription.objects.get().unsubscribed_at) == counts

    def test_the_pages_button_records_the_question_it_asked(self, client, resident, topics):
        active(resident.citizen, topics["bins"])
        url = self._url(resident.citizen, topics["bins"])
        client.post(url, {"List-Unsubscribe": "One-Click", "from_page": "1"})
        withdrawal = ConsentRecord.objects.filter(action="withdrawn").get()
        assert withdrawal.wording == "Unsubscribe from Bin collections by e-mail?"
        assert withdrawal.source == "web_form"

    def test_without_a_topic_everything_on_the_channel_stops(self, client, resident, topics):
        active(resident.citizen, topics["bins"])
        active(resident.citizen, topics["abbey"])
        url = self._url(resident.citizen)
        assert "Unsubscribe from all council updates by e-mail?" in client.get(url).content.decode()
        client.post(url)
        assert set(Subscription.objects.values_list("status", flat=True)) == {"unsubscribed"}

    def test_bad_links_get_a_clear_page_and_change_nothing(
        self, client, resident, topics, monkeypatch
    ):
        active(resident.citizen, topics["bins"])
        good = self._url(resident.citizen, topics["bins"])
        forged = good[:-3] + "AA/"
        assert client.post(forged).status_code == 404
        other_salt = path_of(tokens.preferences_url(resident.citizen.pk)).split("/")[2]
        assert client.post(f"/unsubscribe/{other_salt}/").status_code == 404
        assert client.post("/unsubscribe/not-a-token/").status_code == 404
        expired = signed_long_ago(
            {"c": resident.citizen.pk, "t": topics["bins"].pk, "ch": "email"},
            tokens.UNSUBSCRIBE_SALT,
            monkeypatch,
        )
        response = client.post(f"/unsubscribe/{expired}/")
        assert response.status_code == 410 and "has expired" in response.content.decode()
        wrong_shape = signing.dumps({"c": "1", "ch": "email"}, salt=tokens.UNSUBSCRIBE_SALT)
        assert client.post(f"/unsubscribe/{wrong_shape}/").status_code == 404
        gone_topic = tokens.UnsubscribeTarget(resident.citizen.pk, 987654, "email")
        assert client.post(path_of(tokens.unsubscribe_url(gone_topic))).status_code == 404
        assert client.put(good).status_code == 405
        assert Subscription.objects.get().status == "active"
        assert not ConsentRecord.objects.filter(action="withdrawn").exists()


# --- /subscriptions/confirm/<token>/ -------------------------------------------------------


class TestConfirmLink:
    def _pending(self, resident, topics, django_capture_on_commit_callbacks) -> str:
        with django_capture_on_commit_callbacks(execute=True):
            subscribe(
                citizen=resident.citizen, topic=topics["bins"], channel="email", source="portal"
            )
        return confirm_link_from(mail.outbox[-1])

    def test_get_shows_the_words_and_a_button_and_changes_nothing(
        self, client, resident, topics, django_capture_on_commit_callbacks
    ):
        link = self._pending(resident, topics, django_capture_on_commit_callbacks)
        page = client.get(link).content.decode()
        assert "Confirm your subscription" in page
        assert "Send me updates about bin collections." in page
        assert Subscription.objects.get().status == "pending"

    def test_post_confirms_and_a_replay_says_it_is_done(
        self, resident, topics, django_capture_on_commit_callbacks
    ):
        link = self._pending(resident, topics, django_capture_on_commit_callbacks)
        client = Client(enforce_csrf_checks=True)
        client.get(link)
        assert client.post(link).status_code == 403  # a form with a CSRF token
        csrf = client.cookies["csrftoken"].value
        response = client.post(link, {"csrfmiddlewaretoken": csrf})
        assert response.status_code == 200 and "Subscription confirmed" in response.content.decode()
        assert Subscription.objects.get().status == "active"
        replay = client.post(link, {"csrfmiddlewaretoken": csrf})
        assert replay.status_code == 200
        assert "You have already confirmed" in replay.content.decode()
        assert "You have already confirmed" in client.get(link).content.decode()
        assert ConsentRecord.objects.count() == 1

    def test_an_old_link_after_unsubscribing_no_longer_works(
        self, client, resident, topics, django_capture_on_commit_callbacks
    ):
        link = self._pending(resident, topics, django_capture_on_commit_callbacks)
        unsubscribe(
            citizen=resident.citizen, topic=topics["bins"], channel="email", source="portal"
        )
        for response in (client.get(link), client.post(link)):
            assert response.status_code == 410
            assert "You have unsubscribed or asked again" in response.content.decode()
        # Asking again later: the old link stays replaced (signatures count whole seconds,
        # so the new request is moved a few seconds on); the new link works.
        with django_capture_on_commit_callbacks(execute=True):
            subscribe(
                citizen=resident.citizen, topic=topics["bins"], channel="email", source="portal"
            )
        Subscription.objects.update(requested_at=timezone.now() + datetime.timedelta(seconds=2))
        assert client.post(link).status_code == 410
        assert Subscription.objects.get().status == "pending"
        assert not ConsentRecord.objects.filter(action="given").exists()
        with pytest.MonkeyPatch.context() as later:
            later.setattr(signing.time, "time", lambda: timezone.now().timestamp() + 5)
            fresh = path_of(tokens.confirm_url(Subscription.objects.get().pk))
        assert client.post(fresh).status_code == 200
        assert Subscription.objects.get().status == "active"

    def test_forged_expired_and_unknown_links(
        self, client, resident, topics, monkeypatch, django_capture_on_commit_callbacks
    ):
        link = self._pending(resident, topics, django_capture_on_commit_callbacks)
        subscription = Subscription.objects.get()
        assert client.post(link[:-3] + "zz/").status_code == 404
        expired = signed_long_ago({"s": subscription.pk}, tokens.CONFIRM_SALT, monkeypatch)
        assert client.post(f"/subscriptions/confirm/{expired}/").status_code == 410
        assert client.get(path_of(tokens.confirm_url(987654))).status_code == 404
        # The request lapsed though the link itself is young.
        Subscription.objects.update(confirm_by=timezone.now() - datetime.timedelta(seconds=1))
        response = client.post(link)
        assert response.status_code == 410 and "has expired" in response.content.decode()
        assert Subscription.objects.get().status == "pending"
        assert not ConsentRecord.objects.exists()
