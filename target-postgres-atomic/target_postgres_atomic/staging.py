"""The session's COPY stream into its private stage tables, kept open while input is read.

Records stream into COPY as they arrive, so PostgreSQL parses one chunk while Python reads the
next (two cores busy instead of one). The stage tables are temporary: a killed session leaves
nothing behind, and nothing reaches a real table before the merge transaction.
"""

from __future__ import annotations

import re
from contextlib import AbstractContextManager
from typing import Any

import psycopg
from psycopg import sql

from target_postgres_atomic import merge
from target_postgres_atomic.errors import BadRecordError


class Stager:
    """One open `COPY ... FROM STDIN` at a time, into whichever stage is being filled."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn
        self._stage: sql.Identifier | None = None
        self._stream = ""
        self._cursor: psycopg.Cursor[Any] | None = None
        self._context: AbstractContextManager[psycopg.Copy] | None = None
        self._copy: psycopg.Copy | None = None
        self._seqs: list[int] = []

    def create_stage(self, stage: sql.Identifier) -> None:
        self.close()
        self.conn.execute(
            sql.SQL("CREATE TEMP TABLE IF NOT EXISTS {} ({})").format(stage, merge.STAGE_COLUMNS)
        )

    def write(self, stage: sql.Identifier, stream: str, data: bytes, seqs: list[int]) -> None:
        if self._stage != stage:
            self.close()
            self._cursor = self.conn.cursor()
            self._context = self._cursor.copy(
                sql.SQL("COPY {} ({}) FROM STDIN").format(stage, merge.COPY_COLUMNS)
            )
            self._copy = self._context.__enter__()
            self._stage, self._stream = stage, stream
        assert self._copy is not None
        self._seqs.extend(seqs)
        try:
            self._copy.write(data)
        except psycopg.errors.DataError as exc:
            raise self._bad_row(exc) from None

    def close(self) -> None:
        """End the open COPY: its rows are in the stage (not yet in any real table)."""
        if self._context is None:
            return
        context, cursor = self._context, self._cursor
        self._context, self._cursor, self._copy, self._stage = None, None, None, None
        try:
            context.__exit__(None, None, None)
        except psycopg.errors.DataError as exc:
            raise self._bad_row(exc) from None
        finally:
            if cursor is not None:
                cursor.close()
            self._seqs = []

    def _bad_row(self, exc: psycopg.errors.DataError) -> BadRecordError:
        found = re.search(r"line (\d+)", exc.diag.context or "")
        index = int(found.group(1)) - 1 if found else -1
        seq = self._seqs[index] if 0 <= index < len(self._seqs) else 0
        return BadRecordError(
            self._stream, seq, None, f"not loadable as JSON ({exc.diag.message_primary})"
        )
