"""The shard model behind the Streams endpoint: streams, shards, records and a virtual clock.

Everything here is plain data guarded by one lock in ``server.py``; no I/O. Semantics follow
the DynamoDB Streams API reference: shards cover hash ranges of the table's keys and split into
children (parent closed with an ``EndingSequenceNumber``, children carry ``ParentShardId``);
sequence numbers grow within a shard lineage but have gaps and 21 to 40 digits; records live 24
hours; iterators expire 15 minutes after they are issued.
"""

from __future__ import annotations

import hashlib
import json
import random
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

RETENTION_SECONDS = 24 * 3600
ITERATOR_TTL_SECONDS = 15 * 60
HASH_SPACE = 2**64
EPOCH = datetime(2026, 1, 1, tzinfo=timezone.utc)
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
        self._new_shard(stream, None, 0, HASH_SPACE, generation=0)
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
        shard_id = f"shardId-{millis:020d}-{uuid.uuid4().hex[:8]}"
        shard = Shard(
            shard_id,
            parent.shard_id if parent else None,
            lo,
            hi,
            start,
            self.clock,
            next_sequence_number=start,
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

    def split(self, table: str) -> list[str]:
        """One new generation: every open shard of the table's stream splits in two."""
        stream = self.current_stream(table)
        children: list[str] = []
        for shard in stream.open_leaves():
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
