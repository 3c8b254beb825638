"""One sink per stream: check its records, buffer them and COPY them into a private stage.

The SDK's SQLSink validates and converts every record in Python; at COPY speed that is the
bottleneck, so this sink keeps each record as the raw JSON bytes the tap sent and lets
PostgreSQL validate, cast, dedupe and merge a whole batch at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import msgspec
import psycopg
from psycopg import sql

from target_postgres_atomic import merge
from target_postgres_atomic.errors import SEQ_SHIFT, BadRecordError
from target_postgres_atomic.landing import Batch, Lander
from target_postgres_atomic.reader import decode_message
from target_postgres_atomic.spec import TableSpec, generated_name
from target_postgres_atomic.staging import Stager
from target_postgres_atomic.typed import ROW_VALUES, TypedLayout, typed_layout
from target_postgres_atomic.validation import (
    chunk_checker,
    nested_checker,
    record_checker,
    typed_path_refusal,
)

NUL_ESCAPE = b"\\u0000"
COPY_CHUNK_ROWS = 1000
KEY_CHECK_EVERY = 1000
"""Top-level keys are compared with the schema for each of the first this many records after
a SCHEMA, then for one in this many (a key decode per record would cost ~10% on the typed
path)."""
_record_keys = msgspec.json.Decoder(dict[str, msgspec.Raw]).decode


class _LineRecord(msgspec.Struct):
    """A RECORD line with its record's values left undecoded (only its keys are wanted)."""

    record: dict[str, msgspec.Raw]


_line_keys = msgspec.json.Decoder(_LineRecord).decode


def _line_record_keys(line: bytes) -> dict[str, Any]:
    return _line_keys(line).record


logger = logging.getLogger("target-postgres-atomic")


@dataclass(frozen=True)
class SinkSettings:
    batch_size_rows: int
    batch_size_bytes: int
    hard_delete: bool
    validate_records: bool
    upsert: bool
    sanitize_null_text_characters: bool


def _nul_field(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_nul_field(k) or _nul_field(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_nul_field(v) for v in value)
    return False


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nul(v) for v in value]
    return value


class PostgresSink:
    """Buffered records of one stream and the statements that land them."""

    def __init__(
        self, spec: TableSpec, stage_name: str, settings: SinkSettings, stagers: list[Stager]
    ) -> None:
        self.spec = spec
        self.settings = settings
        self.stage = sql.Identifier(stage_name)
        self.stagers = stagers
        self.stager = stagers[0]
        """The session records stream into now (the target alternates two sessions)."""
        self.layout: TypedLayout | None = None
        self.check_nested: Callable[[int, tuple[Any, ...]], None] | None = None
        """On the typed path: the rules inside objects and arrays (validate_records)."""
        self.check_chunk: Callable[[list[tuple[Any, ...]]], bool] | None = None
        """On the typed path: the same checks and the kind checks, for many rows at once."""
        self._general_rows = 0
        """Rows of this batch staged as raw JSON only in a typed stage."""
        self._keys: set[Any] = set()
        self._unique_keys = False
        """Every row of this batch so far is typed and has a key no other row has."""
        self._make_stages()
        self.check = record_checker(spec, check_types=settings.validate_records)
        self._records_since_schema = 0
        self._dropped_named = False
        """Properties the schema lacks were named once (per stream, not per SCHEMA)."""
        self.chunk: list[Any] = []
        """COPY text rows (bytes), or rows of values for a typed stage."""
        self.chunk_seqs: list[int] = []
        """The arrival numbers of the text rows of the chunk."""
        self._checked = 0
        """Rows of the chunk checked: those after it came by `take_lines`, unchecked."""
        self._unchecked_lines: list[bytes] = []
        """The input lines of those rows."""
        self.pending = 0
        """Records received since the last merge (in the chunk or already in the stage)."""
        self.size_bytes = 0
        self.first_seq = 0
        """The arrival number of the batch's first record (its input line, shifted)."""
        self.last_seq = 0
        self.table_versions: set[int] = set()
        self.shadow_version: int | None = None
        """Records of this table version go to the shadow table until it is activated."""
        self.opened: set[int] = set()
        """Table versions whose opening ACTIVATE_VERSION this run has seen."""
        self.shadow = sql.Identifier(
            spec.schema, generated_name(f"_sdc_shadow_{spec.table}", spec.schema, spec.table)
        )
        self.lander = Lander(self.stage, self.shadow, settings.upsert, settings.hard_delete)

    def update_spec(self, spec: TableSpec) -> None:
        """A new SCHEMA for the stream (its buffered rows were merged under the old one)."""
        self.spec = spec
        self._make_stages()
        self.check = record_checker(spec, check_types=self.settings.validate_records)
        self._records_since_schema = 0

    def _make_stages(self) -> None:
        """Each session's stage for this stream, typed when its schema maps cleanly and its
        strict decode checks all the schema says."""
        validated = self.settings.validate_records and typed_path_refusal(self.spec) is not None
        self.layout = None if validated else typed_layout(self.spec)
        self.check_nested = self.check_chunk = None
        if self.layout is not None:
            sources = [source for source, _ in self.layout.fields.values()]
            nested = self.settings.validate_records
            if nested:
                self.check_nested = nested_checker(self.spec, sources)
            self.check_chunk = chunk_checker(
                self.spec, sources, self.layout.checks, offset=ROW_VALUES, nested=nested
            )
        for stager in self.stagers:
            stager.create_stage(self.stage, self.layout)
        self._start_batch()

    def _start_batch(self) -> None:
        self._general_rows = 0
        self._keys = set()
        self._unique_keys = self.layout is not None and self.layout.key_index is not None

    @property
    def refreshing(self) -> bool:
        """Records of this run wait in the shadow table (not yet in the real table)."""
        return self.shadow_version is not None and self.shadow_version in self.table_versions

    def closes(self, version: int) -> bool:
        """Whether an ACTIVATE_VERSION of `version` ends its refresh (else it opens one)."""
        return version in self.table_versions or version in self.opened

    @property
    def full(self) -> bool:
        return (
            self.pending >= self.settings.batch_size_rows
            or self.size_bytes >= self.settings.batch_size_bytes
        )

    def _checks_keys(self) -> bool:
        """Whether to compare this record's top-level keys with the schema (KEY_CHECK_EVERY)."""
        if self._dropped_named:
            return False
        self._records_since_schema += 1
        count = self._records_since_schema
        return count <= KEY_CHECK_EVERY or count % KEY_CHECK_EVERY == 0

    def _name_dropped(self, keys_of: Callable[[bytes], dict[str, Any]], data: bytes) -> None:
        """Dropping properties the schema lacks is what Singer targets do: say so, once per
        stream, by name only (values may be secrets)."""
        try:
            dropped = keys_of(data).keys() - self.spec.properties.keys()
        except msgspec.DecodeError:
            return  # not an object: the record checks name the line
        if dropped:
            self._dropped_named = True
            logger.warning(
                "Stream '%s': dropping properties not in its schema: %s (add them to the "
                "tap's schema to load them; named once per stream).",
                self.spec.stream,
                ", ".join(repr(name) for name in sorted(dropped)),
            )

    def add(self, seq: int, raw: bytes, version: int | None, time_extracted: str | None) -> None:
        """Check one record and buffer it for COPY: the per-record work in Python."""
        if self._checks_keys():
            self._name_dropped(_record_keys, raw)
        layout = self.layout
        # Rows bound for a shadow table keep the general layout (the shadow has no typed
        # columns); so do records with a NUL escape (refused or sanitized below).
        if layout is not None and self.shadow_version is None and NUL_ESCAPE not in raw:
            values = layout.values(raw)
            if values is not None:
                self.add_values(seq, values, version, time_extracted, len(raw))
                return
            # The strict decode refused it: a bad record is named here; one PostgreSQL may
            # still read (or unchecked with validate_records off) is staged as raw JSON.
            row: Any = self._raw_typed_row(seq, raw, version, time_extracted)
            self._buffer(row, seq, version, len(raw), typed=True)
            return
        raw = self.check(seq, raw)
        if NUL_ESCAPE in raw:
            raw = self._handle_nul(seq, raw)
        if b"\\" in raw:
            raw = raw.replace(b"\\", b"\\\\")
        if b"\t" in raw or b"\r" in raw:
            # JSON whitespace between tokens (inside strings these are always escaped).
            raw = raw.replace(b"\t", b" ").replace(b"\r", b" ")
        tv = b"\\N" if version is None else b"%d" % version
        extracted = b"\\N" if time_extracted is None else time_extracted.encode()
        row = b"%d\t%b\t%b\t%b\n" % (seq, tv, extracted, raw)
        if layout is not None:
            # A typed stage: the general columns only (the typed ones stay NULL).
            self._general_rows += 1
            self._unique_keys = False
        self._buffer(row, seq, version, len(row), typed=False)

    def add_values(
        self,
        seq: int,
        values: tuple[Any, ...],
        version: int | None,
        time_extracted: str | None,
        size: int,
    ) -> None:
        """Buffer one record's typed stage values (decoded and checked by `self.layout`)."""
        if self.check_nested is not None:
            self.check_nested(seq, values)
        if self._unique_keys:
            keys = self._keys
            count = len(keys)
            keys.add(values[self.layout.key_index])  # type: ignore[union-attr,index]
            if len(keys) == count:
                self._unique_keys = False
        self._buffer((seq, version, time_extracted, None, *values), seq, version, size, typed=True)

    def _raw_typed_row(
        self, seq: int, raw: bytes, version: int | None, time_extracted: str | None
    ) -> tuple[Any, ...]:
        """A record the strict decode refused, for a typed stage: a bad one is named here;
        one PostgreSQL may still read (or unchecked, validate_records off) goes as raw JSON."""
        assert self.layout is not None
        raw = self.check(seq, raw)
        self._general_rows += 1
        self._unique_keys = False
        return (seq, version, time_extracted, msgspec.Raw(raw), *(None,) * len(self.layout.fields))

    def _buffer(self, row: Any, seq: int, version: int | None, size: int, *, typed: bool) -> None:
        if version is not None:
            self.table_versions.add(version)
        if self.chunk and isinstance(self.chunk[0], tuple) != typed:
            self.send_chunk()  # one chunk, one kind of COPY
        self.check_pending()  # rows are checked in input order
        self.chunk.append(row)
        self._checked = len(self.chunk)
        if not typed:
            self.chunk_seqs.append(seq)
        if not self.pending:
            self.first_seq = seq
        self.last_seq = seq
        self.pending += 1
        self.size_bytes += size
        if len(self.chunk) >= COPY_CHUNK_ROWS:
            self.send_chunk()

    def take_lines(
        self, lines: list[bytes], index: int, stop: int, number: int, start: bytes
    ) -> int:
        """Buffer the RECORD lines of this stream among `lines[index:stop]` (the first is
        input line `number`; each starts with `start`), each decoded in one pass into its
        typed stage values; returns the index of the first line not taken.

        The per-record work of the fast path, kept to a few statements: the kind checks and
        the rules inside objects and arrays run per chunk (`check_pending`), before the rows
        are sent or any later line is read the general way.
        """
        assert self.layout is not None
        if self.chunk and not isinstance(self.chunk[0], tuple):
            self.send_chunk()  # one chunk, one kind of COPY
        decode, astuple, stream = self.layout.decode_line, msgspec.structs.astuple, self.spec.stream
        chunk, unchecked, versions = self.chunk, self._unchecked_lines, self.table_versions
        first, size, limit = index, self.size_bytes, self.settings.batch_size_bytes
        line_of = number - index  # the input line number of lines[0]
        seq = line_of << SEQ_SHIFT
        while index < stop:
            line = lines[index]
            if not line.startswith(start) or (b"\\" in line and NUL_ESCAPE in line):
                break  # another stream's, or refused or sanitized the general way
            try:
                message = decode(line)
            except (msgspec.DecodeError, RecursionError):
                break  # the general way names the line or stages the record as raw JSON
            if message.type != "RECORD" or message.stream != stream:
                break
            if (version := message.version) is not None:
                versions.add(version)
            # (Concatenation: half the time of unpacking into a new tuple.)
            chunk.append(
                (seq + (index << SEQ_SHIFT), version, message.time_extracted, None)  # noqa: RUF005
                + astuple(message.record)
            )
            unchecked.append(line)
            size += len(line)
            index += 1
            if len(chunk) >= COPY_CHUNK_ROWS or size >= limit:
                self._took(first, index, line_of + first, size)
                first = index
                self.send_chunk()
                chunk, unchecked = self.chunk, self._unchecked_lines
                if size >= limit:
                    break
        self._took(first, index, line_of + first, size)
        return index

    def _took(self, first: int, index: int, number: int, size: int) -> None:
        """Lines `first` to `index` (exclusive) of a read were taken (`number`: of `first`)."""
        if index == first:
            return
        if not self.pending:
            self.first_seq = number << SEQ_SHIFT
        self.last_seq = (number + index - first - 1) << SEQ_SHIFT
        self.pending += index - first
        self.size_bytes = size

    def check_pending(self) -> None:
        """Check the rows `take_lines` buffered since the last check: per column at once
        (`check_chunk`), or, where that fails, row by row to name the bad record or stage
        it as raw JSON, as if the strict decode had refused it."""
        lines = self._unchecked_lines
        if not lines:
            return
        start, chunk = self._checked, self.chunk
        rows = chunk[start:]
        if self.check_chunk is None or not self.check_chunk(rows):
            for offset, row in enumerate(rows):
                chunk[start + offset] = self._checked_row(row, lines[offset])
        if self._unique_keys:
            assert self.layout is not None and self.layout.key_index is not None
            keys, count = self._keys, len(self._keys)
            keys.update(map(itemgetter(ROW_VALUES + self.layout.key_index), rows))
            self._unique_keys = len(keys) - count == len(rows)
        self._note_keys(lines)
        self._checked, self._unchecked_lines = len(chunk), []

    def _checked_row(self, row: tuple[Any, ...], line: bytes) -> tuple[Any, ...]:
        """One row taken from `line`, checked as the general way would."""
        assert self.layout is not None
        seq, version, time_extracted = row[0], row[1], row[2]
        values = row[ROW_VALUES:]
        if not self.layout.kinds_ok(values):
            record = bytes(decode_message(line).record)
            return self._raw_typed_row(seq, record, version, time_extracted)
        if self.check_nested is not None:
            self.check_nested(seq, values)
        return row

    def _note_keys(self, lines: list[bytes]) -> None:
        """Name the properties the schema lacks, in the lines `_checks_keys` would pick."""
        if self._dropped_named:
            return
        count = self._records_since_schema
        self._records_since_schema += len(lines)
        head = max(0, min(len(lines), KEY_CHECK_EVERY - count))
        after = -(count + 1) % KEY_CHECK_EVERY  # the first index whose count is a multiple
        while after < head:
            after += KEY_CHECK_EVERY
        for line in [*lines[:head], *lines[after::KEY_CHECK_EVERY]]:
            self._name_dropped(_line_record_keys, line)
            if self._dropped_named:
                return

    def send_chunk(self) -> None:
        """Stream the chunk into the stage; PostgreSQL parses it while we read on."""
        if not self.chunk:
            return
        self.check_pending()
        if isinstance(self.chunk[0], tuple):
            assert self.layout is not None
            seqs = list(map(itemgetter(0), self.chunk))
            self.stager.write_rows(self.stage, self.spec.stream, self.layout, self.chunk, seqs)
        else:
            self.stager.write(self.stage, self.spec.stream, b"".join(self.chunk), self.chunk_seqs)
        self.chunk, self.chunk_seqs, self._checked = [], [], 0

    def _handle_nul(self, seq: int, raw: bytes) -> bytes:
        record = msgspec.json.decode(raw)
        if not isinstance(record, dict):
            return raw
        for field, value in record.items():
            if _nul_field(field) or _nul_field(value):
                if self.settings.sanitize_null_text_characters:
                    return msgspec.json.encode(_without_nul(record))
                raise BadRecordError(
                    self.spec.stream,
                    seq,
                    field,
                    "text contains a NUL character (\\u0000), which PostgreSQL cannot store; "
                    "set sanitize_null_text_characters: true to replace it with U+FFFD",
                )
        return raw

    @property
    def batch_lines(self) -> tuple[int, int]:
        """The input lines of the batch's first and last record."""
        return self.first_seq >> SEQ_SHIFT, self.last_seq >> SEQ_SHIFT

    def take_batch(self) -> Callable[[psycopg.Connection], int]:
        """The staged batch as a merge to run later (maybe on another thread) in a transaction,
        which returns how many of its records land in the table at its commit.

        The stream's schema and shadow version are fixed now, as the records were staged.
        """
        typed = None
        if self.layout is not None:
            typed = merge.Staged(
                self.layout.columns, mixed=self._general_rows > 0, casts=self.layout.casts
            )
        batch = Batch(self.spec, self.shadow_version, typed, self._unique_keys, self.pending)
        self.pending = 0
        self.size_bytes = 0
        self._start_batch()
        return lambda conn: self.lander.land(conn, batch)

    def shadow_exists(self, conn: psycopg.Connection) -> bool:
        found = conn.execute("SELECT to_regclass(%s)", (self.shadow.as_string(None),)).fetchone()
        return found is not None and found[0] is not None

    def drop_orphan_shadow(self, conn: psycopg.Connection) -> None:
        """Drop the shadow a killed run left (call with its lock held).

        Its rows were never covered by an emitted STATE (STATE waits for the swap), so the
        tap sends them again: dropping them loses nothing and the table stays as it was.
        """
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(self.shadow))

    def start_version(self, conn: psycopg.Connection, version: int) -> None:
        """The first ACTIVATE_VERSION of a full refresh: the real table is left untouched."""
        self.opened.add(version)
        if self.shadow_version == version:
            return  # a re-sent opening
        conn.execute(
            sql.SQL("CREATE TABLE IF NOT EXISTS {} ({})").format(self.shadow, merge.STAGE_COLUMNS)
        )
        conn.execute(sql.SQL("DELETE FROM {}").format(self.shadow))
        self.shadow_version = version
        self.lander.shadowed = 0

    def activate_version(self, conn: psycopg.Connection, version: int | None) -> int:
        """Make `version` the table's content: insert it, then retire older rows (one tx).
        Returns how many records land in the table at the commit (the shadow's, if it swaps in).

        With `version` None the open refresh's rows are only merged (upserts), nothing is
        retired: its end was not proven, and deleting what it did not reach could lose rows.
        """
        shadow_version = self.shadow_version
        swaps = shadow_version is not None and version in (None, shadow_version)
        landed = self.lander.activate(conn, self.spec, shadow_version if swaps else None, version)
        if swaps:
            self.shadow_version = None
        return landed
