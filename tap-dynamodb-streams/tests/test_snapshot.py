"""A new pipeline: a parallel-Scan snapshot handed over to the stream, or start at latest."""

from __future__ import annotations

from pathlib import Path

from safe_singer_testing.dynamodb import run_tap
from safe_singer_testing.emulators.dynamodb_streams import Stack


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
    # One version for the whole snapshot: the highest sequence number at the positions taken
    # before the scan (here: what the stream still holds), so it replaces rows loaded before.
    assert {r["_sdc_sequence_number"] for r in first.records} == {
        first.last_state["bookmarks"]["snap"]["snapshot_version"]
    }
    shards = first.last_state["bookmarks"]["snap"]["shards"].values()
    assert int(first.records[0]["_sdc_sequence_number"]) >= max(
        int(s["sequence_number"]) for s in shards if s["sequence_number"]
    )
    # A full-table version: ACTIVATE_VERSION before and after the snapshot records, all of them
    # carrying that version, so the target drops rows the scan did not see.
    kinds = [m["type"] for m in first.messages if m["type"] in ("RECORD", "ACTIVATE_VERSION")]
    assert kinds == ["ACTIVATE_VERSION"] + ["RECORD"] * 6 + ["ACTIVATE_VERSION"]
    versions = {m["version"] for m in first.messages if m["type"] == "ACTIVATE_VERSION"}
    assert len(versions) == 1
    assert {m.get("version") for m in first.messages if m["type"] == "RECORD"} == versions

    put(stack, "snap", "g", "1")
    stack.streams.sync()
    second = run_tap(tmp_path, config, state=first.last_state)
    assert second.returncode == 0, second.stderr
    assert [(r["_sdc_event_name"], r["pk"]) for r in second.records] == [("INSERT", "g")]
    assert not [m for m in second.messages if m["type"] == "ACTIVATE_VERSION" or m.get("version")]


def test_latest_skips_what_was_there_and_keeps_what_comes(stack: Stack, tmp_path: Path) -> None:
    stack.create_table("latest")
    for key in "abc":
        put(stack, "latest", key, "1")
    stack.streams.sync()
    config = stack.tap_config(["latest"], start_position="latest")
    first = run_tap(tmp_path, config)
    assert first.returncode == 0, first.stderr
    assert first.records == []
    stack.streams.advance(2)  # the service's clock moves on (it stands still otherwise)
    put(stack, "latest", "d", "1")
    stack.streams.sync()
    second = run_tap(tmp_path, config, state=first.last_state)
    assert [r["pk"] for r in second.records] == ["d"]
