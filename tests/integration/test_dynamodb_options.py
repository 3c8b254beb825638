"""Scale-out partitions, TTL deletions and the lag warning (issue 11)."""

from __future__ import annotations

import json
import random
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from safe_singer_testing.dynamodb import TapRun, discovered, random_writes, run_tap, running_stack
from safe_singer_testing.emulators.dynamodb_streams import Faults


def sequence_numbers(run: TapRun) -> list[str]:
    return [str(r["_sdc_sequence_number"]) for r in run.records]


@pytest.mark.slow
def test_four_partitions_together_emit_exactly_what_one_process_does(tmp_path: Path) -> None:
    """``partition: "i/N"`` splits the lineages (stable by root shard) across N pipelines,
    each with its own state; the union of 4 equals one process, with no event twice."""
    with running_stack() as stack:
        stack.create_table("parts", roots=12)
        rng = random.Random(4)
        random_writes(stack.dynamodb(), "parts", 120, keys=90, rng=rng)
        stack.streams.split("parts", limit=6)
        random_writes(stack.dynamodb(), "parts", 120, keys=90, rng=rng)
        stack.streams.sync()

        def run(partition: str | None) -> TapRun:
            extra = {"partition": partition} if partition else {}
            workdir = tmp_path / (partition or "all").replace("/", "-")
            config = stack.tap_config(["parts"], open_shard_idle_seconds=3, **extra)
            done = run_tap(workdir, config)
            assert done.returncode == 0, done.stderr[-3000:]
            return done

        whole = run(None)
        with ThreadPoolExecutor(4) as pool:  # one reader per shard at a time, as AWS wants
            parts = list(pool.map(run, ["0/4", "1/4", "2/4", "3/4"]))
    events = stack.streams.events("parts")
    truth = sorted(e["sequence_number"] for e in events)
    assert sorted(sequence_numbers(whole)) == truth
    union = [seq for part in parts for seq in sequence_numbers(part)]
    assert sorted(union) == truth  # every event, none twice
    # Twelve lineages spread over the four (shard ids are random: how many each gets varies).
    assert sum(bool(part.records) for part in parts) >= 2
    for part in parts:  # its own state: it reads exactly its own shards, the rest known foreign
        shards = part.last_state["bookmarks"]["parts"]["shards"]  # type: ignore[index]
        own = {s for s, e in shards.items() if not e.get("foreign")}
        assert {r["_sdc_shard_id"] for r in part.records} == {
            e["shard_id"] for e in events if e["shard_id"] in own
        }


def test_ttl_deletions_can_be_deleted_marked_or_dropped(tmp_path: Path) -> None:
    with running_stack() as stack:
        stack.create_table("ttl")
        db = stack.dynamodb()
        for key in "abc":
            db.put_item(TableName="ttl", Item={"pk": {"S": key}, "v": {"N": "1"}})
        db.delete_item(TableName="ttl", Key={"pk": {"S": "b"}})  # a user's delete
        db.delete_item(TableName="ttl", Key={"pk": {"S": "c"}})
        stack.streams.mark_ttl_deletions("ttl", 1)  # c expired: deleted by the service
        runs = {
            mode: run_tap(tmp_path / mode, stack.tap_config(["ttl"], ttl_deletions=mode))
            for mode in ("delete", "mark", "drop")
        }
    removes = {
        mode: {r["pk"]: r for r in run.records if r["_sdc_event_name"] == "REMOVE"}
        for mode, run in runs.items()
    }
    assert all(run.returncode == 0 for run in runs.values())
    assert removes["delete"]["c"]["_sdc_deleted_at"] and removes["delete"]["b"]["_sdc_deleted_at"]
    marked = removes["mark"]["c"]
    assert marked["_sdc_deleted_at"] is None and marked["_sdc_expired_at"]
    assert (
        removes["mark"]["b"]["_sdc_deleted_at"] and removes["mark"]["b"]["_sdc_expired_at"] is None
    )
    assert set(removes["drop"]) == {"b"}


def test_a_shard_far_behind_is_warned_about_with_a_lag_metric(tmp_path: Path) -> None:
    with running_stack() as stack:
        stack.create_table("lagging")
        stack.dynamodb().put_item(TableName="lagging", Item={"pk": {"S": "a"}})
        stack.streams.sync()
        stack.streams.advance(13 * 3600)
        run = run_tap(tmp_path, stack.tap_config(["lagging"]))
        quiet = run_tap(tmp_path / "q", stack.tap_config(["lagging"], lag_warning_hours=14))
    assert run.returncode == 0, run.stderr[-3000:]
    assert re.search(
        r"Table 'lagging': shard \S+ is 13\.\d hours behind \(warning at 12\.0 h\)", run.stderr
    )
    metric = re.search(r"METRIC: (\{[^\n]*replication_lag_seconds[^\n]*\})", run.stderr)
    assert metric is not None
    assert json.loads(metric.group(1))["value"] >= 13 * 3600
    assert "hours behind" not in quiet.stderr


def test_stream_maps_still_shape_records_on_the_fast_record_path(tmp_path: Path) -> None:
    """RECORD messages skip the SDK's per-record selection walk only when nothing would change:
    a stream map (or deselected property) still removes, adds and renames what it says."""
    with running_stack() as stack:
        stack.create_table("mapped")
        db = stack.dynamodb()
        for n in range(3):
            db.put_item(TableName="mapped", Item={"pk": {"S": f"k{n}"}, "v": {"N": str(n)}})
        plain = run_tap(tmp_path / "plain", stack.tap_config(["mapped"]))
        maps = {"mapped": {"v": "__NULL__", "doubled": "int(record['v']) * 2"}}
        mapped = run_tap(tmp_path / "mapped", stack.tap_config(["mapped"], stream_maps=maps))
    assert plain.returncode == 0 and mapped.returncode == 0, mapped.stderr[-3000:]
    assert [r["v"] for r in plain.records] == ["0", "1", "2"]
    assert [r.get("doubled") for r in mapped.records] == [0, 2, 4]
    assert all("v" not in r for r in mapped.records)
    for run in (plain, mapped):  # every RECORD says when it was read, as the SDK's do
        records = [m for m in run.messages if m["type"] == "RECORD"]
        assert all(m["stream"] == "mapped" and m["time_extracted"] for m in records)


def test_flattening_still_applies_to_records(tmp_path: Path) -> None:
    """flattening_enabled keeps one SameRecordTransform, but its transform() flattens: the
    SCHEMA says ``m`` is a string, so every RECORD must carry it as JSON text (review of the
    fast record path: it skipped the transform)."""
    with running_stack(Faults.lenient()) as stack:
        stack.create_table("flat")
        db = stack.dynamodb()
        item = {"pk": {"S": "k"}, "m": {"M": {"x": {"N": "1"}}}, "l": {"L": [{"S": "a"}]}}
        db.put_item(TableName="flat", Item=item)
        config = stack.tap_config(["flat"], flattening_enabled=True, flattening_max_depth=1)
        run = run_tap(tmp_path, config)
    assert run.returncode == 0, run.stderr[-3000:]
    schemas = [m for m in run.messages if m["type"] == "SCHEMA"]
    assert schemas[-1]["schema"]["properties"]["m"]["type"] == ["string", "null"]
    assert run.records, run.stderr[-3000:]
    for record in run.records:
        assert isinstance(record["m"], str), record
        assert json.loads(record["m"]) == {"x": "1"}
        assert isinstance(record["l"], str), record


def test_an_open_shard_idle_time_of_zero_is_honoured_not_replaced(tmp_path: Path) -> None:
    """``open_shard_idle_seconds: 0`` means caught up at the first empty page (it was silently
    replaced by the default, 3 s)."""
    with running_stack(Faults.lenient()) as stack:
        stack.create_table("zero")
        stack.dynamodb().put_item(TableName="zero", Item={"pk": {"S": "a"}})
        run = run_tap(tmp_path, stack.tap_config(["zero"], open_shard_idle_seconds=0))
    assert run.returncode == 0, run.stderr[-3000:]
    assert [r["pk"] for r in run.records] == ["a"]
    assert re.search(r"returned no record for 0\.\d s \(1 empty pages\)", run.stderr), run.stderr


def test_a_deselected_property_is_left_out_on_the_fast_record_path(tmp_path: Path) -> None:
    """A catalog that deselects an attribute: records leave it out (the SDK's own selection
    walk runs whenever anything is deselected)."""
    with running_stack(Faults.lenient()) as stack:
        stack.create_table("picked")
        stack.dynamodb().put_item(TableName="picked", Item={"pk": {"S": "a"}, "v": {"N": "1"}})
        config = stack.tap_config(["picked"])
        catalog = discovered(tmp_path / "discover", config)
        for stream in catalog["streams"]:
            stream["metadata"].append(
                {"breadcrumb": ["properties", "v"], "metadata": {"selected": False}}
            )
        plain = run_tap(tmp_path / "plain", config)
        picked = run_tap(tmp_path / "picked", config, catalog=catalog)
    assert plain.returncode == 0 and picked.returncode == 0, picked.stderr[-3000:]
    assert [r["v"] for r in plain.records] == ["1"]
    assert [r["pk"] for r in picked.records] == ["a"]
    assert "v" not in picked.records[0]
