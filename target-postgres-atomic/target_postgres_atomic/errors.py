"""Errors a user can act on: each names the stream, the input line and the field."""

from __future__ import annotations

from singer_sdk.exceptions import (
    FatalSyncError,
    InvalidInputLine,
    MissingKeyPropertiesError,
    RecordsWithoutSchemaException,
)

__all__ = [
    "BadRecordError",
    "InvalidInputLine",
    "MissingKeyPropertiesError",
    "RecordsWithoutSchemaException",
    "SchemaError",
]


class BadRecordError(FatalSyncError):
    """A record that cannot be loaded as it is: nothing of its batch was committed."""

    def __init__(self, stream: str, line: int, field: str | None, problem: str) -> None:
        where = f"stream '{stream}', input line {line}"
        if field is not None:
            where += f", field '{field}'"
        super().__init__(
            f"{where}: {problem}. Nothing of this batch was committed; fix the record "
            "(or the tap) and run again from the last emitted STATE."
        )
        self.stream = stream
        self.line = line
        self.field = field


class SchemaError(FatalSyncError):
    """A SCHEMA message the target cannot turn into a table."""

    def __init__(self, stream: str, line: int, problem: str) -> None:
        super().__init__(f"stream '{stream}', input line {line}: {problem}")
        self.stream = stream
        self.line = line


def missing_key(stream: str, line: int, field: str) -> MissingKeyPropertiesError:
    return MissingKeyPropertiesError(
        f"stream '{stream}', input line {line}, field '{field}': the record has no value for "
        "key property. Nothing of this batch was committed."
    )
