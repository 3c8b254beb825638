"""``latest`` and ``initial_snapshot`` on a stream holding a 24-hour backlog, with runs far too
short to read it at once (issue 11, bug 2): every run saves progress, the hand-off completes
over several runs, and nothing written after the pipeline's start is lost."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from safe_singer_testing.dynamodb import run_tap, running_stack, scan_items
from safe_singer_testing.emulators.dynamodb_streams import Faults, Stack

TABLE = "backlog"
BACKLOG = 50


def put(stack: Stack, key: str, value: int) -> None:
    item = {"pk": {"S": key}, "v": {"N": str(value)}}
    stack.dynamodb().put_item(TableName=TABLE, Item=item)


def write_backlog(stack: Stack) -> None:
    """Fifty writes spread over the last 22 hours of the virtual clock."""
    for i in range(BACKLOG):
        put(stack, f"k{i % 25:02d}", i)
        stack.streams.sync()
        stack.streams.advance(22 * 3600 / BACKLOG)


def applied(records: list[dict[str, Any]]) -> dict[str, str]:
    """What a version-guarded target ends with: per key the newest version; deletes remove."""
    rows: dict[str, tuple[Decimal, dict[str, Any]]] = {}
    for r in records:
        version = Decimal(str(r["_sdc_sequence_number"]))
        if r["pk"] not in rows or rows[r["pk"]][0] <= version:
            rows[r["pk"]] = (version, r)
    return {k: str(r["v"]) for k, (_, r) in rows.items() if not r["_sdc_deleted_at"]}


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["latest", "initial_snapshot"])
def test_handoff_progresses_every_run_and_completes_without_loss(tmp_path: Path, mode: str) -> None:
    with running_stack(Faults(seed=8)) as stack:
        stack.create_table(TABLE)
        write_backlog(stack)
        extra = {"start_position": "latest"} if mode == "latest" else {"initial_snapshot": True}
        config = stack.tap_config([TABLE], max_run_seconds=3, max_records_per_request=2, **extra)
        state: dict[str, Any] | None = None
        records: list[dict[str, Any]] = []
        later: list[str] = []
        for run_number in range(25):
            run = run_tap(tmp_path, config, state=state)
            assert run.returncode == 0, run.stderr[-3000:]
            assert run.last_state != state or not run.records, "a run without progress"
            if run_number == 0:  # after the pipeline began: must all arrive
                stack.streams.advance(60)
                for i in range(5):
                    put(stack, f"new{i}", i)
                stack.streams.sync()
                later = [e["sequence_number"] for e in stack.streams.events(TABLE)][-5:]
            records += run.records
            done = state is not None and "handoff" not in state.get("bookmarks", {}).get(TABLE, {})
            if done and run.last_state == state and not run.records:
                break
            state = run.last_state
        assert run_number >= 3, "the backlog was meant to take several short runs"
        events = [
            str(r["_sdc_sequence_number"]) for r in records if r["_sdc_event_name"] != "SNAPSHOT"
        ]
        if mode == "latest":
            assert events == later  # the backlog skipped, everything after the start kept
        else:  # what came before the hand-off completed is in the snapshot
            source = {i["pk"]["S"]: i["v"]["N"] for i in scan_items(stack.dynamodb(), TABLE)}
            assert applied(records) == source


def test_a_run_that_cannot_move_any_position_fails(tmp_path: Path) -> None:
    """Every record sits behind an empty stretch and the run is over before the second call:
    nothing could be saved, so the run says so instead of exiting 0 again and again (the
    first run saved where the pipeline starts, which is progress)."""
    with running_stack(Faults(empty_stretch_rate=1.0, empty_stretch_pages=3)) as stack:
        stack.create_table(TABLE)
        put(stack, "a", 1)
        stack.streams.split(TABLE)  # a closed shard is followed on (an open one idles out)
        config = stack.tap_config(
            [TABLE], max_run_seconds=1, max_get_records_per_shard_per_second=0.25
        )
        first = run_tap(tmp_path, config)  # saves where the pipeline starts: progress
        assert first.returncode == 0, first.stderr[-3000:]
        run = run_tap(tmp_path, config, state=first.last_state)
        assert run.returncode != 0
        assert "ran out before any shard position moved" in run.stderr
        assert run.records == [] and all(s == first.last_state for s in run.states)
