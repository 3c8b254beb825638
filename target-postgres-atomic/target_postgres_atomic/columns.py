"""From a stream's JSON schema to PostgreSQL columns: names, types and lossless widening."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg import sql

BIGINT_MIN = -(2**63)
BIGINT_MAX = 2**63 - 1

# Lossless widening order for scalar columns; anything else only widens to jsonb.
WIDENING = ("smallint", "integer", "bigint", "numeric", "text")
# Other changes that keep every value: (current, wanted) -> the type to ALTER to.
WIDER = {
    ("date", "timestamp with time zone"): "timestamp with time zone",
    ("timestamp with time zone", "date"): None,
}


class LossyTypeChange(ValueError):
    """The new schema's values would be cast into the column with loss (or not at all)."""


def _types(prop: dict[str, Any]) -> list[str]:
    if "anyOf" in prop or "oneOf" in prop:
        found: list[str] = []
        for option in prop.get("anyOf") or prop.get("oneOf") or []:
            found.extend(t for t in _types(option) if t not in found)
        return found
    raw = prop.get("type", [])
    return [raw] if isinstance(raw, str) else list(raw)


def _format(prop: dict[str, Any]) -> str | None:
    if "format" in prop:
        return str(prop["format"])
    for option in prop.get("anyOf") or prop.get("oneOf") or []:
        if "format" in option:
            return str(option["format"])
    return None


def json_types(prop: dict[str, Any]) -> list[str]:
    """The JSON types a property may take, without null."""
    return [t for t in _types(prop) if t != "null"]


def column_type(prop: dict[str, Any]) -> str:
    """The PostgreSQL type for one JSON-schema property (numbers never lose digits)."""
    kinds = set(json_types(prop))
    if not kinds or kinds & {"object", "array"}:
        return "jsonb"
    if len(kinds) > 1:
        return "numeric" if kinds == {"integer", "number"} else "text"
    kind = kinds.pop()
    if kind == "boolean":
        return "boolean"
    if kind == "number":
        return "numeric"
    if kind == "integer":
        low, high = prop.get("minimum"), prop.get("maximum")
        fits = (low is None or low >= BIGINT_MIN) and (high is None or high <= BIGINT_MAX)
        return "bigint" if fits else "numeric"
    fmt = _format(prop)
    return {
        "date-time": "timestamp with time zone",
        "date": "date",
        "time": "time without time zone",
        "x-singer.decimal": "numeric",
        "singer.decimal": "numeric",
    }.get(fmt or "", "text")


def content_encoding(prop: dict[str, Any]) -> str | None:
    """PostgreSQL's `decode` format for a string property's contentEncoding, if it has one."""
    if json_types(prop) != ["string"]:
        return None
    return {"base64": "base64", "base16": "hex"}.get(str(prop.get("contentEncoding", "")).lower())


def decoded_bytes(encoding: str, text: sql.Composable) -> sql.Composable:
    """SQL decoding `text` into bytea (a bad encoding fails the cast, naming the field).

    base16 is read as MeltanoLabs target-postgres reads it: a `0x` (or `\\x`) prefix is
    dropped and an odd number of digits gets a leading 0 (`A12` is 0x0A12).
    """
    if encoding != "hex":
        return sql.SQL("decode({}, {})").format(text, sql.Literal(encoding))
    digits = sql.SQL(
        "(CASE WHEN left({t}, 2) IN ('0x', {bs}) THEN substr({t}, 3) ELSE {t} END)"
    ).format(t=text, bs=sql.Literal("\\x"))
    return sql.SQL(
        "decode(CASE WHEN length({d}) % 2 = 1 THEN '0' || {d} ELSE {d} END, 'hex')"
    ).format(d=digits)


def widened(current: str, wanted: str) -> str | None:
    """The type to ALTER to so `wanted` values fit without loss, or None to keep `current`.

    Raises LossyTypeChange where neither keeps every value (a date column would silently drop
    a timestamp's time, a boolean column would read 1 as true).
    """
    if current == wanted or current in ("text", "jsonb"):
        return None
    if current == "bytea":
        raise LossyTypeChange(
            "the column holds decoded bytes (interpret_content_encoding) and cannot take "
            f"{wanted} values; keep interpret_content_encoding on for this stream"
        )
    if current in WIDENING and wanted in WIDENING:
        return wanted if WIDENING.index(wanted) > WIDENING.index(current) else None
    if wanted == "text":
        return "text"
    if (current, wanted) in WIDER:
        return WIDER[(current, wanted)]
    raise LossyTypeChange(
        f"the column is {current} and cannot take {wanted} values without loss; "
        "load the stream into a new table, or change the column type yourself"
    )


@dataclass(frozen=True)
class Column:
    """One table column fed from one record property (or from the envelope)."""

    name: str
    pg_type: str
    source: str | None
    """Record property the value comes from; None for envelope metadata columns."""
    encoding: str | None = None
    """How a bytea column's JSON string encodes its bytes (PostgreSQL `decode` format)."""
