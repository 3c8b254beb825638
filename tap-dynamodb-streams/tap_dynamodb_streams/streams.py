"""One Singer stream per DynamoDB table: its change events, in order, or a loud error."""

from __future__ import annotations

import copy
import functools
import math
import time
from collections.abc import Generator, Iterable, Iterator
from datetime import datetime, timezone
from typing import Any

from singer_sdk import Stream, Tap
from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.mapper import SameRecordTransform
from singer_sdk.singerlib import RecordMessage
from typing_extensions import override

from tap_dynamodb_streams import convert, sdk_compat
from tap_dynamodb_streams.client import AwsClients
from tap_dynamodb_streams.errors import AwsCallFailed, InvalidPosition
from tap_dynamodb_streams.lineage import ShardLedger, StreamGapError, gap
from tap_dynamodb_streams.reader import Outcome, StreamReader, created_at
from tap_dynamodb_streams.settings import TapSettings
from tap_dynamodb_streams.snapshot import scan_table

SEQUENCE = "_sdc_sequence_number"


class AwsCallError(Exception):
    """An AWS call failed for good; the position in the state is intact."""


class UnreadableEvent(Exception):
    """A stream record this tap cannot turn into a Singer record."""


class NoProgress(Exception):
    """A run ended with work left and nothing saved: the next run would do the same."""


def metadata_properties(mark_expired: bool) -> dict[str, Any]:
    moment = {"type": ["string", "null"], "format": "date-time"}
    properties: dict[str, Any] = {
        "_sdc_event_name": {"type": ["string", "null"]},
        SEQUENCE: {"type": ["string"], "format": "x-singer.decimal"},
        "_sdc_shard_id": {"type": ["string", "null"]},
        "_sdc_event_time": moment,
        "_sdc_deleted_at": dict(moment),
    }
    if mark_expired:
        properties["_sdc_expired_at"] = dict(moment)  # TTL expiry, kept apart from deletes
    return properties


def table_schema(description: dict[str, Any], mark_expired: bool = False) -> dict[str, Any]:
    """Key attributes (typed from AttributeDefinitions) plus the change-event metadata."""
    kinds = {a["AttributeName"]: a["AttributeType"] for a in description["AttributeDefinitions"]}
    keys = [k["AttributeName"] for k in description["KeySchema"]]
    properties = {}
    for key in keys:
        schema = dict(convert.kind_schema(kinds[key]))
        schema["type"] = [t for t in schema["type"] if t != "null"]
        properties[key] = schema
    properties.update(metadata_properties(mark_expired))
    return {"type": "object", "properties": properties, "required": [*keys, SEQUENCE]}


@functools.lru_cache(maxsize=4096)  # events of one page mostly share their creation second
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

    def __init__(
        self,
        tap: Tap,
        table: str,
        description: dict[str, Any],
        aws: AwsClients,
        settings: TapSettings,
    ) -> None:
        self.table = table
        self.settings = settings
        self.key_names = [k["AttributeName"] for k in description["KeySchema"]]
        mark_expired = settings.ttl_deletions == "mark"
        super().__init__(tap, schema=table_schema(description, mark_expired), name=table)
        self.primary_keys = self.key_names
        self.aws = aws
        self._reader: StreamReader | None = None
        self._deadline = 0.0
        self._moved = False
        self._last_state_at = 0.0
        self._stream_status: str | None = None
        self._checked: dict[str, str] = {}  # attribute name -> type already in the schema
        self._plain_records: bool | None = None  # see _generate_record_messages
        self._floor: int | None = None  # the snapshot version, while reading (see _version)
        self._snapshotting = False

    # The SDK's own bookmark logic keeps one max replication-key value; ours is per shard
    # (see lineage.py), so the per-record increment is switched off.
    @override
    def _increment_stream_state(
        self, latest_record: dict[str, Any], *, context: Any = None
    ) -> None:
        return None

    def _state_moved(self, force: bool = False) -> None:
        """A position moved: emit STATE once every record it covers has been delivered.

        RECORD lines are already on stdout, so STATE may go now (at most once a second, and
        the SDK writes the last one at the end). With ``batch_config`` the records may still
        sit in a batch file being filled: the state is only marked changed, and the SDK writes
        it right after the BATCH message of that file (``_sync_batches``).
        """
        self._moved = True
        sdk_compat.mark_state_unflushed(self)
        if self.get_batch_config(self.config) is not None:
            return
        now = time.monotonic()
        if force or now - self._last_state_at >= self.settings.state_interval_seconds:
            self._last_state_at = now
            sdk_compat.write_state(self)

    # -- schema that follows the data -------------------------------------------------------
    # DynamoDB has no schema beyond the key. Attributes are declared as they are first seen
    # and remembered in the state (``attributes``), so a later run still sends them (as null
    # when an item lacks them) and an upsert never keeps a value the item no longer has.
    def _declare(self, image: dict[str, Any]) -> None:
        """Add attributes seen for the first time to the schema and re-send SCHEMA."""
        properties = self.schema["properties"]
        checked = self._checked
        wanted: dict[str, dict[str, Any]] = {}
        for name, attribute in image.items():
            kind = convert.kind_of(attribute)
            if checked.get(name) == kind:
                continue
            if kind == "NULL" or name in self.key_names:
                checked[name] = kind
                continue
            schema = convert.kind_schema(kind)
            known = properties.get(name)
            if known is None:
                wanted[name] = schema
            elif known != schema:
                widened = self._widen(name, known, schema)
                if widened != known:
                    wanted[name] = widened
                else:
                    checked[name] = kind
            else:
                checked[name] = kind
        if wanted:
            self._adopt(wanted)

    def _adopt(self, attributes: dict[str, dict[str, Any]]) -> None:
        self._checked.clear()
        self._plain_records = None
        remembered = self.stream_state.setdefault("attributes", {})
        remembered.update(copy.deepcopy(attributes))
        sdk_compat.grow_schema(self, copy.deepcopy(attributes))

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
        checked = self._checked
        record = dict.fromkeys(self.schema["properties"])
        for name, attribute in image.items():  # the commonest kinds inline; see convert.py
            ((kind, value),) = attribute.items()
            if checked.get(name) != kind:
                self._declare(image)  # a new attribute or type: the schema first, then again
                return self._full_image(image)
            if kind == "S" or kind == "N":
                record[name] = value
            elif kind != "NULL":  # a NULL is the record's null; one never typed is no column
                record[name] = convert.attribute_value(attribute)
        return record

    def _record(
        self, event: dict[str, Any], shard_id: str, mark_expired: bool = False
    ) -> dict[str, Any]:
        data = event["dynamodb"]
        try:
            when = event_time(data["ApproximateCreationDateTime"])
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
            _sdc_deleted_at=when if event["eventName"] == "REMOVE" and not mark_expired else None,
        )
        if "_sdc_expired_at" in self.schema["properties"]:
            record["_sdc_expired_at"] = when if mark_expired else None
        return record

    def _version(self, sequence_number: str) -> str:
        """The record's version: its sequence number, unless a snapshot was versioned above it.

        After a snapshot of version ``S`` (see ``_snapshot_version``), an event whose sequence
        number is at or below ``S`` (a shard lineage whose numbers lag behind another's: they
        are ordered within a lineage only) gets ``S.<sequence number as 40 digits>``: above the
        snapshot, below every sequence number greater than ``S``, and ordered like the
        sequence numbers themselves, so within the item's lineage the newer event still wins.
        """
        floor = self._floor
        if floor is None or int(sequence_number) > floor:
            return sequence_number
        return f"{floor}.{int(sequence_number):040d}"

    @override
    def generate_child_contexts(
        self, record: dict[str, Any], context: Any
    ) -> Iterable[dict[str, Any] | None]:
        return ()  # a table has no child streams: skip the SDK's per-record child context

    @override
    def _generate_record_messages(
        self, record: dict[str, Any]
    ) -> Generator[RecordMessage, None, None]:
        """The SDK's RECORD message, without its per-record walk of the schema for deselected
        properties and its clock read, when neither applies: every property selected, no
        stream map, no flattening, no type conformance. ``time_extracted`` is when the event's
        page came."""
        if self._plain_records is None:
            maps = self.stream_maps
            self._plain_records = (
                self.TYPE_CONFORMANCE_LEVEL == TypeConformanceLevel.NONE
                and all(self.mask.values())
                and len(maps) == 1
                and type(maps[0]) is SameRecordTransform
                and maps[0].stream_alias == self.name
                and not maps[0].flattening_enabled  # its transform() flattens
            )
        if not self._plain_records or self._reader is None or self._snapshotting:
            yield from super()._generate_record_messages(record)
            return
        yield RecordMessage(
            stream=self.name,
            record=record,
            version=sdk_compat.stream_version(self),
            time_extracted=self._reader.extracted_at,
        )

    @override
    def get_records(self, context: Any) -> Iterable[dict[str, Any]]:
        try:
            yield from self._changes()
        except (AwsCallFailed, InvalidPosition) as err:
            raise AwsCallError(
                f"Table {self.table!r}: {err}. Nothing after the last STATE was lost; "
                "run again once AWS answers (check credentials and permissions if it says so)."
            ) from err
        finally:
            if self._reader is not None:
                self._reader.lag.log(final=True)

    def _changes(self) -> Iterator[dict[str, Any]]:
        self._deadline = time.monotonic() + self.settings.max_run_seconds
        self.aws.start(self.table, self._deadline)
        self._moved = False
        state = self.stream_state
        remembered = state.get("attributes") or {}
        if any(self.schema["properties"].get(n) != p for n, p in remembered.items()):
            self._adopt(remembered)
        arns = self.aws.stream_arns(self.table)
        if not arns:
            raise gap(self.table, "no stream is enabled on this table")
        latest, saved = arns[-1], state.get("stream_arn")
        if saved and saved != latest:
            outcome = yield from self._drain_replaced_stream(saved, arns, latest)
        else:
            if not saved:
                self._begin(latest)
            outcome = Outcome.CAUGHT_UP
            if "handoff" in state:
                outcome = yield from self._continue_handoff(latest)
            if outcome is not Outcome.OUT_OF_TIME:
                outcome = yield from self._read(latest, self._ledger(state))
                self._fail_if_disabled(latest, outcome)
        if outcome is Outcome.OUT_OF_TIME and not self._moved:
            failing = self.aws.calls.last_failure
            raise NoProgress(
                f"Table {self.table!r}: max_run_seconds ({self.settings.max_run_seconds:g}) "
                "ran out before any shard position moved; the state is unchanged. "
                + (
                    f"The last AWS call that failed: {failing}; check the endpoint."
                    if failing
                    else "Raise max_run_seconds (or max_parallel_shards) so that a run can "
                    "make progress."
                )
            )

    def _ledger(self, holder: dict[str, Any]) -> ShardLedger:
        return ShardLedger(self.table, holder, self.settings.partition)

    def _begin(self, arn: str) -> None:
        """A new pipeline: save where it starts before reading anything.

        ``latest`` keeps the service's time now: older events are passed over (their positions
        still saved), later ones emitted. ``initial_snapshot`` first moves a pending hand-off
        ledger to the end of the retained data (over as many runs as that takes), then scans.
        """
        state = self.stream_state
        state["stream_arn"] = arn
        if self.settings.initial_snapshot:
            state["handoff"] = {"shards": {}}
        elif self.settings.start_position == "latest":
            state["emit_since"] = self.aws.server_time()
        self._state_moved(force=True)

    def _continue_handoff(self, arn: str) -> Generator[dict[str, Any], None, Outcome]:
        """Move the hand-off positions to this run's start, then snapshot and switch over."""
        state = self.stream_state
        handoff = self._ledger(state["handoff"])
        outcome = yield from self._read(arn, handoff, emit=False)
        if outcome is Outcome.OUT_OF_TIME:
            return outcome
        # Positions are where this run started: anything written during the scan comes after
        # them and is read from the stream afterwards.
        version = self._snapshot_version(arn, handoff)
        yield from self._snapshot_records(version)
        state["shards"] = state.pop("handoff")["shards"]
        state["snapshot_version"] = version
        self._state_moved(force=True)
        return Outcome.CAUGHT_UP

    def _read(
        self, arn: str, ledger: ShardLedger, emit: bool = True
    ) -> Generator[dict[str, Any], None, Outcome]:
        if self._reader is None:
            self._reader = StreamReader(self.aws, self.table, self.settings)
        since = float(self.stream_state.get("emit_since") or 0)
        floor = self.stream_state.get("snapshot_version")
        self._floor = None if floor is None else int(floor)
        ttl = self.settings.ttl_deletions
        reading = self._reader.read(arn, ledger, self._deadline, self._state_moved)
        outcome: Outcome = yield from self._emitted(reading, emit, since, ttl)
        self._stream_status = self._reader.stream_status
        return outcome

    def _emitted(
        self,
        reading: Generator[tuple[str, dict[str, Any]], None, Outcome],
        emit: bool,
        since: float,
        ttl: str,
    ) -> Generator[dict[str, Any], None, Outcome]:
        """The events the pipeline wants, as records; the reader moves every position."""
        while True:
            try:
                shard_id, event = next(reading)
            except StopIteration as done:
                return done.value
            if not emit or (since and created_at(event) < since):
                continue
            expired = is_ttl_deletion(event)
            if expired and ttl == "drop":
                continue
            yield self._record(event, shard_id, mark_expired=expired and ttl == "mark")

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
        known = [
            int(e["sequence_number"]) for e in ledger.entries.values() if e.get("sequence_number")
        ]
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
        segments = self.settings.scan_segments
        table_version = int(time.time() * 1000)
        sdk_compat.set_stream_version(self, table_version)
        sdk_compat.write_activate_version(self, table_version)
        self._snapshotting = True  # records of a scan: the SDK's own time_extracted
        # max_run_seconds does not cut a scan (a partial scan cannot be resumed): its retries
        # are bounded by aws_max_attempts and aws_call_timeout_seconds alone.
        self.aws.start(self.table, math.inf)
        try:
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
        finally:
            self._snapshotting = False
            self.aws.start(self.table, self._deadline)
        # Resumed: the SDK wrote every snapshot record; close the version.
        sdk_compat.write_activate_version(self, table_version)
        sdk_compat.set_stream_version(self, None)

    def _drain_replaced_stream(
        self, saved: str, arns: list[str], latest: str
    ) -> Generator[dict[str, Any], None, Outcome]:
        """The stream ARN changed: finish the old stream if still readable, then fail loudly."""
        ledger = self._ledger(self.stream_state)
        if saved in arns:
            outcome = yield from self._read(saved, ledger)
            if outcome is Outcome.OUT_OF_TIME:
                return outcome
        raise gap(
            self.table,
            f"its stream changed from {saved} to {latest} (stream disabled and re-enabled); "
            f"the old stream was read as far as it goes ({len(ledger.entries)} shards tracked) "
            "and changes between the two streams are not in any stream",
        )


def is_ttl_deletion(event: dict[str, Any]) -> bool:
    """A REMOVE made by DynamoDB's Time to Live, not by a user (Developer Guide, "TTL and
    DynamoDB Streams": userIdentity type Service, principalId dynamodb.amazonaws.com)."""
    identity = event.get("userIdentity") or {}
    return (
        event.get("eventName") == "REMOVE"
        and identity.get("type") == "Service"
        and identity.get("principalId") == "dynamodb.amazonaws.com"
    )


def discover_table_streams(tap: Tap, settings: TapSettings) -> list[Stream]:
    aws = AwsClients(settings)
    streams: list[Stream] = []
    for table in settings.tables:
        aws.start(table, time.monotonic() + settings.max_run_seconds)
        try:
            description = aws.describe_table(table)
        except AwsCallFailed as err:
            raise AwsCallError(
                f"Table {table!r}: {err}. Check the table name, region_name and endpoint_url "
                "(and the credentials' dynamodb:DescribeTable permission)."
            ) from err
        streams.append(TableStream(tap, table, description, aws, settings))
    return streams
