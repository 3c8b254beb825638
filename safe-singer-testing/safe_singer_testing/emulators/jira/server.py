"""A threaded HTTP(S) server speaking the Jira Cloud / Data Center REST API over a Dataset."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import ssl
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from safe_singer_testing.emulators.jira import reference, routes  # noqa: F401 (reference: its routes)
from safe_singer_testing.emulators.jira.dataset import Dataset
from safe_singer_testing.emulators.jira.routes import ApiError, errors
from safe_singer_testing.emulators.jira.settings import JiraSettings
from safe_singer_testing.emulators.jira.tls import self_signed_cert


@dataclass
class Stats:
    """What the emulator served: tests and the benchmark read it."""

    requests: int = 0
    by_path: Counter[str] = field(default_factory=Counter)
    rate_limited: int = 0
    retry_after_total_s: float = 0.0
    server_errors: int = 0
    dropped: int = 0
    searches: int = 0
    arrivals: list[float] = field(default_factory=list)  # time.monotonic() of each request
    rate_limited_at: list[tuple[float, int]] = field(default_factory=list)  # (time, Retry-After)


class PageTokens:
    """Opaque search tokens: an offset bound to a query, with an age on Jira's clock.

    Offsets, not positions in a snapshot: whether Jira's tokens are stable under writes is
    not documented, so the harsher thing (pages drift when issues leave the result set).
    """

    def __init__(self, settings: JiraSettings, clock: Callable[[], int]) -> None:
        self.settings = settings
        self.clock = clock

    @staticmethod
    def _digest(query_text: str) -> str:
        return hashlib.sha1(query_text.encode()).hexdigest()[:10]

    def issue(self, query_text: str, offset: int) -> str:
        raw = json.dumps({"q": self._digest(query_text), "o": offset, "t": self.clock() / 1000})
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    def read(self, token: str, query_text: str) -> int:
        try:
            raw = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
            valid = raw["q"] == self._digest(query_text)
        except (ValueError, KeyError):
            valid = False
        if not valid or self.clock() / 1000 - raw["t"] > self.settings.token_ttl_s:
            raise ApiError(400, errors("The provided next page token is invalid or expired."))
        return int(raw["o"])


class JiraEmulator:
    """Start with ``start()`` (or ``with``); ``url`` is the base URL to give a tap."""

    def __init__(self, settings: JiraSettings | None = None, **overrides: Any) -> None:
        self.settings = settings or JiraSettings()
        for name, value in overrides.items():
            if not hasattr(self.settings, name):
                raise TypeError(f"unknown Jira emulator setting {name!r}")
            setattr(self.settings, name, value)
        s = self.settings
        first = s.first_updated_ms
        if first is None:
            first = self.now_ms() - s.issue_count * s.spacing_ms - 7_200_000
        self.dataset = Dataset(
            issue_count=s.issue_count,
            projects=s.projects,
            first_updated_ms=first,
            spacing_ms=s.spacing_ms,
            index_lag_ms=s.index_lag_ms,
            instant_index_share=s.instant_index_share,
            seed=s.seed,
            clock=self.now_ms,
        )
        self.stats = Stats()
        self.tokens = PageTokens(s, self.now_ms)
        self.on_search: Callable[[int], None] | None = None
        self.ca_path: str | None = None
        self._lock = threading.Lock()
        self._window = (0, 0)  # rate-limit budget: (second, requests in it)
        self._once: set[str] = set()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> JiraEmulator:
        handler = type("Handler", (_Handler,), {"emulator": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        if self.settings.tls:
            self._tmp = tempfile.TemporaryDirectory(prefix="jira-emulator-")
            cert, key = self_signed_cert(Path(self._tmp.name))
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert, key)
            self._httpd.socket = context.wrap_socket(self._httpd.socket, server_side=True)
            self.ca_path = str(cert)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> JiraEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._httpd is not None, "start() the emulator first"
        scheme = "https" if self.settings.tls else "http"
        return f"{scheme}://127.0.0.1:{self._httpd.server_address[1]}"

    def now_ms(self) -> int:
        """Jira's clock (epoch ms): the host's, plus ``clock_ahead_ms``."""
        return int(time.time() * 1000) + self.settings.clock_ahead_ms

    def advance(self, minutes: float) -> None:
        """Move Jira's clock forward: minutes of index lag and token age without waiting."""
        self.settings.clock_ahead_ms += round(minutes * 60_000)

    def page_size(self, asked: int, cap: int, query_key: str, offset: int) -> int:
        """The server's choice: at most ``min(asked, cap)``, often fewer (never 0)."""
        size = max(1, min(asked, cap))
        if not self.settings.server_chosen_page_size or size < 3:
            return size
        digest = int(hashlib.sha1(f"{query_key}|{offset}".encode()).hexdigest()[:8], 16)
        return size - digest % (size // 2)

    def tap_config(self, **extra: Any) -> dict[str, Any]:
        """Settings for tap-jira-safe against this emulator."""
        first = min(i.created_ms for i in self.dataset.issues.values()) - 3_600_000
        config: dict[str, Any] = {
            "domain": self.url,
            "email": self.settings.email,
            "api_token": self.settings.api_token,
            "start_date": datetime.fromtimestamp(first / 1000, UTC).isoformat(),
        }
        config.update(extra)
        return config

    # -- ground truth -------------------------------------------------------------------
    def live_issues(self, projects: set[str] | None = None) -> dict[str, int]:
        return self.dataset.live_issues(projects)

    def deleted_issue_ids(self) -> set[str]:
        return self.dataset.deleted_issue_ids()

    def archived_issue_ids(self) -> set[str]:
        return self.dataset.archived_issue_ids()

    # -- adversity ----------------------------------------------------------------------
    def count_request(self, path: str) -> int:
        with self._lock:
            self.stats.requests += 1
            self.stats.arrivals.append(time.monotonic())
            self.stats.by_path[re.sub(r"/\d+", "/{id}", path)] += 1
            return self.stats.requests

    def once(self, name: str) -> bool:
        """True the first time ``name`` is asked for, then never again."""
        with self._lock:
            if name in self._once:
                return False
            self._once.add(name)
            return True

    def rate_limit_headers(self) -> dict[str, str]:
        budget = self.settings.rate_limit_budget
        if not budget:
            return {}
        with self._lock:
            second = self.now_ms() // 1000
            start, used = self._window
            used = used + 1 if start == second else 1
            self._window = (second, used)
        # X-RateLimit-Reset "has minute precision" (Atlassian's rate-limiting page, below):
        # the minute within which the quota resets, unless a test asks for the second
        shape = "%Y-%m-%dT%H:%M:%SZ" if self.settings.reset_to_the_second else "%Y-%m-%dT%H:%MZ"
        reset = datetime.fromtimestamp(second + 1, UTC).strftime(shape)
        remaining = max(budget - used, 0)
        # X-RateLimit-* (burst limits) and the points-based Beta-RateLimit-* pair
        # (https://developer.atlassian.com/cloud/jira/platform/rate-limiting/): the policy
        # `q` points per `w` seconds, the state `r` points left and `t` seconds to reset
        headers = {
            "X-RateLimit-Limit": str(budget),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": reset,
            "Beta-RateLimit-Policy": f'"global-app-quota";q={budget};w=1',
            "Beta-RateLimit": f'"global-app-quota";r={remaining};t=1',
        }
        if remaining < budget / 5:
            headers["X-RateLimit-NearLimit"] = "true"
        if used > budget:
            raise self.too_many(1, headers, "jira-quota-tenant-based")
        return headers

    def too_many(self, retry_after: int, headers: dict[str, str], reason: str) -> ApiError:
        with self._lock:
            self.stats.rate_limited += 1
            self.stats.retry_after_total_s += retry_after
            self.stats.rate_limited_at.append((time.monotonic(), retry_after))
            html = self.stats.rate_limited % 2 == 0
        headers = {**headers, "Retry-After": str(retry_after), "RateLimit-Reason": reason}
        body: Any = (
            "<html><body><h1>429 Too Many Requests</h1></body></html>"
            if html
            else errors("Rate limit exceeded.")
        )
        return ApiError(429, body, headers)

    def adversity(self, number: int) -> None:
        """Raise the failure this request number gets, if any (after the added latency)."""
        s = self.settings
        if s.latency_ms:
            time.sleep(s.latency_ms / 1000)
        if s.slow_every and number % s.slow_every == 0:
            time.sleep(s.slow_s)
        storm = s.rate_limit_storm
        in_storm = storm is not None and storm[0] <= number < storm[0] + storm[1]
        if in_storm or (s.rate_limit_every and number % s.rate_limit_every == 0):
            limit = {
                "X-RateLimit-Limit": "100",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-NearLimit": "true",
            }
            raise self.too_many(s.retry_after_s, limit, "jira-burst-based")
        if s.error_every and number % s.error_every == 0:
            with self._lock:
                self.stats.server_errors += 1
                status = (500, 502, 503)[self.stats.server_errors % 3]
            body: Any = (
                "<html><body>Bad gateway</body></html>"
                if status == 502
                else errors("Internal server error.")
            )
            raise ApiError(status, body, {"Retry-After": "1"} if status == 503 else {})

    def after_search(self) -> None:
        with self._lock:
            self.stats.searches += 1
            count = self.stats.searches
        s = self.settings
        if s.churn_every_searches and count % s.churn_every_searches == 0:
            self.dataset.churn(
                edits=s.churn_edits,
                deletes=s.churn_deletes,
                moves=s.churn_moves,
                creates=s.churn_creates,
            )
        if self.on_search is not None:
            self.on_search(count)


class _Handler(BaseHTTPRequestHandler):
    emulator: JiraEmulator
    protocol_version = "HTTP/1.1"
    # headers and body go out in two writes: with Nagle's algorithm on, the body waits for
    # the client's delayed ACK (~40 ms a request), a cost of this server, not of Jira's API
    # (the added latency is `latency_ms`)
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read stats instead."""

    def date_time_string(self, timestamp: float | None = None) -> str:
        """The ``Date`` header on Jira's clock (``clock_ahead_ms`` included)."""
        if timestamp is None:
            timestamp = self.emulator.now_ms() / 1000
        return super().date_time_string(timestamp)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        emulator = self.emulator
        split = urlsplit(self.path)
        number = emulator.count_request(split.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        s = emulator.settings
        if s.drop_every and number % s.drop_every == 0:
            emulator.stats.dropped += 1
            self.close_connection = True
            self.connection.close()
            return
        headers: dict[str, str] = {}
        try:
            emulator.adversity(number)
            headers = emulator.rate_limit_headers()
            self._authenticate()
            body = json.loads(raw) if raw else {}
            params = {k: v[-1] for k, v in parse_qs(split.query).items()}
            result = routes.dispatch(emulator, method, split.path, params, body)
            self._send(200, result, headers)
        except ApiError as exc:
            self._send(exc.status, exc.body, {**headers, **exc.headers})

    def _authenticate(self) -> None:
        s = self.emulator.settings
        given = self.headers.get("Authorization", "")
        basic = base64.b64encode(f"{s.email}:{s.api_token}".encode()).decode()
        if given not in (f"Basic {basic}", f"Bearer {s.access_token}"):
            raise ApiError(401, errors("Client must be authenticated to access this resource."))

    def _send(self, status: int, body: Any, headers: dict[str, str]) -> None:
        if isinstance(body, str):
            payload, kind = body.encode(), "text/html;charset=UTF-8"
        else:
            payload, kind = json.dumps(body).encode(), "application/json;charset=UTF-8"
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)
