"""Errors a user can act on: each names the stream, the input line and the field."""

from __future__ import annotations

import re

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


# A record's arrival order: its input line, shifted, plus its row number inside a BATCH file.
SEQ_SHIFT = 24


def position(seq: int) -> str:
    line, row = seq >> SEQ_SHIFT, seq & ((1 << SEQ_SHIFT) - 1)
    return f"input line {line}" + (f", batch file row {row}" if row else "")


def printable(name: str) -> str:
    """A field name with control characters (NUL...) escaped, so the message stays one line."""
    return re.sub(r"[\x00-\x1f]", lambda m: f"\\x{ord(m[0]):02x}", name)


class BadRecordError(FatalSyncError):
    """A record that cannot be loaded as it is: nothing of its batch was committed."""

    def __init__(self, stream: str, seq: int, field: str | None, problem: str) -> None:
        where = f"stream '{stream}', {position(seq)}"
        if field is not None:
            where += f", field '{printable(field)}'"
        super().__init__(
            f"{where}: {problem}. Nothing of this batch was committed; fix the record "
            "(or the tap) and run again from the last emitted STATE."
        )
        self.stream = stream
        self.field = field


class SchemaError(FatalSyncError):
    """A SCHEMA message the target cannot turn into a table."""

    def __init__(self, stream: str, line: int, problem: str, field: str | None = None) -> None:
        where = f"stream '{stream}', input line {line}"
        if field is not None:
            where += f", field '{printable(field)}'"
        super().__init__(f"{where}: {problem}")
        self.stream = stream
        self.line = line


def missing_key(stream: str, seq: int, field: str) -> MissingKeyPropertiesError:
    return MissingKeyPropertiesError(
        f"stream '{stream}', {position(seq)}, field '{printable(field)}': the record has no "
        "value for key property. Nothing of this batch was committed."
    )
