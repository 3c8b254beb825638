"""Per-table shard bookkeeping kept in the Singer state, and the rules of shard lineage.

State of one table (``bookmarks.<table>``)::

    {"stream_arn": "arn:...:table/T/stream/2026-...",
     "attributes": {"qty": {"type": ["string", "null"], "format": "x-singer.decimal"}},
     "shards": {"shardId-...": {"parent": "shardId-..." | null,
                                "sequence_number": "4100000000000000000123" | null,
                                "ended": false,
                                "root": true}}}

``sequence_number`` is the last one emitted; ``ended`` says a null ``NextShardIterator`` was
seen. A shard is read only after its parent ended. Iterators are never stored.
"""

from __future__ import annotations

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


class ShardLedger:
    """The ``shards`` map of one table's state, updated in place (the SDK owns the dict)."""

    def __init__(self, table: str, stream_state: dict[str, Any]) -> None:
        self.table = table
        self.entries: dict[str, dict[str, Any]] = stream_state.setdefault("shards", {})

    def entry(self, shard_id: str) -> dict[str, Any]:
        return self.entries[shard_id]

    def reconcile(self, listing: dict[str, dict[str, Any]], first_listing: bool) -> None:
        """Learn new shards from a DescribeStream listing; fail on a shard that vanished."""
        for shard_id, entry in self.entries.items():
            if not entry["ended"] and shard_id not in listing:
                raise vanished(self.table, shard_id, entry["sequence_number"])
        learned: dict[str, dict[str, Any]] = {}
        for shard_id, shard in listing.items():
            if shard_id in self.entries:
                continue
            parent = shard.get("ParentShardId")
            unknown_parent = parent is None or (
                parent not in listing and parent not in self.entries
            )
            if unknown_parent and parent is not None and not first_listing:
                # We tracked this stream before, yet never saw this parent: a whole generation
                # (e.g. a child of a shard we read to its end) aged out unread.
                raise gap(
                    self.table,
                    f"shard {shard_id} appeared but its parent {parent} was never read "
                    "(it aged out of the stream before this tap saw it)",
                )
            learned[shard_id] = {
                "parent": parent,
                "sequence_number": None,
                "ended": False,
                # A root is read from TRIM_HORIZON: only shards of the first listing whose
                # parent aged out before we ever depended on it. Others start exactly at
                # their StartingSequenceNumber, so trimmed data there fails loudly.
                "root": first_listing and unknown_parent,
            }
        self.entries.update(learned)  # only once nothing above failed: state not advanced
        for shard_id in [s for s, e in self.entries.items() if e["ended"] and s not in listing]:
            del self.entries[shard_id]  # aged out after we read it to its end

    def ready(self, listing: dict[str, dict[str, Any]]) -> list[str]:
        """Shards to read now, in listing order: not ended, and their parent ended."""
        out = []
        for shard_id in listing:
            entry = self.entries[shard_id]
            parent = self.entries.get(entry["parent"]) if entry["parent"] else None
            if not entry["ended"] and (parent is None or parent["ended"]):
                out.append(shard_id)
        return out

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
