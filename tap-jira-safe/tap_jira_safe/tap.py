"""The tap-jira-safe Tap class: settings and the list of streams."""

from __future__ import annotations

from singer_sdk import Stream, Tap
from singer_sdk import typing as th
from singer_sdk.exceptions import ConfigValidationError

from tap_jira_safe.redact import redacted, redacted_error


class TapJiraSafe(Tap):
    """Singer tap for Jira Cloud (REST v3) and Jira Server/Data Center (REST v2)."""

    name = "tap-jira-safe"

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
            "lookback_minutes",
            th.IntegerType,
            default=5,
            description="Each incremental query starts this many minutes before the bookmark.",
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
            "reconcile_deletes",
            th.BooleanType,
            default=False,
            description="List live issue ids each run and emit deletes for issues gone from Jira.",
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
        from tap_jira_safe.streams import STREAM_TYPES

        return [stream_class(tap=self) for stream_class in STREAM_TYPES]


if __name__ == "__main__":
    TapJiraSafe.cli()
