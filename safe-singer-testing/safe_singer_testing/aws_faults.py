"""A fault-injection HTTP proxy for AWS JSON APIs (127.0.0.1, ephemeral port), in front of
the DynamoDB Streams emulator. ``faults.py`` matches on the path, which names no operation in
these APIs: here rules match a request header (``X-Amz-Target`` names the operation).

Requests are relayed to the emulator unchanged (the ``Host`` header too, so signatures made
for the proxy's address still verify); a request that a rule matches gets the rule's fault
instead: an HTML page with status 200, a JSON body cut short, JSON of the wrong shape, any
status with any body and headers (an absurd ``Retry-After``, say), or a socket that accepts
the request and never answers. Rules match on a request header (for AWS JSON protocols,
``X-Amz-Target`` names the operation) or on the path, and may apply to the first N matches
only. ``seen`` counts the requests each rule caught.
"""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

HTML_PAGE = (
    b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>"
    b"<body><h1>Bad Gateway</h1><p>The proxy could not reach the upstream server.</p>"
    b"</body></html>"
)


@dataclass
class Fault:
    """What a matched request gets instead of the emulator's answer."""

    status: int = 200
    body: bytes = b""
    content_type: str = "application/x-amz-json-1.0"
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False  # accept the request, never answer

    @classmethod
    def html(cls, status: int = 200) -> Fault:
        return cls(status=status, body=HTML_PAGE, content_type="text/html")

    @classmethod
    def truncated(cls, payload: dict[str, Any], keep: float = 0.5) -> Fault:
        whole = json.dumps(payload).encode()
        return cls(body=whole[: max(1, int(len(whole) * keep))])

    @classmethod
    def json(cls, payload: Any, status: int = 200, **headers: str) -> Fault:
        return cls(status=status, body=json.dumps(payload).encode(), headers=dict(headers))

    @classmethod
    def never_answers(cls) -> Fault:
        return cls(hang=True)


@dataclass
class Rule:
    fault: Fault
    header: tuple[str, str] | None = None  # (name, value the header must end with)
    path_prefix: str | None = None
    times: int | None = None  # None: every match

    def matches(self, path: str, headers: Any) -> bool:
        if self.times is not None and self.times <= 0:
            return False
        if self.header is not None:
            name, suffix = self.header
            if not str(headers.get(name, "")).endswith(suffix):
                return False
        return self.path_prefix is None or path.startswith(self.path_prefix)


def aws_operation(operation: str, fault: Fault, times: int | None = None) -> Rule:
    """A rule for one operation of an AWS JSON API (``X-Amz-Target: <Prefix>.<Operation>``)."""
    return Rule(fault, header=("X-Amz-Target", "." + operation), times=times)


class FaultProxy:
    def __init__(self, upstream: str, rules: list[Rule] | None = None) -> None:
        self.upstream = urlsplit(upstream)
        self.rules = list(rules or [])
        self.seen = [0] * len(self.rules)
        self._lock = threading.Lock()
        self._release = threading.Event()  # lets hanging handlers go when the proxy stops
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()

    def _fault_for(self, path: str, headers: Any) -> Fault | None:
        with self._lock:
            for index, rule in enumerate(self.rules):
                if rule.matches(path, headers):
                    self.seen[index] += 1
                    if rule.times is not None:
                        rule.times -= 1
                    return rule.fault
        return None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self._relay("POST")

            def do_GET(self) -> None:
                self._relay("GET")

            def _relay(self, method: str) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                fault = proxy._fault_for(self.path, self.headers)
                if fault is not None and fault.hang:
                    proxy._release.wait()
                    self.close_connection = True
                    return
                if fault is not None:
                    status, headers, payload = fault.status, dict(fault.headers), fault.body
                    headers["Content-Type"] = fault.content_type
                else:
                    status, headers, payload = self._upstream(method, body)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _upstream(self, method: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
                target = proxy.upstream
                connection = http.client.HTTPConnection(
                    str(target.hostname), target.port, timeout=60
                )
                try:
                    connection.request(method, self.path, body, dict(self.headers.items()))
                    answer = connection.getresponse()
                    payload = answer.read()
                    skip = {"content-length", "transfer-encoding", "connection"}
                    kept = {k: v for k, v in answer.getheaders() if k.lower() not in skip}
                    return answer.status, kept, payload
                finally:
                    connection.close()

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler


@contextmanager
def fault_proxy(upstream: str, *rules: Rule) -> Iterator[FaultProxy]:
    proxy = FaultProxy(upstream, list(rules)).start()
    try:
        yield proxy
    finally:
        proxy.stop()
