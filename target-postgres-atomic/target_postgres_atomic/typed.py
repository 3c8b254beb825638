"""Typed stage rows: each record decoded once into the values its columns' COPY needs.

For a stream whose every column maps cleanly onto a Python type, msgspec decodes the record
straight into a struct whose strict types ARE the validation (RFC 3339 datetimes, integers,
booleans; no 'now' or 'infinity' slips through), and psycopg's C dumpers write the values
into typed stage columns: PostgreSQL parses each value once, and the merge reads typed columns
instead of casting out of jsonb. Objects, arrays and numbers stay raw JSON bytes
(`msgspec.Raw`), so they are never parsed in Python and numbers keep every digit: their
stage columns are bytea, written by psycopg's C bytes dumper (no Python call per value), and
the merge casts the text to the column's type.

A record the strict decode refuses is not necessarily bad (a `date-time` PostgreSQL reads but
RFC 3339 does not, `validate_records` off): the caller then runs the record checker, which
names the bad field, or stages the record the general way (raw JSON, cast in the merge).

The COPY is binary: psycopg's C dumpers write each value in PostgreSQL's own format, which
the server reads without parsing text. Range constraints in the decoder keep every value
inside its column type, and datetimes must carry an offset (a naive one means the server's
time zone, which only the general way applies).
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec
import psycopg
from psycopg import sql
from psycopg.adapt import Dumper

from target_postgres_atomic.columns import json_types
from target_postgres_atomic.reader import Message
from target_postgres_atomic.spec import TableSpec
from target_postgres_atomic.validation import UNNAMEABLE  # msgspec cannot name these

_NUMBER_START = frozenset(b"-0123456789")
_INTEGERS = {"smallint": ("int2", 15), "integer": ("int4", 31), "bigint": ("int8", 63)}
_KIND_START = {"object": frozenset(b"{"), "array": frozenset(b"[")}
NULL = b"null"
GENERAL_TYPES = ("int8", "int8", "text", "jsonb")
"""Of the general stage columns (merge.COPY_COLUMNS)."""
ROW_VALUES = len(GENERAL_TYPES)
"""Where a typed stage row's record values start (after the general columns)."""
_DELETED_AT_PROPERTY = {"type": ["string", "null"], "format": "date-time"}
"""The one column with a source the schema may not declare (`_sdc_deleted_at`)."""


class RawJsonDumper(Dumper):
    """A `msgspec.Raw` (JSON text) as binary jsonb; JSON null is SQL NULL."""

    oid = psycopg.adapters.types["jsonb"].oid
    format = psycopg.pq.Format.BINARY

    def dump(self, obj: Any) -> bytes | None:
        raw = bytes(obj)
        return None if raw == NULL else b"\x01" + raw  # jsonb binary format version 1


@dataclass(frozen=True)
class _Field:
    python_type: Any
    copy_type: str
    """The stage column's type (binary COPY format)."""
    raw_starts: frozenset[int] | None = None
    """For a raw field: the bytes its JSON may start with (besides null); None: any."""


def _field(prop: Any, pg_type: str) -> _Field | None:
    """How one property decodes for a typed stage column, or None if it does not map cleanly."""
    if not isinstance(prop, dict) or "anyOf" in prop or "oneOf" in prop:
        return None
    kinds = set(json_types(prop))
    fmt = prop.get("format")
    if pg_type in _INTEGERS and kinds == {"integer"}:
        name, bits = _INTEGERS[pg_type]
        return _Field(Annotated[int, msgspec.Meta(ge=-(2**bits), le=2**bits - 1)], name)
    if pg_type == "numeric" and kinds and kinds <= {"integer", "number"}:
        # The JSON number's text, cast in the merge: every digit kept, no Python parse.
        return _Field(msgspec.Raw, "bytea", _NUMBER_START)
    if pg_type == "boolean" and kinds == {"boolean"}:
        return _Field(bool, "bool")
    if pg_type == "text" and kinds == {"string"} and fmt not in ("date-time", "date", "time"):
        return _Field(str, "text")
    if pg_type == "timestamp with time zone" and kinds == {"string"} and fmt == "date-time":
        return _Field(Annotated[datetime.datetime, msgspec.Meta(tz=True)], "timestamptz")
    if pg_type == "date" and kinds == {"string"} and fmt == "date":
        return _Field(datetime.date, "date")
    if pg_type == "jsonb" and (not kinds or kinds <= {"object", "array"}):
        starts = frozenset().union(*(_KIND_START[k] for k in kinds)) if kinds else None
        return _Field(msgspec.Raw, "bytea", starts)
    return None


@dataclass(frozen=True)
class TypedLayout:
    """The typed stage columns of one stream and the decoder that fills them."""

    columns: dict[str, sql.Composable]
    """Table column -> its value in a staged row `s` (stage columns are c0, c1...: property
    names may clash with ours)."""
    fields: dict[str, tuple[str, str]]
    """Stage column -> (property, column type), to name the field of a value COPY refuses."""
    copy_types: tuple[str, ...]
    """Every COPY column's type, the general ones first (binary COPY needs them)."""
    decode: Callable[[bytes], Any]
    checks: tuple[tuple[int, frozenset[int]], ...]
    """(value index, allowed first bytes) of raw fields whose JSON kind is still unchecked."""
    key_index: int | None
    """Index of the single integer or text key in a decoded row (tracks duplicates), else
    None."""
    decode_line: Callable[[bytes], Any]
    """Decodes a whole input line as a RECORD of this stream (the envelope as the reader's)."""
    casts: tuple[tuple[str, str, str], ...]
    """(property, column type, stage column) of the values staged as JSON text."""

    def stage_columns(self) -> sql.Composable:
        return sql.SQL(", ").join(
            sql.SQL("{} {}").format(sql.Identifier(stage), sql.SQL(copy_type))
            for stage, copy_type in zip(
                self.fields, self.copy_types[len(GENERAL_TYPES) :], strict=True
            )
        )

    def copy_columns(self) -> sql.Composable:
        return sql.SQL(", ").join(map(sql.Identifier, self.fields))

    def values(self, raw: bytes) -> tuple[Any, ...] | None:
        """The record's stage values, or None where the strict decode or a kind check fails."""
        try:
            values = msgspec.structs.astuple(self.decode(raw))
        except (msgspec.DecodeError, RecursionError):  # the general path names the line
            return None
        return values if self.kinds_ok(values) else None

    def kinds_ok(self, values: tuple[Any, ...]) -> bool:
        """Whether each raw value is of a JSON kind its property allows (a number for a
        number, an object or array as declared; null always)."""
        for index, starts in self.checks:
            value = bytes(values[index])
            if value != NULL and value[0] not in starts:
                return False
        return True


def typed_layout(spec: TableSpec) -> TypedLayout | None:
    """The stream's typed stage layout, or None when some column does not map cleanly."""
    struct_fields: list[Any] = []
    rename: dict[str, str] = {}
    columns: dict[str, sql.Composable] = {}
    fields: dict[str, tuple[str, str]] = {}
    copy_types = list(GENERAL_TYPES)
    checks: list[tuple[int, frozenset[int]]] = []
    casts: list[tuple[str, str, str]] = []
    key_index = None
    sourced = [c for c in spec.columns if c.source is not None]
    for index, column in enumerate(sourced):
        assert column.source is not None
        if UNNAMEABLE.search(column.source) or column.encoding is not None:
            return None
        prop = spec.properties.get(column.source, _DELETED_AT_PROPERTY)
        field = _field(prop, column.pg_type)
        if field is None:
            return None
        attribute, stage = f"f{index}", f"c{index}"
        rename[attribute] = column.source
        value: sql.Composable = sql.SQL("s.{}").format(sql.Identifier(stage))
        if field.python_type is msgspec.Raw:
            value = sql.SQL("NULLIF(convert_from({}, 'UTF8'), 'null')::{}").format(
                value, sql.SQL(column.pg_type)
            )
            casts.append((column.source, column.pg_type, stage))
        columns[column.name] = value
        fields[stage] = (column.source, column.pg_type)
        copy_types.append(field.copy_type)
        # Numbers are always checked (COPY would refuse a string); so are objects and arrays:
        # a string there is refused, or (validate_records off) read as JSON text, by the
        # record checker.
        if field.raw_starts is not None:
            checks.append((index, field.raw_starts))
        if column.source in spec.keys:
            if field.python_type is msgspec.Raw:
                return None  # a null key must fail the decode, and a Raw takes null
            struct_fields.append((attribute, field.python_type))
            # Python's equality of these is PostgreSQL's, unless a text key sits in a
            # nondeterministic collation: the merge checks the table's (`key_collations`).
            if len(spec.keys) == 1 and field.copy_type in ("int2", "int4", "int8", "text"):
                key_index = index
        elif field.python_type is msgspec.Raw:
            struct_fields.append((attribute, msgspec.Raw, msgspec.Raw(NULL)))
        else:
            struct_fields.append((attribute, field.python_type | None, None))
    record_type = msgspec.defstruct(
        "TypedRecord", struct_fields, rename=rename, forbid_unknown_fields=False, kw_only=True
    )
    # The reader's envelope, field for field, with this stream's record type.
    envelope = [
        (f.name, record_type)
        if f.name == "record"
        else (f.name, f.type, f.default)
        if f.default is not msgspec.NODEFAULT
        else (f.name, f.type)
        for f in msgspec.structs.fields(Message)
    ]
    line_type = msgspec.defstruct("TypedLine", envelope, kw_only=True)
    return TypedLayout(
        columns,
        fields,
        tuple(copy_types),
        msgspec.json.Decoder(record_type).decode,
        tuple(checks),
        key_index,
        msgspec.json.Decoder(line_type).decode,
        tuple(casts),
    )
