"""Which shard a reader thread takes next, and what a shard keeps while it waits.

A shard that must wait before its next call is *parked*: only its cursor is kept, and its
thread goes to another shard. A *probe* follows the empty pages of a child whose parent is
still being read; it hands no page over and, at a record, goes back to the child's start until
the parent ended (see ``reader.py``).
"""

from __future__ import annotations

import heapq
import itertools
import math
import time
from dataclasses import dataclass, field
from typing import Any

from tap_dynamodb_streams.lineage import ShardLedger


@dataclass
class Cursor:
    """Where one shard's reading stands between two calls: all a parked shard keeps."""

    shard_id: str
    position: dict[str, str]
    iterator: str | None = None
    last_call: float = float("-inf")
    last_record: float = field(default_factory=time.monotonic)
    empty_pages: int = 0
    not_found: int = 0
    probe: bool = False  # its parent is still being read: hand over no page


@dataclass
class Parked:
    """The shard waits until ``resume_at`` (monotonic) for its next call, without a thread."""

    cursor: Cursor
    resume_at: float


def held(cursor: Cursor) -> Parked:
    """A probe that met a record (or an error): back to its start, until its parent ended."""
    cursor.iterator = None
    cursor.empty_pages = 0
    cursor.last_record = time.monotonic()
    return Parked(cursor, math.inf)


class Schedule:
    """Which shard a free thread takes next: a parked shard that is due, then the ready
    shards (oldest position first: the nearest to losing data to the 24-hour trim), then a
    probe of a child whose parent is being read."""

    def __init__(
        self, ledger: ShardLedger, listing: dict[str, dict[str, Any]], done: set[str]
    ) -> None:
        self.ledger, self.listing, self.done = ledger, listing, done
        self._order = itertools.count()  # ties in the heaps keep their arrival order
        self.children: dict[str | None, list[str]] = {}
        for shard_id, shard in listing.items():
            self.children.setdefault(shard.get("ParentShardId"), []).append(shard_id)
        ready = [s for s in ledger.ready(listing) if s not in done]
        self.waiting = [(ledger.entry(s).get("at") or 0, next(self._order), s) for s in ready]
        heapq.heapify(self.waiting)
        self.probes = [c for s in reversed(ready) for c in self.children.get(s, ())]
        self.parked: list[tuple[float, int, Cursor]] = []
        self.probing: dict[str, Cursor] = {}
        self.held: dict[str, Cursor] = {}

    def due_at(self) -> float | None:
        return self.parked[0][0] if self.parked else None

    def next_cursor(self) -> Cursor | None:
        if self.parked and self.parked[0][0] <= time.monotonic():
            return heapq.heappop(self.parked)[2]
        if self.waiting:
            return self._cursor(heapq.heappop(self.waiting)[2])
        while self.probes:
            shard_id = self.probes.pop()
            entry = self.ledger.entries.get(shard_id)
            if not entry or entry.get("foreign") or entry["ended"] or shard_id in self.done:
                continue
            if not self.ledger.is_ready(shard_id):  # else its parent ended: read for real
                cursor = self.probing[shard_id] = self._cursor(shard_id, probe=True)
                return cursor
        return None

    def _cursor(self, shard_id: str, probe: bool = False) -> Cursor:
        start = self.ledger.start_position(shard_id, self.listing[shard_id])
        return Cursor(shard_id, start, probe=probe)

    def park(self, item: Parked) -> None:
        cursor = item.cursor
        if item.resume_at == math.inf and cursor.probe:
            self.held[cursor.shard_id] = cursor
            return
        resume_at = time.monotonic() if item.resume_at == math.inf else item.resume_at
        heapq.heappush(self.parked, (resume_at, next(self._order), cursor))

    def adopt_children(self, parent: str, children: list[str]) -> None:
        """The children of ``parent`` (which ended) were found after this schedule was made."""
        self.children[parent] = children
        for child in children:
            if self.ledger.is_ready(child) and child not in self.done:
                heapq.heappush(self.waiting, (0, next(self._order), child))

    def ended(self, shard_id: str) -> None:
        """``shard_id`` was read to its end and handed over: its children may go on now."""
        for child in self.children.get(shard_id, ()):
            probe = self.probing.pop(child, None)
            if probe is not None:
                probe.probe = False  # a running or parked probe hands its pages over now
                held = self.held.pop(child, None)
                if held is not None:
                    heapq.heappush(self.parked, (time.monotonic(), next(self._order), held))
            elif self.ledger.is_ready(child) and child not in self.done:
                heapq.heappush(self.waiting, (0, next(self._order), child))
