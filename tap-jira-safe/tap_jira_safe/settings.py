"""One frozen settings object, built once from the validated config: the schema's defaults
live here and nowhere else, and a setting that cannot work is refused in one line."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlparse

from singer_sdk import typing as th

from tap_jira_safe.errors import SettingsError

SCHEMA = th.PropertiesList(
    th.Property(
        "domain",
        th.StringType,
        required=True,
        description=(
            "Jira site host (example.atlassian.net) or a full base URL "
            "(https://jira.example.com, http://127.0.0.1:8080 for tests)."
        ),
    ),
    th.Property("email", th.StringType, description="Atlassian account email (Cloud basic auth)."),
    th.Property(
        "api_token", th.StringType, secret=True, description="API token for basic auth (Cloud)."
    ),
    th.Property(
        "access_token",
        th.StringType,
        secret=True,
        description="Bearer token (OAuth, or a Server/Data Center personal access token).",
    ),
    th.Property(
        "start_date",
        th.DateTimeType,
        description="Earliest `updated` time to sync on the first run (ISO 8601).",
    ),
    th.Property(
        "projects",
        th.ArrayType(th.StringType),
        description="Project keys to sync; all visible projects when empty.",
    ),
    th.Property(
        "jql",
        th.StringType,
        description="JQL ANDed to every issue query (e.g. `issuetype != Epic`).",
    ),
    th.Property(
        "lookback_minutes",
        th.NumberType,
        default=10,
        description=(
            "Each incremental query starts this many minutes before the bookmark. Covers "
            "a search-index lag up to this long; each run re-reads that much."
        ),
    ),
    th.Property(
        "search_lag_seconds",
        th.NumberType,
        default=30,
        description=(
            "Jira's search index lags writes: each window ends this long before the "
            "server's time at sync start, and the bookmark never passes it."
        ),
    ),
    th.Property("page_size", th.IntegerType, default=100, description="Issues asked for per page."),
    th.Property(
        "max_retries",
        th.IntegerType,
        default=8,
        description="Tries per request for server errors and dropped connections.",
    ),
    th.Property(
        "request_timeout", th.NumberType, default=60, description="Seconds per HTTP request."
    ),
    th.Property(
        "max_server_wait_seconds",
        th.NumberType,
        default=300,
        description=(
            "The longest wait Jira may ask for (`Retry-After`, `X-RateLimit-Reset`, an OAuth "
            "app's points window): a longer one fails the run naming the endpoint and the wait."
        ),
    ),
    th.Property(
        "parallel_requests",
        th.IntegerType,
        default=4,
        description=(
            "Comment pages fetched at once (one per issue whose comments search cut "
            "short: Jira has no bulk comment read by issue). A rate limit pauses them all."
        ),
    ),
    th.Property(
        "reconcile_deletes",
        th.BooleanType,
        default=False,
        description="List live issue ids each run and emit deletes for issues gone from Jira.",
    ),
    th.Property(
        "max_delete_fraction",
        th.NumberType,
        default=0.05,
        description=(
            "Stop the run (no deletes, state kept) when the live-issue listing lacks more "
            "than this fraction of the issues known from earlier runs."
        ),
    ),
    th.Property(
        "archived_checks_per_run",
        th.IntegerType,
        default=200,
        description=(
            "With `reconcile_deletes`: archived issues looked up again per run (search never "
            "lists them, so a delete after archiving shows only there); they rotate."
        ),
    ),
    th.Property(
        "issues_leaving_scope",
        th.StringType,
        default="update",
        allowed_values=["update", "delete"],
        description=(
            "An issue moved out of `projects` (or no longer matching `jql`): emit its "
            "current version (`update`) or a delete (`delete`)."
        ),
    ),
    th.Property(
        "confirm_deleted_projects",
        th.ArrayType(th.StringType),
        description=(
            "With `reconcile_deletes`: keys (or ids) of projects you confirm were deleted. "
            "Jira answers 404 alike for a deleted issue and one the API user may not see, so "
            "the issues of a project the user cannot browse are kept unless it is named here."
        ),
    ),
).to_dict()


@dataclass(frozen=True)
class Settings:
    """The tap's settings, typed; every default comes from :data:`SCHEMA`."""

    base_url: str
    email: str
    api_token: str
    access_token: str
    start_date: datetime | None
    projects: tuple[str, ...]
    jql: str
    lookback_minutes: float
    search_lag_seconds: float
    page_size: int
    max_retries: int
    request_timeout: float
    max_server_wait_seconds: float
    parallel_requests: int
    reconcile_deletes: bool
    max_delete_fraction: float
    archived_checks_per_run: int
    issues_leaving_scope: str
    confirm_deleted_projects: tuple[str, ...]

    @property
    def oauth(self) -> bool:
        """Bearer auth: on Cloud, an OAuth app under the points-based hourly quota."""
        return bool(self.access_token)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Settings:
        merged = {name: prop["default"] for name, prop in _PROPS.items() if "default" in prop}
        merged.update({name: value for name, value in config.items() if value is not None})
        return cls(
            base_url=_base_url(str(merged["domain"])),
            email=str(merged.get("email") or ""),
            api_token=str(merged.get("api_token") or ""),
            access_token=str(merged.get("access_token") or ""),
            start_date=_start_date(merged.get("start_date")),
            projects=tuple(merged.get("projects") or ()),
            jql=str(merged.get("jql") or ""),
            lookback_minutes=_number(merged, "lookback_minutes", minimum=0),
            search_lag_seconds=_number(merged, "search_lag_seconds", minimum=0),
            page_size=int(_number(merged, "page_size", minimum=1)),
            max_retries=int(_number(merged, "max_retries", minimum=1)),
            request_timeout=_number(merged, "request_timeout", minimum=0, exclusive=True),
            max_server_wait_seconds=_number(merged, "max_server_wait_seconds", minimum=0),
            parallel_requests=int(_number(merged, "parallel_requests", minimum=1)),
            reconcile_deletes=bool(merged["reconcile_deletes"]),
            max_delete_fraction=_number(merged, "max_delete_fraction", minimum=0),
            archived_checks_per_run=int(_number(merged, "archived_checks_per_run", minimum=1)),
            issues_leaving_scope=str(merged["issues_leaving_scope"]),
            confirm_deleted_projects=tuple(merged.get("confirm_deleted_projects") or ()),
        )


_PROPS: dict[str, dict[str, Any]] = SCHEMA["properties"]


def _base_url(domain: str) -> str:
    """``example.atlassian.net`` or a full URL (``http://127.0.0.1:8080``) to a base URL."""
    domain = domain.strip().rstrip("/")
    url = domain if "://" in domain else f"https://{domain}"
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise SettingsError(
            f"setting domain: {domain!r} is not a Jira site; give a host name "
            "(example.atlassian.net) or an http(s):// URL."
        )
    return url


def _start_date(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise SettingsError(
            f"setting start_date: {str(value)[:40]!r} is not an ISO 8601 time; "
            "give one like 2024-01-31T00:00:00Z."
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _number(
    values: Mapping[str, Any], name: str, *, minimum: float, exclusive: bool = False
) -> float:
    value = values[name]
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    too_small = number <= minimum if exclusive else number < minimum
    if isinstance(value, bool) or not math.isfinite(number) or too_small:
        bound = f"more than {minimum:g}" if exclusive else f"at least {minimum:g}"
        raise SettingsError(f"setting {name}: {value!r} is not a number {bound}; fix the config.")
    return number
