"""The session's COPY stream into its private stage tables, kept open while input is read.

Records stream into COPY as they arrive, so PostgreSQL parses one chunk while Python reads the
next (two cores busy instead of one). The stage tables are temporary: a killed session leaves
nothing behind, and nothing reaches a real table outside the batch's transaction (rows of new
keys COPYed straight into their table are written inside it: `direct.py`).
"""

from __future__ import annotations

import re
from contextlib import AbstractContextManager
from typing import Any

import msgspec
import psycopg
from psycopg import sql
from psycopg._copy_base import format_row_binary
from psycopg.types.string import BytesBinaryDumper

from target_postgres_atomic import merge
from target_postgres_atomic.direct import DirectPlan
from target_postgres_atomic.errors import BadRecordError
from target_postgres_atomic.typed import RawJsonDumper, TypedLayout

BINARY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
"""A binary COPY's signature, flags (none) and header extension length (none)."""
BINARY_TRAILER = b"\xff\xff"
_REFUSALS = (
    psycopg.errors.DataError,
    psycopg.errors.IntegrityError,
    psycopg.errors.InternalError,  # (binary input PostgreSQL cannot read: say a jsonb version)
)
"""What a COPY's rows can make PostgreSQL raise: named by record and field."""


class Stager:
    """One open `COPY ... FROM STDIN` at a time, into whichever stage is being filled (or,
    for rows of new keys, into the table itself: `direct.py`)."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn
        conn.adapters.register_dumper(msgspec.Raw, RawJsonDumper)
        # COPY picks dumpers by column type: bytea (the typed stage's JSON text) gets
        # psycopg's C bytes dumper, which takes a Raw as a buffer, instead of the Python one
        # psycopg's `Binary` wrapper registers last for bytea (a Python call per value).
        conn.adapters.register_dumper(None, BytesBinaryDumper)
        self._stage: sql.Identifier | None = None
        self._layout: TypedLayout | DirectPlan | None = None
        self._stream = ""
        self._cursor: psycopg.Cursor[Any] | None = None
        self._context: AbstractContextManager[psycopg.Copy] | None = None
        self._copy: psycopg.Copy | None = None
        self._seqs: list[int] = []
        self._binary_rows = False
        """The open COPY is binary and its header is sent: it ends with the trailer."""
        self.direct: tuple[DirectPlan, int | None] | None = None
        """The plan whose table this session's open transaction writes straight into, and
        that table's largest key when the transaction took its lock (`open_direct`)."""

    def create_stage(self, stage: sql.Identifier, layout: TypedLayout | None) -> None:
        """The stage, with typed columns when the stream has a typed layout (made anew)."""
        self.close()
        columns: sql.Composable = merge.STAGE_COLUMNS
        if layout is not None:
            columns = sql.SQL("{}, {}").format(columns, layout.stage_columns())
        self.conn.execute(
            sql.SQL("DROP TABLE IF EXISTS pg_temp.{}; CREATE TEMP TABLE {} ({})").format(
                stage, stage, columns
            )
        )

    def _open(self, stage: sql.Identifier, stream: str, layout: TypedLayout | None) -> psycopg.Copy:
        if self._stage != stage or self._layout is not layout:
            columns: sql.Composable = merge.COPY_COLUMNS
            if layout is not None:
                columns = sql.SQL("{}, {}").format(columns, layout.copy_columns())
            binary = sql.SQL(" (FORMAT BINARY)" if layout is not None else "")
            self._start(
                sql.SQL("COPY {} ({}) FROM STDIN{}").format(stage, columns, binary),
                layout.copy_types if layout is not None else None,
                stage,
                stream,
                layout,
            )
        assert self._copy is not None
        return self._copy

    def _start(
        self,
        statement: sql.Composed,
        types: tuple[str, ...] | None,
        target: sql.Identifier,
        stream: str,
        layout: TypedLayout | DirectPlan | None,
    ) -> None:
        self.close()
        self._cursor = self.conn.cursor()
        self._context = self._cursor.copy(statement)
        self._copy = self._context.__enter__()
        if types is not None:
            self._copy.set_types(list(types))
        self._stage, self._stream, self._layout = target, stream, layout

    def write(self, stage: sql.Identifier, stream: str, data: bytes, seqs: list[int]) -> None:
        """COPY text rows (the general stage columns only)."""
        copy = self._open(stage, stream, None)
        self._seqs.extend(seqs)
        try:
            copy.write(data)
        except _REFUSALS as exc:
            raise self._bad_row(exc) from None

    def write_rows(
        self,
        stage: sql.Identifier,
        stream: str,
        layout: TypedLayout,
        rows: list[tuple[Any, ...]],
        seqs: list[int],
    ) -> None:
        """COPY rows of values into the general and the typed stage columns (C dumpers)."""
        copy = self._open(stage, stream, layout)
        self._write_binary(copy, rows, seqs)

    def open_direct(self, plan: DirectPlan) -> None:
        """This session's transaction begins, to write `plan`'s table straight; its lock is
        taken next, then its largest key read (`direct`, set once known)."""
        self.close()
        self.conn.execute("BEGIN")
        self.direct = (plan, None)

    def write_direct(self, plan: DirectPlan, rows: list[tuple[Any, ...]], seqs: list[int]) -> None:
        """COPY rows of new keys into the table itself, inside this session's transaction."""
        if self._stage != plan.table or self._layout is not plan:
            self._start(plan.copy, plan.copy_types, plan.table, plan.spec.stream, plan)
        assert self._copy is not None
        self._write_binary(self._copy, rows, seqs)

    def end_direct(self, *, commit: bool) -> None:
        """The transaction that wrote straight into a table commits (or rolls back)."""
        if self.direct is None:
            return
        self.direct = None
        self.conn.execute("COMMIT" if commit else "ROLLBACK")

    def _write_binary(
        self, copy: psycopg.Copy, rows: list[tuple[Any, ...]], seqs: list[int]
    ) -> None:
        self._seqs.extend(seqs)
        # psycopg's C row formatter straight into one buffer per chunk: `Copy.write_row`
        # costs two Python calls per row around it (6% of the target's instructions).
        data = bytearray() if self._binary_rows else bytearray(BINARY_HEADER)
        self._binary_rows = True
        transformer = copy.formatter.transformer
        try:
            for row in rows:
                format_row_binary(row, transformer, data)
            copy.write(data)
        except _REFUSALS as exc:
            raise self._bad_row(exc) from None

    def close(self) -> None:
        """End the open COPY: its rows are in the stage (not yet in any real table)."""
        if self._context is None:
            return
        context, cursor, copy = self._context, self._cursor, self._copy
        self._context, self._cursor, self._copy, self._stage = None, None, None, None
        try:
            if self._binary_rows and copy is not None:
                self._binary_rows = False
                copy.write(BINARY_TRAILER)
            context.__exit__(None, None, None)
        except _REFUSALS as exc:
            raise self._bad_row(exc) from None
        finally:
            if cursor is not None:
                cursor.close()
            self._seqs = []

    def _bad_row(self, exc: psycopg.Error) -> BadRecordError:
        """The record and field of the row COPY refused (from the error's line and column)."""
        context = exc.diag.context or ""
        found = re.search(r"line (\d+)", context)
        index = int(found.group(1)) - 1 if found else -1
        seq = self._seqs[index] if 0 <= index < len(self._seqs) else 0
        column = re.search(r", column (.+?)(?:: |$)", context)
        typed = self._layout.fields if self._layout is not None else {}
        if column is not None and column.group(1) in typed:
            field, pg_type = typed[column.group(1)]
            return BadRecordError(
                self._stream,
                seq,
                field,
                f"the value does not fit column type {pg_type} ({exc.diag.message_primary})",
            )
        if isinstance(exc, psycopg.errors.IntegrityError):
            # (Only a real table has constraints: a row written straight into it.)
            return BadRecordError(
                self._stream, seq, None, f"the table refused it ({exc.diag.message_primary})"
            )
        return BadRecordError(
            self._stream, seq, None, f"not loadable as JSON ({exc.diag.message_primary})"
        )
