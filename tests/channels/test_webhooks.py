"""Inbound webhooks at /hooks/<slug>/: Mailgun raw-MIME posts, signed, size-capped, stored once."""

import hashlib
import hmac
import json
import secrets
import time
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from io import BytesIO
from urllib.parse import urlencode

import pytest
from django.core.cache import cache
from django.core.handlers.asgi import ASGIRequest
from django.db import OperationalError

from channels.adapters import registered_kinds
from channels.adapters.email_webhook import MailgunInboundAdapter
from channels.models import Attachment, Channel, InboundMessage
from channels.services.ingest import reprocess_messages
from channels.webhooks import inbound_webhook
from citizenhub.models import Citizen, TimelineEntry
from tests.channels.conftest import PAYLOADS

pytestmark = pytest.mark.django_db

SIGNING_KEY = "key-test-3f6c1d0e9a8b7c6d5e4f3a2b1c0d9e8f"
KEY_VARIABLE = "TEST_MAILGUN_SIGNING_KEY"
BOUNDARY = "mgBoundary4f9c2e1a7b6d"
MULTIPART_TYPE = f"multipart/form-data; boundary={BOUNDARY}"


def payload(name: str) -> dict[str, str]:
    """Form fields of a recorded Mailgun post, without its signature fields."""
    return json.loads((PAYLOADS / "mailgun" / name).read_text(encoding="utf-8"))


def signed(fields: dict, *, key: str = SIGNING_KEY, timestamp=None, token=None) -> dict:
    """Add timestamp, token and signature the way Mailgun does: hex HMAC-SHA256 of
    timestamp + token under the webhook signing key."""
    timestamp = str(int(time.time()) if timestamp is None else timestamp)
    token = token or secrets.token_hex(25)  # Mailgun's tokens are 50 characters
    signature = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    return {**fields, "timestamp": timestamp, "token": token, "signature": signature}


def multipart_body(fields: dict, boundary: str = BOUNDARY) -> bytes:
    lines = []
    for name, value in fields.items():
        data = value if isinstance(value, bytes) else value.encode("utf-8")
        disposition = f'Content-Disposition: form-data; name="{name}"'.encode()
        lines += [f"--{boundary}".encode(), disposition, b"", data]
    lines += [f"--{boundary}--".encode(), b""]
    return b"\r\n".join(lines)


def post(client, fields=None, *, slug="mailgun", path=None, body=None, content_type=None):
    body = multipart_body(fields) if body is None else body
    return client.post(
        path or f"/hooks/{slug}/", data=body, content_type=content_type or MULTIPART_TYPE
    )


@pytest.fixture(autouse=True)
def empty_cache():
    # Used Mailgun tokens live in the cache; no test may see another's.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def mailgun_channel(db, monkeypatch):
    monkeypatch.setenv(KEY_VARIABLE, SIGNING_KEY)
    return Channel.objects.create(
        kind="email-webhook",
        slug="mailgun",
        name="Contact centre (Mailgun)",
        address="contact@northmoor.example",
        settings={"signing_key_env": KEY_VARIABLE, "reply_domain": "in.northmoor.example"},
    )


def assert_error(response, status: int) -> dict:
    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    error = json.loads(response.content)["error"]
    assert error["code"] and error["message"]
    return error


def mock_outage(**kwargs):
    raise OperationalError("could not connect to server")


def assert_nothing_stored() -> None:
    assert InboundMessage.objects.count() == 0
    assert TimelineEntry.objects.count() == 0


def test_the_mailgun_adapter_is_registered():
    assert "email-webhook" in registered_kinds()


@pytest.mark.parametrize("path", ["/hooks/mailgun/", "/hooks/mailgun/mime"])
def test_a_signed_post_is_stored_raw_and_lands_on_the_timeline(
    client, mailgun_channel, django_capture_on_commit_callbacks, path
):
    fields = payload("simple.json")
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, signed(fields), path=path)
    assert response.status_code == 200
    assert response.json() == {"stored": 1, "duplicates": 0}
    message = InboundMessage.objects.get()
    assert bytes(message.raw) == fields["body-mime"].encode("utf-8")
    assert message.external_id == "mid:CAF5678mailgun@mail.example.org"
    assert message.recipients == ["contact@northmoor.example"]
    assert message.status == "processed"
    assert message.sender_value.lower() == "jane.resident@example.org"
    assert "–" in message.body_text  # 8-bit UTF-8 kept byte for byte
    entry = TimelineEntry.objects.get()
    assert entry.citizen == message.citizen and entry.kind == "message_in"
    assert entry.channel == "email" and entry.source == message


def test_an_urlencoded_post_works_too(client, mailgun_channel, django_capture_on_commit_callbacks):
    fields = payload("simple.json")
    with django_capture_on_commit_callbacks(execute=True):
        response = post(
            client,
            body=urlencode(signed(fields)).encode("ascii"),
            content_type="application/x-www-form-urlencoded",
        )
    assert response.status_code == 200
    message = InboundMessage.objects.get()
    assert bytes(message.raw) == fields["body-mime"].encode("utf-8")
    assert message.status == "processed"


def test_every_council_address_in_recipient_is_recorded(
    client, mailgun_channel, django_capture_on_commit_callbacks
):
    fields = {
        **payload("simple.json"),
        "recipient": "contact@northmoor.example, bins@northmoor.example",
    }
    with django_capture_on_commit_callbacks(execute=True):
        assert post(client, signed(fields)).status_code == 200
    message = InboundMessage.objects.get()
    assert message.recipients == ["bins@northmoor.example", "contact@northmoor.example"]


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda f: signed(f, key="key-someone-else"), id="wrong-key"),
        pytest.param(lambda f: {**signed(f), "token": secrets.token_hex(25)}, id="other-token"),
        pytest.param(lambda f: {**signed(f), "timestamp": str(int(time.time()) - 1)}, id="moved"),
        pytest.param(lambda f: {**signed(f), "signature": "0" * 64}, id="zeros"),
        pytest.param(lambda f: {**signed(f), "signature": "not hex, é"}, id="garbage"),
    ],
)
def test_an_invalid_signature_is_refused_and_nothing_stored(
    client, mailgun_channel, django_capture_on_commit_callbacks, tamper
):
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, tamper(payload("simple.json")))
    assert_error(response, 403)
    assert_nothing_stored()


@pytest.mark.parametrize("missing", ["timestamp", "token", "signature"])
def test_a_missing_signature_field_is_refused(client, mailgun_channel, missing):
    fields = signed(payload("simple.json"))
    del fields[missing]
    assert_error(post(client, fields), 403)
    fields = {**signed(payload("simple.json")), missing: ""}
    assert_error(post(client, fields), 403)
    assert_nothing_stored()


def test_a_signature_without_any_field_is_refused(client, mailgun_channel):
    assert_error(post(client, payload("simple.json")), 403)
    assert_nothing_stored()


@pytest.mark.parametrize("offset", [-16 * 60, 16 * 60, -3 * 3600])
def test_a_stale_or_future_timestamp_is_refused(client, mailgun_channel, offset):
    fields = signed(payload("simple.json"), timestamp=int(time.time()) + offset)
    error = assert_error(post(client, fields), 403)
    assert "timestamp" in error["message"]
    assert_nothing_stored()


def test_a_timestamp_within_the_allowed_age_is_accepted(
    client, mailgun_channel, django_capture_on_commit_callbacks
):
    fields = signed(payload("simple.json"), timestamp=int(time.time()) - 14 * 60)
    with django_capture_on_commit_callbacks(execute=True):
        assert post(client, fields).status_code == 200
    assert InboundMessage.objects.count() == 1


def test_a_replayed_post_is_stored_once_and_recorded_once(
    client, mailgun_channel, django_capture_on_commit_callbacks
):
    body = multipart_body(signed(payload("simple.json")))
    with django_capture_on_commit_callbacks(execute=True):
        first = post(client, body=body)
        # The same token again: Mailgun never reuses one, so this is a replay.
        replay = post(client, body=body)
    assert first.json() == {"stored": 1, "duplicates": 0}
    assert replay.status_code == 200 and replay.json() == {"stored": 0, "duplicates": 0}
    # Once the token is forgotten, the (channel, external id) key still refuses it.
    cache.clear()
    with django_capture_on_commit_callbacks(execute=True):
        late = post(client, body=body)
    assert late.status_code == 200 and late.json() == {"stored": 0, "duplicates": 1}
    assert InboundMessage.objects.count() == 1
    assert TimelineEntry.objects.count() == 1
    mailgun_channel.refresh_from_db()
    assert (mailgun_channel.received_count, mailgun_channel.duplicate_count) == (1, 1)


def test_a_captured_signature_cannot_carry_another_message(
    client, mailgun_channel, django_capture_on_commit_callbacks
):
    # Mailgun signs timestamp + token only, not the message: a reused token is refused.
    genuine = signed(payload("simple.json"))
    forged = {
        **payload("html_script.json"),
        **{k: genuine[k] for k in ("timestamp", "token", "signature")},
    }
    with django_capture_on_commit_callbacks(execute=True):
        assert post(client, genuine).json() == {"stored": 1, "duplicates": 0}
        assert post(client, forged).json() == {"stored": 0, "duplicates": 0}
    assert InboundMessage.objects.get().external_id == "mid:CAF5678mailgun@mail.example.org"


def test_unknown_disabled_or_webhookless_channels_are_not_found(
    client, mailgun_channel, email_channel
):
    signed_body = multipart_body(signed(payload("simple.json")))
    assert_error(post(client, body=signed_body, slug="no-such-channel"), 404)
    assert_error(post(client, body=signed_body, slug=email_channel.slug), 404)
    Channel.objects.filter(pk=mailgun_channel.pk).update(enabled=False)
    assert_error(post(client, body=signed_body), 404)
    assert_nothing_stored()


def test_only_post_is_allowed(client, mailgun_channel):
    for response in (client.get("/hooks/mailgun/"), client.put("/hooks/mailgun/")):
        assert_error(response, 405)
        assert response["Allow"] == "POST"


def test_a_declared_length_over_the_limit_is_refused(client, mailgun_channel, settings):
    settings.CHANNELS_MAX_WEBHOOK_BYTES = 1000
    body = multipart_body(signed(payload("simple.json")))
    assert len(body) > 1000
    assert_error(post(client, body=body), 413)
    assert_nothing_stored()


@pytest.mark.parametrize("declared", [None, "200"], ids=["chunked", "understated"])
def test_a_body_longer_than_declared_is_cut_off_at_the_limit(mailgun_channel, settings, declared):
    # Under ASGI the body stream is not bounded by Content-Length (and chunked bodies have
    # none): the view must stop reading at the limit itself.
    settings.CHANNELS_MAX_WEBHOOK_BYTES = 1000
    body = multipart_body(signed(payload("simple.json")))
    headers = [(b"host", b"testserver"), (b"content-type", MULTIPART_TYPE.encode())]
    if declared:
        headers.append((b"content-length", declared.encode()))
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/hooks/mailgun/",
        "query_string": b"",
        "headers": headers,
        "server": ("testserver", 80),
    }
    response = inbound_webhook(ASGIRequest(scope, BytesIO(body)), "mailgun")
    assert_error(response, 413)
    assert_nothing_stored()


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        pytest.param(b'{"body-mime": "x"}', "application/json", id="json"),
        pytest.param(b"", MULTIPART_TYPE, id="empty"),
        pytest.param(b"no boundary at all", MULTIPART_TYPE, id="no-boundary-in-body"),
        pytest.param(b"--other\r\n\r\n", "multipart/form-data", id="no-boundary-param"),
        pytest.param(
            multipart_body({"recipient": "contact@northmoor.example"})[:-20],
            MULTIPART_TYPE,
            id="truncated",
        ),
        pytest.param(
            f"--{BOUNDARY}\r\nContent-Type: text/plain\r\n\r\nx\r\n--{BOUNDARY}--\r\n".encode(),
            MULTIPART_TYPE,
            id="unnamed-part",
        ),
        pytest.param(
            "token=caf\u00e9".encode(), "application/x-www-form-urlencoded", id="not-ascii"
        ),
    ],
)
def test_a_body_that_is_not_a_form_is_a_bad_request(client, mailgun_channel, body, content_type):
    assert_error(post(client, body=body, content_type=content_type), 400)
    assert_nothing_stored()


def test_a_signed_post_without_body_mime_is_a_bad_request(client, mailgun_channel):
    fields = signed(payload("simple.json"))
    del fields["body-mime"]
    error = assert_error(post(client, fields), 400)
    assert "mime" in error["message"]
    assert_nothing_stored()


def test_a_30_mb_email_is_kept_with_its_large_attachment_refused_by_policy(
    client, mailgun_channel, django_capture_on_commit_callbacks, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path
    message = MIMEMultipart()
    message["From"] = "big@example.org"
    message["To"] = "contact@northmoor.example"
    message["Subject"] = "Photos of the pothole"
    message["Message-ID"] = "<big-webhook-1@example.org>"
    message.attach(MIMEText("Photos attached."))
    # 23 MiB of picture is over 30 MB once base64-encoded in the e-mail.
    picture = b"\x89PNG\r\n\x1a\n" + b"0" * (23 * 1024 * 1024)
    message.attach(MIMEApplication(picture, Name="huge.png"))
    mime = message.as_bytes()
    fields = signed({**payload("simple.json"), "body-mime": mime})
    body = multipart_body(fields)
    assert 30_000_000 < len(body) <= settings.CHANNELS_MAX_WEBHOOK_BYTES
    assert len(body) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE  # request.POST would refuse it
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, body=body)
    assert response.status_code == 200 and response.json()["stored"] == 1
    stored = InboundMessage.objects.get()
    assert stored.status == "processed" and stored.raw_size == len(mime)
    attachment = Attachment.objects.get()
    assert attachment.filename == "huge.png" and attachment.size == len(picture)
    assert "MB limit" in attachment.rejected_reason and not attachment.file
    assert TimelineEntry.objects.count() == 1


def test_html_with_scripts_is_never_stored_unsanitised(
    client, mailgun_channel, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        assert post(client, signed(payload("html_script.json"))).status_code == 200
    message = InboundMessage.objects.get()
    assert message.status == "processed"
    assert "mattress" in message.body_html and "mattress" in message.body_text
    for unsafe in ("<script", "alert", "onclick", "javascript:", "<img", "<style"):
        assert unsafe not in message.body_html
    assert b"<script>" in bytes(message.raw)  # the original lives only inside `raw`


def test_an_outage_answers_503_so_the_provider_retries(client, mailgun_channel, monkeypatch):
    monkeypatch.setattr("channels.webhooks.store_raw_messages", mock_outage)
    response = post(client, signed(payload("simple.json")))
    assert_error(response, 503)
    assert response["Retry-After"]
    assert_nothing_stored()


# The longest boundary RFC 2046 allows, quoted: its Content-Type no longer fits the
# 100 characters of raw_content_type.
LONG_BOUNDARY = "mg" + "7" * 68


@pytest.mark.parametrize(
    ("boundary", "content_type"),
    [
        pytest.param(BOUNDARY, MULTIPART_TYPE, id="short"),
        pytest.param(
            LONG_BOUNDARY, f'multipart/form-data; boundary="{LONG_BOUNDARY}"', id="cut-off"
        ),
    ],
)
def test_a_crash_while_unpacking_keeps_the_request_and_processes_it(
    client, mailgun_channel, django_capture_on_commit_callbacks, monkeypatch, boundary, content_type
):
    def crash(self, request):
        raise RuntimeError("bug in the adapter")

    monkeypatch.setattr(MailgunInboundAdapter, "parse_webhook", crash)
    body = multipart_body(signed(payload("simple.json")), boundary=boundary)
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, body=body, content_type=content_type)
    assert response.status_code == 202
    assert response.json() == {"kept": True, "stored": 1, "duplicates": 0}
    kept = InboundMessage.objects.get()
    assert bytes(kept.raw) == body
    assert kept.raw_content_type == content_type[:100]
    assert kept.external_id == f"request-sha256:{hashlib.sha256(body).hexdigest()}"
    # The pipeline unpacked the kept request through the adapter's parse.
    assert kept.status == "processed", kept.last_error
    assert kept.message_id == "CAF5678mailgun@mail.example.org"
    assert kept.recipients == ["contact@northmoor.example"]
    assert TimelineEntry.objects.get().source == kept


def test_a_kept_request_with_a_bad_signature_is_never_processed(
    client, mailgun_channel, django_capture_on_commit_callbacks, monkeypatch
):
    def crash(self, request):
        raise RuntimeError("bug in the adapter")

    monkeypatch.setattr(MailgunInboundAdapter, "parse_webhook", crash)
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, signed(payload("simple.json"), key="key-forged"))
    assert response.status_code == 202
    kept = InboundMessage.objects.get()
    assert kept.status == "failed" and "signature does not match" in kept.last_error
    assert Citizen.objects.count() == 0 and TimelineEntry.objects.count() == 0


def test_a_missing_signing_key_keeps_the_mail_until_the_operator_fixes_it(
    client, mailgun_channel, django_capture_on_commit_callbacks, monkeypatch
):
    monkeypatch.delenv(KEY_VARIABLE)
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, signed(payload("simple.json")))
    assert response.status_code == 202
    kept = InboundMessage.objects.get()
    assert kept.status == "failed" and KEY_VARIABLE in kept.last_error
    assert TimelineEntry.objects.count() == 0

    monkeypatch.setenv(KEY_VARIABLE, SIGNING_KEY)
    with django_capture_on_commit_callbacks(execute=True):
        assert reprocess_messages(message_ids=[kept.pk]) == 1
    kept.refresh_from_db()
    assert kept.status == "processed"
    assert TimelineEntry.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_retry_after_a_failed_store_is_not_taken_for_a_replay(
    client, mailgun_channel, monkeypatch
):
    # Real commits here: the token is marked used only when the store commits, and the
    # claim a failed attempt leaves lapses long before Mailgun's first retry (10 minutes).
    from channels import webhooks

    monkeypatch.setattr("channels.adapters.email_webhook.TOKEN_CLAIM_SECONDS", 1)
    real_store = webhooks.store_raw_messages
    monkeypatch.setattr(webhooks, "store_raw_messages", mock_outage)
    body = multipart_body(signed(payload("simple.json")))
    assert_error(post(client, body=body), 503)
    assert InboundMessage.objects.count() == 0

    monkeypatch.setattr(webhooks, "store_raw_messages", real_store)
    time.sleep(1.1)
    response = post(client, body=body)
    assert response.status_code == 200 and response.json() == {"stored": 1, "duplicates": 0}
    assert InboundMessage.objects.get().status == "processed"
    assert post(client, body=body).json() == {"stored": 0, "duplicates": 0}


@pytest.mark.django_db(transaction=True)
def test_stored_mail_is_acknowledged_even_if_queueing_it_fails(
    client, mailgun_channel, monkeypatch
):
    from kombu.exceptions import OperationalError as BrokerError

    def broker_down(ids):
        raise BrokerError("Error 111 connecting to redis:6379. Connection refused.")

    monkeypatch.setattr("channels.services.ingest._enqueue_ingest", broker_down)
    body = multipart_body(signed(payload("simple.json")))
    response = post(client, body=body)
    # Committed: a retry would only be a duplicate. The stale-message sweep queues it later.
    assert response.status_code == 200 and response.json() == {"stored": 1, "duplicates": 0}
    assert InboundMessage.objects.get().status == "received"
    assert post(client, body=body).json() == {"stored": 0, "duplicates": 0}
