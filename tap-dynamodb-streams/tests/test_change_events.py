"""Every change event comes out, in order, across splits, empty pages, expiry and throttling."""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path

import pytest

from safe_singer_testing.cli import script
from safe_singer_testing.dynamodb import random_writes, run_tap
from safe_singer_testing.emulators.dynamodb_streams import Faults, Stack


def test_seed_case_five_writes_give_exactly_five_records_in_order(
    stack: Stack, tmp_path: Path
) -> None:
    stack.create_table("orders")
    db = stack.dynamodb()
    db.put_item(TableName="orders", Item={"pk": {"S": "a"}, "qty": {"N": "1"}})
    db.put_item(TableName="orders", Item={"pk": {"S": "b"}, "qty": {"N": "2"}})
    db.update_item(
        TableName="orders",
        Key={"pk": {"S": "a"}},
        UpdateExpression="SET qty = :q",
        ExpressionAttributeValues={":q": {"N": "3"}},
    )
    db.delete_item(TableName="orders", Key={"pk": {"S": "b"}})
    db.put_item(TableName="orders", Item={"pk": {"S": "c"}, "qty": {"N": "4"}})
    stack.streams.sync()

    run = run_tap(tmp_path, stack.tap_config(["orders"]))
    assert run.returncode == 0, run.stderr
    got = [(r["_sdc_event_name"], r["pk"], r.get("qty")) for r in run.records]
    assert got == [
        ("INSERT", "a", "1"),
        ("INSERT", "b", "2"),
        ("MODIFY", "a", "3"),
        ("REMOVE", "b", "2"),
        ("INSERT", "c", "4"),
    ]
    assert [r["_sdc_deleted_at"] is not None for r in run.records] == [0, 0, 0, 1, 0]
    truth = [e["sequence_number"] for e in stack.streams.events("orders")]
    assert [r["_sdc_sequence_number"] for r in run.records] == truth
    schema = next(m for m in run.messages if m["type"] == "SCHEMA")
    assert schema["key_properties"] == ["pk"]
    assert schema["bookmark_properties"] == ["_sdc_sequence_number"]
    assert schema["schema"]["properties"]["_sdc_sequence_number"] == {
        "type": ["string"],
        "format": "x-singer.decimal",
    }

    again = run_tap(tmp_path, stack.tap_config(["orders"]), state=run.last_state)
    assert again.returncode == 0, again.stderr
    assert again.records == []
    shards = run.last_state["bookmarks"]["orders"]["shards"]  # type: ignore[index]
    assert [s["sequence_number"] for s in shards.values()] == [truth[-1]]


@pytest.mark.slow
def test_split_generations_with_faults_emit_every_event_parents_first(
    stack: Stack, tmp_path: Path
) -> None:
    stack.create_table("events")
    rng = random.Random(7)
    db = stack.dynamodb()
    for _ in range(3):
        random_writes(db, "events", 60, keys=25, rng=rng)
        stack.streams.split("events")
    random_writes(db, "events", 60, keys=25, rng=rng)
    stack.streams.sync()
    truth = stack.streams.events("events")
    assert len(truth) > 200  # deletes of absent keys write no event
    stack.streams.set_faults(
        Faults(
            empty_page_rate=0.2,
            throttle_rate=0.05,
            server_error_rate=0.02,
            stall_rate=0.03,
            close_lag_calls=2,
            describe_page_size=3,
            scramble_listing=True,
            seed=11,
        )
    )
    config = stack.tap_config(["events"], max_records_per_request=7)

    records: list[dict[str, object]] = []
    state = None
    for _ in range(30):  # a run may stop early (caught up, idle shard); the next one goes on
        run = run_tap(tmp_path, config, state=state)
        assert run.returncode == 0, run.stderr
        records += run.records
        state = run.last_state
        if len(records) >= len(truth) and not run.records:
            break
    assert len(records) == len(truth)  # exactly once here: no kill, so no replay
    assert sorted(str(r["_sdc_sequence_number"]) for r in records) == sorted(
        e["sequence_number"] for e in truth
    )
    per_key: dict[str, list[int]] = {}
    for r in records:
        per_key.setdefault(str(r["pk"]), []).append(int(str(r["_sdc_sequence_number"])))
    assert all(seqs == sorted(seqs) for seqs in per_key.values())

    parents = {s["shard_id"]: s["parent_id"] for s in stack.streams.shards("events")}
    positions: dict[str, list[int]] = {}
    for index, r in enumerate(records):
        positions.setdefault(str(r["_sdc_shard_id"]), []).append(index)
    assert len(positions) >= 12  # of 1 + 2 + 4 + 8 shards over three split generations
    for shard, seen in positions.items():
        parent = parents[shard]
        if parent in positions:
            assert max(positions[parent]) < min(seen), f"{shard} read before its parent"

    assert stack.streams.errors.get("ExpiredIteratorException", 0) > 0
    assert stack.streams.errors.get("LimitExceededException", 0) > 0
    assert stack.streams.calls["DescribeStream"] > 1


def test_discover_gives_composite_keys_typed_from_the_table(stack: Stack, tmp_path: Path) -> None:
    stack.create_table("composite", hash_key=("tenant", "S"), range_key=("ts", "N"))
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(stack.tap_config(["composite"])))
    out = subprocess.run(
        [script("tap-dynamodb-streams"), "--config", str(config_path), "--discover"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    (entry,) = json.loads(out)["streams"]
    assert entry["tap_stream_id"] == "composite"
    assert entry["key_properties"] == ["tenant", "ts"]
    properties = entry["schema"]["properties"]
    assert properties["ts"] == {"type": ["string"], "format": "x-singer.decimal"}
    assert properties["_sdc_sequence_number"]["format"] == "x-singer.decimal"


@pytest.mark.slow
def test_max_run_seconds_ends_early_without_losing_or_repeating(
    stack: Stack, tmp_path: Path
) -> None:
    stack.create_table("slow")
    random_writes(stack.dynamodb(), "slow", 80, keys=80, rng=random.Random(3))
    stack.streams.sync()
    truth = [e["sequence_number"] for e in stack.streams.events("slow")]
    config = stack.tap_config(["slow"], max_run_seconds=3, max_records_per_request=2)
    seen: list[str] = []
    state = None
    runs = 0
    while len(seen) < len(truth) and runs < 20:
        run = run_tap(tmp_path, config, state=state)
        assert run.returncode == 0, run.stderr
        seen += [str(r["_sdc_sequence_number"]) for r in run.records]
        state = run.last_state
        runs += 1
    assert runs > 1  # the time limit did cut runs short
    assert seen == truth  # every event once, in order, across the cut runs
