"""The fast path: runs of RECORD lines of streams with a typed stage, a read at a time.

Most input is long runs of RECORD lines of one stream. The reader hands over the lines of each
read; each run of lines of one stream goes to its sink's `take_lines`, which decodes each line
in one pass into the stream's typed stage values and leaves the remaining checks (JSON kinds,
rules inside objects and arrays) to one decode per column and chunk (`check_pending`). Any
other line goes back to the reader, which decodes it the general way, but only once every row
taken before it is checked: errors are named in input order.
"""

from __future__ import annotations

from typing import Any

from target_postgres_atomic.engine import LoadEngine
from target_postgres_atomic.reader import stream_name
from target_postgres_atomic.sinks import PostgresSink


class FastRecords:
    """The sinks whose RECORD lines take the fast path, and the lines they take."""

    def __init__(self, engine: LoadEngine) -> None:
        self._engine = engine
        self._sinks: dict[bytes, PostgresSink] = {}
        """Sinks of unmapped streams with a RECORD since the last SCHEMA, by stream name
        (UTF-8)."""
        self._last: tuple[bytes, PostgresSink] | None = None
        """The start of the last fast line, up to its stream name, and that stream's sink."""

    def forget(self) -> None:
        """A SCHEMA may change a stream's layout or maps: every stream starts over."""
        self._sinks, self._last = {}, None

    def remember(self, stream: str, sink: PostgresSink) -> None:
        """A RECORD of `stream` went the general way: its next ones may take this path."""
        self._sinks[stream.encode()] = sink

    def _sink_of(self, line: bytes) -> tuple[bytes, PostgresSink] | None:
        """The sink of the stream the line names (a guess the decode checks), with the
        line's start up to that name. A line that starts as the last one did needs no
        search: most inputs are runs of one stream."""
        last = self._last
        if last is not None and line.startswith(last[0]):
            return last
        found = stream_name(line)
        if found is None:
            return None
        sink = self._sinks.get(found[0])
        if sink is None:
            return None
        self._last = (line[: found[1]], sink)
        return self._last

    def take(self, lines: list[Any], index: int, number: int) -> int:
        """Take the RECORD lines of fast streams from `lines[index]` (input line `number`)
        on; returns the index of the first line not taken, for the reader."""
        if not isinstance(lines[index], bytes):
            return index  # (a text stream, as singer-sdk's test suites feed, goes the usual way)
        engine, first, end = self._engine, index, len(lines)
        current: PostgresSink | None = None
        while index < end:
            found = self._sink_of(lines[index])
            if found is None:
                break
            start, sink = found
            if sink.layout is None or sink.shadow_version is not None:
                break
            if current is not None and sink is not current:
                current.check_pending()  # rows are checked in input order
            engine.before_rows(sink)
            current = sink
            stop = min(end, index + engine.room(sink))
            taken = sink.take_lines(lines, index, stop, number + index - first, start)
            if taken == index:
                break
            engine.added(sink, taken - index)
            index = taken
        if index < end and current is not None:
            current.check_pending()
        return index
