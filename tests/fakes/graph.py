"""A fake Facebook Graph API on loopback: the Send API endpoint our Facebook adapter calls.

POST /<version>/<page-id>/messages takes `recipient`, `messaging_type`, `message` and
`access_token` as form fields (JSON-encoded objects inside, as the Send API reference shows)
or as a JSON body. It checks the page access token (Graph's OAuthException code 190 if
wrong), allows one private reply per comment (as Meta does), answers
{"recipient_id", "message_id"}, and can be told to fail the next requests with a status and
Graph error body. Everything it receives is recorded for assertions.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


@dataclass
class SentMessage:
    page_id: str
    recipient: dict
    messaging_type: str
    message: dict
    access_token: str


@dataclass
class FakeGraph:
    page_id: str
    token: str
    version: str = "v19.0"
    sent: list[SentMessage] = field(default_factory=list)
    requests: list[tuple[str, str, bytes]] = field(default_factory=list)
    failures: deque = field(default_factory=deque)
    _replied_comments: set[str] = field(default_factory=set)
    _count: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def fail_next(self, status: int, error: dict | None = None, count: int = 1) -> None:
        """Answer the next `count` requests with this status and Graph error object."""
        for _ in range(count):
            self.failures.append((status, error or {"message": "Simulated", "code": 2}))

    def handle(self, method: str, path: str, content_type: str, body: bytes) -> tuple[int, dict]:
        with self._lock:
            self.requests.append((method, path, body))
            if self.failures:
                status, error = self.failures.popleft()
                return status, {"error": {"type": "OAuthException", **error}}
            if method != "POST" or path != f"/{self.version}/{self.page_id}/messages":
                return 404, _error("Unknown path components", 2500)
            fields = _fields(content_type, body)
            if fields.get("access_token") != self.token:
                return 400, _error("Invalid OAuth access token - Cannot parse access token", 190)
            try:
                recipient = _object(fields.get("recipient"))
                message = _object(fields.get("message"))
            except ValueError:
                return 400, _error("(#100) Param recipient and message must be JSON objects", 100)
            if fields.get("messaging_type") not in ("RESPONSE", "UPDATE", "MESSAGE_TAG"):
                return 400, _error("(#100) Param messaging_type is required", 100)
            if not isinstance(message.get("text"), str) or not message["text"]:
                return 400, _error("(#100) Message text is required", 100)
            comment_id = recipient.get("comment_id")
            if comment_id:
                if comment_id in self._replied_comments:
                    return 400, _error("(#10900) Activity already replied to", 10900)
                self._replied_comments.add(comment_id)
            elif not recipient.get("id"):
                return 400, _error("(#100) Param recipient[id] must be a valid ID", 100)
            self._count += 1
            self.sent.append(
                SentMessage(
                    page_id=self.page_id,
                    recipient=recipient,
                    messaging_type=fields["messaging_type"],
                    message=message,
                    access_token=fields["access_token"],
                )
            )
            return 200, {
                "recipient_id": recipient.get("id", f"psid-for-{comment_id}"),
                "message_id": f"m_fake{self._count:04d}",
            }


def _error(message: str, code: int) -> dict:
    return {"error": {"message": message, "type": "OAuthException", "code": code}}


def _fields(content_type: str, body: bytes) -> dict:
    if content_type.startswith("application/json"):
        return json.loads(body or b"{}")
    return {k: v[0] for k, v in parse_qs(body.decode("utf-8")).items()}


def _object(value: object) -> dict:
    if isinstance(value, str):
        value = json.loads(value)
    if not isinstance(value, dict):
        raise ValueError("not an object")
    return value


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        status, payload = self.server.fake.handle(
            self.command, urlsplit(self.path).path, self.headers.get("Content-Type", ""), body
        )
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _serve

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fake: FakeGraph) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fake = fake


class RunningFakeGraph:
    """`with RunningFakeGraph(fake) as base_url:` gives e.g. "http://127.0.0.1:PORT/v19.0"."""

    def __init__(self, fake: FakeGraph) -> None:
        self.fake = fake
        self.server = _Server(fake)
        # A short poll interval: shutting down waits for the loop to notice.
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> str:
        self.thread.start()
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/{self.fake.version}"

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
