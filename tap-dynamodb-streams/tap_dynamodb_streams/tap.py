"""The tap-dynamodb-streams Tap class: settings and one stream per table."""

from __future__ import annotations

import atexit
import sys
from typing import Any

from safe_singer_common import redact
from safe_singer_common.plugin import refuse_bad_config, run_plugin
from singer_sdk import Stream, Tap
from singer_sdk import typing as th
from singer_sdk.contrib.msgspec import MsgSpecWriter
from singer_sdk.singerlib import Message, RecordMessage
from typing_extensions import override

from tap_dynamodb_streams.lineage import StreamGapError
from tap_dynamodb_streams.streams import AwsCallFailed, NoProgress, UnreadableEvent

PENDING_BYTES = 1 << 16
# Errors this tap raises on purpose (a gap in the stream, AWS refusing for good, an event it
# cannot convert, a run that could save no progress): one line and exit code 1.
REFUSALS = (StreamGapError, AwsCallFailed, UnreadableEvent, NoProgress)


class RecordBufferingWriter(MsgSpecWriter):
    """singer-sdk's msgspec writer, without a write system call (and flush) per RECORD.

    RECORD lines gather in memory (up to ``PENDING_BYTES``); every other message (STATE,
    SCHEMA, ACTIVATE_VERSION, BATCH) goes out together with them and is flushed, so a STATE
    reaches stdout with every record before it and never waits behind them. A process killed
    before that STATE loses only records no STATE covers; any other exit writes them out.
    Our own buffer, since ``PYTHONUNBUFFERED`` (common in containers) unbuffers stdout.
    """

    def __init__(self) -> None:
        super().__init__()
        self._pending = bytearray()
        atexit.register(self.flush)

    def write_message(self, message: Message) -> None:
        self._pending += self.format_message(message)  # copied: the encoder reuses its buffer
        if not isinstance(message, RecordMessage) or len(self._pending) >= PENDING_BYTES:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            sys.stdout.buffer.write(self._pending)
            sys.stdout.flush()
            self._pending.clear()


class TapDynamoDBStreams(Tap):
    """Singer tap that reads DynamoDB Streams change events, one Singer stream per table."""

    name = "tap-dynamodb-streams"
    message_writer_class = RecordBufferingWriter  # singer-sdk[msgspec]: the fast writer

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
            th.IntegerType(minimum=1),
            default=300,
            description="Stop after this many seconds; the next run resumes from the state.",
        ),
        th.Property(
            "max_records_per_request",
            th.IntegerType(minimum=1, maximum=1000),
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
            th.IntegerType(minimum=1),
            default=4,
            description="Parallel Scan segments (threads) of the initial snapshot.",
        ),
        th.Property(
            "open_shard_idle_seconds",
            th.NumberType(minimum=0),
            default=3,
            description=(
                "An open shard that returned no record for this long, over at least as many "
                "empty pages as the pace allows in that time, counts as caught up for this "
                "run. Empty pages never end a shard: closed shards are followed to their "
                "null NextShardIterator."
            ),
        ),
        th.Property(
            "state_interval_seconds",
            th.NumberType(minimum=0),
            default=1,
            description=(
                "Least time between STATE messages (each carries every shard's position); "
                "0: after every page. The last state of a run is always written."
            ),
        ),
        th.Property(
            "max_parallel_shards",
            th.IntegerType(minimum=1),
            default=64,
            description=(
                "Shards read at once, one thread each (a child only after its parent was read "
                "to its end). A shard waiting for its next call (the pace, or a quiet open "
                "shard between polls) leaves its thread to another."
            ),
        ),
        th.Property(
            "max_get_records_per_shard_per_second",
            th.NumberType(minimum=0),
            default=2.5,
            description=(
                "GetRecords calls per shard per second. AWS allows two readers per shard: the "
                "default leaves room for a Lambda trigger or another consumer. 0: unpaced."
            ),
        ),
        th.Property(
            "not_found_retries",
            th.IntegerType(minimum=0),
            default=4,
            description=(
                "A listed shard answering ResourceNotFound (usually transient) is retried this "
                "often, waiting 0.2 s doubling up to 5 s (4: 3 s in all, 8: 21 s), before the "
                "run stops with the shard reported vanished."
            ),
        ),
        th.Property(
            "describe_stream_per_second",
            th.NumberType(exclusive_minimum=0),
            default=5,
            description="DescribeStream calls per second (AWS allows 10 per account).",
        ),
        th.Property(
            "lag_warning_hours",
            th.NumberType(exclusive_minimum=0),
            default=12,
            description=(
                "Warn (log and replication_lag_seconds metric) when a shard's position is "
                "older than this; data older than 24 hours is trimmed by AWS."
            ),
        ),
        th.Property(
            "partition",
            th.StringType,
            description=(
                "'i/N': read only the shard lineages whose root hashes to i of N, so N "
                "pipelines (each with its own state) share a table. Start all N together."
            ),
        ),
        th.Property(
            "ttl_deletions",
            th.StringType,
            default="delete",
            allowed_values=["delete", "mark", "drop"],
            description=(
                "REMOVE events made by Time to Live: delete (like any delete), mark (row kept, "
                "_sdc_expired_at set) or drop (not emitted)."
            ),
        ),
    ).to_dict()

    @override
    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        """A bad or unknown setting is refused in every mode, --discover too (discovery
        describes the tables), without quoting a secret value."""
        return refuse_bad_config(self, super()._validate_config)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        redact.install()  # before the first AWS call logs anything
        super().__init__(*args, **kwargs)
        redact.forget_in_logs(redact.secret_settings(self.config, self.config_jsonschema))

    def discover_streams(self) -> list[Stream]:
        from tap_dynamodb_streams.streams import discover_table_streams

        return discover_table_streams(self)


def main() -> None:
    """The console script: a refusal ends the run with one line, ``tap-dynamodb-streams:
    error: ...``, and exit code 1; the traceback only with ``TAP_DYNAMODB_STREAMS_DEBUG=1``."""
    run_plugin(TapDynamoDBStreams, REFUSALS)


if __name__ == "__main__":
    main()
