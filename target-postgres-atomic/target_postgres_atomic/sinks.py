"""One sink per stream: buffer raw records, COPY them into a private stage, merge in SQL.

The SDK's SQLSink validates and converts every record in Python; at COPY speed that is the
bottleneck, so this sink keeps each record as the raw JSON bytes the tap sent and lets
PostgreSQL validate, cast, dedupe and merge a whole batch at once.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

import msgspec
import psycopg
from psycopg import sql

from target_postgres_atomic import merge
from target_postgres_atomic.errors import BadRecordError, missing_key
from target_postgres_atomic.spec import TableSpec

NUL_ESCAPE = b"\\u0000"
COPY_CHUNK_ROWS = 5000


@dataclass(frozen=True)
class SinkSettings:
    batch_size_rows: int
    batch_size_bytes: int
    hard_delete: bool
    validate_records: bool
    upsert: bool
    sanitize_null_text_characters: bool


def shadow_name(table: str) -> str:
    """The persistent table a multi-batch full refresh loads into before the swap."""
    digest = hashlib.blake2b(table.encode(), digest_size=4).hexdigest()
    return f"_sdc_shadow_{table[:40]}_{digest}"


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

    def __init__(self, spec: TableSpec, stage_name: str, settings: SinkSettings) -> None:
        self.spec = spec
        self.settings = settings
        self.stage = sql.Identifier(stage_name)
        self.rows: list[bytes] = []
        self.size_bytes = 0
        self.table_versions: set[int] = set()
        self.shadow_version: int | None = None
        """Records of this table version go to the shadow table until it is activated."""
        self.shadow = sql.Identifier(spec.schema, shadow_name(spec.table))

    @property
    def full(self) -> bool:
        return (
            len(self.rows) >= self.settings.batch_size_rows
            or self.size_bytes >= self.settings.batch_size_bytes
        )

    def add(self, seq: int, raw: bytes, version: int | None, time_extracted: str | None) -> None:
        """Buffer one record as a COPY text row; the only per-record work in Python."""
        if NUL_ESCAPE in raw:
            raw = self._handle_nul(seq, raw)
        if b"\\" in raw:
            raw = raw.replace(b"\\", b"\\\\")
        if b"\t" in raw or b"\r" in raw:
            # JSON whitespace between tokens (inside strings these are always escaped).
            raw = raw.replace(b"\t", b" ").replace(b"\r", b" ")
        if version is None:
            tv = b"\\N"
        else:
            tv = b"%d" % version
            self.table_versions.add(version)
        extracted = b"\\N" if time_extracted is None else time_extracted.encode()
        row = b"%d\t%b\t%b\t%b\n" % (seq, tv, extracted, raw)
        self.rows.append(row)
        self.size_bytes += len(row)

    def _handle_nul(self, seq: int, raw: bytes) -> bytes:
        record = msgspec.json.decode(raw)
        if not isinstance(record, dict):
            return raw
        for field, value in record.items():
            if _nul_field(value):
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

    def stage_batch(self, conn: psycopg.Connection) -> None:
        """COPY the buffered rows into the session-private stage (caller's transaction)."""
        conn.execute(
            sql.SQL("CREATE TEMP TABLE IF NOT EXISTS {} ({}) ON COMMIT DELETE ROWS").format(
                self.stage, merge.STAGE_COLUMNS
            )
        )
        statement = sql.SQL("COPY {} ({}) FROM STDIN").format(self.stage, merge.COPY_COLUMNS)
        try:
            with conn.cursor() as cur, cur.copy(statement) as copy:
                for start in range(0, len(self.rows), COPY_CHUNK_ROWS):
                    copy.write(b"".join(self.rows[start : start + COPY_CHUNK_ROWS]))
        except psycopg.errors.DataError as exc:
            raise self._copy_error(exc) from None

    def _copy_error(self, exc: psycopg.errors.DataError) -> BadRecordError:
        found = re.search(r"line (\d+)", exc.diag.context or "")
        row = self.rows[int(found.group(1)) - 1] if found else b"0\t"
        seq = int(row.split(b"\t", 1)[0])
        return BadRecordError(
            self.spec.stream, seq, None, f"not loadable JSON ({exc.diag.message_primary})"
        )

    def merge_staged(self, conn: psycopg.Connection) -> None:
        """Validate, dedupe and merge the staged batch (caller's transaction)."""
        bad = conn.execute(
            merge.first_invalid(self.spec, self.stage, validate=self.settings.validate_records)
        ).fetchone()
        if bad is not None:
            seq, field, problem = bad
            if problem == "missing key property":
                raise missing_key(self.spec.stream, seq, field)
            raise BadRecordError(self.spec.stream, seq, field, problem)
        where: sql.Composable = sql.SQL("")
        if self.shadow_version is not None:
            version = sql.Literal(self.shadow_version)
            conn.execute(
                sql.SQL("INSERT INTO {} SELECT * FROM {} WHERE _table_version = {}").format(
                    self.shadow, self.stage, version
                )
            )
            where = sql.SQL("WHERE s._table_version IS DISTINCT FROM {}").format(version)
        self._merge(conn, self.stage, where)
        self.rows = []
        self.size_bytes = 0

    def _merge(
        self, conn: psycopg.Connection, source: sql.Composable, where: sql.Composable
    ) -> None:
        rows = merge.typed_rows(self.spec, source, where)
        if self.settings.upsert and self.spec.keys:
            statement = merge.upsert(self.spec, rows, hard_delete=self.settings.hard_delete)
        else:
            statement = merge.append(self.spec, rows)
        try:
            with conn.transaction():
                conn.execute(statement)
        except psycopg.errors.DataError as exc:
            raise self._unfit_error(conn, source, exc) from None

    def resume_shadow(self, conn: psycopg.Connection) -> None:
        """A full refresh a killed run left in the shadow table continues where it stood."""
        if conn.execute("SELECT to_regclass(%s)", (self.shadow.as_string(None),)).fetchone() == (
            None,
        ):
            return
        found = conn.execute(
            sql.SQL("SELECT max(_table_version) FROM {}").format(self.shadow)
        ).fetchone()
        self.shadow_version = found[0] if found else None

    def start_version(self, conn: psycopg.Connection, version: int) -> None:
        """The first ACTIVATE_VERSION of a full refresh: the real table is left untouched."""
        conn.execute(
            sql.SQL("CREATE TABLE IF NOT EXISTS {} ({})").format(self.shadow, merge.STAGE_COLUMNS)
        )
        conn.execute(sql.SQL("DELETE FROM {}").format(self.shadow))
        self.shadow_version = version

    def activate_version(self, conn: psycopg.Connection, version: int) -> None:
        """Make `version` the table's content: insert it, then retire older rows (one tx)."""
        if self.shadow_version == version:
            self._merge(
                conn,
                self.shadow,
                sql.SQL("WHERE s._table_version = {}").format(sql.Literal(version)),
            )
            conn.execute(sql.SQL("DROP TABLE {}").format(self.shadow))
            self.shadow_version = None
        conn.execute(
            merge.retire_versions(self.spec, version, hard_delete=self.settings.hard_delete)
        )

    def _unfit_error(
        self, conn: psycopg.Connection, source: sql.Composable, exc: psycopg.errors.DataError
    ) -> Exception:
        probe = merge.first_unfit(self.spec, source)
        if probe is not None:
            conn.execute(merge.FITS_FUNCTION)
            found = conn.execute(probe).fetchone()
            if found is not None:
                seq, field, pg_type = found
                return BadRecordError(
                    self.spec.stream, seq, field, f"the value does not fit column type {pg_type}"
                )
        return BadRecordError(self.spec.stream, 0, None, f"the batch failed to merge: {exc}")
