"""The shard bookkeeping rules on their own: which shard may be read, and from where."""

from __future__ import annotations

from typing import Any

import pytest

from tap_dynamodb_streams.lineage import ShardLedger, StreamGapError


def shard(shard_id: str, parent: str | None = None, start: str = "100") -> dict[str, Any]:
    out: dict[str, Any] = {
        "ShardId": shard_id,
        "SequenceNumberRange": {"StartingSequenceNumber": start},
    }
    if parent:
        out["ParentShardId"] = parent
    return out


def listing(*shards: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["ShardId"]: s for s in shards}


def test_children_wait_for_their_parent_and_start_at_their_first_sequence_number() -> None:
    ledger = ShardLedger("t", {})
    shards = listing(shard("c1", "p", "300"), shard("p", "gone"), shard("c2", "p", "400"))
    ledger.reconcile(shards, first_listing=True)
    assert ledger.ready(shards) == ["p"]
    assert ledger.start_position("p", shards["p"]) == {"ShardIteratorType": "TRIM_HORIZON"}
    ledger.entry("p").update(sequence_number="250", ended=True)
    assert ledger.ready(shards) == ["c1", "c2"]
    assert ledger.start_position("c1", shards["c1"]) == {
        "ShardIteratorType": "AT_SEQUENCE_NUMBER",
        "SequenceNumber": "300",
    }
    ledger.entry("c1")["sequence_number"] = "310"
    assert ledger.start_position("c1", shards["c1"]) == {
        "ShardIteratorType": "AFTER_SEQUENCE_NUMBER",
        "SequenceNumber": "310",
    }


def test_a_new_shard_whose_parent_was_never_seen_is_a_gap() -> None:
    """Parent p read to its end; the run stopped before its child c was listed to us; by the
    next run p and c aged out and only the grandchild g is listed. c's events were never read:
    starting g (at any position) would silently skip them."""
    ledger = ShardLedger("orders", {})
    ledger.reconcile(listing(shard("p")), first_listing=True)
    ledger.entry("p").update(sequence_number="250", ended=True)
    later = listing(shard("g", "c", "900"))
    with pytest.raises(StreamGapError, match=r"'orders'.*shard g.*parent c.*full resync"):
        ledger.reconcile(later, first_listing=False)
    assert "g" not in ledger.entries and "p" in ledger.entries  # state not advanced


def test_a_child_of_a_parent_read_and_aged_out_is_learned_before_the_parent_is_forgotten() -> None:
    ledger = ShardLedger("t", {})
    ledger.reconcile(listing(shard("p")), first_listing=True)
    ledger.entry("p")["ended"] = True
    later = listing(shard("c", "p", "900"))  # p already aged out: c is still known to follow it
    ledger.reconcile(later, first_listing=False)
    assert ledger.ready(later) == ["c"]
    assert ledger.start_position("c", later["c"])["ShardIteratorType"] == "AT_SEQUENCE_NUMBER"


def test_a_shard_that_vanishes_before_its_end_is_a_gap_and_ended_ones_age_out() -> None:
    ledger = ShardLedger("orders", {})
    ledger.reconcile(listing(shard("a"), shard("b", "a")), first_listing=True)
    ledger.entry("a")["ended"] = True
    ledger.reconcile(listing(shard("b", "a")), first_listing=False)
    assert "a" not in ledger.entries  # read to its end, then aged out: forgotten
    ledger.entry("b")["sequence_number"] = "123"
    with pytest.raises(StreamGapError, match=r"'orders'.*shard b vanished.*123.*full resync"):
        ledger.reconcile(listing(), first_listing=False)
