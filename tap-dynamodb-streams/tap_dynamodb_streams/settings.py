"""The tap's settings: their schema (the one place defaults live) and the frozen object the
code reads, built once from the validated config."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from singer_sdk import typing as th

from tap_dynamodb_streams.lineage import parse_partition

CONFIG_SCHEMA = th.PropertiesList(
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
    th.Property("aws_access_key_id", th.StringType, secret=True, description="AWS access key id."),
    th.Property(
        "aws_secret_access_key",
        th.StringType,
        secret=True,
        description="AWS secret access key.",
    ),
    th.Property("aws_session_token", th.StringType, secret=True, description="AWS session token."),
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
    th.Property(
        "aws_max_attempts",
        th.IntegerType(minimum=1, maximum=10),
        default=4,
        description=(
            "Attempts per AWS call, retries included (botocore's standard retry mode: "
            "throttling, 5xx and connection errors, exponential backoff with jitter). No "
            "other retry layer multiplies them."
        ),
    ),
    th.Property(
        "aws_call_timeout_seconds",
        th.NumberType(exclusive_minimum=0),
        default=10,
        description=(
            "Connect and read timeout of each AWS call attempt. A run ends at most this long "
            "after max_run_seconds: no attempt starts after it."
        ),
    ),
    th.Property(
        "direct_shard_reads",
        th.BooleanType,
        default=True,
        description=(
            "Send GetShardIterator and GetRecords signed with botocore's signer on its HTTP "
            "session, without its per-call machinery (about a third less CPU a call); false: "
            "every call through botocore."
        ),
    ),
).to_dict()


@dataclass(frozen=True)
class TapSettings:
    """Every setting, typed; singer-sdk's validation filled in the schema's defaults."""

    tables: tuple[str, ...]
    region_name: str
    endpoint_url: str | None
    streams_endpoint_url: str | None
    aws_access_key_id: str | None
    aws_secret_access_key: str | None
    aws_session_token: str | None
    aws_profile: str | None
    start_position: str
    max_run_seconds: float
    max_records_per_request: int
    initial_snapshot: bool
    scan_segments: int
    open_shard_idle_seconds: float
    state_interval_seconds: float
    max_parallel_shards: int
    max_get_records_per_shard_per_second: float
    not_found_retries: int
    describe_stream_per_second: float
    lag_warning_hours: float
    partition: tuple[int, int]
    ttl_deletions: str
    aws_max_attempts: int
    aws_call_timeout_seconds: float
    direct_shard_reads: bool

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> TapSettings:
        """Settings without a default are None when unset; the others are always there."""
        return cls(
            tables=tuple(config["tables"]),
            region_name=config["region_name"],
            endpoint_url=config.get("endpoint_url"),
            streams_endpoint_url=config.get("streams_endpoint_url") or config.get("endpoint_url"),
            aws_access_key_id=config.get("aws_access_key_id"),
            aws_secret_access_key=config.get("aws_secret_access_key"),
            aws_session_token=config.get("aws_session_token"),
            aws_profile=config.get("aws_profile"),
            start_position=config["start_position"],
            max_run_seconds=float(config["max_run_seconds"]),
            max_records_per_request=int(config["max_records_per_request"]),
            initial_snapshot=bool(config["initial_snapshot"]),
            scan_segments=int(config["scan_segments"]),
            open_shard_idle_seconds=float(config["open_shard_idle_seconds"]),
            state_interval_seconds=float(config["state_interval_seconds"]),
            max_parallel_shards=int(config["max_parallel_shards"]),
            max_get_records_per_shard_per_second=float(
                config["max_get_records_per_shard_per_second"]
            ),
            not_found_retries=int(config["not_found_retries"]),
            describe_stream_per_second=float(config["describe_stream_per_second"]),
            lag_warning_hours=float(config["lag_warning_hours"]),
            partition=parse_partition(config.get("partition")),
            ttl_deletions=config["ttl_deletions"],
            aws_max_attempts=int(config["aws_max_attempts"]),
            aws_call_timeout_seconds=float(config["aws_call_timeout_seconds"]),
            direct_shard_reads=bool(config["direct_shard_reads"]),
        )
