"""The one base stream: base URL, auth, retries, rate limits and pagination for Jira."""

from __future__ import annotations

import contextlib
import decimal
import random
import threading
import time
from collections.abc import Callable, Generator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlparse

import backoff
import requests
from requests.adapters import HTTPAdapter
from requests.auth import HTTPBasicAuth
from singer_sdk import RESTStream
from singer_sdk.exceptions import FatalAPIError, RetriableAPIError
from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.pagination import OffsetPaginator

from tap_jira_safe.site import probe

RETRY_STATUSES = {429, 500, 502, 503, 504}
MAX_BACKOFF_S = 30.0


class RepeatedPageTokenError(RuntimeError):
    """The server handed back a page token it had handed out before."""


class JiraRequestError(RuntimeError):
    """A request failed for good: names the endpoint and what was tried."""


def base_url(domain: str) -> str:
    """``example.atlassian.net`` or a full URL (``http://127.0.0.1:8080``) to a base URL."""
    domain = domain.strip().rstrip("/")
    return domain if "://" in domain else f"https://{domain}"


def retry_wait(response: requests.Response | None, attempt: int) -> float:
    """Seconds to wait before the next try.

    ``Retry-After`` is honoured exactly (Jira sends whole seconds), else ``X-RateLimit-Reset``;
    without either, exponential backoff with jitter (half fixed, half random).
    """
    if response is not None:
        retry_after = response.headers.get("Retry-After")
        if retry_after is not None:
            try:
                return max(float(retry_after), 0.0)
            except ValueError:
                pass
        reset = reset_delay(response)
        if reset is not None and response.status_code == 429:
            return reset
    ceiling = min(MAX_BACKOFF_S, 0.5 * 2 ** (attempt - 1))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def reset_delay(response: requests.Response) -> float | None:
    """Seconds until ``X-RateLimit-Reset`` (an ISO 8601 time), if the header is there.

    Measured from the response's ``Date`` (Jira's clock, like the reset time), not the tap
    host's clock, which may be minutes off; the host clock only when ``Date`` is missing.
    """
    reset = response.headers.get("X-RateLimit-Reset")
    if not reset:
        return None
    try:
        moment = datetime.fromisoformat(reset.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    now = datetime.now(UTC)
    with contextlib.suppress(TypeError, ValueError):
        date = parsedate_to_datetime(response.headers.get("Date") or "")
        now = date if date.tzinfo else date.replace(tzinfo=UTC)
    return max((moment - now).total_seconds(), 0.0)


def beta_rate_limit(header: str) -> tuple[float, float] | None:
    """``(points left, seconds to reset)`` from ``"global-app-quota";r=12;t=30``."""
    params = dict(part.strip().split("=", 1) for part in header.split(";") if "=" in part)
    try:
        return float(params["r"]), float(params.get("t", 1))
    except (KeyError, ValueError):
        return None


_UNDECODED = object()


def decoded(response: requests.Response) -> Any:
    """A response's JSON, decoded once for all its readers (records, paginator), numbers
    with a fraction as ``Decimal`` like the SDK's ``parse_response``."""
    body = response.__dict__.get("_jira_json", _UNDECODED)
    if body is _UNDECODED:
        body = response.__dict__["_jira_json"] = response.json(parse_float=decimal.Decimal)
    return body


def more_pages(body: Any, items_key: str | None, page_size: int) -> bool:
    """Whether a ``startAt`` page has more: ``isLast``, else ``total``, else a full page."""
    items = body if items_key is None else body.get(items_key)
    if not isinstance(items, list) or not items:
        return False
    if isinstance(body, dict):
        if "isLast" in body:
            return not body["isLast"]
        if "total" in body:
            return int(body["startAt"]) + len(items) < int(body["total"])
    return len(items) >= page_size


class StartAtPaginator(OffsetPaginator):
    """``startAt`` paging; stops on ``isLast``, on ``total``, or on a short page."""

    def __init__(self, page_size: int, items_key: str | None) -> None:
        super().__init__(start_value=0, page_size=page_size)
        self.items_key = items_key

    def has_more(self, response: requests.Response) -> bool:
        return more_pages(decoded(response), self.items_key, self._page_size)

    def get_next(self, response: requests.Response) -> int | None:
        items = decoded(response)
        if isinstance(items, dict):
            items = items.get(self.items_key or "", [])
        # the server may cap the page below what was asked: advance by what came back
        return int(self._value) + len(items)


class JiraStream(RESTStream[Any]):
    """Base stream: everything about talking to Jira lives here."""

    records_jsonpath = "$[*]"
    # Jira answers JSON types already and post_process converts the times: conforming every
    # nested value was a third of a big run's CPU
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.ROOT_ONLY

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # when any request of this stream was rate-limited, every request waits out its
        # `Retry-After` (requests may run in parallel threads: see `call`)
        self._pause_lock = threading.Lock()
        self._paused_until = 0.0

    @property
    def url_base(self) -> str:
        return base_url(self.config["domain"])

    def _write_schema_message(self) -> None:
        """Once per stream and run: the SDK writes one per child sync (per issue), and each
        SCHEMA makes a downstream target flush its batch."""
        if not getattr(self, "_schema_written", False):
            self._schema_written = True
            super()._write_schema_message()

    @property
    def cloud(self) -> bool:
        return probe(self).cloud

    @property
    def api(self) -> str:
        """Cloud serves REST v3; Server/Data Center only v2."""
        return "/rest/api/3" if self.cloud else "/rest/api/2"

    @property
    def authenticator(self) -> Callable[[requests.PreparedRequest], requests.PreparedRequest]:
        if self.config.get("access_token"):
            token = self.config["access_token"]

            def bearer(request: requests.PreparedRequest) -> requests.PreparedRequest:
                request.headers["Authorization"] = f"Bearer {token}"
                return request

            return bearer
        return HTTPBasicAuth(self.config.get("email", ""), self.config.get("api_token", ""))

    @property
    def requests_session(self) -> requests.Session:
        """A session that trusts what ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE`` name.

        ``Session.send`` (which the SDK uses) skips requests' environment lookup.
        """
        session = self._requests_session
        if session is None or not getattr(session, "_jira_env_applied", False):
            session = requests.Session()
            settings = session.merge_environment_settings(self.url_base, {}, None, None, None)
            session.verify = settings["verify"]
            # one pooled connection per parallel request (requests keeps 10 by default)
            pool = max(10, int(self.config.get("parallel_requests", 4)))
            session.mount("https://", HTTPAdapter(pool_maxsize=pool))
            session.mount("http://", HTTPAdapter(pool_maxsize=pool))
            session._jira_env_applied = True  # type: ignore[attr-defined]
            self._requests_session = session
        return session

    @property
    def http_headers(self) -> dict[str, str]:
        return {"Accept": "application/json", "User-Agent": "tap-jira-safe"}

    @property
    def timeout(self) -> int:
        return int(self.config.get("request_timeout", 60))

    @property
    def page_size(self) -> int:
        return int(self.config.get("page_size", 100))

    # -- retries: one policy for every request ------------------------------------------
    def backoff_max_tries(self) -> int:
        return int(self.config.get("max_retries", 8))

    def backoff_wait_generator(self) -> Generator[float, Any, None]:
        attempt = 0
        exc = yield 0.0
        while True:
            attempt += 1
            response = getattr(exc, "response", None)
            exc = yield retry_wait(response, attempt)

    def backoff_jitter(self, value: float) -> float:
        """No jitter on top: ``Retry-After`` must be waited exactly; 5xx waits carry their own."""
        return value

    def backoff_handler(self, details: Any) -> None:
        exc = details.get("exception")
        response = getattr(exc, "response", None)
        status = response.status_code if response is not None else type(exc).__name__
        if status == 429:
            with self._pause_lock:
                until = time.monotonic() + float(details.get("wait") or 0)
                self._paused_until = max(self._paused_until, until)
        self.logger.warning(
            "%s: try %d failed (%s), waiting %.2f s",
            self.endpoint_name(response, exc),
            details.get("tries"),
            status,
            details.get("wait"),
        )

    def endpoint_name(self, response: requests.Response | None, exc: object = None) -> str:
        """``METHOD /path`` of a failed request (never the query string or headers)."""
        request = response.request if response is not None else getattr(exc, "request", None)
        if request is None or request.url is None:
            return f"stream {self.name}"
        return f"{request.method} {urlparse(request.url).path}"

    def request_decorator(self, func: Callable[..., Any]) -> Callable[..., Any]:
        """The SDK's retry decorator plus an error that says where and what was tried."""
        tries = self.backoff_max_tries()

        def give_up(details: Any) -> None:
            exc = details.get("exception")
            response = getattr(exc, "response", None)
            raise JiraRequestError(
                f"{self.endpoint_name(response, exc)} failed after {details.get('tries')} tries "
                f"(max_retries={tries}, backoff with jitter, Retry-After honoured): {exc}"
            ) from exc

        return backoff.on_exception(
            self.backoff_wait_generator,
            (
                ConnectionResetError,
                RetriableAPIError,
                requests.exceptions.Timeout,
                requests.exceptions.ConnectionError,
                requests.exceptions.ChunkedEncodingError,
                requests.exceptions.ContentDecodingError,
            ),
            max_tries=tries,
            on_backoff=self.backoff_handler,
            on_giveup=give_up,
            jitter=self.backoff_jitter,
            logger=None,
        )(func)

    def validate_response(self, response: requests.Response) -> None:
        if response.status_code in RETRY_STATUSES:
            raise RetriableAPIError(self.response_error_message(response), response)
        if response.status_code >= 400:
            raise FatalAPIError(self.response_error_message(response))
        self.pace(response)

    def response_error_message(self, response: requests.Response) -> str:
        """Status, endpoint and Jira's own messages; never headers (they may echo auth)."""
        detail = ""
        try:
            body = response.json()
            if isinstance(body, dict):
                detail = "; ".join(body.get("errorMessages") or []) or str(body.get("errors"))
        except ValueError:
            detail = "(non-JSON body)"
        return (
            f"{self.endpoint_name(response)} answered {response.status_code} "
            f"{response.reason}: {detail}"
        )

    def pace(self, response: requests.Response) -> None:
        """Spread requests when Jira says the quota is nearly used up.

        Burst limits send ``X-RateLimit-Remaining``/``-NearLimit``/``-Reset``; points-based
        quotas (OAuth apps) send ``Beta-RateLimit: "<policy>";r=<left>;t=<seconds>``.
        """
        remaining = response.headers.get("X-RateLimit-Remaining")
        near = response.headers.get("X-RateLimit-NearLimit", "").lower() == "true"
        delay = 0.0
        if remaining is not None or near:
            delay = reset_delay(response) or 0.0
            if remaining is not None and remaining.isdigit() and int(remaining) > 0:
                delay = delay / (int(remaining) + 1) if near else 0.0
        points = beta_rate_limit(response.headers.get("Beta-RateLimit", ""))
        if points is not None and points[0] <= 0:
            delay = max(delay, points[1])
        if delay > 0:
            self.logger.info("rate limit nearly used up: pausing %.2f s", min(delay, MAX_BACKOFF_S))
            time.sleep(min(delay, MAX_BACKOFF_S))

    def wait_out_rate_limit(self) -> None:
        """Before a request: sleep while another request's ``Retry-After`` runs."""
        while True:  # another 429 may extend the pause while this thread sleeps
            with self._pause_lock:
                left = self._paused_until - time.monotonic()
            if left <= 0:
                return
            self.logger.info("waiting %.2f s: a parallel request was rate-limited (429)", left)
            time.sleep(left)

    # -- one-off requests outside request_records (bulkfetch, probes) --------------------
    def call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
    ) -> Any:
        """One request with the stream's auth and retry policy; returns the parsed JSON.
        Threads may call it at once, provided ``requests_session`` was made before them."""
        request = requests.Request(
            method, self.url_base + path, params=params, json=json, headers=self.http_headers
        )
        prepared = self.requests_session.prepare_request(request)

        def send(prepared: requests.PreparedRequest) -> requests.Response:
            self.wait_out_rate_limit()
            response = self.requests_session.send(
                self.authenticator(prepared), timeout=self.timeout
            )
            self.validate_response(response)
            return response

        response = self.request_decorator(send)(prepared)
        return decoded(response)
