"""The tap-jira-safe Tap class: settings and the list of streams."""

from __future__ import annotations

import os
import sys

from singer_sdk import Stream, Tap
from singer_sdk import typing as th
from singer_sdk.contrib.msgspec import MsgSpecWriter
from singer_sdk.exceptions import ConfigValidationError, FatalAPIError

from tap_jira_safe.client import JiraRequestError
from tap_jira_safe.redact import redacted, redacted_error


class TapJiraSafe(Tap):
    """Singer tap for Jira Cloud (REST v3) and Jira Server/Data Center (REST v2)."""

    name = "tap-jira-safe"
    message_writer_class = MsgSpecWriter  # singer-sdk[msgspec]: the fast message writer

    config_jsonschema = th.PropertiesList(
        th.Property(
            "domain",
            th.StringType,
            required=True,
            description=(
                "Jira site host (example.atlassian.net) or a full base URL "
                "(https://jira.example.com, http://127.0.0.1:8080 for tests)."
            ),
        ),
        th.Property(
            "email", th.StringType, description="Atlassian account email (Cloud basic auth)."
        ),
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
        th.Property(
            "page_size", th.IntegerType, default=100, description="Issues asked for per page."
        ),
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
            "issues_leaving_scope",
            th.StringType,
            default="update",
            allowed_values=["update", "delete"],
            description=(
                "An issue moved out of `projects` (or no longer matching `jql`): emit its "
                "current version (`update`) or a delete (`delete`)."
            ),
        ),
    ).to_dict()

    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        """singer-sdk's messages quote the bad value, which may be a secret: redact them."""
        try:
            errors = super()._validate_config(raise_errors=raise_errors)
        except ConfigValidationError as exc:
            raise redacted_error(exc, self._config) from None
        return redacted(errors, self._config, self.config_jsonschema)

    def discover_streams(self) -> list[Stream]:
        from tap_jira_safe.stream_types import STREAM_TYPES

        return [stream_class(tap=self) for stream_class in STREAM_TYPES]


def main() -> None:
    """The console script: errors this tap raises on purpose (a request that failed for
    good, a refused reconciliation, a window that would not verify) end the run with one
    line and exit code 1; the traceback only with ``TAP_JIRA_SAFE_DEBUG=1``."""
    try:
        TapJiraSafe.cli()
    except (FatalAPIError, JiraRequestError, RuntimeError) as exc:
        if os.environ.get("TAP_JIRA_SAFE_DEBUG"):
            raise
        print(f"tap-jira-safe: error: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
