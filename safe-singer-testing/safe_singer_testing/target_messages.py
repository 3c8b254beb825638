"""Singer message builders for tests that feed target-postgres-atomic."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def schema(
    stream: str,
    properties: dict[str, Any],
    keys: Iterable[str] = ("id",),
    bookmark: str | None = None,
) -> dict[str, Any]:
    message: dict[str, Any] = {
        "type": "SCHEMA",
        "stream": stream,
        "schema": {"type": "object", "properties": properties},
        "key_properties": list(keys),
    }
    if bookmark:
        message["bookmark_properties"] = [bookmark]
    return message


def record(stream: str, row: dict[str, Any], version: int | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"type": "RECORD", "stream": stream, "record": row}
    if version is not None:
        message["version"] = version
    return message


def state(value: Any) -> dict[str, Any]:
    return {"type": "STATE", "value": value}


def activate(stream: str, version: int) -> dict[str, Any]:
    return {"type": "ACTIVATE_VERSION", "stream": stream, "version": version}
