"""DynamoDB JSON to Singer values and JSON schemas, without losing a digit or a byte.

How values travel (the README says the same):
- ``N`` becomes a string of the exact digits DynamoDB sent. A top-level attribute is declared
  ``{"type": "string", "format": "x-singer.decimal"}`` so targets store it as ``numeric``;
  inside lists, maps and ``NS`` sets it stays a decimal string.
- ``B`` becomes base64 text (``contentEncoding: base64``); ``BS`` a sorted array of those.
- ``SS``/``NS`` become sorted arrays (``NS`` sorted by value); ``L`` an array; ``M`` an object.
- ``BOOL`` is a boolean and ``NULL`` is null.
"""

from __future__ import annotations

import base64
from decimal import Decimal
from typing import Any

STRING_KINDS = {"S", "N", "B"}


def _b64(value: bytes | str) -> str:
    # boto3 hands over bytes; a raw wire value is already base64 text.
    return base64.b64encode(value).decode() if isinstance(value, bytes) else value


def attribute_value(attribute: dict[str, Any]) -> Any:
    """One typed DynamoDB value (``{"N": "1"}``) as a JSON-ready Python value."""
    ((kind, value),) = attribute.items()
    if kind in ("S", "N"):
        return value
    if kind == "B":
        return _b64(value)
    if kind == "BOOL":
        return bool(value)
    if kind == "NULL":
        return None
    if kind == "SS":
        return sorted(value)
    if kind == "NS":
        return sorted(value, key=Decimal)
    if kind == "BS":
        return sorted(_b64(v) for v in value)
    if kind == "L":
        return [attribute_value(v) for v in value]
    if kind == "M":
        return {k: attribute_value(v) for k, v in value.items()}
    raise ValueError(f"unknown DynamoDB attribute type {kind!r}")


def kind_of(attribute: dict[str, Any]) -> str:
    return next(iter(attribute))


def kind_schema(kind: str) -> dict[str, Any]:
    """The JSON schema of a top-level attribute of DynamoDB type ``kind``."""
    if kind == "S":
        return {"type": ["string", "null"]}
    if kind == "N":
        return {"type": ["string", "null"], "format": "x-singer.decimal"}
    if kind == "B":
        return {"type": ["string", "null"], "contentEncoding": "base64"}
    if kind == "BOOL":
        return {"type": ["boolean", "null"]}
    if kind in ("SS", "NS", "BS"):
        return {"type": ["array", "null"], "items": {"type": "string"}}
    if kind == "L":
        return {"type": ["array", "null"]}
    if kind == "M":
        return {"type": ["object", "null"]}
    raise ValueError(f"unknown DynamoDB attribute type {kind!r}")
