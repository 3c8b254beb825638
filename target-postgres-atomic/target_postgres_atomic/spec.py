"""What a stream's SCHEMA message means for its table: names, columns, keys, version column."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from psycopg import sql

from target_postgres_atomic.columns import Column, column_type, conform_name
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
    raw_keys: tuple[str, ...]
    """Key properties as the record names them (for error messages and checks)."""

    def qualified(self) -> sql.Identifier:
        return sql.Identifier(self.schema, self.table)

    def qualified_text(self) -> str:
        return self.qualified().as_string(None)

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    def with_types(self, types: Mapping[str, str]) -> TableSpec:
        """The same spec with the table's real column types (older runs may have widened)."""
        return replace(
            self,
            columns=tuple(replace(c, pg_type=types.get(c.name, c.pg_type)) for c in self.columns),
        )


def table_location(stream: str, default_schema: str | None) -> tuple[str, str]:
    """Schema and table like singer-sdk's SQLSink: `schema-table` streams pick their schema."""
    parts = stream.split("-")
    table = conform_name(stream if len(parts) == 1 else parts[-1])
    if default_schema:
        return default_schema, table
    if len(parts) in (2, 3):
        return conform_name(parts[-2]), table
    return "public", table


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
    seen: dict[str, str] = {}
    for prop_name, prop in properties.items():
        name = conform_name(prop_name)
        if name in seen:
            raise SchemaError(
                stream,
                line,
                f"properties '{seen[name]}' and '{prop_name}' both map to column "
                f"'{name}'; rename one with a stream map",
            )
        seen[name] = prop_name
        pg_type = "timestamp with time zone" if name == DELETED_AT else column_type(prop)
        columns.append(Column(name, pg_type, prop_name))
    if DELETED_AT not in seen:
        columns.append(Column(DELETED_AT, "timestamp with time zone", DELETED_AT))
    if TABLE_VERSION not in seen:
        columns.append(Column(TABLE_VERSION, "bigint", None))
    if add_record_metadata:
        columns.extend(c for c in RECORD_METADATA if c.name not in seen)

    raw_keys = tuple(message.get("key_properties") or ())
    for key in raw_keys:
        if key not in properties:
            raise SchemaError(stream, line, f"key property '{key}' is not in the schema")

    version_source = version_columns.get(stream)
    if version_source is None and message.get("bookmark_properties"):
        version_source = message["bookmark_properties"][0]
    version = None
    if version_source is not None:
        version = conform_name(version_source)
        if version not in seen:
            raise SchemaError(
                stream, line, f"version column '{version_source}' is not a property of the stream"
            )
    table_schema, table = table_location(stream, default_schema)
    return TableSpec(
        stream=stream,
        schema=table_schema,
        table=table,
        columns=tuple(columns),
        keys=tuple(conform_name(k) for k in raw_keys),
        version=version,
        properties=properties,
        raw_keys=raw_keys,
    )
