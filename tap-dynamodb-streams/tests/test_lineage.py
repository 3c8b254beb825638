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


def test_an_unknown_parent_after_the_first_listing_is_never_trim_horizon() -> None:
    ledger = ShardLedger("t", {})
    ledger.reconcile(listing(shard("a")), first_listing=True)
    ledger.entry("a")["ended"] = True
    later = listing(shard("a"), shard("x", "never-seen", "900"))
    ledger.reconcile(later, first_listing=False)
    assert ledger.start_position("x", later["x"])["ShardIteratorType"] == "AT_SEQUENCE_NUMBER"


def test_a_shard_that_vanishes_before_its_end_is_a_gap_and_ended_ones_age_out() -> None:
    ledger = ShardLedger("orders", {})
    ledger.reconcile(listing(shard("a"), shard("b", "a")), first_listing=True)
    ledger.entry("a")["ended"] = True
    ledger.reconcile(listing(shard("b", "a")), first_listing=False)
    assert "a" not in ledger.entries  # read to its end, then aged out: forgotten
    ledger.entry("b")["sequence_number"] = "123"
    with pytest.raises(StreamGapError, match=r"'orders'.*shard b vanished.*123.*full resync"):
        ledger.reconcile(listing(), first_listing=False)
