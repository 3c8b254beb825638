"""The tap-dynamodb-streams Tap class: settings and one stream per table."""

from __future__ import annotations

from singer_sdk import Stream, Tap
from singer_sdk import typing as th
from singer_sdk.contrib.msgspec import MsgSpecWriter
from singer_sdk.exceptions import ConfigValidationError

from tap_dynamodb_streams.redact import redacted, redacted_error


class TapDynamoDBStreams(Tap):
    """Singer tap that reads DynamoDB Streams change events, one Singer stream per table."""

    name = "tap-dynamodb-streams"
    message_writer_class = MsgSpecWriter  # singer-sdk[msgspec]: the fast message writer

    config_jsonschema = th.PropertiesList(
        th.Property(
            "tables",
            th.ArrayType(th.StringType),
            required=True,
            description="DynamoDB table names; each must have a stream enabled.",
        ),
        th.Property("region_name", th.StringType, default="us-east-1", description="AWS region."),
        th.Property(
            "endpoint_url",
            th.StringType,
            description="DynamoDB endpoint (for local emulators such as moto or DynamoDB Local).",
        ),
        th.Property(
            "streams_endpoint_url",
            th.StringType,
            description="DynamoDB Streams endpoint; defaults to endpoint_url.",
        ),
        th.Property(
            "aws_access_key_id", th.StringType, secret=True, description="AWS access key id."
        ),
        th.Property(
            "aws_secret_access_key",
            th.StringType,
            secret=True,
            description="AWS secret access key.",
        ),
        th.Property(
            "aws_session_token", th.StringType, secret=True, description="AWS session token."
        ),
        th.Property("aws_profile", th.StringType, description="AWS shared-config profile name."),
        th.Property(
            "start_position",
            th.StringType,
            default="trim_horizon",
            allowed_values=["trim_horizon", "latest"],
            description="Where a new pipeline starts: trim_horizon (all retained data) or latest.",
        ),
        th.Property(
            "max_run_seconds",
            th.IntegerType,
            default=300,
            description="Stop after this many seconds; the next run resumes from the state.",
        ),
        th.Property(
            "max_records_per_request",
            th.IntegerType,
            default=1000,
            description="GetRecords Limit (1-1000).",
        ),
        th.Property(
            "initial_snapshot",
            th.BooleanType,
            default=False,
            description=(
                "On a table's first run, load the whole table with a parallel Scan first; shard "
                "positions are recorded before the scan starts, so nothing written during it "
                "is lost."
            ),
        ),
        th.Property(
            "scan_segments",
            th.IntegerType,
            default=4,
            description="Parallel Scan segments (threads) of the initial snapshot.",
        ),
        th.Property(
            "empty_pages_before_idle",
            th.IntegerType,
            default=3,
            description=(
                "Consecutive empty GetRecords pages after which an open shard counts as caught "
                "up for this run (empty pages never end a shard; the next run goes on)."
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
        from tap_dynamodb_streams.streams import discover_table_streams

        return discover_table_streams(self)


if __name__ == "__main__":
    TapDynamoDBStreams.cli()
