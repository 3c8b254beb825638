"""New keys straight into their table: a batch's rows COPYed into the real table inside the
batch's own transaction, with no stage and no merge.

Most loads are inserts: a first load, or an incremental one whose keys all lie above the
table's. For those, staging every row and merging it again costs PostgreSQL each row twice.
A chunk of a batch goes straight into the table (binary COPY, in the transaction that later
merges whatever else the batch staged, saves the STATE and commits) only when nothing could
make that different from the merge:

- the stream upserts on one integer key, keeps no tombstones (hard_delete off) and has no
  envelope columns but `_sdc_table_version` (every value comes from the row itself);
- the transaction holds the table's lock (`connector.lock_table`, as every merge of ours
  takes it) and a SHARE ROW EXCLUSIVE lock (other writers' open transactions end first, new
  ones wait until it commits), and read the table's largest key under them: every key of
  the chunk lies above, and no key of the batch came twice (the stage and its merge take the
  rest of the batch, whose upsert sees the rows already in, under the usual version guard);
- the table is a plain (or partitioned) table without rules, its primary key is the key,
  and its columns have exactly the types the rows are written in (binary COPY);
- numbers go as binary numeric within numeric's range (a chunk with one beyond goes by the
  stage, whose merge names it).

A value PostgreSQL still refuses (a type's limit, a constraint of the table) fails the COPY,
naming the record (and field), as the stage's COPY or the merge would have: the run stops and
nothing of the batch is committed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import msgspec
import psycopg
from psycopg import sql

from target_postgres_atomic import connector
from target_postgres_atomic.spec import TABLE_VERSION, TableSpec
from target_postgres_atomic.typed import NULL, ROW_VALUES, TypedLayout

_NULL_RAW = msgspec.Raw(NULL)
_NUMERIC_DUMPER = psycopg.adapters.get_dumper_by_oid(
    psycopg.adapters.types["numeric"].oid, psycopg.pq.Format.BINARY
)
NUMERIC_INTEGER_DIGITS = 131072
NUMERIC_FRACTION_DIGITS = 16383
"""An unconstrained numeric's limits (PostgreSQL's documentation, "Numeric Types")."""
_INTEGER_TYPES = ("int2", "int4", "int8")

# A plain (or partitioned) table without rules (COPY fires no rules), and its largest key.
_TABLE_CHECK = (
    "SELECT c.relkind IN ('r', 'p') AND NOT c.relhasrules, (SELECT max({key}) FROM {table}) "
    "FROM pg_class c WHERE c.oid = {name}::regclass"
)


class Numbers:
    """JSON numbers as PostgreSQL's binary numeric, each text encoded once: a column's numbers
    repeat (story points, quantities, amounts), and a `Decimal` and its dump cost ~1.3 us."""

    LIMIT = 65_536
    """Texts remembered per stream (then it starts over: memory stays flat)."""

    def __init__(self) -> None:
        self._dump = _NUMERIC_DUMPER(Decimal).dump
        self._known: dict[bytes, bytes | None] = {NULL: None}

    def encode(self, raws: tuple[msgspec.Raw, ...]) -> list[bytes | None] | None:
        """The values' binary numerics (JSON null: SQL NULL), or None if one is beyond an
        unconstrained numeric's range."""
        texts = list(map(bytes, raws))
        known = self._known
        try:
            return [known[text] for text in texts]
        except KeyError:
            pass
        encoded: list[bytes | None] = []
        for text in texts:
            if text not in known:
                number = Decimal(text.decode())  # a JSON number's text: exact, finite
                if not _fits_numeric(number):
                    return None
                if len(known) >= self.LIMIT:
                    known.clear()
                    known[NULL] = None
                dumped = self._dump(number)
                assert dumped is not None
                known[text] = bytes(dumped)
            encoded.append(known[text])
        return encoded


@dataclass(frozen=True)
class DirectPlan:
    """How a stream's typed rows go straight into its table."""

    spec: TableSpec
    table: sql.Identifier
    """`spec.qualified()`, made once."""
    copy: sql.Composed
    """The COPY statement (binary, the table's columns in `sources` order)."""
    copy_types: tuple[str, ...]
    sources: tuple[int, ...]
    """Per COPY column: its value's index in a typed stage row."""
    numeric: tuple[int, ...]
    """COPY columns whose raw JSON numbers go as binary numeric (`Numbers`)."""
    jsonb: tuple[int, ...]
    """COPY columns whose raw JSON goes as binary jsonb."""
    key: int
    """The key's index in a typed stage row."""
    fields: dict[str, tuple[str, str]]
    """Table column -> (property, type), to name the field of a value COPY refuses."""
    numbers: Numbers = field(default_factory=Numbers)

    def rows(self, chunk: list[tuple[Any, ...]]) -> list[tuple[Any, ...]] | None:
        """The chunk's rows as the table's COPY takes them, or None where a value might not
        fit (those rows go by the stage, whose merge names a bad one)."""
        columns: list[Any] = list(zip(*chunk, strict=True))
        out = [columns[index] for index in self.sources]
        for index in self.numeric:
            numbers = self.numbers.encode(out[index])
            if numbers is None:
                return None
            out[index] = numbers
        for index in self.jsonb:
            # (What PostgreSQL's jsonb refuses, say a number beyond numeric's range, fails
            # this COPY naming the record and field, as the merge's cast would.)
            # (Raw against Raw, and bytes + Raw: no bytes copy of each value first.)
            out[index] = [None if raw == _NULL_RAW else b"\x01" + raw for raw in out[index]]
        return list(zip(*out, strict=True))

    def table_fits(self, conn: psycopg.Connection) -> tuple[bool, int | None]:
        """Whether the table takes these rows by binary COPY as the merge would insert them,
        and its largest key (call under the table's lock)."""
        found = conn.execute(
            sql.SQL(_TABLE_CHECK).format(
                key=sql.Identifier(self.spec.keys[0]),
                table=self.table,
                name=sql.Literal(self.table.as_string(None)),
            )
        ).fetchone()
        if found is None or not found[0]:
            return False, None
        spec = self.spec
        if connector.primary_key(conn, spec.schema, spec.table) != list(spec.keys):
            return False, None
        # (The rows are written in the spec's types: the table must have exactly those.)
        have = connector.existing_columns(conn, spec.schema, spec.table)
        if any(have.get(column.name) != column.pg_type for column in spec.columns):
            return False, None
        return True, found[1]


def _fits_numeric(value: Decimal) -> bool:
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)  # JSON has no NaN or infinity
    return value.adjusted() < NUMERIC_INTEGER_DIGITS and -exponent <= NUMERIC_FRACTION_DIGITS


def direct_plan(
    spec: TableSpec, layout: TypedLayout | None, *, upsert: bool, hard_delete: bool
) -> DirectPlan | None:
    """The stream's plan for rows of new keys, or None when they always go by the stage."""
    if layout is None or layout.key_index is None or not upsert or hard_delete:
        return None
    key = ROW_VALUES + layout.key_index
    if layout.copy_types[key] not in _INTEGER_TYPES or len(spec.keys) != 1:
        return None
    sources: list[int] = []
    copy_types: list[str] = []
    numeric: list[int] = []
    jsonb: list[int] = []
    names: list[str] = []
    fields: dict[str, tuple[str, str]] = {}
    sourced = 0
    for column in spec.columns:
        if column.source is None:
            if column.name != TABLE_VERSION or column.pg_type != "bigint":
                return None  # envelope metadata: values the merge takes from PostgreSQL
            sources.append(1)
            copy_types.append("int8")
        else:
            index = ROW_VALUES + sourced
            sourced += 1
            copy_type = layout.copy_types[index]
            if copy_type == "bytea":  # raw JSON: a number, an object or an array
                if column.pg_type == "numeric":
                    numeric.append(len(sources))  # (bytea: the bytes go as they are)
                elif column.pg_type == "jsonb":
                    jsonb.append(len(sources))
                else:
                    return None
            sources.append(index)
            copy_types.append(copy_type)
            fields[column.name] = (column.source, column.pg_type)
        names.append(column.name)
    copy = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        spec.qualified(), sql.SQL(", ").join(map(sql.Identifier, names))
    )
    return DirectPlan(
        spec,
        spec.qualified(),
        copy,
        tuple(copy_types),
        tuple(sources),
        tuple(numeric),
        tuple(jsonb),
        key,
        fields,
    )
