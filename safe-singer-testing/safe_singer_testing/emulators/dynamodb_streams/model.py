"""The shard model behind the Streams endpoint: streams, shards, records and a virtual clock.

Everything here is plain data guarded by one lock in ``server.py``; no I/O. Semantics follow
the DynamoDB Streams API reference: shards cover hash ranges of the table's keys and split into
children (parent closed with an ``EndingSequenceNumber``, children carry ``ParentShardId``);
sequence numbers grow within a shard lineage but have gaps and 21 to 40 digits; records live 24
hours; iterators expire 15 minutes after they are issued.

The default ``Faults()`` is the AWS-faithful mode; every behaviour cites its source:
- GetRecords "returns an empty list" where the iterator's portion of the shard has no records,
  and "it might take multiple calls to get to a portion of the shard that contains stream
  records" (API_streams_GetRecords): stretches of empty pages that move the iterator forward,
  before records and after the last record of a closed shard. A new iterator from a sequence
  number starts the stretch over (what it passed was only in the old iterator).
- "You can call DescribeStream at a maximum rate of 10 times per second" and "The maximum
  number of shard objects to return. The upper limit is 100" (API_streams_DescribeStream).
- "Do not allow more than two processes to read from the same DynamoDB Streams shard at the
  same time. Exceeding this limit can result in request throttling" (Developer Guide,
  ServiceQuotas, DynamoDB Streams). No call rate per shard is documented for DynamoDB Streams;
  the harsher Kinesis figure (5 GetRecords per second per shard, Kinesis service quotas) is
  used: a sixth call within one second gets ``LimitExceededException``.
- AT_SEQUENCE_NUMBER "start reading exactly from the position denoted by a specific sequence
  number" (API_streams_GetShardIterator): whether a StartingSequenceNumber that no record
  carries is accepted is not documented, so it is refused with ``ValidationException`` (the KCL
  adapter never asks: it starts a child whose parent is done at TRIM_HORIZON,
  DynamoDBStreamsShardSyncer.determineNewLeasesToCreate).
- ``Date`` response header from the virtual clock (every AWS response carries one).
"""

from __future__ import annotations

import collections
import hashlib
import json
import random
import uuid
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

RETENTION_SECONDS = 24 * 3600
ITERATOR_TTL_SECONDS = 15 * 60
HASH_SPACE = 2**64
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
ACCOUNT = "123456789012"


class StreamsError(Exception):
    """An API error with its wire name and HTTP status (what botocore maps to exceptions)."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


@dataclass
class Record:
    sequence_number: int
    event_name: str
    keys: dict[str, Any]
    new_image: dict[str, Any] | None
    old_image: dict[str, Any] | None
    created_at: float
    event_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    user_identity: dict[str, str] | None = None  # TTL deletions: the DynamoDB service principal
    wire: bytes | None = None  # its JSON on the wire, encoded once (records never change)


@dataclass
class Shard:
    shard_id: str
    parent_id: str | None
    hash_lo: int
    hash_hi: int
    starting_sequence_number: int
    created_at: float
    records: list[Record] = field(default_factory=list)
    next_sequence_number: int = 0
    closed: bool = False
    ending_sequence_number: int | None = None
    closed_at: float | None = None
    # Calls left during which a closed shard still looks open (DescribeStream, GetRecords).
    open_looking_calls: int = 0
    trimmed_upto: int = -1
    listing_key: float = 0.0  # position in DescribeStream when the listing is scrambled

    def covers(self, key_hash: int) -> bool:
        return self.hash_lo <= key_hash < self.hash_hi


@dataclass
class Stream:
    arn: str
    label: str
    table: str
    key_schema: list[dict[str, str]]
    view_type: str
    created_at: float
    shards: dict[str, Shard] = field(default_factory=dict)
    enabled: bool = True
    disabled_at: float | None = None

    def open_leaves(self) -> list[Shard]:
        return [s for s in self.shards.values() if not s.closed]


@dataclass
class Faults:
    """Seeded fault injection; rates are probabilities per API call."""

    empty_page_rate: float = 0.0
    throttle_rate: float = 0.0
    server_error_rate: float = 0.0
    close_lag_calls: int = 0
    # The first N GetRecords calls come after a 16-minute stall: their iterators have expired.
    stall_first_get_records: int = 0
    # Probability that the reader "stalls" 16 virtual minutes before a call (iterator expiry).
    stall_rate: float = 0.0
    # Most shards per DescribeStream page (AWS: 100), to make readers follow pagination.
    describe_page_size: int = 100
    # List shards in a stable random order instead of creation order (AWS promises no order).
    scramble_listing: bool = False
    seed: int = 0
    # AWS-faithful behaviour (see the module docstring); 0 turns a limit off.
    empty_stretch_rate: float = 0.05  # share of records preceded by a stretch of empty pages
    empty_stretch_pages: int = 3
    closed_tail_pages: int = 2  # empty pages after a closed shard's last record, before its end
    get_records_per_shard_per_second: float = 5.0
    describe_stream_per_second: float = 10.0
    strict_at_sequence_number: bool = True
    # Injected faults: GetRecords/GetShardIterator say ResourceNotFound for a listed shard;
    # the first N GetRecords answer 200 with a body that lacks "Records".
    transient_not_found_rate: float = 0.0
    malformed_get_records: int = 0
    # DescribeStream answers as if no ShardFilter was sent (an endpoint older than the
    # parameter, which JSON APIs ignore when unknown): every shard of the stream.
    ignore_shard_filter: bool = False
    # Seconds every call waits before its answer (wall clock, outside the endpoint's lock, so
    # concurrent calls overlap as they do against AWS). AWS publishes no DynamoDB Streams call
    # latency (CloudWatch reports SuccessfulRequestLatency per operation, without a figure);
    # 0 here keeps the suite fast and changes no outcome, only time. Benchmarks set
    # ``BENCH_CALL_LATENCY_SECONDS``; see its comment.
    call_latency_seconds: float = 0.0

    @classmethod
    def lenient(cls, **overrides: Any) -> Faults:
        """No empty stretches, rate limits or strict checks: for tests of other things."""
        base: dict[str, Any] = {
            "empty_stretch_rate": 0.0,
            "closed_tail_pages": 0,
            "get_records_per_shard_per_second": 0.0,
            "describe_stream_per_second": 0.0,
            "strict_at_sequence_number": False,
        }
        return cls(**{**base, **overrides})

    def stretch_before(self, shard: Shard, index: int) -> int:
        """Empty pages a reader passes before record ``index`` (``len(records)``: the end)."""
        if index >= len(shard.records):
            return self.closed_tail_pages if shard.closed else 0
        if not self.empty_stretch_rate:
            return 0
        draw = zlib.crc32(f"{self.seed}/{shard.shard_id}/{index}".encode()) / 2**32
        return self.empty_stretch_pages if draw < self.empty_stretch_rate else 0


# A conservative per-call latency for benchmarks. AWS publishes no figure for Streams calls;
# for table reads it promises "single-digit millisecond performance at any scale"
# (aws.amazon.com/dynamodb). 10 ms is that figure's upper end with nothing added for the
# HTTPS round trip from the reader: low, since a lower latency flatters parallel readers less.
BENCH_CALL_LATENCY_SECONDS = 0.010


def sequence_base(generation: int) -> int:
    """Lowest sequence number of a shard generation: 21 digits for roots, up to 40."""
    return 10 ** min(20 + 6 * generation, 39)


def key_hash(keys: dict[str, Any]) -> int:
    digest = hashlib.sha256(json.dumps(keys, sort_keys=True).encode()).digest()
    return int.from_bytes(digest[:8], "big")


class StreamsModel:
    """All streams of all tables, one virtual clock, seeded randomness."""

    def __init__(self, faults: Faults | None = None, region: str = "us-east-1") -> None:
        self.faults = faults or Faults()
        self.rng = random.Random(self.faults.seed)
        self.region = region
        self.clock = 0.0
        self.streams: dict[str, Stream] = {}
        self.history: list[tuple[str, str, Record]] = []  # (stream arn, shard id, record)
        self.recent_calls: dict[str, collections.deque[float]] = {}  # rate limits (wall clock)
        self.reads: list[str] = []  # the shard of every GetRecords call, in call order

    # -- time ------------------------------------------------------------------------------
    def now(self) -> datetime:
        return EPOCH + timedelta(seconds=self.clock)

    def advance(self, seconds: float) -> None:
        """Move the virtual clock; data older than 24 hours is trimmed, old shards vanish."""
        self.clock += seconds
        horizon = self.clock - RETENTION_SECONDS
        for stream in list(self.streams.values()):
            if stream.disabled_at is not None and stream.disabled_at < horizon:
                del self.streams[stream.arn]
                continue
            for shard in list(stream.shards.values()):
                keep = [r for r in shard.records if r.created_at >= horizon]
                if len(keep) != len(shard.records):
                    dropped = shard.records[len(shard.records) - len(keep) - 1]
                    shard.trimmed_upto = max(shard.trimmed_upto, dropped.sequence_number)
                    shard.records = keep
                if shard.closed and shard.closed_at is not None and shard.closed_at < horizon:
                    del stream.shards[shard.shard_id]

    # -- streams and shards ----------------------------------------------------------------
    def create_stream(
        self,
        table: str,
        key_schema: list[dict[str, str]],
        view_type: str,
        arn: str | None = None,
        roots: int = 1,
    ) -> str:
        """A new enabled stream; ``arn`` reuses the table service's own stream ARN."""
        label = self.now().strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
        while any(s.label == label and s.table == table for s in self.streams.values()):
            self.clock += 0.001
            label = self.now().strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
        if arn is None:
            arn = f"arn:aws:dynamodb:{self.region}:{ACCOUNT}:table/{table}/stream/{label}"
        stream = Stream(arn, label, table, key_schema, view_type, self.clock)
        self.streams[arn] = stream
        for i in range(roots):  # a big table's stream starts with about one shard per partition
            lo, hi = HASH_SPACE * i // roots, HASH_SPACE * (i + 1) // roots
            self._new_shard(stream, None, lo, hi, generation=0)
        return arn

    def current_stream(self, table: str) -> Stream:
        for stream in self.streams.values():
            if stream.table == table and stream.enabled:
                return stream
        raise StreamsError("ResourceNotFoundException", f"Table {table} has no enabled stream")

    def stream(self, arn: str) -> Stream:
        try:
            return self.streams[arn]
        except KeyError:
            raise StreamsError(
                "ResourceNotFoundException",
                f"Requested resource not found: Stream: {arn} not found",
            ) from None

    def shard(self, arn: str, shard_id: str) -> Shard:
        try:
            return self.stream(arn).shards[shard_id]
        except KeyError:
            raise StreamsError(
                "ResourceNotFoundException",
                f"Requested resource not found: Shard: {shard_id} in Stream: {arn} not found",
            ) from None

    def _new_shard(
        self, stream: Stream, parent: Shard | None, lo: int, hi: int, generation: int
    ) -> Shard:
        start = sequence_base(generation) + self.rng.randrange(1, 10**6)
        if parent is not None:
            start = max(start, parent.next_sequence_number + self.rng.randrange(1, 10**6))
        millis = int(self.clock * 1000) + len(stream.shards)
        # AWS's suffix is opaque; a seeded one keeps a run (and the faults drawn per shard id)
        # the same every time, so a failure replays.
        suffix = zlib.crc32(f"{self.faults.seed}/{stream.arn}/{len(stream.shards)}".encode())
        shard_id = f"shardId-{millis:020d}-{suffix:08x}"
        shard = Shard(
            shard_id,
            parent.shard_id if parent else None,
            lo,
            hi,
            start,
            self.clock,
            # The first record comes after StartingSequenceNumber, not at it: no record is
            # known to carry a shard's starting number (the harsher reading of the docs).
            next_sequence_number=start + self.rng.randrange(1, 10**6),
            listing_key=self.rng.random(),
        )
        stream.shards[shard_id] = shard
        return shard

    def generation(self, stream: Stream, shard: Shard) -> int:
        depth = 0
        while shard.parent_id and shard.parent_id in stream.shards:
            shard = stream.shards[shard.parent_id]
            depth += 1
        return depth

    def close_shard(self, stream: Stream, shard: Shard) -> None:
        shard.closed = True
        shard.closed_at = self.clock
        last = shard.records[-1].sequence_number if shard.records else shard.trimmed_upto
        shard.ending_sequence_number = max(last, shard.starting_sequence_number)
        shard.open_looking_calls = self.faults.close_lag_calls

    def split(self, table: str, limit: int | None = None) -> list[str]:
        """Every open shard (or the ``limit`` newest) splits in two: a new generation."""
        stream = self.current_stream(table)
        children: list[str] = []
        leaves = stream.open_leaves()
        for shard in leaves if limit is None else leaves[-limit:]:
            self.close_shard(stream, shard)
            generation = self.generation(stream, shard) + 1
            middle = (shard.hash_lo + shard.hash_hi) // 2
            for lo, hi in ((shard.hash_lo, middle), (middle, shard.hash_hi)):
                children.append(self._new_shard(stream, shard, lo, hi, generation).shard_id)
        return children

    def disable_stream(self, table: str) -> Stream:
        """Disable the table's stream: its shards close; later writes are in no stream."""
        old = self.current_stream(table)
        for shard in old.open_leaves():
            self.close_shard(old, shard)
        old.enabled = False
        old.disabled_at = self.clock
        return old

    def reenable_stream(self, table: str) -> str:
        """Disable the table's stream and enable a new one with a new ARN."""
        old = self.disable_stream(table)
        self.clock += 0.001
        return self.create_stream(table, old.key_schema, old.view_type)

    def vanish_shard(self, arn: str, shard_id: str) -> None:
        """Drop a shard before its end, as a broken or mis-aged stream would."""
        del self.stream(arn).shards[shard_id]

    # -- writes ----------------------------------------------------------------------------
    def append(
        self,
        table: str,
        event_name: str,
        new_image: dict[str, Any] | None,
        old_image: dict[str, Any] | None,
    ) -> Record | None:
        """Record a change event; None when the table has no enabled stream (not captured)."""
        if not any(s.table == table and s.enabled for s in self.streams.values()):
            return None
        stream = self.current_stream(table)
        image = new_image if new_image is not None else old_image
        assert image is not None, "a change event has at least one image"
        keys = {k["AttributeName"]: image[k["AttributeName"]] for k in stream.key_schema}
        khash = key_hash(keys)
        shard = next(s for s in stream.open_leaves() if s.covers(khash))
        record = Record(
            shard.next_sequence_number,
            event_name,
            keys,
            new_image if stream.view_type in ("NEW_IMAGE", "NEW_AND_OLD_IMAGES") else None,
            old_image if stream.view_type in ("OLD_IMAGE", "NEW_AND_OLD_IMAGES") else None,
            self.clock,
        )
        shard.records.append(record)
        shard.next_sequence_number += self.rng.randrange(1, 10**6)
        self.history.append((stream.arn, shard.shard_id, record))
        return record
