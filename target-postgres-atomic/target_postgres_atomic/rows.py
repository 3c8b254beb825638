"""A stream's rows on their way into its stage: the chunk being filled, the checks each row
still owes, and the COPY of each chunk.

The fast path (`take_lines`) buffers a run of RECORD lines with a few statements per line;
what msgspec's one-pass decode leaves unchecked (JSON kinds of raw values, the rules inside
objects and arrays) runs once per chunk, one decode per column (`check_pending`), and row by
row only where that fails, to name the record or stage it as raw JSON, as the general way
does. Rows are checked in input order, before they are sent and before any later line.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import msgspec
from psycopg import sql

from target_postgres_atomic.direct import DirectPlan
from target_postgres_atomic.errors import SEQ_SHIFT
from target_postgres_atomic.reader import decode_message
from target_postgres_atomic.spec import TableSpec
from target_postgres_atomic.staging import Stager
from target_postgres_atomic.typed import ROW_VALUES, TypedLayout

NUL_ESCAPE = b"\\u0000"
BACKSLASH = 0x5C
"""As a byte value: `b"\\\\" in line` costs CPython a raised and cleared TypeError per call
(it tries the operand as an integer first): ~9x the time of the search itself."""
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
    """The top-level keys of a RECORD line's record (values undecoded: they may be large)."""
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


class StagedRows:
    """The rows of one stream's batch: buffered in chunks, checked, and sent by COPY."""

    def __init__(self, spec: TableSpec, stage: sql.Identifier, settings: SinkSettings) -> None:
        self.spec = spec
        self.settings = settings
        self.stage = stage
        self.stager: Stager
        """The session records stream into now (the target alternates two sessions)."""
        self.layout: TypedLayout | None = None
        self.check: Callable[[int, bytes], bytes]
        """Names a bad record (raw JSON), else returns what to stage (`record_checker`)."""
        self.check_nested: Callable[[int, tuple[Any, ...]], None] | None = None
        """On the typed path: the rules inside objects and arrays (validate_records)."""
        self.check_chunk: Callable[[list[tuple[Any, ...]]], bool] | None = None
        """On the typed path: the same checks and the kind checks, for many rows at once."""
        self._general_rows = 0
        """Rows of this batch staged as raw JSON only in a typed stage."""
        self._staged_rows = 0
        """Rows of this batch sent to the stage (the others went straight into the table)."""
        self.direct_plan: DirectPlan | None = None
        """How rows of new keys go straight into the table (`direct.py`), if they may."""
        self.open_direct: Callable[[StagedRows], bool] | None = None
        """Opens the current session's transaction to write this stream's table straight
        (the engine's: it knows the other streams and sessions); False if it may not."""
        self._keys: set[Any] = set()
        self._unique_keys = False
        """Every row of this batch so far is typed and has a key no other row has."""
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

    def _start_batch(self) -> None:
        self._general_rows = 0
        self._staged_rows = 0
        self._keys = set()
        self._unique_keys = self.layout is not None and self.layout.key_index is not None

    def note_record(self, raw: bytes) -> None:
        """Name the properties of a record (raw JSON) the schema lacks, if its turn."""
        if self._checks_keys():
            self._name_dropped(_record_keys, raw)

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
            # Properties the target reads though the schema lacks them (_sdc_deleted_at).
            dropped -= {column.source for column in self.spec.columns}
        if dropped:
            self._dropped_named = True
            logger.warning(
                "Stream '%s': dropping properties not in its schema: %s (add them to the "
                "tap's schema to load them; named once per stream).",
                self.spec.stream,
                ", ".join(repr(name) for name in sorted(dropped)),
            )

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
            if not line.startswith(start) or (BACKSLASH in line and NUL_ESCAPE in line):
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
            if not self._sent_direct(seqs):
                self.stager.write_rows(self.stage, self.spec.stream, self.layout, self.chunk, seqs)
                self._staged_rows += len(seqs)
        else:
            self.stager.write(self.stage, self.spec.stream, b"".join(self.chunk), self.chunk_seqs)
            self._staged_rows += len(self.chunk_seqs)
        self.chunk, self.chunk_seqs, self._checked = [], [], 0

    def _sent_direct(self, seqs: list[int]) -> bool:
        """Whether the (checked, typed) chunk went straight into the table: its keys are
        new to the table and to the batch, and its values fit (`direct.py`)."""
        plan = self.direct_plan
        if plan is None or not self._unique_keys:
            return False
        stager = self.stager
        if stager.direct is None and (self.open_direct is None or not self.open_direct(self)):
            return False
        assert stager.direct is not None
        writing, highest = stager.direct
        if writing is not plan:
            return False
        if highest is not None and min(map(itemgetter(plan.key), self.chunk)) <= highest:
            return False
        rows = plan.rows(self.chunk)
        if rows is None:
            return False
        stager.write_direct(plan, rows, seqs)
        return True

    @property
    def _int_key(self) -> bool:
        """The key tracked in `_keys` is an integer (ordered in Python as in PostgreSQL)."""
        layout = self.layout
        if layout is None or layout.key_index is None:
            return False
        return layout.copy_types[ROW_VALUES + layout.key_index] in ("int2", "int4", "int8")
