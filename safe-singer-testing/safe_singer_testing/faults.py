"""A fault-injection front: an HTTP proxy (127.0.0.1, ephemeral port) placed before an
emulator that serves, for chosen requests, what a broken network or server serves: an HTML
page with status 200, JSON cut short, a body of the wrong shape, any status with any body and
headers (an absurd ``Retry-After``), or a socket that accepts the request and never answers.

Everything else is forwarded unchanged to the emulator behind it (the ``Host`` header too, so
AWS signatures made for the front's address still verify). Each rule picks its requests with a
matching strategy: ``PathMatch`` (a regular expression on the path, optionally the bytes the
body must hold: Jira's REST paths name the resource) or ``HeaderMatch`` (a request header's
ending: AWS JSON APIs post every operation to ``/`` and name it in ``X-Amz-Target``, see
``aws_operation``). Give a plugin the front's ``url`` instead of the emulator's::

    with JiraEmulator() as jira, FaultFront(jira.url) as front:
        front.add(r"/project/search$", Fault.wrong_shape({}))
        run_tap({**jira.tap_config(), "domain": front.url})

    with FaultFront(stack.streams.url, aws_operation("GetRecords", Fault.never_answer())):
        ...
"""

from __future__ import annotations

import http.client
import json
import re
import threading
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import urlsplit

# answered by this front itself, not copied from the emulator's answer
HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "server"}
AMZ_JSON = "application/x-amz-json-1.0"  # what AWS JSON APIs answer
GATEWAY_PAGE = (
    b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>"
    b"<body><h1>Bad Gateway</h1><p>The proxy could not reach the upstream server.</p>"
    b"</body></html>"
)


@dataclass(frozen=True)
class Fault:
    """What to answer instead of forwarding: status, headers, raw body; or ``hang``; or,
    with ``forward``, the emulator's own answer with ``headers`` added."""

    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    hang: bool = False
    forward: bool = False

    @staticmethod
    def html_page() -> Fault:
        page = b"<!DOCTYPE html><html><body><h1>Sign in to continue</h1></body></html>"
        return Fault(200, (("Content-Type", "text/html;charset=UTF-8"),), page)

    @staticmethod
    def gateway_page(status: int = 200) -> Fault:
        """A proxy's "502 Bad Gateway" HTML page, with ``status``."""
        return Fault(status, (("Content-Type", "text/html"),), GATEWAY_PAGE)

    @staticmethod
    def truncated_json() -> Fault:
        return Fault(200, (("Content-Type", "application/json"),), b'{"values": [{"id": "1')

    @staticmethod
    def cut_short(payload: Any, keep: float = 0.5, content_type: str = AMZ_JSON) -> Fault:
        """The first ``keep`` share of ``payload``'s JSON (at least one byte), status 200."""
        whole = json.dumps(payload).encode()
        return Fault(
            200, (("Content-Type", content_type),), whole[: max(1, int(len(whole) * keep))]
        )

    @staticmethod
    def wrong_shape(body: Any) -> Fault:
        return Fault.json_answer(body)

    @staticmethod
    def json_answer(
        payload: Any, status: int = 200, content_type: str = "application/json"
    ) -> Fault:
        """``payload`` as JSON with ``status`` (an error body, an answer of another shape)."""
        return Fault(status, (("Content-Type", content_type),), json.dumps(payload).encode())

    @staticmethod
    def retry_after(seconds: str, status: int = 429, extra: dict[str, str] | None = None) -> Fault:
        headers = (("Retry-After", seconds), *(extra or {}).items())
        error = {"errorMessages": ["Rate limit exceeded."], "errors": {}}
        return Fault(status, headers, json.dumps(error).encode())

    @staticmethod
    def never_answer() -> Fault:
        return Fault(hang=True)

    @staticmethod
    def added_headers(headers: dict[str, str]) -> Fault:
        return Fault(headers=tuple(headers.items()), forward=True)


class Match(Protocol):
    """A matching strategy: whether a request is one a rule is for."""

    def __call__(self, path: str, headers: Message, body: bytes) -> bool: ...


@dataclass(frozen=True)
class PathMatch:
    """Requests whose path matches ``pattern`` (``re.search``) and whose body holds
    ``body_has`` (``b""``: any body)."""

    pattern: re.Pattern[str]
    body_has: bytes = b""

    def __call__(self, path: str, headers: Message, body: bytes) -> bool:
        return bool(self.pattern.search(path)) and self.body_has in body


@dataclass(frozen=True)
class HeaderMatch:
    """Requests whose header ``name`` ends with ``suffix``."""

    name: str
    suffix: str

    def __call__(self, path: str, headers: Message, body: bytes) -> bool:
        return str(headers.get(self.name, "")).endswith(self.suffix)


@dataclass
class Rule:
    match: Match
    fault: Fault
    times: int | None = None  # None: every matching request
    after: int = 0  # matching requests forwarded untouched before the fault starts
    seen: int = 0
    served: int = 0


def aws_operation(operation: str, fault: Fault, times: int | None = None) -> Rule:
    """A rule for one operation of an AWS JSON API (``X-Amz-Target: <Prefix>.<Operation>``)."""
    return Rule(HeaderMatch("X-Amz-Target", "." + operation), fault, times)


@dataclass
class FrontStats:
    faults_served: int = 0
    forwarded: int = 0
    by_path: dict[str, int] = field(default_factory=dict)


class FaultFront:
    """Start with ``with`` (or ``start()``); ``url`` is the base URL to give a plugin."""

    def __init__(self, upstream: str, *rules: Rule) -> None:
        split = urlsplit(upstream)
        self.upstream_host = split.hostname or "127.0.0.1"
        self.upstream_port = split.port or 80
        self.rules: list[Rule] = list(rules)
        self.stats = FrontStats()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None

    def add(
        self,
        path_pattern: str,
        fault: Fault,
        times: int | None = None,
        after: int = 0,
        body_has: bytes = b"",
    ) -> None:
        """Serve ``fault`` to requests whose path matches (``re.search``) and whose body
        holds ``body_has``, ``times`` times, once ``after`` of them went through untouched."""
        match = PathMatch(re.compile(path_pattern), body_has)
        with self._lock:
            self.rules.append(Rule(match, fault, times, after))

    def fault_for(self, path: str, headers: Message, body: bytes) -> Fault | None:
        """The fault of the first rule for this request still serving, else ``None``."""
        with self._lock:
            self.stats.by_path[path] = self.stats.by_path.get(path, 0) + 1
            for rule in self.rules:
                if not rule.match(path, headers, body):
                    continue
                rule.seen += 1
                if rule.seen > rule.after and (rule.times is None or rule.served < rule.times):
                    rule.served += 1
                    self.stats.faults_served += 1
                    return rule.fault
            self.stats.forwarded += 1
            return None

    def start(self) -> FaultFront:
        handler = type("Handler", (_Handler,), {"front": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()  # releases hanging handlers
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> FaultFront:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._httpd is not None, "start() the front first"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def wait_stopped(self, seconds: float) -> None:
        self._stop.wait(seconds)


class _Handler(BaseHTTPRequestHandler):
    front: FaultFront
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read stats instead."""

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def _serve(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        fault = self.front.fault_for(urlsplit(self.path).path, self.headers, raw)
        if fault is None or fault.forward:
            self._forward(method, raw, list(fault.headers) if fault else [])
        elif fault.hang:
            self.front.wait_stopped(3600)  # the request was read; no answer ever comes
            self.close_connection = True
        else:
            headers = [("Date", self.date_time_string()), *fault.headers]
            self._answer(fault.status, headers, fault.body)

    def _forward(self, method: str, raw: bytes, added: list[tuple[str, str]]) -> None:
        front = self.front
        connection = http.client.HTTPConnection(front.upstream_host, front.upstream_port, 60)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
            connection.request(method, self.path, body=raw or None, headers=headers)
            answer = connection.getresponse()
            body = answer.read()
            kept = [(k, v) for k, v in answer.getheaders() if k.lower() not in HOP_HEADERS]
            self._answer(answer.status, kept + added, body)
        finally:
            connection.close()

    def _answer(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.send_response_only(status)  # the emulator's own Date header, not a second one
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
