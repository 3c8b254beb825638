"""One sink per stream: check its records, buffer them and COPY them into a private stage.

The SDK's SQLSink validates and converts every record in Python; at COPY speed that is the
bottleneck, so this sink keeps each record as the raw JSON bytes the tap sent and lets
PostgreSQL validate, cast, dedupe and merge a whole batch at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import msgspec
import psycopg
from psycopg import sql

from target_postgres_atomic import merge
from target_postgres_atomic.direct import direct_plan
from target_postgres_atomic.errors import SEQ_SHIFT, BadRecordError
from target_postgres_atomic.landing import Batch, Lander
from target_postgres_atomic.rows import BACKSLASH, NUL_ESCAPE, SinkSettings, StagedRows
from target_postgres_atomic.spec import TableSpec, generated_name
from target_postgres_atomic.staging import Stager
from target_postgres_atomic.typed import ROW_VALUES, typed_layout
from target_postgres_atomic.validation import (
    chunk_checker,
    nested_checker,
    record_checker,
    typed_path_refusal,
)

logger = logging.getLogger("target-postgres-atomic")
TAB, CARRIAGE_RETURN = 0x09, 0x0D  # byte values, searched as fast as BACKSLASH (see rows.py)


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


class PostgresSink(StagedRows):
    """Buffered records of one stream and the statements that land them."""

    def __init__(
        self, spec: TableSpec, stage_name: str, settings: SinkSettings, stagers: list[Stager]
    ) -> None:
        super().__init__(spec, sql.Identifier(stage_name), settings)
        self.stagers = stagers
        self.stager = stagers[0]
        self._make_stages()
        self.check = record_checker(spec, check_types=settings.validate_records)
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
        self.direct_plan = direct_plan(
            self.spec,
            self.layout,
            upsert=self.settings.upsert,
            hard_delete=self.settings.hard_delete,
        )
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

    def add(self, seq: int, raw: bytes, version: int | None, time_extracted: str | None) -> None:
        """Check one record and buffer it for COPY: the per-record work in Python."""
        self.note_record(raw)
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
        if BACKSLASH in raw:
            raw = raw.replace(b"\\", b"\\\\")
        if TAB in raw or CARRIAGE_RETURN in raw:
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
        lowest = None
        if self._unique_keys and self._keys and self._int_key:
            lowest = min(self._keys)
        batch = Batch(
            self.spec,
            self.shadow_version,
            typed,
            self._unique_keys,
            self.pending,
            lowest,
            staged=self._staged_rows > 0,
        )
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
