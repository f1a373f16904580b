"""A fake Mastodon instance on loopback: the REST endpoints Mastodon.py calls for our adapter.

It serves GET /api/v1/notifications (types[], since_id, max_id, min_id, limit, newest first,
as Mastodon paginates), POST /api/v1/statuses (form or JSON, honouring Idempotency-Key),
GET /api/v1/instance, /api/v2/instance and /api/v1/accounts/verify_credentials, checks the
bearer token on every request, and can be told to answer the next requests with an error
(429 with rate-limit headers, 503, ...). Everything it receives is recorded for assertions.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

DEFAULT_LIMIT = 40
MAX_LIMIT = 80
MAX_CHARACTERS = 500


@dataclass
class Received:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def form(self) -> dict:
        if self.headers.get("content-type", "").startswith("application/json"):
            return json.loads(self.body)
        return {k: v[0] if len(v) == 1 else v for k, v in parse_qs(self.body.decode()).items()}


@dataclass
class FakeMastodon:
    token: str
    domain: str = "social.northmoor.example"
    account: dict = field(
        default_factory=lambda: {
            "id": "109000000000000001",
            "username": "northmoor",
            "acct": "northmoor",
            "display_name": "Northmoor Council",
        }
    )
    notifications: list[dict] = field(default_factory=list)
    statuses: list[dict] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    failures: deque = field(default_factory=deque)
    _idempotent: dict[str, dict] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _next_id: int = 113600000000000000

    # --- what tests set up --------------------------------------------------------------

    def add_notification(self, notification: dict) -> dict:
        with self._lock:
            self.notifications.append(notification)
            self.notifications.sort(key=lambda n: int(n["id"]))
        return notification

    def fail_next(self, status: int, count: int = 1) -> None:
        """Answer the next `count` requests with this HTTP status."""
        for _ in range(count):
            self.failures.append(status)

    def posted(self) -> list[dict]:
        """The form fields of every POST /api/v1/statuses received."""
        return [r.form() for r in self.received if (r.method, r.path) == ("POST", STATUSES)]

    def notification_requests(self) -> list[dict[str, list[str]]]:
        return [r.query for r in self.received if r.path == NOTIFICATIONS]

    # --- what the server does -----------------------------------------------------------

    def new_id(self) -> str:
        with self._lock:
            self._next_id += 1000
            return str(self._next_id)

    def handle(self, received: Received) -> tuple[int, dict[str, str], object]:
        self.received.append(received)
        if self.failures:
            status = self.failures.popleft()
            headers = {}
            if status == 429:
                reset = datetime.now(UTC) + timedelta(minutes=5)
                headers = {
                    "X-RateLimit-Limit": "300",
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Reset": reset.isoformat(timespec="milliseconds"),
                }
            return status, headers, {"error": "Simulated failure"}
        if received.headers.get("authorization") != f"Bearer {self.token}":
            return 401, {}, {"error": "The access token is invalid"}
        route = (received.method, received.path)
        if route == ("GET", "/api/v1/instance"):
            return 200, {}, {"uri": self.domain, "title": "Northmoor", "version": "4.3.2"}
        if route == ("GET", "/api/v2/instance"):
            return 200, {}, {"domain": self.domain, "version": "4.3.2", "api_versions": {}}
        if route == ("GET", "/api/v1/accounts/verify_credentials"):
            return 200, {}, self.account
        if route == ("GET", NOTIFICATIONS):
            return self._notifications(received.query)
        if route == ("POST", STATUSES):
            return self._post_status(received)
        return 404, {}, {"error": "Record not found"}

    def _notifications(self, query: dict[str, list[str]]) -> tuple[int, dict, object]:
        def bound(name: str) -> int | None:
            return int(query[name][0]) if query.get(name) else None

        types = set(query.get("types[]", []))
        since_id, max_id, min_id = bound("since_id"), bound("max_id"), bound("min_id")
        limit = min(bound("limit") or DEFAULT_LIMIT, MAX_LIMIT)
        with self._lock:
            matching = [
                n
                for n in self.notifications
                if (not types or n["type"] in types)
                and (since_id is None or int(n["id"]) > since_id)
                and (min_id is None or int(n["id"]) > min_id)
                and (max_id is None or int(n["id"]) < max_id)
            ]
        # min_id pages forward from the bound; otherwise the newest page below max_id.
        page = matching[:limit] if min_id is not None else matching[-limit:]
        return 200, {}, list(reversed(page))

    def _post_status(self, received: Received) -> tuple[int, dict, object]:
        form = received.form()
        key = received.headers.get("idempotency-key")
        if key and key in self._idempotent:
            return 200, {}, self._idempotent[key]
        text = form.get("status", "")
        if not text:
            return 422, {}, {"error": "Validation failed: Text can't be blank"}
        if len(text) > MAX_CHARACTERS:
            return 422, {}, {"error": "Validation failed: Text character limit of 500 exceeded"}
        visibility = form.get("visibility", "public")
        if visibility not in ("public", "unlisted", "private", "direct"):
            return 422, {}, {"error": "Validation failed: Visibility is not included in the list"}
        status_id = self.new_id()
        status = {
            "id": status_id,
            "created_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "in_reply_to_id": form.get("in_reply_to_id"),
            "visibility": visibility,
            "content": f"<p>{text}</p>",
            "uri": f"https://{self.domain}/users/northmoor/statuses/{status_id}",
            "account": self.account,
            "mentions": [],
            "media_attachments": [],
        }
        self.statuses.append(status)
        if key:
            self._idempotent[key] = status
        return 200, {}, status


NOTIFICATIONS = "/api/v1/notifications"
STATUSES = "/api/v1/statuses"


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        received = Received(
            method=self.command,
            path=parts.path,
            query=parse_qs(parts.query),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=self.rfile.read(length) if length else b"",
        )
        status, headers, payload = self.server.fake.handle(received)
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _serve

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fake: FakeMastodon) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fake = fake


class RunningFakeMastodon:
    """Start with `with RunningFakeMastodon(fake) as url:`; stops (port closed) on exit."""

    def __init__(self, fake: FakeMastodon) -> None:
        self.fake = fake
        self.server = _Server(fake)
        # A short poll interval: shutting down waits for the loop to notice.
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> str:
        self.thread.start()
        return self.url

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
