"""A fake of GOV.UK Notify's HTTP API: a real HTTP server on 127.0.0.1 for tests.

It does what Notify does with POST /v2/notifications/sms, in Notify's order:
1. authenticates the client's JWT: `Authorization: Bearer <jwt>`, HS256, signed with the
   secret part of the API key (`<key name>-<service id>-<secret>`), `iss` = service id,
   `iat` within 30 seconds of the server's clock (401 without a token, 403 otherwise);
2. applies the per-minute rate limit on a rolling (sliding) 60-second window: 429
   RateLimitError once `limit_per_minute` texts were accepted in the last 60 seconds;
3. validates the request (400 ValidationError / BadRequestError): phone_number a UK mobile,
   template_id a known template, every ((placeholder)) personalised, at most 918
   characters once rendered;
4. answers 201 with id, reference, content {body, from_number}, uri, template.

Errors have Notify's shape: {"status_code": n, "errors": [{"error": type, "message": ...}]}.
`fail_with(500)` (or 503, 429, ...) makes it answer that instead, as an outage would.
Every request is recorded (`requests`), every accepted text too (`sent`). The clocks are
injectable so rate-limit tests need not wait a minute.

    with FakeNotify(limit_per_minute=3000) as notify:
        client = NotificationsAPIClient(notify.api_key, base_url=notify.base_url)
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt

DEFAULT_TEMPLATE_ID = "f33517ff-2a88-4f6e-b855-c550268ce08a"
JWT_CLOCK_SKEW_SECONDS = 30
MAX_SMS_CHARACTERS = 918
MAX_REQUEST_BYTES = 1024 * 1024
_PLACEHOLDER = re.compile(r"\(\(([^()]+)\)\)")
_PHONE_JUNK = re.compile(r"[\s().\-]")


class SlidingWindowLimiter:
    """At most `limit` events in any `window_seconds`: Notify's rolling per-minute limit."""

    def __init__(
        self,
        limit: int,
        *,
        window_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if limit < 1:
            raise ValueError("the limit must be at least 1")
        self.limit = limit
        self.window_seconds = window_seconds
        self.clock = clock
        self._events: deque[float] = deque()
        self._lock = threading.Lock()

    def _expire(self, now: float) -> None:
        while self._events and self._events[0] <= now - self.window_seconds:
            self._events.popleft()

    def try_acquire(self) -> bool:
        with self._lock:
            now = self.clock()
            self._expire(now)
            if len(self._events) >= self.limit:
                return False
            self._events.append(now)
            return True

    def in_window(self) -> int:
        with self._lock:
            self._expire(self.clock())
            return len(self._events)


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int = 0  # what the fake answered
    claims: dict | None = None  # the verified JWT claims; None if authentication failed

    def json(self) -> object:
        return json.loads(self.body)


@dataclass
class SentText:
    id: str
    phone_number: str
    template_id: str
    personalisation: dict
    reference: str | None
    sms_sender_id: str | None
    body: str
    created_at: float = field(default_factory=time.time)


class NotifyError(Exception):
    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error, self.message = status, error, message

    def payload(self) -> dict:
        return {
            "status_code": self.status,
            "errors": [{"error": self.error, "message": self.message}],
        }


class FakeNotify:
    """The fake Notify API. Use as a context manager, or call start() and stop()."""

    def __init__(
        self,
        *,
        key_name: str = "citizenhub_test",
        service_id: str | None = None,
        secret: str | None = None,
        templates: dict[str, str] | None = None,
        from_number: str = "NORTHMOOR",
        limit_per_minute: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.key_name = key_name
        self.service_id = service_id or str(uuid.uuid4())
        self.secret = secret or str(uuid.uuid4())
        self.templates = templates if templates is not None else {DEFAULT_TEMPLATE_ID: "((body))"}
        self.from_number = from_number
        self.clock = clock
        self.wall_clock = wall_clock
        self.requests: list[RecordedRequest] = []
        self.sent: list[SentText] = []
        self._limiter: SlidingWindowLimiter | None = None
        self.limit_per_minute = limit_per_minute
        self._failure: tuple[int, int | None] | None = None
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- configuration ---------------------------------------------------------------
    @property
    def api_key(self) -> str:
        return f"{self.key_name}-{self.service_id}-{self.secret}"

    @property
    def limit_per_minute(self) -> int | None:
        return self._limiter.limit if self._limiter else None

    @limit_per_minute.setter
    def limit_per_minute(self, limit: int | None) -> None:
        self._limiter = SlidingWindowLimiter(limit, clock=self.clock) if limit else None

    def fail_with(self, status: int | None, *, times: int | None = None) -> None:
        """Answer every request (or the next `times`) with `status`; None to recover."""
        with self._lock:
            self._failure = (status, times) if status else None

    # --- server ----------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the fake Notify server is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> FakeNotify:
        handler = type("FakeNotifyHandler", (_Handler,), {"fake": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-notify",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)
            self._server = None

    def __enter__(self) -> FakeNotify:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- what Notify would post back ---------------------------------------------------
    def delivery_receipt(self, notification_id: str, status: str) -> dict:
        """The delivery-receipt callback body Notify posts for one of the texts sent."""
        text = next(t for t in self.sent if t.id == notification_id)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime(self.wall_clock()))
        return {
            "id": text.id,
            "reference": text.reference,
            "to": text.phone_number,
            "status": status,
            "created_at": stamp,
            "completed_at": stamp,
            "sent_at": stamp,
            "notification_type": "sms",
            "template_id": text.template_id,
            "template_version": 1,
        }

    # --- request handling ------------------------------------------------------------
    def handle(self, recorded: RecordedRequest) -> tuple[int, dict]:
        with self._lock:
            self.requests.append(recorded)
        try:
            self._forced_failure()
            if recorded.method != "POST" or recorded.path != "/v2/notifications/sms":
                raise NotifyError(404, "NotFound", "Not Found")
            recorded.claims = self._authenticate(recorded.headers.get("authorization", ""))
            if self._limiter is not None and not self._limiter.try_acquire():
                raise NotifyError(
                    429,
                    "RateLimitError",
                    f"Exceeded rate limit for key type LIVE of {self._limiter.limit} "
                    "requests per 60 seconds",
                )
            status, payload = 201, self._send_sms(recorded.body)
        except NotifyError as exc:
            status, payload = exc.status, exc.payload()
        recorded.status = status
        return status, payload

    def _forced_failure(self) -> None:
        with self._lock:
            if self._failure is None:
                return
            status, times = self._failure
            if times is not None:
                self._failure = (status, times - 1) if times > 1 else None
        if status == 429:
            raise NotifyError(429, "RateLimitError", "Exceeded rate limit (forced by the test)")
        raise NotifyError(status, "Exception", "Internal server error")

    def _authenticate(self, header: str) -> dict:
        scheme, _, token = header.partition(" ")
        if scheme != "Bearer" or not token:
            raise NotifyError(
                401, "AuthError", "Unauthorized: authentication token must be provided"
            )
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
            if jwt.get_unverified_header(token).get("alg") != "HS256":
                raise NotifyError(403, "AuthError", "Invalid token: algorithm used is not HS256")
        except jwt.PyJWTError:
            raise NotifyError(403, "AuthError", "Invalid token: signature") from None
        if unverified.get("iss") != self.service_id:
            raise NotifyError(403, "AuthError", "Invalid token: service not found")
        try:
            claims = jwt.decode(
                token,
                key=self.secret,
                algorithms=["HS256"],
                options={"require": ["iss", "iat"], "verify_iat": False},
            )
        except jwt.PyJWTError:
            raise NotifyError(403, "AuthError", "Invalid token: API key not found") from None
        if not isinstance(claims["iat"], int | float) or (
            abs(self.wall_clock() - claims["iat"]) > JWT_CLOCK_SKEW_SECONDS
        ):
            raise NotifyError(
                403, "AuthError", "Error: Your system clock must be accurate to within 30 seconds"
            )
        return claims

    def _send_sms(self, body: bytes) -> dict:
        try:
            data = json.loads(body)
        except ValueError:
            raise NotifyError(
                400, "BadRequestError", "Invalid JSON supplied in POST data"
            ) from None
        if not isinstance(data, dict):
            raise NotifyError(400, "ValidationError", "POST data is not a JSON object")
        for name in ("phone_number", "template_id"):
            if not isinstance(data.get(name), str):
                raise NotifyError(400, "ValidationError", f"{name} is a required property")
        template = self.templates.get(data["template_id"])
        if template is None:
            raise NotifyError(400, "BadRequestError", "Template not found")
        if not _is_uk_mobile(data["phone_number"]):
            raise NotifyError(400, "ValidationError", "phone_number Not a UK mobile number")
        personalisation = data.get("personalisation") or {}
        missing = [n for n in _PLACEHOLDER.findall(template) if n not in personalisation]
        if missing:
            raise NotifyError(
                400, "BadRequestError", f"Missing personalisation: {', '.join(missing)}"
            )
        rendered = _PLACEHOLDER.sub(lambda m: str(personalisation[m.group(1)]), template)
        if len(rendered) > MAX_SMS_CHARACTERS:
            raise NotifyError(
                400,
                "BadRequestError",
                f"Text messages cannot be longer than {MAX_SMS_CHARACTERS} characters. "
                f"Your message is {len(rendered)} characters long.",
            )
        text = SentText(
            id=str(uuid.uuid4()),
            phone_number=data["phone_number"],
            template_id=data["template_id"],
            personalisation=personalisation,
            reference=data.get("reference"),
            sms_sender_id=data.get("sms_sender_id"),
            body=rendered,
        )
        with self._lock:
            self.sent.append(text)
        base = self.base_url
        return {
            "id": text.id,
            "reference": text.reference,
            "content": {"body": rendered, "from_number": self.from_number},
            "uri": f"{base}/v2/notifications/{text.id}",
            "template": {
                "id": text.template_id,
                "version": 1,
                "uri": f"{base}/services/{self.service_id}/templates/{text.template_id}",
            },
            "scheduled_for": None,
        }


def _is_uk_mobile(number: str) -> bool:
    compact = _PHONE_JUNK.sub("", number)
    for prefix in ("+44", "0044", "44"):
        if compact.startswith(prefix):
            compact = "0" + compact[len(prefix) :].removeprefix("0")
            break
    return bool(re.fullmatch(r"07\d{9}", compact))


class _Handler(BaseHTTPRequestHandler):
    fake: FakeNotify
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self._dispatch()

    def do_GET(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_REQUEST_BYTES:
            self._answer(413, NotifyError(413, "BadRequestError", "Too large").payload())
            return
        body = self.rfile.read(length) if length else b""
        recorded = RecordedRequest(
            method=self.command,
            path=self.path,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
        )
        status, payload = self.fake.handle(recorded)
        self._answer(status, payload)

    def _answer(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass  # tests read `requests`, not stderr
