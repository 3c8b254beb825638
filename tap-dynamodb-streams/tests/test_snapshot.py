"""A new pipeline: a parallel-Scan snapshot handed over to the stream, or start at latest."""

from __future__ import annotations

from pathlib import Path

from tests.emulators.dynamodb_streams import Stack
from tests.support.dynamodb import run_tap


def put(stack: Stack, table: str, key: str, value: str) -> None:
    stack.dynamodb().put_item(TableName=table, Item={"pk": {"S": key}, "v": {"N": value}})


def test_snapshot_then_stream_from_positions_taken_before_the_scan(
    stack: Stack, tmp_path: Path
) -> None:
    stack.create_table("snap")
    for key in "abcde":
        put(stack, "snap", key, "1")
    stack.streams.sync()
    stack.streams.advance(25 * 3600)  # the stream lost these; only the table has them
    put(stack, "snap", "f", "1")
    put(stack, "snap", "a", "2")
    stack.streams.sync()
    config = stack.tap_config(["snap"], initial_snapshot=True, scan_segments=3)

    first = run_tap(tmp_path, config)
    assert first.returncode == 0, first.stderr
    assert {r["_sdc_event_name"] for r in first.records} == {"SNAPSHOT"}
    assert sorted((r["pk"], r["v"]) for r in first.records) == [
        ("a", "2"),
        ("b", "1"),
        ("c", "1"),
        ("d", "1"),
        ("e", "1"),
        ("f", "1"),
    ]
    assert {r["_sdc_sequence_number"] for r in first.records} == {"0"}

    put(stack, "snap", "g", "1")
    stack.streams.sync()
    second = run_tap(tmp_path, config, state=first.last_state)
    assert second.returncode == 0, second.stderr
    assert [(r["_sdc_event_name"], r["pk"]) for r in second.records] == [("INSERT", "g")]


def test_latest_skips_what_was_there_and_keeps_what_comes(stack: Stack, tmp_path: Path) -> None:
    stack.create_table("latest")
    for key in "abc":
        put(stack, "latest", key, "1")
    stack.streams.sync()
    config = stack.tap_config(["latest"], start_position="latest")
    first = run_tap(tmp_path, config)
    assert first.returncode == 0, first.stderr
    assert first.records == []
    put(stack, "latest", "d", "1")
    stack.streams.sync()
    second = run_tap(tmp_path, config, state=first.last_state)
    assert [r["pk"] for r in second.records] == ["d"]
