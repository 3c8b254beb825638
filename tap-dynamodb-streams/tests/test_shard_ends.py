"""At a shard end whose children the run has not listed, the children are asked for alone
(DescribeStream with ShardFilter CHILD_SHARDS, as the KCL adapter does), not by listing every
shard of the stream again (issue 21 section 5)."""

from __future__ import annotations

import math
from pathlib import Path

from safe_singer_testing.dynamodb import run_tap, running_stack
from safe_singer_testing.emulators.dynamodb_streams import Faults, Stack

ROOTS = 250  # a full listing: 3 DescribeStream pages of 100


def put(stack: Stack, table: str, keys: range) -> None:
    for key in keys:
        stack.dynamodb().put_item(TableName=table, Item={"pk": {"S": f"k{key:04d}"}})
    stack.streams.sync()


def test_a_shard_end_asks_for_its_children_with_one_call(stack: Stack, tmp_path: Path) -> None:
    stack.create_table("rolling", roots=ROOTS)
    put(stack, "rolling", range(40))
    config = stack.tap_config(["rolling"], max_get_records_per_shard_per_second=0)
    first = run_tap(tmp_path / "1", config)
    assert first.returncode == 0, first.stderr[-3000:]

    listed = stack.streams.calls["DescribeStream"] + math.ceil(ROOTS / 100)
    split: list[str] = []
    stack.streams.after_calls(
        "DescribeStream", listed, lambda: split.extend(stack.streams.split("rolling", limit=1))
    )
    second = run_tap(tmp_path / "2", config, state=first.last_state)
    assert second.returncode == 0, second.stderr[-3000:]
    assert split, "the shard never closed"
    assert stack.streams.calls["DescribeStream"] - listed == 1  # before: 3 (the whole stream)
    shards = second.last_state["bookmarks"]["rolling"]["shards"]  # type: ignore[index]
    assert set(split) <= set(shards), "the children were not learned"

    put(stack, "rolling", range(40, 400))  # some land in the children
    third = run_tap(tmp_path / "3", config, state=second.last_state)
    assert third.returncode == 0, third.stderr[-3000:]
    assert sorted(r["pk"] for r in first.records + second.records + third.records) == sorted(
        f"k{key:04d}" for key in range(400)
    )
    assert any(r["_sdc_shard_id"] in split for r in third.records)


def test_an_endpoint_that_ignores_the_filter_gets_a_full_listing(tmp_path: Path) -> None:
    """An endpoint that answers every shard to a filtered DescribeStream: the tap notices, lists
    the stream as before, asks no filtered call again this run, and reads the children."""
    with running_stack(Faults(ignore_shard_filter=True)) as stack:
        stack.create_table("older", roots=3)
        put(stack, "older", range(20))
        config = stack.tap_config(["older"])
        first = run_tap(tmp_path / "1", config)
        assert first.returncode == 0, first.stderr[-3000:]
        split: list[str] = []
        listed = stack.streams.calls["DescribeStream"] + 1
        stack.streams.after_calls(
            "DescribeStream", listed, lambda: split.extend(stack.streams.split("older"))
        )
        second = run_tap(tmp_path / "2", config, state=first.last_state)
        put(stack, "older", range(20, 60))
        third = run_tap(tmp_path / "3", config, state=second.last_state)
    assert second.returncode == 0 and third.returncode == 0, second.stderr[-3000:]
    assert second.stderr.count("DescribeStream ignored ShardFilter CHILD_SHARDS") == 1
    shards = second.last_state["bookmarks"]["older"]["shards"]  # type: ignore[index]
    assert set(split) <= set(shards)
    assert sorted(r["pk"] for r in first.records + second.records + third.records) == sorted(
        f"k{key:04d}" for key in range(60)
    )
