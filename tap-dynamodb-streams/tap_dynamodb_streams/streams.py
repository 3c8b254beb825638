"""One Singer stream per DynamoDB table: its change events, in order, or a loud error."""

from __future__ import annotations

import copy
import time
from collections.abc import Generator, Iterable, Iterator
from datetime import datetime, timezone
from enum import Enum
from typing import Any

from botocore.exceptions import ClientError
from singer_sdk import Stream, Tap
from singer_sdk.helpers.conform import TypeConformanceLevel

from tap_dynamodb_streams import convert
from tap_dynamodb_streams.client import (
    AwsClients,
    ExpiredIterator,
    ResourceNotFound,
    StillThrottled,
    TrimmedData,
)
from tap_dynamodb_streams.lineage import ShardLedger, StreamGapError, gap, vanished
from tap_dynamodb_streams.snapshot import scan_table

SEQUENCE = "_sdc_sequence_number"
READABLE_VIEW_TYPES = {"NEW_IMAGE", "NEW_AND_OLD_IMAGES"}


class AwsCallFailed(Exception):
    """AWS refused or kept failing after every retry; the position in the state is intact."""


class UnreadableEvent(Exception):
    """A stream record this tap cannot turn into a Singer record."""


class Outcome(Enum):
    ENDED = "ended"  # a null NextShardIterator: the shard is closed and fully read
    CAUGHT_UP = "caught_up"  # open shard, nothing newer than the run's start for now
    OUT_OF_TIME = "out_of_time"  # max_run_seconds reached; the state holds the position


def metadata_properties() -> dict[str, Any]:
    return {
        "_sdc_event_name": {"type": ["string", "null"]},
        SEQUENCE: {"type": ["string"], "format": "x-singer.decimal"},
        "_sdc_shard_id": {"type": ["string", "null"]},
        "_sdc_event_time": {"type": ["string", "null"], "format": "date-time"},
        "_sdc_deleted_at": {"type": ["string", "null"], "format": "date-time"},
    }


def table_schema(description: dict[str, Any]) -> dict[str, Any]:
    """Key attributes (typed from AttributeDefinitions) plus the change-event metadata."""
    kinds = {a["AttributeName"]: a["AttributeType"] for a in description["AttributeDefinitions"]}
    keys = [k["AttributeName"] for k in description["KeySchema"]]
    properties = {}
    for key in keys:
        schema = dict(convert.kind_schema(kinds[key]))
        schema["type"] = [t for t in schema["type"] if t != "null"]
        properties[key] = schema
    properties.update(metadata_properties())
    return {"type": "object", "properties": properties, "required": [*keys, SEQUENCE]}


def event_time(value: float | datetime) -> str:
    """ApproximateCreationDateTime (wire: epoch seconds) as an ISO 8601 UTC timestamp."""
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).isoformat()
    return datetime.fromtimestamp(float(value), tz=timezone.utc).isoformat()


class TableStream(Stream):
    """Change events of one table, read shard by shard in lineage order."""

    replication_key = SEQUENCE
    # convert.py already produces JSON types that match the schema; the SDK's per-value
    # conformance pass would only cost time.
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE

    def __init__(self, tap: Tap, table: str, description: dict[str, Any]) -> None:
        self.table = table
        self.key_names = [k["AttributeName"] for k in description["KeySchema"]]
        super().__init__(tap, schema=table_schema(description), name=table)
        self.primary_keys = self.key_names
        self._aws: AwsClients | None = None
        self._deadline = 0.0
        self._run_start = 0.0
        self._stream_status: str | None = None

    @property
    def aws(self) -> AwsClients:
        if self._aws is None:
            self._aws = AwsClients(self.config)
        return self._aws

    # The SDK's own bookmark logic keeps one max replication-key value; ours is per shard
    # (see lineage.py), so the per-record increment is switched off.
    def _increment_stream_state(
        self, latest_record: dict[str, Any], *, context: Any = None
    ) -> None:
        return None

    def _flush_state(self) -> None:
        """Emit STATE once every record it covers has been delivered.

        RECORD lines are already on stdout, so STATE goes now. With ``batch_config`` the
        records may still sit in a batch file being filled: the state is only marked changed,
        and the SDK writes it right after the BATCH message of that file (``_sync_batches``).
        """
        self.state_manager.is_flushed = False
        if self.get_batch_config(self.config) is None:
            self._write_state_message()

    # -- schema that follows the data -------------------------------------------------------
    # DynamoDB has no schema beyond the key. Attributes are declared as they are first seen
    # and remembered in the state (``attributes``), so a later run still sends them (as null
    # when an item lacks them) and an upsert never keeps a value the item no longer has.
    def _declare(self, image: dict[str, Any]) -> None:
        """Add attributes seen for the first time to the schema and re-send SCHEMA."""
        properties = self.schema["properties"]
        wanted: dict[str, dict[str, Any]] = {}
        for name, attribute in image.items():
            kind = convert.kind_of(attribute)
            if kind == "NULL" or name in self.key_names:
                continue
            schema = convert.kind_schema(kind)
            known = properties.get(name)
            if known is None:
                wanted[name] = schema
            elif known != schema:
                widened = self._widen(name, known, schema)
                if widened != known:
                    wanted[name] = widened
        if wanted:
            self._adopt(wanted)

    def _adopt(self, attributes: dict[str, dict[str, Any]]) -> None:
        self.schema["properties"].update(attributes)
        if self._input_schema is not None and self._input_schema is not self.schema:
            self._input_schema["properties"].update(copy.deepcopy(attributes))
        remembered = self.stream_state.setdefault("attributes", {})
        remembered.update(copy.deepcopy(attributes))
        # The SDK has no public hook for a schema that grows mid-sync: re-register it with
        # the mapper so SCHEMA messages (and stream maps) see the new attributes.
        mapper = self._tap.mapper
        mapper.register_raw_stream_schema(self.name, self.effective_schema, self.primary_keys)
        self._stream_maps = mapper.stream_maps[self.name]
        self._write_schema_message()

    def _widen(self, name: str, known: dict[str, Any], wanted: dict[str, Any]) -> dict[str, Any]:
        if known["type"] == wanted["type"] == ["string", "null"]:
            return {"type": ["string", "null"]}  # S, N and B mixed: text keeps every value
        raise StreamGapError(
            f"Table {self.table!r}: attribute {name!r} changed type from {known} to {wanted}; "
            "rename the attribute or exclude it with a stream map."
        )

    # -- records ----------------------------------------------------------------------------
    def _full_image(self, image: dict[str, Any]) -> dict[str, Any]:
        """The item as a record; attributes it lacks are null, since an image is the whole
        item (an upsert must not keep a value the item no longer has)."""
        self._declare(image)
        properties = self.schema["properties"]
        record = dict.fromkeys(properties)
        record.update((k, v) for k, v in convert.item_values(image).items() if k in properties)
        return record

    def _record(self, event: dict[str, Any], shard_id: str) -> dict[str, Any]:
        data = event["dynamodb"]
        when = event_time(data["ApproximateCreationDateTime"])
        try:
            if event["eventName"] == "REMOVE":
                image = data.get("OldImage") or data["Keys"]
            else:
                image = data["NewImage"]
            record = self._full_image(image)
        except (KeyError, ValueError, TypeError) as err:
            raise UnreadableEvent(
                f"Table {self.table!r}: shard {shard_id}: event {event.get('eventName')} at "
                f"sequence number {data.get('SequenceNumber')} cannot be read ({err!r}); "
                "nothing at or after it was emitted."
            ) from err
        record.update(
            _sdc_event_name=event["eventName"],
            _sdc_sequence_number=self._version(data["SequenceNumber"]),
            _sdc_shard_id=shard_id,
            _sdc_event_time=when,
            _sdc_deleted_at=when if event["eventName"] == "REMOVE" else None,
        )
        return record

    def _version(self, sequence_number: str) -> str:
        """The record's version: its sequence number, unless a snapshot was versioned above it.

        After a snapshot of version ``S`` (see ``_snapshot_version``), an event whose sequence
        number is at or below ``S`` (a shard lineage whose numbers lag behind another's: they
        are ordered within a lineage only) gets ``S.<sequence number as 40 digits>``: above the
        snapshot, below every sequence number greater than ``S``, and ordered like the
        sequence numbers themselves, so within the item's lineage the newer event still wins.
        """
        floor = self.stream_state.get("snapshot_version")
        if floor is None or int(sequence_number) > int(floor):
            return sequence_number
        return f"{floor}.{int(sequence_number):040d}"

    def get_records(self, context: Any) -> Iterable[dict[str, Any]]:
        try:
            yield from self._changes()
        except (StillThrottled, ClientError) as err:
            raise AwsCallFailed(
                f"Table {self.table!r}: {err}. Nothing after the last STATE was lost; "
                "run again once AWS answers (check credentials and permissions if it says so)."
            ) from err

    def _changes(self) -> Iterator[dict[str, Any]]:
        self._deadline = time.monotonic() + float(self.config.get("max_run_seconds") or 300)
        self._run_start = time.time()
        state = self.stream_state
        remembered = state.get("attributes") or {}
        if any(self.schema["properties"].get(n) != p for n, p in remembered.items()):
            self._adopt(remembered)
        arns = self.aws.stream_arns(self.table)
        if not arns:
            raise gap(self.table, "no stream is enabled on this table")
        latest, saved = arns[-1], state.get("stream_arn")
        if saved and saved != latest:
            yield from self._drain_replaced_stream(saved, arns, latest)
            return
        if not saved:
            yield from self._first_run(latest)
            return
        outcome = yield from self._read_stream(latest, ShardLedger(self.table, state), emit=True)
        self._fail_if_disabled(latest, outcome)

    def _first_run(self, arn: str) -> Iterator[dict[str, Any]]:
        """A new pipeline: positions first (if not from TRIM_HORIZON), then optional snapshot."""
        start_latest = self.config.get("start_position") == "latest"
        snapshot = bool(self.config.get("initial_snapshot"))
        handoff: dict[str, Any] = {"stream_arn": arn}
        ledger = ShardLedger(self.table, handoff)
        if start_latest or snapshot:
            # Positions are taken BEFORE the scan starts: anything written during the scan
            # comes after them and is read from the stream afterwards.
            for _ in self._read_stream(arn, ledger, emit=False):
                pass
            if time.monotonic() > self._deadline:
                return  # nothing committed to state: the next run starts over
        if snapshot:
            handoff["snapshot_version"] = self._snapshot_version(arn, ledger)
            yield from self._snapshot_records(handoff["snapshot_version"])
        self.stream_state.update(handoff)
        self._flush_state()
        ledger = ShardLedger(self.table, self.stream_state)
        outcome = yield from self._read_stream(arn, ledger, emit=True)
        self._fail_if_disabled(arn, outcome)

    def _fail_if_disabled(self, arn: str, outcome: Outcome) -> None:
        """A disabled stream read to its end: writes since then are in no stream."""
        if outcome is Outcome.ENDED and self._stream_status == "DISABLED":
            raise gap(
                self.table,
                f"its stream {arn} is disabled and was read to its end; changes made since "
                "it was disabled are in no stream. Enable a stream on the table",
            )

    def _snapshot_version(self, arn: str, ledger: ShardLedger) -> str:
        """One more than the highest sequence number at or before the handoff positions.

        Every version loaded before is below it: an event is at or before its shard's
        position, or at or below the shard's ``EndingSequenceNumber``, or (shard aged out)
        below its listed descendants' ``StartingSequenceNumber``; an event versioned by an
        earlier snapshot is below that snapshot's version plus one. Events after the positions
        are versioned above it by ``_version``. See the README ("Initial snapshot").
        """
        _, listing = self.aws.describe_stream(arn)
        known = [int(e["sequence_number"]) for e in ledger.entries.values() if e["sequence_number"]]
        for shard in listing.values():
            bounds = shard.get("SequenceNumberRange", {})
            known += [
                int(bounds[k])
                for k in ("StartingSequenceNumber", "EndingSequenceNumber")
                if bounds.get(k)
            ]
        return str(max(known, default=0) + 1)

    def _snapshot_records(self, version: str) -> Iterator[dict[str, Any]]:
        """Every item, as one full-table version: the target drops rows the scan did not see."""
        started = datetime.now(timezone.utc).isoformat()
        segments = int(self.config.get("scan_segments") or 4)
        table_version = int(time.time() * 1000)
        self._stream_version = table_version
        self._write_activate_version_message(table_version)
        for item in scan_table(self.aws, self.table, segments):
            record = self._full_image(item)
            record.update(
                _sdc_event_name="SNAPSHOT",
                _sdc_sequence_number=version,
                _sdc_shard_id=None,
                _sdc_event_time=started,
                _sdc_deleted_at=None,
            )
            yield record
        # Resumed: the SDK wrote every snapshot record; close the version.
        self._write_activate_version_message(table_version)
        self._stream_version = None

    def _drain_replaced_stream(
        self, saved: str, arns: list[str], latest: str
    ) -> Iterator[dict[str, Any]]:
        """The stream ARN changed: finish the old stream if still readable, then fail loudly."""
        ledger = ShardLedger(self.table, self.stream_state)
        if saved in arns:
            outcome = yield from self._read_stream(saved, ledger, emit=True)
            if outcome is Outcome.OUT_OF_TIME:
                return
        raise gap(
            self.table,
            f"its stream changed from {saved} to {latest} (stream disabled and re-enabled); "
            f"the old stream was read as far as it goes ({len(ledger.entries)} shards tracked) "
            "and changes between the two streams are not in any stream",
        )

    def _read_stream(
        self, arn: str, ledger: ShardLedger, emit: bool
    ) -> Generator[dict[str, Any], None, Outcome]:
        first_listing = not ledger.entries
        while True:
            description, listing = self.aws.describe_stream(arn)
            self._stream_status = description.get("StreamStatus")
            if description.get("StreamViewType") not in READABLE_VIEW_TYPES:
                raise gap(
                    self.table,
                    f"stream view type {description.get('StreamViewType')} carries no new "
                    "item image; enable NEW_IMAGE or NEW_AND_OLD_IMAGES",
                )
            ledger.reconcile(listing, first_listing)
            first_listing = False
            ready = ledger.ready(listing)
            if not ready:
                return Outcome.ENDED
            ended_any = False
            for shard_id in ready:
                outcome = yield from self._read_shard(arn, ledger, shard_id, listing, emit)
                if outcome is Outcome.OUT_OF_TIME:
                    return outcome
                ended_any = ended_any or outcome is Outcome.ENDED
            if not ended_any:
                return Outcome.CAUGHT_UP

    def _read_shard(
        self,
        arn: str,
        ledger: ShardLedger,
        shard_id: str,
        listing: dict[str, dict[str, Any]],
        emit: bool,
    ) -> Generator[dict[str, Any], None, Outcome]:
        entry = ledger.entry(shard_id)
        limit = int(self.config.get("max_records_per_request") or 1000)
        idle_after = int(self.config.get("empty_pages_before_idle") or 3)
        empty_pages = 0
        iterator = self._iterator(arn, ledger, shard_id, listing)
        while True:
            if time.monotonic() > self._deadline:
                return Outcome.OUT_OF_TIME
            try:
                page = self.aws.records(iterator, limit)
            except ExpiredIterator:
                iterator = self._iterator(arn, ledger, shard_id, listing)
                continue
            except TrimmedData:
                raise self._trimmed(shard_id, entry) from None
            except ResourceNotFound:
                raise self._vanished(shard_id, entry) from None
            for event in page["Records"]:
                if emit:
                    yield self._record(event, shard_id)
                # Only after the SDK wrote the record (the generator resumed): never ahead.
                entry["sequence_number"] = event["dynamodb"]["SequenceNumber"]
            next_iterator = page.get("NextShardIterator")
            if next_iterator is None:
                entry["ended"] = True
            if emit and (page["Records"] or next_iterator is None):
                self._flush_state()
            if next_iterator is None:
                return Outcome.ENDED
            empty_pages = 0 if page["Records"] else empty_pages + 1
            if empty_pages >= idle_after or self._past_run_start(page["Records"]):
                return Outcome.CAUGHT_UP
            iterator = next_iterator

    def _past_run_start(self, records: list[dict[str, Any]]) -> bool:
        """An open shard reached events written after this run started: leave them for later."""
        if not records:
            return False
        created = records[-1]["dynamodb"]["ApproximateCreationDateTime"]
        epoch = created.timestamp() if isinstance(created, datetime) else float(created)
        return epoch >= self._run_start

    def _iterator(
        self, arn: str, ledger: ShardLedger, shard_id: str, listing: dict[str, dict[str, Any]]
    ) -> str:
        entry = ledger.entry(shard_id)
        try:
            return self.aws.shard_iterator(
                arn, shard_id, ledger.start_position(shard_id, listing[shard_id])
            )
        except TrimmedData:
            raise self._trimmed(shard_id, entry) from None
        except ResourceNotFound:
            raise self._vanished(shard_id, entry) from None

    def _trimmed(self, shard_id: str, entry: dict[str, Any]) -> StreamGapError:
        after = entry["sequence_number"] or "the shard's start"
        return gap(
            self.table,
            f"shard {shard_id}: data after sequence number {after} was trimmed "
            "(older than the 24-hour retention) before it was read",
        )

    def _vanished(self, shard_id: str, entry: dict[str, Any]) -> StreamGapError:
        return vanished(self.table, shard_id, entry["sequence_number"])


def discover_table_streams(tap: Tap) -> list[Stream]:
    aws = AwsClients(tap.config)
    return [TableStream(tap, table, aws.describe_table(table)) for table in tap.config["tables"]]
