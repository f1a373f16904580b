"""The inbound webhook endpoint, /hooks/<channel-slug>/: size limits, adapter, raw storage.

What the endpoint answers, and why:
- POST delivers messages. GET is a provider's verification handshake (Facebook's
  hub.challenge), answered by the adapter or refused with 405. Unknown or disabled
  channel, or a channel kind that takes no webhooks: 404. All errors are JSON
  `{"error": {"code", "message"}}`.
- /hooks/<slug>/status/ takes delivery receipts (SMS providers): the adapter verifies and
  reads them, the outbound service applies them; receipts for messages we do not know are
  logged and answered 200 so the provider stops retrying.
- Size: a Content-Length above settings.CHANNELS_MAX_WEBHOOK_BYTES is refused with 413
  before anything is read. The body is then read here with a hard cap of that many bytes,
  so a body longer than its Content-Length or without one (chunked; under ASGI the stream
  is not bounded by Content-Length) also ends in 413, never in unbounded memory. The
  capped bytes become `request.body`; adapters parse forms from it themselves, because
  `request.POST` applies DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB) to form fields and would
  refuse a large e-mail posted as a field.
- `adapter.parse_webhook(request)` and `store_raw_messages(...)` run in one transaction,
  so work an adapter defers to commit (Mailgun's used-token cache) happens only when the
  messages are safely stored. WebhookRejected answers its status; nothing is stored.
  Success answers 200 `{"stored": n, "duplicates": m}`: a redelivery or replay is a 200
  with nothing new stored, so the provider stops retrying.
- Outages (database, Redis, broker) answer 503 with Retry-After and nothing kept: the
  provider retries (Mailgun retries anything but 200 and 406 for 8 hours). If the
  messages were committed and only queueing them for processing failed, the answer is
  200: the stale-message sweep picks them up.
- Any other exception while unpacking or storing is a bug or a misconfiguration (say, the
  signing key's variable is empty), not the sender's fault, and must not lose the
  message: the raw request body is kept as an InboundMessage with the request's
  Content-Type as raw_content_type and external id "request-sha256:<hex of the body>"
  (a redelivery of the same bytes is stored once), and the answer is 202 `{"kept": true}`.
  The pipeline hands it to the adapter's `parse`, which can unpack a kept request (the
  Mailgun adapter does, checking the signature against the time it was received); if
  that fails too, the message is marked failed with the traceback, visible to staff and
  reprocessable once fixed. If even keeping it fails, the error propagates (500) and
  the provider's retry is the safety net.
"""

from __future__ import annotations

import hashlib
import logging
from io import BytesIO

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse, UnreadablePostError
from django.views.decorators.csrf import csrf_exempt

from channels.adapters import ChannelAdapter, RawInbound, WebhookRejected, adapter_for
from channels.models import Channel
from channels.services.ingest import StoredBatch, store_raw_messages
from channels.services.outbound import record_delivery_reports
from citizenhub.middleware import OUTAGE_ERRORS

logger = logging.getLogger(__name__)

_READ_CHUNK = 1024 * 1024
_ERROR_CODES = {
    400: "bad_request",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    503: "service_unavailable",
}


class _BodyTooLarge(Exception):
    pass


def _error(status: int, message: str) -> JsonResponse:
    code = _ERROR_CODES.get(status, "rejected")
    return JsonResponse({"error": {"code": code, "message": message}}, status=status)


def _too_large(limit: int) -> JsonResponse:
    return _error(413, f"Webhook bodies are limited to {limit} bytes.")


def _read_capped(request: HttpRequest, limit: int) -> bytes:
    """Read the body, refusing it as soon as it exceeds `limit` bytes."""
    body = bytearray()
    while True:
        chunk = request.read(min(_READ_CHUNK, limit + 1 - len(body)))
        if not chunk:
            return bytes(body)
        body += chunk
        if len(body) > limit:
            raise _BodyTooLarge


def _use_as_body(request: HttpRequest, body: bytes) -> None:
    # What HttpRequest.body does after reading, minus its DATA_UPLOAD_MAX_MEMORY_SIZE check:
    # from here on request.body (and request.read()) give the capped body we read.
    request._body = body
    request._stream = BytesIO(body)


def _checked_body(request: HttpRequest) -> bytes | JsonResponse:
    """The request body read under the size cap, or the error response to send instead."""
    limit = settings.CHANNELS_MAX_WEBHOOK_BYTES
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return _error(400, "Content-Length is not a number.")
    if declared > limit:
        return _too_large(limit)
    try:
        body = _read_capped(request, limit)
    except _BodyTooLarge:
        logger.warning("webhook %s: body over %s bytes refused while reading", request.path, limit)
        return _too_large(limit)
    except UnreadablePostError:
        return _error(400, "The request body could not be read.")
    _use_as_body(request, body)
    return body


def _channel_and_adapter(slug: str) -> tuple[Channel, ChannelAdapter] | JsonResponse:
    channel = Channel.objects.filter(slug=slug, enabled=True).first()
    if channel is None:
        return _error(404, "No enabled channel has this address.")
    try:
        return channel, adapter_for(channel)
    except LookupError:
        return _error(404, "This channel takes no webhooks.")


def _unavailable(slug: str, exc: Exception) -> JsonResponse:
    logger.error("webhook %s: service unavailable, provider will retry: %r", slug, exc)
    response = _error(503, "A service CitizenHub depends on is unavailable; retry later.")
    response["Retry-After"] = "60"
    return response


@csrf_exempt
def inbound_webhook(request: HttpRequest, slug: str) -> HttpResponse:
    if request.method not in ("POST", "GET"):
        response = _error(405, "Webhooks are delivered with POST.")
        response["Allow"] = "POST"
        return response
    found = _channel_and_adapter(slug)
    if isinstance(found, JsonResponse):
        return found
    channel, adapter = found
    if request.method == "GET":
        try:
            return adapter.webhook_handshake(request)
        except WebhookRejected as exc:
            response = _error(exc.status, exc.reason)
            if exc.status == 405:
                response["Allow"] = "POST"
            return response
    body = _checked_body(request)
    if isinstance(body, JsonResponse):
        return body
    try:
        return _receive(channel, adapter, request, body)
    except OUTAGE_ERRORS as exc:
        return _unavailable(slug, exc)


@csrf_exempt
def delivery_status_webhook(request: HttpRequest, slug: str) -> JsonResponse:
    if request.method != "POST":
        response = _error(405, "Delivery receipts are delivered with POST.")
        response["Allow"] = "POST"
        return response
    found = _channel_and_adapter(slug)
    if isinstance(found, JsonResponse):
        return found
    channel, adapter = found
    body = _checked_body(request)
    if isinstance(body, JsonResponse):
        return body
    try:
        # One transaction: a provider's replay token is marked used only when its reports
        # were recorded, so a retry after an outage is not refused as a replay.
        with transaction.atomic():
            reports = adapter.parse_status_callback(request)
            applied = record_delivery_reports(channel=channel, reports=reports)
    except WebhookRejected as exc:
        logger.warning("status %s: rejected %s: %s", slug, exc.status, exc.reason)
        return _error(exc.status, exc.reason)
    except OUTAGE_ERRORS as exc:
        return _unavailable(slug, exc)
    return JsonResponse({"updated": applied.updated, "unknown": applied.unknown})


def _receive(
    channel: Channel, adapter: ChannelAdapter, request: HttpRequest, body: bytes
) -> HttpResponse:
    committed: list[bool] = []
    try:
        with transaction.atomic():
            # Registered first, so it runs before any other commit callback can fail.
            transaction.on_commit(lambda: committed.append(True))
            raws = adapter.parse_webhook(request)
            batch = store_raw_messages(channel=channel, raws=raws)
    except WebhookRejected as exc:
        logger.warning("webhook %s: rejected %s: %s", channel.slug, exc.status, exc.reason)
        return _error(exc.status, exc.reason)
    except Exception as exc:
        if committed:
            logger.exception("webhook %s: stored, but queueing for processing failed", channel.slug)
            return _stored(adapter, batch)
        if isinstance(exc, OUTAGE_ERRORS):
            raise
        logger.exception("webhook %s: could not unpack or store; keeping the request", channel.slug)
        return _keep_request(channel, request, body)
    return _stored(adapter, batch)


def _stored(adapter: ChannelAdapter, batch: StoredBatch) -> HttpResponse:
    custom = adapter.webhook_success_response(len(batch.new_ids), batch.duplicates)
    if custom is not None:
        return custom
    return JsonResponse({"stored": len(batch.new_ids), "duplicates": batch.duplicates})


def _keep_request(channel: Channel, request: HttpRequest, body: bytes) -> JsonResponse:
    kept = RawInbound(
        external_id=f"request-sha256:{hashlib.sha256(body).hexdigest()}",
        raw=body,
        content_type=request.META.get("CONTENT_TYPE") or "application/octet-stream",
    )
    batch = store_raw_messages(channel=channel, raws=[kept])
    return JsonResponse(
        {"kept": True, "stored": len(batch.new_ids), "duplicates": batch.duplicates}, status=202
    )
