"""How the reader spends its threads (issue 11, throughput): a quiet open shard waits for its
next poll without holding a thread, and a child is probed while its parent is read, yet nothing
of the child comes out before every event of its parent. The endpoint records the shard of
every GetRecords call in call order; that order is what these tests read, never the clock."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from safe_singer_testing.dynamodb import run_tap, running_stack


def put(db: Any, table: str, first: int, count: int) -> None:
    for i in range(first, first + count):
        db.put_item(TableName=table, Item={"pk": {"S": f"k{i:03d}"}, "n": {"N": str(i)}})


def test_quiet_open_shards_wait_for_their_next_poll_together_on_one_thread(
    tmp_path: Path,
) -> None:
    with running_stack() as stack:
        stack.create_table("quiet", roots=4)
        config = stack.tap_config(["quiet"], max_parallel_shards=1, open_shard_idle_seconds=2)
        run = run_tap(tmp_path, config)
        assert run.returncode == 0, run.stderr
        reads = stack.streams.reads()
    shards = list(dict.fromkeys(reads))
    assert len(shards) == 4
    assert run.stderr.count("counted as caught up") == 4
    # Waiting on its thread, the first shard would be done before the second is polled.
    last_of_first = max(i for i, shard in enumerate(reads) if shard == shards[0])
    assert all(reads.index(shard) < last_of_first for shard in shards[1:])


def test_a_child_is_probed_while_its_parent_is_read_and_emitted_only_after_it(
    tmp_path: Path,
) -> None:
    with running_stack() as stack:
        stack.create_table("probed")
        db = stack.dynamodb()
        put(db, "probed", 0, 40)
        stack.streams.split("probed")  # the parent closes with 40 events; two open children
        put(db, "probed", 40, 10)
        stack.streams.sync()
        config = stack.tap_config(["probed"], max_records_per_request=5)
        run = run_tap(tmp_path, config)
        assert run.returncode == 0, run.stderr
        reads = stack.streams.reads()
        parent = next(s["shard_id"] for s in stack.streams.shards("probed") if not s["parent_id"])
    last_parent_read = max(i for i, shard in enumerate(reads) if shard == parent)
    assert set(reads[:last_parent_read]) - {parent}, "no child was probed during its parent"
    shards = [r["_sdc_shard_id"] for r in run.records]
    assert shards[:40] == [parent] * 40
    assert len(shards) == 50 and parent not in shards[40:]
