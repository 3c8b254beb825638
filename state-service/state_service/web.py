"""`state-service serve`: a read-only status page, from the standard library's HTTP server.

Pages: `/` (every pipeline's lease and bookmark age, and the recent runs as a timeline) and
`/pipeline/NAME` (one pipeline's run history). Both reload themselves. The database is opened
read-only and only GET is served. Bookmark values are never shown (state can be sensitive);
the database is named with its password hidden. Away from loopback a token is required, as
`?token=` or `Authorization: Bearer`; request logs never include the query string.
"""

from __future__ import annotations

import hmac
import ipaddress
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from html import escape
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from state_service.errors import StateServiceError
from state_service.metrics import CONTENT_TYPE, metrics_page
from state_service.progress import printable
from state_service.report import (
    PipelineView,
    RunView,
    counts_text,
    lags_text,
    pipelines,
    recent_runs,
)
from state_service.schema import FAILED, RECLAIMED, RUNNING, SUCCESS
from state_service.store import Store

HTML = "text/html; charset=utf-8"
READ_TIMEOUT = 10.0  # seconds a connection may stay silent before it is closed
WORKERS = 16  # threads answering requests; more connections wait in the listen backlog
LISTEN_BACKLOG = 1024  # the kernel caps it at net.core.somaxconn
MAX_REQUEST_LINE = 8192  # longer request lines get 414, as nginx's default buffers do
# No script at all; the page's own <style> and style="" attributes are its only inline content.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)
STATUS_CLASSES = frozenset({RUNNING, SUCCESS, FAILED, RECLAIMED})
TIMELINE_RUNS = 30
HISTORY_RUNS = 100
HISTORY_COLUMNS = [
    *("run", "token", "kind", "status", "started", "ended", "holder"),
    *("exit tap/target", "records tap/target", "tap lag", "error"),
]
STYLE = """
body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.3em}h2{font-size:1.1em;margin-top:1.6em}
table{border-collapse:collapse}td,th{padding:.3em .7em;border-bottom:1px solid #ddd;text-align:left;
white-space:nowrap}.error{display:inline-block;white-space:normal;max-width:28em}
th{background:#f4f4f4}.num{text-align:right}.muted{color:#777}
.SUCCESS{color:#1a7f37}.FAILED{color:#cf222e}.RECLAIMED{color:#9a6700}.RUNNING{color:#0969da}
tr.stale td{background:#fff1e5}.badge{font-weight:bold;color:#fff;background:#cf222e;
padding:0 .4em;border-radius:3px}.mismatch{color:#cf222e;font-weight:bold}
.timeline{width:100%;max-width:1100px}.lane{position:relative;height:18px;background:#f6f8fa;
margin:2px 0;flex:1}.row{display:flex;align-items:center;gap:.6em}.label{width:22em;
white-space:nowrap;overflow:hidden;text-overflow:ellipsis}.bar{position:absolute;top:3px;
height:12px;border-radius:2px;min-width:3px}.bar.SUCCESS{background:#2da44e}
.bar.FAILED{background:#cf222e}.bar.RECLAIMED{background:#bf8700}.bar.RUNNING{background:#0969da}
.bar.silent{background:repeating-linear-gradient(45deg,#cf222e 0 4px,#ffd8b5 4px 8px)}
.beat{position:absolute;top:0;width:2px;height:18px;background:#111}
"""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class StatusServer(HTTPServer):
    """HTTP server with a bounded pool of workers and a deep listen backlog.

    A fixed number of threads answer; while all are busy the accept loop waits and new
    connections queue in the kernel's backlog instead of each getting a thread. Every
    connection has a read timeout, so half-open or silent clients cannot hold a worker.
    """

    request_queue_size = LISTEN_BACKLOG
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        self._workers = ThreadPoolExecutor(WORKERS, thread_name_prefix="status-page")
        self._free = threading.BoundedSemaphore(WORKERS)

    def process_request(self, request: Any, client_address: Any) -> None:
        self._free.acquire()
        self._workers.submit(self._work, request, client_address)

    def _work(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)
            self._free.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that went away mid-answer: one line, not the stdlib's traceback.
        print(f"state-service serve: {client_address[0]}: {sys.exc_info()[1]!r}", file=sys.stderr)

    def server_close(self) -> None:
        super().server_close()
        self._workers.shutdown(wait=False, cancel_futures=True)


def make_server(
    store: Store,
    host: str,
    port: int,
    token: str | None,
    refresh: int,
    read_timeout: float = READ_TIMEOUT,
) -> StatusServer:
    """The server, bound; the caller runs ``serve_forever``."""
    pages = Pages(store, token, refresh)

    class Handler(BaseHTTPRequestHandler):
        server_version = "state-service"
        timeout = read_timeout  # per connection: socket reads give up after this long

        def parse_request(self) -> bool:
            if len(getattr(self, "raw_requestline", b"")) > MAX_REQUEST_LINE:
                self.requestline, self.command = "", ""
                self.send_error(HTTPStatus.REQUEST_URI_TOO_LONG)
                return False
            return super().parse_request()

        def do_GET(self) -> None:
            code, content_type, data = pages.respond(
                self.path, self.headers.get("Authorization", "")
            )
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
            self.send_header("X-Content-Type-Options", "nosniff")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            # The default log line carries the request path with its query, i.e. the token.
            path = printable(urlsplit(self.path).path)[:200] if hasattr(self, "path") else "-"
            print(f"state-service serve: {self.command} {path} {args[1]}", file=sys.stderr)

        def log_request(self, code: Any = "-", size: Any = "-") -> None:
            self.log_message("%s", self.requestline, str(code), str(size))

        def log_error(self, format: str, *args: Any) -> None:
            # "Request timed out", "Bad request version": named, without the request line.
            code = args[0] if args and isinstance(args[0], int) else "-"
            self.log_message("%s", "", str(code))

    return StatusServer((host, port), Handler)


class Pages:
    """Request path in, (status, content type, body) out; reads the database on every request."""

    def __init__(self, store: Store, token: str | None, refresh: int) -> None:
        self.store, self.token, self.refresh = store, token, refresh

    def authorized(self, query: str, authorization: str) -> bool:
        if self.token is None:
            return True
        given = parse_qs(query).get("token", [""])[0] or authorization.removeprefix("Bearer ")
        # Bytes, so any token (non-ASCII included) is compared in constant time, never raises.
        return hmac.compare_digest(given.encode(errors="replace"), self.token.encode())

    def respond(self, raw_path: str, authorization: str) -> tuple[int, str, bytes]:
        url = urlsplit(raw_path)
        if not self.authorized(url.query, authorization):
            body = page("Unauthorized", "<p>A valid token is needed.</p>")
            return HTTPStatus.UNAUTHORIZED, HTML, body.encode()
        try:
            if url.path == "/metrics":
                return HTTPStatus.OK, CONTENT_TYPE, metrics_page(self.store)
            if url.path == "/":
                return HTTPStatus.OK, HTML, self.overview().encode()
            if url.path.startswith("/pipeline/"):
                name = unquote(url.path.removeprefix("/pipeline/"))
                return HTTPStatus.OK, HTML, self.history(name).encode()
        except StateServiceError as exc:
            body = page("Unavailable", f"<p>{escape(str(exc))}</p>")
            return HTTPStatus.SERVICE_UNAVAILABLE, HTML, body.encode()
        body = page("Not found", f'<p><a href="{self.link("/")}">Home</a></p>')
        return HTTPStatus.NOT_FOUND, HTML, body.encode()

    def link(self, path: str) -> str:
        return path + (f"?token={quote(self.token)}" if self.token else "")

    def overview(self) -> str:
        now, views = pipelines(self.store)
        runs = recent_runs(self.store, TIMELINE_RUNS)
        body = (
            f"<p class=muted>{escape(self.store.display)} · database time "
            f"{when(now)} · refreshes every {self.refresh}s</p>"
            f"<h2>Pipelines</h2>{self.pipeline_table(views)}"
            f"<h2>Recent runs</h2>{timeline(runs, now)}"
        )
        return page("state-service", body, self.refresh)

    def pipeline_table(self, views: list[PipelineView]) -> str:
        head = row_html(
            "th",
            ["pipeline", "latest run", "holder", "heartbeat age", "lease expires", "bookmark age"],
        )
        rows = []
        for v in views:
            expiry = "-"
            if v.expires_in is not None:
                expiry = f"in {age_text(v.expires_in)}"
                if v.stale:
                    expiry = (
                        f'<span class="badge">STALE</span> expired {age_text(-v.expires_in)} ago'
                    )
            cells = [
                f'<a href="{self.link("/pipeline/" + quote(v.pipeline, safe=""))}">'
                f"{escape(v.pipeline)}</a>",
                status_html(v.status),
                escape(v.holder or "-"),
                age_text(v.heartbeat_age),
                expiry,
                age_text(v.bookmark_age),
            ]
            rows.append(row_html("td", cells, "stale" if v.stale else ""))
        return f"<table id=pipelines>{head}{''.join(rows)}</table>" if views else "<p>(none)</p>"

    def history(self, pipeline: str) -> str:
        runs = recent_runs(self.store, HISTORY_RUNS, pipeline)
        head = row_html("th", HISTORY_COLUMNS)
        rows = []
        for r in runs:
            counts = escape(counts_text(r.counts))
            if r.counts_disagree:
                counts = f'<span class="mismatch">{counts}</span>'
            cells = [
                escape(str(r.run_id)),
                escape(str(r.token)),
                escape(str(r.kind)),
                status_html(r.status),
                when(r.started),
                "-" if r.ended is None else when(r.ended),
                escape(r.holder),
                escape(
                    f"{known(r.exit_code)} {known(r.tap_exit_code)}/{known(r.target_exit_code)}"
                ),
                counts,
                escape(lags_text(r.counts)),
                f'<span class="error">{escape(str(r.error))}</span>',
            ]
            rows.append(row_html("td", cells))
        table = f"<table id=runs>{head}{''.join(rows)}</table>" if runs else "<p>(no runs)</p>"
        now, views = pipelines(self.store)
        lease = "".join(
            f"<p>Lease: {lease_text(v)} · bookmark age {age_text(v.bookmark_age)}</p>"
            for v in views
            if v.pipeline == pipeline
        )
        back = f'<p><a href="{self.link("/")}">All pipelines</a> · database time {when(now)}</p>'
        return page(f"Pipeline {pipeline}", back + lease + table, self.refresh)


def timeline(runs: list[RunView], now: datetime) -> str:
    """One lane per run on a shared time axis: the run's bar from start to its end (or last
    heartbeat), a tick at the last heartbeat, and a hatched stretch for a run gone silent."""
    if not runs:
        return "<p>(no runs)</p>"
    start = min(r.started for r in runs)
    span = max((now - start).total_seconds(), 1.0)

    def pct(moment: datetime) -> float:
        return 100 * (moment - start).total_seconds() / span

    lanes = []
    for r in runs:
        end = r.ended or r.last_heartbeat
        parts = [
            f'<div class="bar {status_class(r.status)}" style="left:{pct(r.started):.2f}%;'
            f'width:{max(pct(end) - pct(r.started), 0):.2f}%"></div>',
            f'<div class="beat" style="left:{pct(r.last_heartbeat):.2f}%"></div>',
        ]
        silent = (
            r.status == "RUNNING" and (now - r.last_heartbeat).total_seconds() > r.lease_seconds
        )
        if silent:
            parts.append(
                f'<div class="bar silent" style="left:{pct(r.last_heartbeat):.2f}%;'
                f'width:{100 - pct(r.last_heartbeat):.2f}%"></div>'
            )
        state = escape("RUNNING, lease expired" if silent else str(r.status))
        label = escape(f"{r.pipeline} #{r.run_id}")
        lanes.append(
            f'<div class="row" title="{label}: {state}">'
            f'<span class="label">{label} <span class="{status_class(r.status)}">{state}</span>'
            "</span>"
            f'<div class="lane">{"".join(parts)}</div></div>'
        )
    axis = (
        f"{when(start)} → {when(now)} (bars: start to end or last heartbeat; tick: last heartbeat)"
    )
    return f'<div class="timeline" id=timeline><p class=muted>{axis}</p>{"".join(lanes)}</div>'


def page(title: str, body: str, refresh: int | None = None) -> str:
    meta = f'<meta http-equiv="refresh" content="{refresh}">' if refresh else ""
    return (
        f"<!doctype html><html><head><meta charset=utf-8>{meta}<title>{escape(title)}</title>"
        f"<style>{STYLE}</style></head><body><h1>{escape(title)}</h1>{body}</body></html>"
    )


def status_class(status: object) -> str:
    """A stored status used as a CSS class only if it is one of ours (a tampered row's text
    never reaches an attribute)."""
    return status if isinstance(status, str) and status in STATUS_CLASSES else "unknown"


def status_html(status: object) -> str:
    return f'<span class="{status_class(status)}">{escape(str(status))}</span>'


def row_html(cell: str, cells: list[str], css: str = "") -> str:
    attr = f' class="{css}"' if css else ""
    return f"<tr{attr}>" + "".join(f"<{cell}>{c}</{cell}>" for c in cells) + "</tr>"


def age_text(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%SZ")


def lease_text(view: PipelineView) -> str:
    if view.holder is None or view.expires_in is None:
        return "free"
    if view.stale:
        return f"held by {escape(view.holder)}, STALE: expired {age_text(-view.expires_in)} ago"
    return f"held by {escape(view.holder)}, expires in {age_text(view.expires_in)}"


def known(value: int | None) -> str:
    return "-" if value is None else str(value)
