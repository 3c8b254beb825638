"""What a stream's SCHEMA message means for its table: names, columns, keys, version column."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from psycopg import sql

from target_postgres_atomic.columns import Column, column_type, content_encoding
from target_postgres_atomic.errors import SchemaError
from target_postgres_atomic.settings import is_system_schema, system_schema_refusal

DELETED_AT = "_sdc_deleted_at"
TABLE_VERSION = "_sdc_table_version"
# Envelope metadata added with `add_record_metadata` (values from the message, not the record).
RECORD_METADATA = (
    Column("_sdc_extracted_at", "timestamp with time zone", None),
    Column("_sdc_received_at", "timestamp with time zone", None),
    Column("_sdc_batched_at", "timestamp with time zone", None),
    Column("_sdc_sequence", "bigint", None),
)


@dataclass(frozen=True)
class TableSpec:
    """The target table of one stream, as the latest SCHEMA message describes it."""

    stream: str
    schema: str
    table: str
    columns: tuple[Column, ...]
    keys: tuple[str, ...]
    version: str | None
    properties: Mapping[str, Any]
    version_from_setting: bool = False
    declared_version: str | None = None
    """The version column the SCHEMA (or setting) named, even where the guard is off."""
    record_schema: Mapping[str, Any] = field(default_factory=dict)
    """The SCHEMA message's whole JSON schema of a record (what `validate_records` checks)."""
    schema_line: int = 0
    """The input line of that SCHEMA message."""

    def qualified(self) -> sql.Identifier:
        return sql.Identifier(self.schema, self.table)

    def qualified_text(self) -> str:
        return self.qualified().as_string(None)

    def with_types(self, types: Mapping[str, str]) -> TableSpec:
        """The same spec with the table's real column types (older runs may have widened)."""
        return replace(
            self,
            columns=tuple(replace(c, pg_type=types.get(c.name, c.pg_type)) for c in self.columns),
        )

    def with_comparable_version(self, line: int) -> tuple[TableSpec, str | None]:
        """The spec with a version column the guard can compare with `>=`, and a warning.

        A tap's bookmark stored as text (where '9' > '10') or one that is no column loads
        without the guard (arrival order wins): the warning says so. A column the user chose
        in `version_columns` must be comparable.
        """
        if self.version is None:
            return self, None
        column = next((c for c in self.columns if c.name == self.version), None)
        if column is not None and column.pg_type not in UNORDERED_TYPES:
            return self, None
        stored = (
            "is not a property of the stream"
            if column is None
            else f"is stored as {column.pg_type}, which does not order versions (as text "
            "'9' > '10')"
        )
        if self.version_from_setting:
            raise SchemaError(
                self.stream,
                line,
                f"version column '{self.version}' (version_columns) {stored}; pick a column "
                "declared as an integer, a number, a date-time or an x-singer.decimal string",
            )
        warning = (
            f"stream '{self.stream}': bookmark '{self.version}' {stored}, so the "
            "older-never-over-newer guard is off for this stream and the last record to arrive "
            "wins. To get the guard, have the tap declare the column as an integer, number, "
            "date-time or x-singer.decimal (a `format`), or name a comparable column in "
            f'version_columns; version_columns: {{"{self.stream}": null}} turns it off '
            "without this warning."
        )
        return replace(self, version=None), warning


# Types whose `>=` does not order versions (text compares digit strings by character).
UNORDERED_TYPES = ("text", "jsonb", "boolean")
MAX_IDENTIFIER_BYTES = 63
# The target's bookmark and tombstone tables (_sdc_target_*) and refresh shadows: no stream's.
OWN_TABLE_PREFIXES = ("_sdc_target_", "_sdc_shadow_")
# Names the merge statement gives its own columns (arrival order), next to the record's.
RESERVED = ("_sdc_seq",)


def generated_name(readable: str, *identity: str) -> str:
    """A name the target makes up (shadow table, index): at most 63 bytes, unique per identity.

    PostgreSQL cuts longer names silently, so two long (or multibyte) names could meet in one
    table: the readable part is cut at a character boundary and a hash of the identity follows.
    """
    digest = hashlib.blake2b("\x00".join(identity).encode(), digest_size=5).hexdigest()
    budget = MAX_IDENTIFIER_BYTES - len(digest) - 1
    cut = readable.encode()[:budget].decode(errors="ignore")
    return f"{cut}_{digest}"


def table_location(stream: str, default_schema: str | None) -> tuple[str, str]:
    """Schema and table as MeltanoLabs target-postgres names them: names kept as they are
    (quoted), and a `schema-table` stream name picks its schema unless one is configured."""
    parts = stream.split("-")
    table = stream if len(parts) == 1 else parts[-1]
    if default_schema:
        return default_schema, table
    if len(parts) in (2, 3):
        return parts[-2], table
    return "public", table


def _check_name(stream: str, line: int, kind: str, name: str) -> None:
    """PostgreSQL would silently cut a longer name (and then fail to find the column again)."""
    if not 0 < len(name.encode()) <= MAX_IDENTIFIER_BYTES or "\x00" in name:
        raise SchemaError(
            stream,
            line,
            f"{kind} name {name!r} is not a PostgreSQL identifier (1 to 63 bytes, "
            "no NUL); rename it with a stream map",
        )


def _check_place(stream: str, line: int, schema: str, table: str) -> None:
    """No stream may land in a system schema or in one of the target's own tables."""
    if is_system_schema(schema):
        raise SchemaError(stream, line, system_schema_refusal(schema, "from the stream name"))
    if table.startswith(OWN_TABLE_PREFIXES):
        raise SchemaError(
            stream,
            line,
            f"table name '{table}' is reserved for the target's own tables (names starting "
            f"with {' or '.join(OWN_TABLE_PREFIXES)}); rename the stream with a stream map",
        )


def build_spec(
    message: Mapping[str, Any],
    line: int,
    *,
    default_schema: str | None,
    add_record_metadata: bool,
    version_columns: Mapping[str, str | None],
    interpret_content_encoding: bool = False,
) -> TableSpec:
    stream = str(message["stream"])
    schema = message["schema"]
    if not isinstance(schema, dict) or not isinstance(schema.get("properties"), dict):
        raise SchemaError(stream, line, "the SCHEMA message has no 'properties' object")
    properties: dict[str, Any] = schema["properties"]
    columns: list[Column] = []
    for name, prop in properties.items():
        _check_name(stream, line, "property", name)
        if name in RESERVED:
            raise SchemaError(
                stream,
                line,
                "the target uses this column name for its own bookkeeping; rename the "
                "property with a stream map (stream_maps setting)",
                field=name,
            )
        encoding = content_encoding(prop) if interpret_content_encoding else None
        if encoding is not None:
            columns.append(Column(name, "bytea", name, encoding))
            continue
        pg_type = "timestamp with time zone" if name == DELETED_AT else column_type(prop)
        columns.append(Column(name, pg_type, name))
    if DELETED_AT not in properties:
        columns.append(Column(DELETED_AT, "timestamp with time zone", DELETED_AT))
    if TABLE_VERSION not in properties:
        columns.append(Column(TABLE_VERSION, "bigint", None))
    if add_record_metadata:
        columns.extend(c for c in RECORD_METADATA if c.name not in properties)

    keys = tuple(message.get("key_properties") or ())
    for key in keys:
        if key not in properties:
            raise SchemaError(stream, line, f"key property '{key}' is not in the schema")

    from_setting = stream in version_columns
    version_source = version_columns.get(stream)
    if not from_setting and message.get("bookmark_properties"):
        version_source = message["bookmark_properties"][0]
    table_schema, table = table_location(stream, default_schema)
    _check_name(stream, line, "schema", table_schema)
    _check_name(stream, line, "table", table)
    _check_place(stream, line, table_schema, table)
    return TableSpec(
        stream=stream,
        schema=table_schema,
        table=table,
        columns=tuple(columns),
        keys=keys,
        version=version_source,
        properties=properties,
        version_from_setting=from_setting and version_source is not None,
        declared_version=version_source,
        record_schema=schema,
        schema_line=line,
    )
