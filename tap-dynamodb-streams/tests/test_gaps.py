"""Anything that would be a silent gap stops the run loudly, with the state not advanced."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from safe_singer_testing.dynamodb import TapRun, run_tap
from safe_singer_testing.emulators.dynamodb_streams import Faults, Stack

SECRET = "s3cret-never-in-logs"  # moto accepts any key; the tap must not print it


def put(stack: Stack, table: str, *keys: str) -> None:
    for key in keys:
        stack.dynamodb().put_item(TableName=table, Item={"pk": {"S": key}, "v": {"N": "1"}})
    stack.streams.sync()


def config(stack: Stack, table: str) -> dict[str, Any]:
    return stack.tap_config([table], aws_secret_access_key=SECRET)


def first_run(stack: Stack, tmp_path: Path, table: str) -> dict[str, Any]:
    run = run_tap(tmp_path, config(stack, table))
    assert run.returncode == 0, run.stderr
    assert run.last_state is not None
    return run.last_state


def assert_loud_and_unmoved(run: TapRun, state: dict[str, Any], *mentions: str) -> None:
    assert run.returncode != 0
    assert run.records == []
    assert all(s == state for s in run.states), "state moved past the problem"
    for text in (*mentions, "full resync"):
        assert text in run.stderr, f"{text!r} not in the error output"
    assert SECRET not in run.stderr, "a secret leaked into the error output"


def test_data_trimmed_past_the_checkpoint_fails_loudly(stack: Stack, tmp_path: Path) -> None:
    stack.create_table("trimmed")
    put(stack, "trimmed", "a", "b", "c")
    state = first_run(stack, tmp_path, "trimmed")
    put(stack, "trimmed", "d", "e")  # never read before they age out
    stack.streams.advance(25 * 3600)

    run = run_tap(tmp_path, config(stack, "trimmed"), state=state)
    ((shard_id, entry),) = state["bookmarks"]["trimmed"]["shards"].items()
    assert_loud_and_unmoved(run, state, "'trimmed'", shard_id, entry["sequence_number"], "trimmed")


def test_a_vanished_shard_fails_loudly(stack: Stack, tmp_path: Path) -> None:
    stack.create_table("vanish")
    put(stack, "vanish", *"abcdefgh")
    stack.streams.split("vanish")
    put(stack, "vanish", *"ijklmnop")
    state = first_run(stack, tmp_path, "vanish")
    shards = state["bookmarks"]["vanish"]["shards"]
    open_child = next(s for s, e in shards.items() if not e["ended"] and e["sequence_number"])
    put(stack, "vanish", *"qrstuvwx")
    stack.streams.vanish_shard("vanish", open_child)

    run = run_tap(tmp_path, config(stack, "vanish"), state=state)
    assert_loud_and_unmoved(run, state, "'vanish'", open_child, "vanished")


def test_a_listed_shard_that_keeps_answering_not_found_fails_after_the_retries(
    stack: Stack, tmp_path: Path
) -> None:
    """DescribeStream still lists the shard, but every call about it says ResourceNotFound:
    one try and ``not_found_retries`` retries (no wait after the last), then a loud stop."""
    stack.create_table("gone")
    put(stack, "gone", "a", "b")
    state = first_run(stack, tmp_path, "gone")
    ((shard_id, entry),) = state["bookmarks"]["gone"]["shards"].items()
    put(stack, "gone", "c")
    before = stack.streams.errors.get("ResourceNotFoundException", 0)
    stack.streams.set_faults(Faults(transient_not_found_rate=1.0))

    run = run_tap(tmp_path, {**config(stack, "gone"), "not_found_retries": 2}, state=state)
    assert_loud_and_unmoved(run, state, "'gone'", shard_id, entry["sequence_number"], "vanished")
    assert stack.streams.errors["ResourceNotFoundException"] - before == 3
    assert run.stderr.count(f"shard {shard_id} answered ResourceNotFound") == 2, run.stderr


def test_a_changed_stream_arn_drains_the_old_stream_then_fails(
    stack: Stack, tmp_path: Path
) -> None:
    old_arn = stack.create_table("reenabled")
    put(stack, "reenabled", "a", "b")
    state = first_run(stack, tmp_path, "reenabled")
    put(stack, "reenabled", "c")
    new_arn = stack.streams.reenable_stream("reenabled")
    put(stack, "reenabled", "d")

    run = run_tap(tmp_path, config(stack, "reenabled"), state=state)
    assert run.returncode != 0
    assert [r["pk"] for r in run.records] == ["c"]  # the old stream's last event, then stop
    assert old_arn in run.stderr and new_arn in run.stderr and "full resync" in run.stderr
    assert SECRET not in run.stderr
    assert run.last_state is not None
    assert run.last_state["bookmarks"]["reenabled"]["stream_arn"] == old_arn


def test_a_disabled_stream_is_read_to_its_end_then_fails(stack: Stack, tmp_path: Path) -> None:
    stack.create_table("disabled")
    put(stack, "disabled", "a")
    state = first_run(stack, tmp_path, "disabled")
    put(stack, "disabled", "b")
    stack.streams.disable_stream("disabled")
    put(stack, "disabled", "c")  # in no stream

    run = run_tap(tmp_path, config(stack, "disabled"), state=state)
    assert run.returncode != 0
    assert [r["pk"] for r in run.records] == ["b"]
    assert "disabled" in run.stderr and "full resync" in run.stderr


def test_an_unreadable_event_stops_the_run_before_it(stack: Stack, tmp_path: Path) -> None:
    stack.create_table("garbled")
    put(stack, "garbled", "a")
    bad = stack.streams.append("garbled", "INSERT", {"pk": {"S": "b"}, "x": {"Q": "?"}})
    assert bad is not None
    put(stack, "garbled", "c")

    run = run_tap(tmp_path, config(stack, "garbled"))
    assert run.returncode != 0
    assert [r["pk"] for r in run.records] == ["a"]
    assert "'garbled'" in run.stderr and str(bad.sequence_number) in run.stderr
    shards = (run.last_state or {}).get("bookmarks", {}).get("garbled", {}).get("shards", {})
    assert all(e["sequence_number"] != str(bad.sequence_number) for e in shards.values())
