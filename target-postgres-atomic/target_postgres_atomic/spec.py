"""What a stream's SCHEMA message means for its table: names, columns, keys, version column."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from psycopg import sql

from target_postgres_atomic.columns import Column, column_type
from target_postgres_atomic.errors import SchemaError

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

    def check_version_type(self, line: int) -> None:
        """The version guard compares with `>=`: only numbers and times order correctly."""
        column = next((c for c in self.columns if c.name == self.version), None)
        if column is not None and column.pg_type in UNORDERED_TYPES:
            raise SchemaError(
                self.stream,
                line,
                f"version column '{column.name}' is stored as {column.pg_type}, which does not "
                "order versions correctly (as text '9' > '10'); declare it as an integer, a "
                "number, a date-time or an x-singer.decimal string, or pick another column "
                "with the version_columns setting",
            )


# Types whose `>=` does not order versions (text compares digit strings by character).
UNORDERED_TYPES = ("text", "jsonb", "boolean")
MAX_IDENTIFIER_BYTES = 63
# Names the merge statement gives its own columns (arrival order), next to the record's.
RESERVED = ("_sdc_seq",)


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


def build_spec(
    message: Mapping[str, Any],
    line: int,
    *,
    default_schema: str | None,
    add_record_metadata: bool,
    version_columns: Mapping[str, str],
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

    version_source = version_columns.get(stream)
    if version_source is None and message.get("bookmark_properties"):
        version_source = message["bookmark_properties"][0]
    if version_source is not None and version_source not in properties:
        raise SchemaError(
            stream, line, f"version column '{version_source}' is not a property of the stream"
        )
    table_schema, table = table_location(stream, default_schema)
    _check_name(stream, line, "schema", table_schema)
    _check_name(stream, line, "table", table)
    return TableSpec(
        stream=stream,
        schema=table_schema,
        table=table,
        columns=tuple(columns),
        keys=keys,
        version=version_source,
        properties=properties,
    )
