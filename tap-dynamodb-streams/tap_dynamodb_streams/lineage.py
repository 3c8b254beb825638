"""Per-table shard bookkeeping kept in the Singer state, and the rules of shard lineage.

State of one table (``bookmarks.<table>``)::

    {"stream_arn": "arn:...:table/T/stream/2026-...",
     "attributes": {"qty": {"type": ["string", "null"], "format": "x-singer.decimal"}},
     "shards": {"shardId-...": {"parent": "shardId-..." | null,
                                "sequence_number": "4100000000000000000123" | null,
                                "ended": false,
                                "root": true,
                                "lineage": "shardId-... (oldest ancestor seen)",
                                "at": 1767225600}}}

``sequence_number`` is the last one emitted; ``ended`` says a null ``NextShardIterator`` was
seen; ``at`` is the creation time of that event (to read the oldest positions first). A shard
is read only after its parent ended. Iterators are never stored. With ``partition: "i/N"`` a
shard whose lineage belongs to another partition is kept as ``{"foreign": true, ...}`` only to
know its children's lineage.
"""

from __future__ import annotations

import zlib
from typing import Any

RESYNC_HINT = (
    "Events may be missing. Run a full resync: clear this table's state "
    "(e.g. `meltano state clear`) and run with `initial_snapshot: true`."
)


class StreamGapError(Exception):
    """A position the tap depends on is gone; continuing would silently lose events."""


def gap(table: str, what: str) -> StreamGapError:
    return StreamGapError(f"Table {table!r}: {what}. {RESYNC_HINT}")


def vanished(table: str, shard_id: str, sequence_number: str | None) -> StreamGapError:
    return gap(
        table,
        f"shard {shard_id} vanished before its end was read "
        f"(last emitted sequence number {sequence_number})",
    )


def parse_partition(text: str | None) -> tuple[int, int]:
    """``"i/N"`` (0 <= i < N) as (i, N); no partition is ``(0, 1)``."""
    if not text:
        return 0, 1
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        index, count = -1, 0
    if not 0 <= index < count:
        raise ValueError(f"partition {text!r} must look like 'i/N' with 0 <= i < N, e.g. '0/4'")
    return index, count


class ShardLedger:
    """The ``shards`` map of one table's state, updated in place (the SDK owns the dict)."""

    def __init__(
        self, table: str, stream_state: dict[str, Any], partition: tuple[int, int] = (0, 1)
    ) -> None:
        self.table = table
        self.entries: dict[str, dict[str, Any]] = stream_state.setdefault("shards", {})
        self.partition = partition

    def _mine(self, lineage: str) -> bool:
        """Stable across processes and runs: a hash of the lineage's root shard id."""
        index, count = self.partition
        return count == 1 or zlib.crc32(lineage.encode()) % count == index

    def _lineage(self, shard_id: str, listing: dict[str, dict[str, Any]]) -> str:
        seen = {shard_id}
        while True:
            if shard_id in self.entries and self.entries[shard_id].get("lineage"):
                return str(self.entries[shard_id]["lineage"])
            parent = listing.get(shard_id, {}).get("ParentShardId")
            if (
                parent is None
                or parent in seen
                or (parent not in listing and parent not in self.entries)
            ):
                return shard_id
            seen.add(parent)
            shard_id = parent

    def all_ended(self) -> bool:
        return all(e["ended"] for e in self.entries.values() if not e.get("foreign"))

    def entry(self, shard_id: str) -> dict[str, Any]:
        return self.entries[shard_id]

    def reconcile(self, listing: dict[str, dict[str, Any]], first_listing: bool) -> None:
        """Learn new shards from a DescribeStream listing; fail on a shard that vanished."""
        for shard_id, entry in self.entries.items():
            if not entry["ended"] and not entry.get("foreign") and shard_id not in listing:
                raise vanished(self.table, shard_id, entry["sequence_number"])
        learned = {
            shard_id: self._learned(shard_id, shard, listing, first_listing)
            for shard_id, shard in listing.items()
            if shard_id not in self.entries
        }
        self.entries.update(learned)  # only once nothing above failed: state not advanced
        gone = [
            s
            for s, e in self.entries.items()
            if (e.get("foreign") or e["ended"]) and s not in listing
        ]
        for shard_id in gone:
            del self.entries[shard_id]  # aged out after we read it to its end

    def adopt_children(self, parent: str, children: dict[str, dict[str, Any]]) -> None:
        """Learn the children of ``parent`` (tracked) from a filtered DescribeStream."""
        for shard_id, shard in children.items():
            if shard_id not in self.entries:
                self.entries[shard_id] = self._learned(shard_id, shard, children, False)

    def _learned(
        self,
        shard_id: str,
        shard: dict[str, Any],
        listing: dict[str, dict[str, Any]],
        first_listing: bool,
    ) -> dict[str, Any]:
        """The entry of a shard seen for the first time; a gap if its parent was never seen."""
        parent = shard.get("ParentShardId")
        lineage = self._lineage(shard_id, listing)
        if not self._mine(lineage):
            return {"parent": parent, "lineage": lineage, "foreign": True}
        unknown_parent = parent is None or (parent not in listing and parent not in self.entries)
        if unknown_parent and parent is not None and not first_listing:
            # We tracked this stream before, yet never saw this parent: a whole generation
            # (e.g. a child of a shard we read to its end) aged out unread.
            raise gap(
                self.table,
                f"shard {shard_id} appeared but its parent {parent} was never read "
                "(it aged out of the stream before this tap saw it)",
            )
        return {
            "parent": parent,
            "sequence_number": None,
            "ended": False,
            # A root is read from TRIM_HORIZON: only shards of the first listing whose parent
            # aged out before we ever depended on it. Others start exactly at their
            # StartingSequenceNumber, so trimmed data there fails loudly.
            "root": first_listing and unknown_parent,
            "lineage": lineage,
        }

    def ready(self, listing: dict[str, dict[str, Any]]) -> list[str]:
        """Shards to read now, in listing order: not ended, and their parent ended."""
        return [shard_id for shard_id in listing if self.is_ready(shard_id)]

    def is_ready(self, shard_id: str) -> bool:
        entry = self.entries.get(shard_id)
        if entry is None or entry.get("foreign") or entry["ended"]:
            return False
        parent = self.entries.get(entry["parent"]) if entry["parent"] else None
        return parent is None or bool(parent.get("ended"))

    def start_position(self, shard_id: str, shard: dict[str, Any]) -> dict[str, str]:
        """Where to (re)start reading: after the last emitted record, never from an iterator."""
        entry = self.entries[shard_id]
        if entry["sequence_number"] is not None:
            return {
                "ShardIteratorType": "AFTER_SEQUENCE_NUMBER",
                "SequenceNumber": entry["sequence_number"],
            }
        if entry["root"]:
            return {"ShardIteratorType": "TRIM_HORIZON"}
        return {
            "ShardIteratorType": "AT_SEQUENCE_NUMBER",
            "SequenceNumber": shard["SequenceNumberRange"]["StartingSequenceNumber"],
        }
