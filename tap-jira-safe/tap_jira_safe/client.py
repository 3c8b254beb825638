"""The one base stream: base URL, auth, retries, rate limits, answer checks and paging."""

from __future__ import annotations

import decimal
import socket
import time
import weakref
from collections.abc import Callable, Generator, Iterable
from typing import Any
from urllib.parse import urlparse

import backoff
import requests
from requests.adapters import HTTPAdapter
from requests.auth import HTTPBasicAuth
from singer_sdk import RESTStream, Tap
from singer_sdk.exceptions import RetriableAPIError
from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.helpers.jsonpath import extract_jsonpath
from singer_sdk.pagination import OffsetPaginator
from typing_extensions import override

from tap_jira_safe.errors import (
    JiraAnswer,
    JiraApiError,
    JiraBadAnswer,
    JiraCursorExpired,
    JiraNotFound,
    JiraRequestFailed,
    JiraUnreachable,
    JiraWaitTooLong,
)
from tap_jira_safe.ratelimit import backoff_wait, pacing_delay, quota_window, server_wait
from tap_jira_safe.sdk_compat import SchemaOnce
from tap_jira_safe.shared import TapParts

RETRY_STATUSES = {429, 500, 502, 503, 504}
NOT_JIRAS_404 = (
    "a 404 without Jira's error object (errorMessages/errors) is not Jira's answer; check that "
    "`domain` reaches Jira itself, not a proxy or gateway, then run again"
)
_DECODED: weakref.WeakKeyDictionary[requests.Response, Any] = weakref.WeakKeyDictionary()


def endpoint_of(request: requests.PreparedRequest | requests.Request | None) -> str:
    """``METHOD /path`` of a request (never the query string or headers)."""
    if request is None or request.url is None:
        return "a request"
    return f"{request.method} {urlparse(request.url).path}"


def decoded(response: requests.Response) -> Any:
    """A response's JSON, decoded once for all its readers (records, paginator), numbers
    with a fraction as ``Decimal`` like the SDK's ``parse_response``. A 200 that is not
    JSON (an HTML login or proxy page, a body cut short) names the endpoint."""
    if response in _DECODED:
        return _DECODED[response]
    try:
        body = response.json(parse_float=decimal.Decimal)
    except ValueError:
        kind = response.headers.get("Content-Type", "no content type").split(";")[0]
        raise JiraBadAnswer(
            f"{endpoint_of(response.request)} answered {response.status_code} with "
            f"{len(response.content)} bytes of {kind} that are not complete JSON; check that "
            "`domain` reaches Jira itself (not a login page or proxy), then run again."
        ) from None
    _DECODED[response] = body
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


def listed_items(body: Any, items_key: str | None, endpoint: str) -> list[Any]:
    """A list endpoint's items, or :class:`JiraBadAnswer`: a ``{}`` or any other shape
    must never read as "nothing there" (a full-table stream would then delete it all)."""
    items = body if items_key is None else (body.get(items_key) if isinstance(body, dict) else None)
    if not isinstance(items, list):
        want = "a JSON list" if items_key is None else f"an object with a `{items_key}` list"
        raise JiraBadAnswer(
            f"{endpoint} answered {type(body).__name__} where Jira documents {want}; "
            "nothing of it was emitted. Check the site and token, then run again."
        )
    return items


class StartAtPaginator(OffsetPaginator):
    """``startAt`` paging; stops on ``isLast``, on ``total``, or on a short page."""

    def __init__(self, page_size: int, items_key: str | None) -> None:
        super().__init__(start_value=0, page_size=page_size)
        self.items_key = items_key
        self.size = page_size

    @override
    def has_more(self, response: requests.Response) -> bool:
        return more_pages(decoded(response), self.items_key, self.size)

    @override
    def get_next(self, response: requests.Response) -> int | None:
        items = listed_items(decoded(response), self.items_key, endpoint_of(response.request))
        # the server may cap the page below what was asked: advance by what came back
        return int(self.current_value) + len(items)


def _unreachable(exc: BaseException) -> bool:
    """A name that does not resolve: retrying will not make it resolve."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, socket.gaierror):
            return True
        reason = getattr(current, "reason", None)  # urllib3 keeps the cause here
        pending += [current.__cause__, current.__context__]
        if isinstance(reason, BaseException):
            pending.append(reason)
    return False


class JiraStream(SchemaOnce, RESTStream[Any]):
    """Base stream: everything about talking to Jira lives here."""

    records_jsonpath = "$[*]"
    # Jira answers JSON types already and post_process converts the times: conforming every
    # nested value was a third of a big run's CPU
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.ROOT_ONLY

    def __init__(self, tap: Tap, parts: TapParts, **kwargs: Any) -> None:
        super().__init__(tap, **kwargs)
        self.parts = parts
        self.settings = parts.settings
        self.site = parts.site
        self._session: requests.Session | None = None

    @property
    @override
    def url_base(self) -> str:
        return self.settings.base_url

    @property
    def cloud(self) -> bool:
        return self.site.facts(self).cloud

    @property
    def api(self) -> str:
        """Cloud serves REST v3; Server/Data Center only v2."""
        return "/rest/api/3" if self.cloud else "/rest/api/2"

    @property
    @override
    def authenticator(self) -> Callable[[requests.PreparedRequest], requests.PreparedRequest]:
        if self.settings.access_token:
            token = self.settings.access_token

            def bearer(request: requests.PreparedRequest) -> requests.PreparedRequest:
                request.headers["Authorization"] = f"Bearer {token}"
                return request

            return bearer
        return HTTPBasicAuth(self.settings.email, self.settings.api_token)

    @property
    @override
    def requests_session(self) -> requests.Session:
        """A session that trusts what ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE`` name
        (``Session.send``, which the SDK uses, skips requests' environment lookup)."""
        if self._session is None:
            session = requests.Session()
            settings = session.merge_environment_settings(self.url_base, {}, None, None, None)
            session.verify = settings["verify"]
            # one pooled connection per parallel request (requests keeps 10 by default)
            pool = max(10, self.settings.parallel_requests)
            session.mount("https://", HTTPAdapter(pool_maxsize=pool))
            session.mount("http://", HTTPAdapter(pool_maxsize=pool))
            self._session = session
        return self._session

    @property
    @override
    def http_headers(self) -> dict[str, str]:
        return {"Accept": "application/json", "User-Agent": "tap-jira-safe"}

    @property
    @override
    def timeout(self) -> float:  # type: ignore[override]
        return self.settings.request_timeout

    @property
    def page_size(self) -> int:
        return self.settings.page_size

    # -- answers: parsed once, shape checked ----------------------------------------------
    @override
    def parse_response(self, response: requests.Response) -> Iterable[Any]:
        """Records at ``records_jsonpath``; ``$[*]`` and ``$.<key>[*]`` must be lists."""
        body = decoded(response)
        path = self.records_jsonpath
        simple = path.startswith("$.") and path.endswith("[*]") and "." not in path[2:]
        if path == "$[*]" or simple:
            key = None if path == "$[*]" else path[2:-3]
            yield from listed_items(body, key, endpoint_of(response.request))
        else:
            yield from extract_jsonpath(path, input=body)

    # -- retries: one policy for every request ------------------------------------------
    @override
    def backoff_max_tries(self) -> int:
        return self.settings.max_retries

    @override
    def backoff_wait_generator(self) -> Generator[float, Any, None]:
        attempt = 0
        exc = yield 0.0
        while True:
            attempt += 1
            response = getattr(exc, "response", None)
            asked = None if response is None else server_wait(response, oauth=self.settings.oauth)
            if response is None or asked is None:
                exc = yield backoff_wait(attempt)
                continue
            self.check_wait(asked, endpoint_of(response.request))
            self.site.pause(asked)
            exc = yield asked

    def check_wait(self, asked: float, endpoint: str) -> None:
        """Refuse a wait Jira asks for beyond ``max_server_wait_seconds``."""
        limit = self.settings.max_server_wait_seconds
        if asked > limit:
            raise JiraWaitTooLong(
                f"{endpoint}: Jira asked to wait {asked:.0f} s, more than "
                f"max_server_wait_seconds={limit:g}; run again later, or raise the setting."
            )

    @override
    def backoff_jitter(self, value: float) -> float:
        """No jitter on top: ``Retry-After`` must be waited exactly; 5xx waits carry their own."""
        return value

    @override
    def backoff_handler(self, details: Any) -> None:
        exc = details.get("exception")
        response = getattr(exc, "response", None)
        status = response.status_code if response is not None else type(exc).__name__
        self.logger.warning(
            "%s: try %d failed (%s), waiting %.2f s",
            endpoint_of(getattr(exc, "request", None) or getattr(response, "request", None)),
            details.get("tries"),
            status,
            details.get("wait"),
        )

    @override
    def request_decorator(self, func: Callable[..., Any]) -> Callable[..., Any]:
        """The SDK's retry decorator, each try after any run-wide pause; a name that does
        not resolve is not retried, and giving up names the endpoint and what was tried."""
        tries = self.backoff_max_tries()

        def after_any_pause(*args: Any, **kwargs: Any) -> Any:
            self.site.wait_out_pause()
            return func(*args, **kwargs)

        def give_up(details: Any) -> None:
            exc = details.get("exception")
            endpoint = endpoint_of(getattr(exc, "request", None))
            if _unreachable(exc):
                raise JiraUnreachable(
                    f"{endpoint}: the host of `domain` ({urlparse(self.url_base).hostname}) "
                    "does not resolve; check the setting and the network's DNS."
                ) from exc
            raise JiraRequestFailed(
                f"{endpoint} failed after {details.get('tries')} tries (max_retries={tries}, "
                f"backoff with jitter, Retry-After honoured): {exc}"
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
            giveup=_unreachable,
            on_backoff=self.backoff_handler,
            on_giveup=give_up,
            jitter=self.backoff_jitter,
            logger=None,
        )(after_any_pause)

    @override
    def validate_response(self, response: requests.Response) -> None:
        """Every status mapped to a type, here and only here."""
        status = response.status_code
        if status in RETRY_STATUSES:
            raise RetriableAPIError(jira_answer(response).describe(), response)
        if status == 404 and jira_errors(response):
            raise JiraNotFound(jira_answer(response))
        if status == 404:  # a proxy's or gateway's page: it proves nothing is gone
            raise JiraApiError(jira_answer(response), NOT_JIRAS_404)
        if status == 400 and carries_page_token(response.request) and jira_errors(response):
            raise JiraCursorExpired(jira_answer(response), "restarting the query")
        if status >= 400:
            raise JiraApiError(jira_answer(response), advice_for(status))
        self.pace(response)

    def pace(self, response: requests.Response) -> None:
        """Spread requests when the burst quota is nearly spent; an OAuth app whose hourly
        points quota is spent pauses the whole run until the window resets."""
        window = quota_window(response) if self.settings.oauth else None
        if window is not None and window[0] <= 0:
            self.check_wait(window[1], endpoint_of(response.request))
            self.logger.warning(
                "%s: the OAuth app's points quota is spent; pausing the run %.0f s until "
                "its window resets",
                endpoint_of(response.request),
                window[1],
            )
            self.site.pause(window[1])
            return
        delay = pacing_delay(response)
        if delay > 0:
            self.logger.info("rate limit nearly used up: pausing %.2f s", delay)
            time.sleep(delay)

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
            response = self.requests_session.send(
                self.authenticator(prepared), timeout=self.timeout
            )
            self.validate_response(response)
            return response

        response = self.request_decorator(send)(prepared)
        return decoded(response)


def jira_errors(response: requests.Response) -> dict[str, Any] | None:
    """Jira's error object (``errorMessages`` and/or ``errors``), if the body is one."""
    try:
        body = response.json()
    except ValueError:
        return None
    if isinstance(body, dict) and ("errorMessages" in body or "errors" in body):
        return body
    return None


def jira_answer(response: requests.Response) -> JiraAnswer:
    """Status, endpoint and Jira's own messages; never headers (they may echo auth)."""
    body = jira_errors(response) or {}
    messages = body.get("errorMessages") or []
    field_errors = body.get("errors") or {}
    return JiraAnswer(
        status=response.status_code,
        endpoint=endpoint_of(response.request),
        messages=tuple(str(m) for m in messages if m) if isinstance(messages, list) else (),
        field_errors=(
            {str(k): str(v) for k, v in field_errors.items()}
            if isinstance(field_errors, dict)
            else {}
        ),
    )


def carries_page_token(request: requests.PreparedRequest | None) -> bool:
    """Whether a request continued a query with ``nextPageToken`` (body or query)."""
    if request is None:
        return False
    body = request.body or b""
    text = body.decode(errors="replace") if isinstance(body, bytes) else str(body)
    return '"nextPageToken"' in text or "nextPageToken=" in (request.url or "")


def advice_for(status: int) -> str:
    if status in (401, 403):
        return "check `email`/`api_token` or `access_token` and the user's permissions"
    return "the request was refused; check the settings named in it"
