"""A fast Singer reader: msgspec decodes the envelope, the record stays raw JSON bytes."""

from __future__ import annotations

import io
import json
import re
import select
import sys
import typing as t
from collections import Counter

import msgspec
from singer_sdk.exceptions import FatalSyncError
from singer_sdk.io_base import GenericSingerReader, SingerMessageType
from typing_extensions import override

from target_postgres_atomic.errors import SEQ_SHIFT, BadRecordError, InvalidInputLine
from target_postgres_atomic.validation import unencodable_field

IDLE_SECONDS = 0.5
READ_BYTES = 1 << 20
MAX_DEPTH = 500
"""Past this depth the field being read is the one too deep for msgspec (Python's limit)."""
_COLON = re.compile(rb"\s*:")
_STREAM = re.compile(rb'"stream"\s*:\s*"((?:[^"\\]|\\.)*)"')


def stream_name(line: bytes) -> tuple[bytes, int] | None:
    """The stream a Singer line names (UTF-8) and where that name ends in the line, found
    without decoding the line: a guess to check once the line is decoded (a record's own
    "stream" field may come first)."""
    found = _STREAM.search(line)
    if found is None:
        return None
    name = found[1]
    if b"\\" not in name:
        return name, found.end()
    try:
        return msgspec.json.decode(b'"%b"' % name, type=str).encode(), found.end()
    except msgspec.DecodeError:  # a bad escape: the decode of the line names it
        return None


class Message(msgspec.Struct):
    """Every Singer message type in one shape; unknown fields are ignored."""

    type: str
    stream: str | None = None
    record: msgspec.Raw = msgspec.Raw(b"")
    schema: dict[str, t.Any] | None = None
    key_properties: list[str] | None = None
    bookmark_properties: list[str] | None = None
    value: msgspec.Raw = msgspec.Raw(b"")
    """A STATE's value as the tap wrote it: passed on byte for byte, so numbers keep digits."""
    version: int | None = None
    time_extracted: str | None = None
    encoding: dict[str, t.Any] | None = None
    manifest: list[str] | None = None
    exit_code: int | None = None
    """Of a TAP_FAILED line (refresh-seal): the tap's exit code."""


decode_message = msgspec.json.Decoder(Message).decode
TAP_FAILED = "TAP_FAILED"


class TapFailed(FatalSyncError):
    """The tap's wrapper reported a failed tap: the input is incomplete."""


class LineReader(GenericSingerReader[t.Any]):
    """Passes each message with its input line number, so every error can name the line."""

    on_error: t.Callable[[], None] | None = None
    """Called when reading stops on an error, before the error propagates."""
    on_idle: t.Callable[[], None] | None = None
    """Called when no input arrived for IDLE_SECONDS (the tap is waiting on its source)."""
    fast_lines: t.Callable[[list[t.Any], int, int], int] | None = None
    """Tried first at each line not yet taken: called with the lines of one read, the index
    of that line and its input line number, it takes the RECORD lines it can from there and
    returns the index of the first line it did not take (the reader decodes that one)."""

    @property
    @override
    def default_input(self) -> t.IO[t.Any]:
        return sys.stdin.buffer

    @override
    def deserialize_json(self, line: t.Any) -> dict:
        """Required by the base class; process_lines below decodes into `Message` instead."""
        return msgspec.json.decode(line)

    def reads(self, stream: t.IO[t.Any]) -> t.Iterator[list[t.Any]]:
        """The input's lines, a list per read; `on_idle` runs each time the next read would
        wait. (A list per read lets the fast path take a run of lines in one call.)"""
        if self.on_idle is None or not isinstance(stream, io.BufferedReader):
            for line in stream:
                yield [line]
            return
        parts: list[bytes] = []
        while True:
            if not select.select([stream], [], [], IDLE_SECONDS)[0]:
                self.on_idle()
            # read1 returns what one read gets (its buffer stays empty, so select sees all).
            chunk = stream.read1(READ_BYTES)
            if not chunk:
                break
            # (BytesIO finds each line end with memchr: a fifth of bytes.split's CPU here.)
            lines = io.BytesIO(chunk).readlines()
            complete = chunk.endswith(b"\n")
            if len(lines) == 1 and not complete:
                parts.append(chunk)
                continue
            if parts:
                lines[0] = b"".join([*parts, lines[0]])
            parts = [] if complete else [lines.pop()]
            yield lines
        if parts:
            yield [b"".join(parts)]

    @override
    def process_lines(
        self,
        file_input: t.IO[t.Any] | None,
        callbacks: dict[str, t.Callable[[dict], None]],
    ) -> t.Counter[str]:
        lines = file_input or self.default_input
        if isinstance(lines, io.TextIOWrapper):
            # `--input FILE` arrives opened as text: read its bytes, as from stdin.
            lines = lines.buffer
        try:
            return self._process_lines(lines, callbacks)
        except BaseException:
            if self.on_error is not None:
                self.on_error()
            raise

    def _process_lines(
        self, lines: t.IO[t.Any], callbacks: dict[str, t.Callable[[dict], None]]
    ) -> t.Counter[str]:
        stats: Counter[str] = Counter()
        fast_lines = self.fast_lines
        number = 0  # the input line number of the last line taken
        for read in self.reads(lines):
            index = 0
            while index < len(read):
                if fast_lines is not None:
                    taken = fast_lines(read, index, number + 1)
                    stats[SingerMessageType.RECORD] += taken - index
                    number += taken - index
                    index = taken
                    if index == len(read):
                        break
                number += 1
                if (kind := self._process_line(read[index], number, callbacks)) is not None:
                    stats[kind] += 1
                index += 1
        return stats

    def _process_line(
        self, line: t.Any, number: int, callbacks: dict[str, t.Callable[[dict], None]]
    ) -> str | None:
        """One line the fast path did not take: decoded as any Singer message and routed;
        returns its message type (None for a blank line)."""
        if not line.strip():
            return None
        try:
            message = decode_message(line)
        except msgspec.DecodeError as exc:
            raise _undecodable(number, line, exc) from None
        except RecursionError:
            raise _too_deep(number, line) from None
        if message.type == SingerMessageType.RECORD:
            if message.stream is None or not message.record:
                raise InvalidInputLine(f"input line {number}: RECORD needs 'stream' and 'record'")
            callbacks[SingerMessageType.RECORD](
                {
                    "stream": message.stream,
                    "record": bytes(message.record),
                    "version": message.version,
                    "time_extracted": message.time_extracted,
                    "line": number,
                }
            )
        elif message.type == TAP_FAILED:
            raise TapFailed(
                f"input line {number}: the tap failed (exit code {message.exit_code}, "
                "reported by refresh-seal): nothing more is committed and no open full "
                "refresh is published. Fix the tap and run again."
            )
        elif (callback := callbacks.get(message.type)) is not None:
            callback({**msgspec.structs.asdict(message), "line": number})
        else:
            raise InvalidInputLine(
                f"input line {number}: unknown Singer message type '{message.type}'"
            )
        return message.type


def _too_deep(number: int, line: bytes) -> BadRecordError | InvalidInputLine:
    """Name the stream and the record field whose value nests too deep to decode."""
    stream = stream_name(line)
    depth, key, in_string, escaped, start = 0, None, False, False, 0
    for index, byte in enumerate(line):
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # closing quote
                in_string = False
                if depth == 2 and _COLON.match(line, index + 1):
                    key = line[start + 1 : index].decode(errors="replace")
        elif byte == 0x22:
            in_string, start = True, index
        elif byte in b"[{":
            depth += 1
        elif byte in b"]}":
            depth -= 1
        if depth > MAX_DEPTH:
            break
    problem = (
        "the value nests too deeply to decode; flatten it in the tap or drop it with a stream map"
    )
    if stream is None:
        return InvalidInputLine(f"input line {number}: {problem}")
    return BadRecordError(stream[0].decode(errors="replace"), number << SEQ_SHIFT, key, problem)


def _undecodable(number: int, line: bytes, exc: Exception) -> Exception:
    """Name the stream and field of a line msgspec refuses, where a lenient parse finds them."""
    problem = f"not a valid Singer message ({exc})"
    try:
        text = line if isinstance(line, str) else bytes(line).decode("utf-8", "surrogateescape")
        message = json.loads(text)
    except ValueError:
        message = None
    if not isinstance(message, dict) or not isinstance(message.get("stream"), str):
        return InvalidInputLine(f"input line {number}: {problem}")
    field = unencodable_field(message.get("record"))
    return BadRecordError(message["stream"], number << SEQ_SHIFT, field, problem)
