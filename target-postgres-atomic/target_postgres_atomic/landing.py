"""The commit side of a stream: a staged batch merged into its table (or into the shadow of an
open full refresh) and a finished refresh swapped in, inside the commit transaction.

Runs on the commit thread; builds its statements with merge.py and names a record that does
not fit (stream, line, field) when PostgreSQL refuses a batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql

from target_postgres_atomic import connector, merge
from target_postgres_atomic.errors import BadRecordError, missing_key
from target_postgres_atomic.spec import TableSpec


@dataclass(frozen=True)
class Batch:
    """A stream's staged records, as they were staged: under this spec and shadow version."""

    spec: TableSpec
    shadow_version: int | None
    typed: merge.Staged | None
    unique_keys: bool
    """Every row is typed and has a key no other row of the batch has."""
    records: int
    lowest_key: int | None = None
    """With `unique_keys` and an integer key: the batch's lowest key."""
    staged: bool = True
    """Some of its rows are in the stage (else all went straight into the table)."""


class Lander:
    """Lands one stream's batches from its stage; remembers what a merge learns of the table."""

    def __init__(
        self, stage: sql.Identifier, shadow: sql.Identifier, upsert: bool, hard_delete: bool
    ) -> None:
        self.stage = stage
        self.shadow = shadow
        self.upsert = upsert
        self.hard_delete = hard_delete
        self.shadowed = 0
        """Records in the shadow table: they land in the table (and count) when it swaps in."""
        self.hard_deleted = 0
        """Rows that records carrying `_sdc_deleted_at` deleted (hard_delete) in this run, as
        their transactions ran; the end-of-input warning says how many."""
        self._key_collations: tuple[TableSpec, merge.KeyCollations] | None = None
        """How the table compares its keys, learnt at the first merge under this spec."""

    def land(self, conn: psycopg.Connection, batch: Batch) -> int:
        """Merge the staged batch; returns how many of its records land in the table at the
        commit (those bound for the shadow land when it swaps in)."""
        spec, records = batch.spec, batch.records
        if not batch.staged:
            return records  # every row went straight in, in this transaction (direct.py)
        where: sql.Composable = sql.SQL("")
        if batch.shadow_version is not None:
            version = sql.Literal(batch.shadow_version)
            self._check_fit(conn, spec, sql.SQL("WHERE s._table_version = {}").format(version))
            shadowed = conn.execute(
                sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {} WHERE _table_version = {}").format(
                    self.shadow, merge.COPY_COLUMNS, merge.COPY_COLUMNS, self.stage, version
                )
            ).rowcount
            # Counted if this transaction commits: a failed one fails the run, which drops
            # the shadow and reports nothing after it.
            self.shadowed += shadowed
            records -= shadowed
            where = sql.SQL("WHERE s._table_version IS DISTINCT FROM {}").format(version)
        self._merge(
            conn,
            spec,
            self.stage,
            where,
            batch.typed,
            unique_keys=batch.unique_keys,
            lowest_key=batch.lowest_key,
        )
        conn.execute(sql.SQL("TRUNCATE {}").format(self.stage))
        return records

    def activate(
        self,
        conn: psycopg.Connection,
        spec: TableSpec,
        swap_version: int | None,
        version: int | None,
    ) -> int:
        """The shadow's rows of `swap_version` merged in and the shadow dropped (if given),
        then rows older than `version` retired (if given); returns the records swapped in."""
        landed = 0
        if swap_version is not None:
            self._merge(
                conn,
                spec,
                self.shadow,
                sql.SQL("WHERE s._table_version = {}").format(sql.Literal(swap_version)),
            )
            conn.execute(sql.SQL("DROP TABLE {}").format(self.shadow))
            landed, self.shadowed = self.shadowed, 0
        if version is not None:
            conn.execute(merge.retire_versions(spec, version, hard_delete=self.hard_delete))
        return landed

    def _check_fit(self, conn: psycopg.Connection, spec: TableSpec, where: sql.Composable) -> None:
        """Cast the rows bound for the shadow now: a bad value fails its batch, not the swap."""
        check = sql.SQL("SELECT count(ROW(r.*)) FROM ({}) r").format(
            merge.typed_rows(spec, self.stage, where)
        )
        try:
            with conn.transaction():
                conn.execute(check)
        except psycopg.errors.DataError as exc:
            raise _unfit_error(conn, spec, self.stage, exc) from None

    def _merge(
        self,
        conn: psycopg.Connection,
        spec: TableSpec,
        source: sql.Composable,
        where: sql.Composable,
        typed: merge.Staged | None = None,
        *,
        unique_keys: bool = False,
        lowest_key: int | None = None,
    ) -> None:
        rows = merge.typed_rows(spec, source, where, typed)
        keys = None
        if self.upsert and spec.keys:
            keys = self._keys_of(conn, spec)
            # Keys unique in Python may still be equal in the table's collation.
            unique_keys = unique_keys and keys.exact
            statement = merge.upsert(
                spec, rows, keys, hard_delete=self.hard_delete, unique_keys=unique_keys
            )
        else:
            statement = merge.append(spec, rows)
        try:
            if keys is None or not self._inserted(
                conn, spec, source, rows, typed, keys, unique_keys=unique_keys, lowest=lowest_key
            ):
                with conn.transaction():
                    done = conn.execute(statement)
                if keys is not None and self.hard_delete:
                    # The upsert's last statement is the DELETE of the batch's deletes.
                    self.hard_deleted += done.rowcount
        except psycopg.errors.DataError as exc:
            raise _unfit_error(conn, spec, source, exc, typed) from None
        except psycopg.errors.NotNullViolation:
            # Keys the record checker cannot name (quotes, control characters) end up here.
            found = conn.execute(merge.first_null_key(spec, source)).fetchone()
            if found is None:
                raise
            raise missing_key(spec.stream, found[0], found[1]) from None

    def _keys_of(self, conn: psycopg.Connection, spec: TableSpec) -> merge.KeyCollations:
        """The table's key collations, asked once per spec: the table only changes (DDL)
        at a SCHEMA, which hands the sink a new spec (`update_spec`)."""
        cached = self._key_collations
        if cached is not None and cached[0] is spec:
            return cached[1]
        keys = connector.key_collations(conn, spec)
        self._key_collations = (spec, keys)
        return keys

    def _inserted(
        self,
        conn: psycopg.Connection,
        spec: TableSpec,
        source: sql.Composable,
        rows: sql.Composable,
        typed: merge.Staged | None,
        keys: merge.KeyCollations,
        *,
        unique_keys: bool,
        lowest: int | None,
    ) -> bool:
        """Whether the batch went in by plain INSERT: its keys are unique and all new.

        Hard deletes keep the upsert (their tombstones guard versions of deleted keys).
        A writer that is not this target may still add a key meanwhile: its unique
        violation rolls the INSERT back and the upsert runs instead.
        """
        if not (unique_keys and typed is not None) or self.hard_delete:
            return False
        key = typed.columns[spec.keys[0]]
        found = conn.execute(merge.keys_are_new(spec, source, key, keys, lowest))
        row = found.fetchone()
        if not (row and row[0]):
            return False
        statement = merge.upsert(
            spec, rows, keys, hard_delete=False, unique_keys=True, new_keys=True
        )
        try:
            with conn.transaction():
                conn.execute(statement)
        except psycopg.errors.UniqueViolation:
            return False
        return True


def _unfit_error(
    conn: psycopg.Connection,
    spec: TableSpec,
    source: sql.Composable,
    exc: psycopg.errors.DataError,
    typed: merge.Staged | None = None,
) -> Exception:
    probe = merge.first_unfit(spec, source, typed)
    if probe is not None:
        conn.execute(merge.FITS_FUNCTION)
        found = conn.execute(probe).fetchone()
        if found is not None:
            seq, field, pg_type = found
            return BadRecordError(
                spec.stream, seq, field, f"the value does not fit column type {pg_type}"
            )
    return BadRecordError(spec.stream, 0, None, f"the batch failed to merge: {exc}")
