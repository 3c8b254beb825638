"""Per-stream counts of a run, read from the tap's and the target's singer-sdk METRIC log lines,
and the progress display: one live line per stream on a terminal, plain log lines otherwise.

singer-sdk logs ``METRIC: {"type": "counter", "metric": "record_count", "value": N,
"tags": {"stream": S, ...}}`` on stderr (``singer_sdk/metrics.py``); each counter line carries
the count since the previous line of that counter, so a stream's total is their sum. A tap's
lines count records emitted; a singer-sdk target's count records it took in, all committed
once it exits 0 (target-postgres-atomic's count records as their batch commits). Plugins that
log no such lines leave their side of the count unknown.

Taps of this project also log their replication lag, at most every few seconds and once at the
end: ``METRIC: {"type": "gauge", "metric": "replication_lag_seconds", "value": SECONDS,
"tags": {"stream": S}}`` (tap-dynamodb-streams adds ``shard`` and ``table`` tags). A stream's
lag is the largest of the latest values of its shards (one value for a Jira stream).

Anything echoed to the terminal has its control characters removed first: a plugin's log line
or a stream name must not move the cursor or recolour the operator's terminal.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from dataclasses import dataclass, field
from typing import IO, TextIO

from state_service.lease import StreamCounts, StreamLags

METRIC_MARK = "METRIC: "
BOOKMARK_KEYS = ("replication_key_value", "position", "n")
TTY_REDRAW_SECONDS = 0.25
LAG_METRIC = "replication_lag_seconds"
# C0 and C1 controls and DEL; a tab is kept (it moves nothing but the cursor within the line).
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """``text`` without control characters (escape sequences lose their ESC and do nothing)."""
    return CONTROL_CHARACTERS.sub("", text)


def _metric(line: str, name: str) -> tuple[dict[str, object], object] | None:
    """(tags, value) of a singer-sdk METRIC line of metric ``name``, else None."""
    _, mark, payload = line.partition(METRIC_MARK)
    if not mark:
        return None
    try:
        point = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(point, dict) or point.get("metric") != name:
        return None
    tags = point.get("tags")
    return (tags if isinstance(tags, dict) else {}), point.get("value")


def record_count(line: str) -> tuple[str, int] | None:
    """(stream, records) of a singer-sdk record_count METRIC line, else None."""
    found = _metric(line, "record_count")
    if found is None:
        return None
    tags, value = found
    stream = tags.get("stream")
    if not isinstance(stream, str) or not isinstance(value, int) or isinstance(value, bool):
        return None
    return printable(stream), value


def replication_lag(line: str) -> tuple[str, str, float] | None:
    """(stream, shard or "", seconds) of a replication_lag_seconds gauge line, else None."""
    found = _metric(line, LAG_METRIC)
    if found is None:
        return None
    tags, value = found
    stream, shard = tags.get("stream"), tags.get("shard", "")
    if not isinstance(stream, str) or isinstance(value, bool):
        return None
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        return None
    return printable(stream), printable(str(shard)), float(value)


def bookmark_text(value: object) -> str:
    """A short human form of one stream's bookmark."""
    if isinstance(value, dict):
        for key in BOOKMARK_KEYS:
            if key in value:
                return str(value[key])
    text = json.dumps(value, separators=(",", ":"))
    return text if len(text) <= 40 else text[:37] + "..."


@dataclass
class StreamProgress:
    started: float  # the run's start (monotonic): rates are records over time since then
    tap_records: int | None = None
    target_rows: int | None = None
    bookmark: str = "-"
    counted_at: float = field(default_factory=time.monotonic)
    lag_by_shard: dict[str, float] = field(default_factory=dict)

    @property
    def lag(self) -> float | None:
        return max(self.lag_by_shard.values()) if self.lag_by_shard else None

    def line(self, stream: str) -> str:
        records = "? records"  # a tap that logs no record_count metrics
        if self.tap_records is not None:
            rate = self.tap_records / max(self.counted_at - self.started, 1e-3)
            records = f"{self.tap_records} records ({rate:.0f}/s)"
        committed = "?" if self.target_rows is None else str(self.target_rows)
        lag = "" if self.lag is None else f", lag {self.lag:.0f}s"
        return f"{stream}: {records}, target {committed}, bookmark {self.bookmark}{lag}"


class Progress:
    """Counts and the display; fed from the stderr relay threads and the state loop."""

    def __init__(self, out: TextIO, live: bool) -> None:
        self.out, self.live = out, live
        self.streams: dict[str, StreamProgress] = {}
        self._lock = threading.Lock()
        self._drawn = 0
        self._drawn_at = 0.0
        self._started = time.monotonic()

    def relay(self, pipe: IO[bytes], side: str) -> threading.Thread:
        """A thread that passes ``pipe``'s lines on and counts its record_count metrics."""
        thread = threading.Thread(target=self._relay, args=(pipe, side), daemon=True)
        thread.start()
        return thread

    def _relay(self, pipe: IO[bytes], side: str) -> None:
        for raw in pipe:
            line = raw.decode(errors="replace").rstrip("\n")
            counted = record_count(line)
            if counted is not None:
                self._count(side, *counted)
            lag = replication_lag(line) if side == "tap" else None
            if lag is not None:
                self._lag(*lag)
            if not (self.live and METRIC_MARK in line):  # on a terminal the live lines say it
                self._print(line)

    def _count(self, side: str, stream: str, records: int) -> None:
        with self._lock:
            entry = self._stream(stream)
            if side == "tap":
                entry.tap_records = (entry.tap_records or 0) + records
                entry.counted_at = time.monotonic()
            else:
                entry.target_rows = (entry.target_rows or 0) + records
            if not self.live:
                print(f"state-service: {entry.line(stream)}", file=self.out, flush=True)
        self._redraw()

    def _lag(self, stream: str, shard: str, seconds: float) -> None:
        with self._lock:
            self._stream(stream).lag_by_shard[shard] = seconds
        self._redraw()

    def stored_state(self, state: str) -> None:
        """Note each stream's bookmark in a stored Singer state."""
        try:
            marks = json.loads(state).get("bookmarks")
        except (ValueError, AttributeError):
            return
        if not isinstance(marks, dict):
            return
        with self._lock:
            for stream, value in marks.items():
                self._stream(printable(str(stream))).bookmark = printable(bookmark_text(value))
        self._redraw()

    def _stream(self, name: str) -> StreamProgress:
        if name not in self.streams:
            self.streams[name] = StreamProgress(self._started)
        return self.streams[name]

    def counts(self) -> StreamCounts:
        with self._lock:
            return {
                s: (p.tap_records, p.target_rows)
                for s, p in self.streams.items()
                if p.tap_records is not None or p.target_rows is not None
            }

    def lags(self) -> StreamLags:
        """Each stream's last reported replication lag (the largest of its shards')."""
        with self._lock:
            return {s: p.lag for s, p in self.streams.items() if p.lag is not None}

    def close(self) -> None:
        """The final figures: the live block drawn one last time, or one plain line each."""
        if self.live:
            self._redraw(force=True)
            return
        with self._lock:
            for stream, entry in sorted(self.streams.items()):
                print(f"state-service: done: {entry.line(stream)}", file=self.out, flush=True)

    def _print(self, line: str) -> None:
        with self._lock:
            if self.live:
                self._erase()
            print(printable(line), file=self.out, flush=True)
        if self.live:
            self._redraw(force=True)

    def _erase(self) -> None:
        if self._drawn:
            self.out.write(f"\x1b[{self._drawn}F\x1b[J")
            self._drawn = 0

    def _redraw(self, force: bool = False) -> None:
        if not self.live:
            return
        with self._lock:
            if not force and time.monotonic() - self._drawn_at < TTY_REDRAW_SECONDS:
                return
            self._erase()
            lines = [f"  {entry.line(s)}" for s, entry in sorted(self.streams.items())]
            for line in lines:
                self.out.write(f"\x1b[2K{line}\n")
            self.out.flush()
            self._drawn, self._drawn_at = len(lines), time.monotonic()
