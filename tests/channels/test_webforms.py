"""Council web forms at /forms/<slug>/: page, answers, abuse limits, embedding, ingest."""

import json
import re
import time

import pytest
from django.core import signing
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.test import Client, RequestFactory

from channels import forms_views
from channels.adapters.webform import parse_submission
from channels.models import Channel, InboundMessage, Thread, WebForm
from citizenhub.models import Citizen, ContactPoint, TimelineEntry
from tests.factories import CitizenFactory, EmailContactPointFactory

pytestmark = pytest.mark.django_db

URL = "/forms/report-a-problem/"
COUNCIL_SITE = "https://www.northmoor.gov.uk"
QUESTIONS = [
    {"name": "full_name", "label": "Your name", "type": "text", "required": True},
    {
        "name": "email",
        "label": "Email address",
        "type": "email",
        "help_text": "We only use this to reply.",
    },
    {"name": "phone", "label": "Phone number", "type": "phone"},
    {
        "name": "postcode",
        "label": "Postcode of the problem",
        "type": "postcode",
        "help_text": "For example NM1 4AB",
    },
    {"name": "case_reference", "label": "Case reference", "type": "text", "max_length": 20},
    {
        "name": "problem",
        "label": "What is the problem?",
        "type": "select",
        "required": True,
        "choices": ["Missed bin", "Fly-tipping", "Pothole"],
    },
    {"name": "details", "label": "Describe the problem", "type": "textarea", "required": True},
    {"name": "updates", "label": "Send me updates", "type": "checkbox"},
]
ANSWERS = {
    "full_name": "Priya Shah",
    "email": "priya@example.net",
    "postcode": "nm1 4ab",
    "problem": "Missed bin",
    "details": "The green bin on Ash Grove was not emptied.",
}


@pytest.fixture(autouse=True)
def empty_rate_limits():
    # The rate limit lives in the cache, which outlives each test's database transaction.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def webform(db):
    channel = Channel.objects.create(kind="webform", slug="web", name="Website forms")
    form = WebForm(
        channel=channel,
        slug="report-a-problem",
        title="Report a problem",
        introduction="Tell us about a problem in your street.",
        fields=QUESTIONS,
        allowed_origins=[COUNCIL_SITE],
        success_message="Thank you. We will be in touch within 5 working days.",
    )
    form.full_clean()
    form.save()
    return form


def token_from(response) -> str:
    match = re.search(rb'name="form_token" value="([^"]+)"', response.content)
    assert match, "the form page carries a token"
    return match.group(1).decode()


def fresh_token(client) -> str:
    return token_from(client.get(URL))


def send(client, capture, answers=None, *, token=None, **extra):
    data = {**(ANSWERS if answers is None else answers)}
    data.setdefault("form_token", fresh_token(client) if token is None else token)
    with capture(execute=True):
        return client.post(URL, data, **extra)


def errors_of(response) -> list[str]:
    summary = re.search(rb'<div class="error-summary".*?</div>', response.content, re.S)
    if not summary:
        return []
    return [m.decode() for m in re.findall(rb'<a href="#(field-[a-z_]+)"', summary.group(0))]


# --- The page ------------------------------------------------------------------------------


def test_form_page_shows_labelled_questions_with_hints_and_a_token(
    client, webform, django_assert_max_num_queries
):
    with django_assert_max_num_queries(1):
        response = client.get(URL)
    assert response.status_code == 200
    html = response.content.decode()
    assert "<h1>Report a problem</h1>" in html
    assert "Tell us about a problem in your street." in html
    for question in QUESTIONS:
        assert f'<label for="field-{question["name"]}"' in html
        assert f'id="field-{question["name"]}" name="{question["name"]}"' in html
    assert "Email address (optional)" in html and "Your name (optional)" not in html
    assert 'aria-describedby="field-email-hint"' in html
    assert 'id="field-email-hint" class="hint"' in html
    assert 'type="email"' in html and 'autocomplete="email"' in html and 'type="tel"' in html
    assert '<option value="Pothole">Pothole</option>' in html
    # Works without JavaScript: a plain form posting to itself.
    assert f'<form method="post" action="{URL}"' in html and "<script" not in html
    assert 'name="homepage" value="" tabindex="-1"' in html
    assert token_from(response)
    assert "no-store" in response["Cache-Control"]  # one token per page, never shared


def test_unknown_or_disabled_forms_are_404(client, webform):
    assert client.get("/forms/no-such-form/").status_code == 404
    webform.enabled = False
    webform.save()
    assert client.get(URL).status_code == 404


def test_frame_ancestors_allow_the_council_site_only(client, webform):
    response = client.get(URL)
    assert response["Content-Security-Policy"] == f"frame-ancestors 'self' {COUNCIL_SITE}"
    assert "X-Frame-Options" not in response
    # Everywhere else framing is still refused.
    assert client.get("/").headers.get("X-Frame-Options") == "DENY"


# --- A submission through the pipeline -----------------------------------------------------


def test_submission_is_stored_processed_and_filed_to_the_citizen_with_that_email(
    client, webform, django_capture_on_commit_callbacks
):
    point = EmailContactPointFactory(value="Priya@Example.net", normalised="Priya@example.net")
    response = send(client, django_capture_on_commit_callbacks, {**ANSWERS, "updates": "yes"})
    assert response.status_code == 200
    assert b"Form sent" in response.content
    assert b"We will be in touch within 5 working days." in response.content

    message = InboundMessage.objects.get()
    assert message.status == InboundMessage.Status.PROCESSED, message.last_error
    assert message.external_id.startswith("webform:")
    assert message.raw_content_type == "application/json"
    assert message.citizen == point.citizen and message.sender_kind == "email"
    assert message.subject == "Report a problem"
    assert message.body_text.splitlines() == [
        "Your name: Priya Shah",
        "Email address: priya@example.net",
        "Postcode of the problem: NM1 4AB",
        "What is the problem?: Missed bin",
        "Describe the problem: The green bin on Ash Grove was not emptied.",
        "Send me updates: Yes",
    ]
    raw = json.loads(bytes(message.raw))
    assert raw["form"] == "report-a-problem" and raw["fields"]["postcode"] == "NM1 4AB"
    assert len(raw["ip_hash"]) == 32 and "127.0.0.1" not in bytes(message.raw).decode()
    entry = TimelineEntry.objects.get(citizen=point.citizen)
    assert (entry.channel, entry.kind) == ("web", "message_in")
    thread = Thread.objects.get()
    assert thread.citizen == point.citizen and thread.channel == webform.channel
    assert thread.subject == "Report a problem"


@pytest.mark.parametrize(
    "typed",
    ["+44 (0)7700 900123", "07700 900123", "0044 7700 900 123", "447700900123", "07700-900-123"],
)
def test_a_phone_number_in_any_uk_format_finds_the_citizen(
    client, webform, django_capture_on_commit_callbacks, typed
):
    citizen = CitizenFactory()
    ContactPoint.objects.create(
        citizen=citizen,
        kind="phone",
        value="07700 900123",
        normalised="+447700900123",
        match_key="+447700900123",
    )
    answers = {**ANSWERS, "email": "", "phone": typed}
    assert send(client, django_capture_on_commit_callbacks, answers).status_code == 200
    message = InboundMessage.objects.get()
    assert message.status == "processed", message.last_error
    assert (message.sender_kind, message.citizen_id) == ("phone", citizen.pk)
    assert Citizen.objects.count() == 1


def test_an_unknown_sender_gets_a_provisional_profile_named_from_the_form(
    client, webform, django_capture_on_commit_callbacks
):
    send(client, django_capture_on_commit_callbacks)
    citizen = InboundMessage.objects.get().citizen
    assert citizen.status == Citizen.Status.PROVISIONAL
    assert (citizen.given_name, citizen.family_name) == ("Priya", "Shah")


def test_the_residents_own_case_reference_joins_their_thread(
    client, webform, django_capture_on_commit_callbacks
):
    send(client, django_capture_on_commit_callbacks)
    thread = Thread.objects.get()
    follow_up = {**ANSWERS, "case_reference": f"CH-{thread.pk}", "details": "Still not emptied."}
    send(client, django_capture_on_commit_callbacks, follow_up)
    assert Thread.objects.count() == 1
    assert thread.inbound_messages.count() == 2


def test_a_reference_to_someone_elses_thread_starts_a_new_thread(
    client, webform, django_capture_on_commit_callbacks
):
    send(client, django_capture_on_commit_callbacks)
    priyas = Thread.objects.get()
    intruder = {
        **ANSWERS,
        "full_name": "Mallory",
        "email": "mallory@example.com",
        "case_reference": f"CH-{priyas.pk}",
    }
    send(client, django_capture_on_commit_callbacks, intruder)
    assert Thread.objects.count() == 2
    assert priyas.inbound_messages.count() == 1
    mallorys = Thread.objects.exclude(pk=priyas.pk).get()
    assert mallorys.citizen.contact_points.get().normalised == "mallory@example.com"


def test_emoji_and_right_to_left_text_arrive_intact(
    client, webform, django_capture_on_commit_callbacks
):
    name = "زينب الحسن 🌻"
    details = "الحاوية لم تُفرغ 🗑️ — bin not emptied 👋🏽\nשורה שנייה"
    send(
        client,
        django_capture_on_commit_callbacks,
        {**ANSWERS, "full_name": name, "details": details},
    )
    message = InboundMessage.objects.get()
    assert message.status == "processed", message.last_error
    assert f"Your name: {name}" in message.body_text
    assert f"Describe the problem: {details}" in message.body_text
    assert message.sender_name == name
    assert json.loads(bytes(message.raw))["fields"]["details"] == details


# --- Abuse and mistakes --------------------------------------------------------------------


def test_a_filled_honeypot_is_thanked_and_nothing_is_stored(
    client, webform, django_capture_on_commit_callbacks
):
    response = send(
        client, django_capture_on_commit_callbacks, {**ANSWERS, "homepage": "http://spam.example"}
    )
    assert response.status_code == 200 and b"Form sent" in response.content
    assert InboundMessage.objects.count() == 0


def test_the_same_page_sent_twice_is_stored_once(
    client, webform, django_capture_on_commit_callbacks
):
    token = fresh_token(client)
    first = send(client, django_capture_on_commit_callbacks, token=token)
    again = send(client, django_capture_on_commit_callbacks, token=token)
    assert first.status_code == again.status_code == 200
    assert b"Form sent" in again.content
    assert InboundMessage.objects.count() == 1
    assert Channel.objects.get(kind="webform").duplicate_count == 1


def test_the_same_page_sent_again_with_other_answers_is_not_dropped(
    client, webform, django_capture_on_commit_callbacks
):
    token = fresh_token(client)
    send(client, django_capture_on_commit_callbacks, token=token)
    edited = {**ANSWERS, "details": "Also the recycling box."}
    again = send(client, django_capture_on_commit_callbacks, edited, token=token)
    assert again.status_code == 200
    assert b"already sent with different answers" in again.content
    assert b"Also the recycling box." in again.content
    assert InboundMessage.objects.count() == 1
    send(client, django_capture_on_commit_callbacks, edited, token=token_from(again))
    assert InboundMessage.objects.count() == 2


def forged_token(webform):
    return forms_views._new_token(webform)[:-4] + "AAAA"


@pytest.mark.parametrize("kind", ["missing", "forged", "other form", "expired"])
def test_a_missing_forged_or_expired_token_is_400_and_nothing_is_stored(
    client, webform, django_capture_on_commit_callbacks, monkeypatch, kind
):
    if kind == "missing":
        token = ""
    elif kind == "forged":
        token = forged_token(webform)
    elif kind == "other form":
        token = signing.TimestampSigner(salt="channels.webform.token").sign("999999:nonce")
    else:
        two_days_ago = int(time.time()) - 2 * 24 * 3600
        with monkeypatch.context() as patch:
            patch.setattr(
                signing.TimestampSigner, "timestamp", lambda self: signing.b62_encode(two_days_ago)
            )
            token = fresh_token(client)
    response = send(client, django_capture_on_commit_callbacks, token=token)
    assert response.status_code == 400
    html = response.content.decode()
    assert "send the form again" in html
    # The answers are kept on the page, with a fresh token to send them.
    assert 'value="Priya Shah"' in html and token_from(response) != token
    assert InboundMessage.objects.count() == 0


def test_the_eleventh_form_from_one_address_in_an_hour_is_429_and_others_still_get_through(
    client, webform, django_capture_on_commit_callbacks
):
    flood = {"REMOTE_ADDR": "203.0.113.9"}
    for n in range(10):
        response = send(
            client, django_capture_on_commit_callbacks, {**ANSWERS, "details": f"n{n}"}, **flood
        )
        assert response.status_code == 200, n
    refused = send(client, django_capture_on_commit_callbacks, **flood)
    assert refused.status_code == 429
    assert 0 < int(refused["Retry-After"]) <= 3600
    assert b"Too many forms sent" in refused.content
    assert InboundMessage.objects.count() == 10

    other = send(client, django_capture_on_commit_callbacks, REMOTE_ADDR="198.51.100.7")
    assert other.status_code == 200
    assert InboundMessage.objects.count() == 11


def test_addresses_are_hashed_and_ipv6_counts_by_its_64(settings):
    same = forms_views.address_hash("2001:db8:1:2::1")
    assert same == forms_views.address_hash("2001:db8:1:2:ffff::9")
    assert same != forms_views.address_hash("2001:db8:1:3::1")
    assert forms_views.address_hash("203.0.113.9") != forms_views.address_hash("203.0.113.10")
    assert "203.0.113.9" not in forms_views.address_hash("203.0.113.9")


def test_behind_a_trusted_proxy_the_forwarded_address_is_the_residents(settings):
    request = RequestFactory().post(
        URL, REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.9"
    )
    assert forms_views.client_address(request) == "10.0.0.2"
    settings.CHANNELS_TRUSTED_PROXY_COUNT = 1
    # The left-most entry is whatever the client claimed; only our proxy's entry counts.
    assert forms_views.client_address(request) == "203.0.113.9"


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"full_name": ""}, "full_name", "Enter an answer for “Your name”"),
        ({"details": "   "}, "details", "Enter an answer for “Describe the problem”"),
        ({"email": "priya@"}, "email", "Enter an email address in the correct format"),
        ({"email": "priya at example.net"}, "email", "Enter an email address in the correct"),
        ({"postcode": "NM1"}, "postcode", "Enter a full UK postcode, like SW1A 1AA"),
        ({"phone": "call me"}, "phone", "Enter a UK phone number"),
        ({"problem": "Dragons"}, "problem", "Select one of the answers"),
        ({"case_reference": "CH-" + "1" * 30}, "case_reference", "20 characters or fewer"),
        ({"email": "", "phone": ""}, "email", "Enter an email address or a phone number"),
        ({"details": "nul\x00byte"}, "details", "a character we cannot accept"),
    ],
)
def test_answers_with_problems_show_errors_linked_to_the_fields_and_store_nothing(
    client, webform, django_capture_on_commit_callbacks, changes, field, message
):
    response = send(client, django_capture_on_commit_callbacks, {**ANSWERS, **changes})
    assert response.status_code == 200
    html = response.content.decode()
    assert errors_of(response) == [f"field-{field}"]
    assert "There is a problem" in html and message in html
    assert f'id="field-{field}-error"' in html
    assert re.search(rf'aria-describedby="[^"]*field-{field}-error"', html)
    assert html.count('aria-invalid="true"') == 1
    assert response.context["errors"][0].definition.name == field
    assert InboundMessage.objects.count() == 0


def test_an_oversized_form_is_413(client, webform, settings, django_capture_on_commit_callbacks):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    response = send(
        client, django_capture_on_commit_callbacks, {**ANSWERS, "details": "x" * 20_000}
    )
    assert response.status_code == 413
    assert b"Your form is too large to send" in response.content
    assert InboundMessage.objects.count() == 0


def test_a_body_found_too_large_while_parsing_is_413_not_500(webform, settings):
    # No trustworthy Content-Length (chunked, or a lie): Django's parser finds the size.
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    request = RequestFactory().post(URL, {"details": "x" * 20_000, "form_token": "t"})
    request.META["CONTENT_LENGTH"] = "100"
    response = forms_views.public_form(request, slug=webform.slug)
    assert response.status_code == 413


@pytest.mark.parametrize(
    ("content_type", "body", "reason"),
    [
        ("application/json", b'{"details": "hi"}', b"Send the form as an HTML form post"),
        ("text/plain", b"details=hi", b"Send the form as an HTML form post"),
        ("multipart/form-data", b"--no-boundary-declared", b"malformed"),
    ],
)
def test_malformed_bodies_are_400_with_a_reason(client, webform, content_type, body, reason):
    response = client.generic("POST", URL, body, content_type=content_type)
    assert response.status_code == 400
    assert reason in response.content
    assert InboundMessage.objects.count() == 0


def test_too_many_fields_is_400_with_a_reason(client, webform, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 20
    response = client.post(URL, {f"f{n}": "x" for n in range(50)})
    assert response.status_code == 400
    assert b"too many fields" in response.content


# --- Embedding and CSRF --------------------------------------------------------------------


def test_a_post_from_the_council_website_with_a_token_is_stored(
    client, webform, django_capture_on_commit_callbacks
):
    response = send(client, django_capture_on_commit_callbacks, HTTP_ORIGIN=COUNCIL_SITE)
    assert response.status_code == 200 and b"Form sent" in response.content
    message = InboundMessage.objects.get()
    assert json.loads(bytes(message.raw))["origin"] == COUNCIL_SITE


def test_a_plain_form_on_the_council_website_lands_on_check_your_answers(
    client, webform, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(URL, ANSWERS, HTTP_ORIGIN=COUNCIL_SITE)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Check your answers, then send the form." in html
    assert 'value="Priya Shah"' in html and "There is a problem" not in html
    assert InboundMessage.objects.count() == 0
    # Sending from our page stores it.
    send(client, django_capture_on_commit_callbacks, token=token_from(response))
    assert InboundMessage.objects.count() == 1


def test_a_post_from_another_website_is_403_and_nothing_is_stored(
    client, webform, django_capture_on_commit_callbacks
):
    for origin in ("https://evil.example", "null", "https://www.northmoor.gov.uk.evil.example"):
        response = send(client, django_capture_on_commit_callbacks, HTTP_ORIGIN=origin)
        assert response.status_code == 403, origin
        assert response["Content-Security-Policy"].startswith("frame-ancestors 'self'")
    assert InboundMessage.objects.count() == 0


def test_a_same_origin_post_is_accepted(client, webform, django_capture_on_commit_callbacks):
    response = send(client, django_capture_on_commit_callbacks, HTTP_ORIGIN="http://testserver")
    assert response.status_code == 200
    assert InboundMessage.objects.count() == 1


def test_csrf_is_still_enforced_everywhere_else(webform, django_capture_on_commit_callbacks):
    strict = Client(enforce_csrf_checks=True)
    login = strict.post(
        "/accounts/login/", {"login": "someone@example.org", "password": "anything"}
    )
    assert login.status_code == 403
    # The form itself needs no CSRF cookie: its signed token does that job.
    response = send(strict, django_capture_on_commit_callbacks)
    assert response.status_code == 200
    assert InboundMessage.objects.count() == 1
    assert "csrftoken" not in response.cookies


# --- The adapter and the form definition ---------------------------------------------------


def test_parse_reads_sender_reference_and_labelled_lines():
    payload = {
        "form": "report-a-problem",
        "title": "Report a problem",
        "fields": {
            "name": "Sam",
            "phone": "07700 900123",
            "details": "See ch-42 please",
            "ok": True,
        },
        "definition": [
            {"name": "name", "label": "Name", "type": "text"},
            {"name": "phone", "label": "Phone", "type": "phone"},
            {"name": "details", "label": "Details", "type": "textarea"},
            {"name": "ok", "label": "Agree", "type": "checkbox"},
        ],
        "submitted_at": "2025-03-04T10:15:00+00:00",
        "ip_hash": "abc",
    }
    parsed = parse_submission(json.dumps(payload).encode())
    assert (parsed.sender_kind, parsed.sender_value, parsed.sender_name) == (
        "phone",
        "07700 900123",
        "Sam",
    )
    assert parsed.thread_number == 42 and parsed.is_public is False
    assert parsed.subject == "Report a problem"
    assert parsed.body_text == (
        "Name: Sam\nPhone: 07700 900123\nDetails: See ch-42 please\nAgree: Yes"
    )
    assert parsed.sent_at.year == 2025
    with pytest.raises(ValueError):
        parse_submission(b'{"form": "x"}')


@pytest.mark.parametrize(
    ("fields", "origins", "problem"),
    [
        ([{"name": "details", "label": "Details", "type": "textarea"}], [], "email or a phone"),
        (
            [{"name": "email", "label": "A", "type": "email"}] * 2,
            [],
            "used twice",
        ),
        ([{"name": "Email Address", "label": "A", "type": "email"}], [], "lower-case letters"),
        ([{"name": "email", "label": "A", "type": "date"}], [], "type must be one of"),
        ([{"name": "homepage", "label": "A", "type": "email"}], [], "used by the form page"),
        (
            [{"name": "email", "label": "A", "type": "email", "requried": True}],
            [],
            "unknown keys requried",
        ),
        (
            [
                {"name": "email", "label": "A", "type": "email"},
                {"name": "kind", "label": "Kind", "type": "select"},
            ],
            [],
            "distinct, non-empty choices",
        ),
        ([], [], "non-empty JSON list"),
        (QUESTIONS, ["https://www.northmoor.gov.uk/contact"], "Not an origin"),
        (QUESTIONS, ["*"], "Not an origin"),
        (QUESTIONS, ["https://a.example; script-src *"], "Not an origin"),
    ],
)
def test_form_definitions_are_checked(webform, fields, origins, problem):
    webform.fields = fields
    webform.allowed_origins = origins
    with pytest.raises(ValidationError) as caught:
        webform.full_clean()
    assert problem in str(caught.value)


def test_allowed_origins_are_normalised(webform):
    webform.allowed_origins = ["HTTPS://WWW.Northmoor.gov.uk/", "http://localhost:8080"]
    webform.full_clean()
    assert webform.allowed_origins == [COUNCIL_SITE, "http://localhost:8080"]


def test_the_admin_change_page_shows_how_to_embed_the_form(admin_client, webform):
    response = admin_client.get(f"/admin/channels/webform/{webform.pk}/change/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Embedding this form on the council" in html
    assert "&lt;iframe src=&quot;http://testserver/forms/report-a-problem/&quot;" in html
    assert "name=&quot;details&quot;" in html
