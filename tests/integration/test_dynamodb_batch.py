"""STATE never leads its records: with ``batch_config`` every STATE follows the BATCH files that
hold every record it covers (issue 11, bug 1); without it, the RECORD lines, which reach stdout
no later than the STATE after them."""

from __future__ import annotations

import json
import queue
import random
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from safe_singer_testing.cli import script
from safe_singer_testing.dynamodb import batch_records, random_writes, run_tap, running_stack


def batch_config(root: Path) -> dict[str, Any]:
    return {
        "encoding": {"format": "jsonl", "compression": "gzip"},
        "storage": {"root": root.as_uri(), "prefix": "batch-"},
        "batch_size": 50,
    }


def covered_positions(messages: list[dict[str, Any]], table: str) -> None:
    """Each STATE's shard positions are sequence numbers already delivered before it."""
    delivered: set[str] = set()
    states = 0
    for message in messages:
        if message["type"] == "RECORD":
            delivered.add(str(message["record"]["_sdc_sequence_number"]))
        elif message["type"] == "BATCH":
            delivered |= {str(r["_sdc_sequence_number"]) for r in batch_records(message)}
        elif message["type"] == "STATE":
            states += 1
            shards = message["value"]["bookmarks"][table].get("shards", {})
            for shard_id, entry in shards.items():
                seq = entry["sequence_number"]
                assert seq is None or seq in delivered, (
                    f"STATE #{states} holds {shard_id} at {seq}, a record not yet delivered"
                )
    assert states > 1


@pytest.mark.parametrize("batched", [True, False], ids=["batch_config", "records"])
def test_state_never_precedes_the_records_it_covers(tmp_path: Path, batched: bool) -> None:
    with running_stack() as stack:
        stack.create_table("batched")
        random_writes(stack.dynamodb(), "batched", 120, keys=400, rng=random.Random(3))
        stack.streams.sync()
        extra = {"batch_config": batch_config(tmp_path)} if batched else {}
        config = stack.tap_config(
            ["batched"], max_records_per_request=7, state_interval_seconds=0, **extra
        )
        run = run_tap(tmp_path, config)
        assert run.returncode == 0, run.stderr
        covered_positions(run.messages, "batched")
        assert any(m["type"] == "BATCH" for m in run.messages) is batched
        again = run_tap(tmp_path, config, state=run.last_state)
        assert again.returncode == 0, again.stderr
        assert not [m for m in again.messages if m["type"] in ("RECORD", "BATCH")]


def test_a_state_reaches_the_pipe_with_its_records_while_the_tap_still_runs(
    tmp_path: Path,
) -> None:
    """RECORD lines are not flushed one by one, but every STATE flushes itself and the records
    before it: a target holds the STATE while the tap waits on a quiet open shard."""
    with running_stack() as stack:
        stack.create_table("flushed")
        random_writes(stack.dynamodb(), "flushed", 40, keys=400, rng=random.Random(5))
        stack.streams.sync()
        events = len(stack.streams.events("flushed"))
        config = stack.tap_config(
            ["flushed"], state_interval_seconds=0, open_shard_idle_seconds=120
        )
        config_path = tmp_path / "config.json"
        config_path.write_text(json.dumps(config))
        tap = subprocess.Popen(
            [script("tap-dynamodb-streams"), "--config", str(config_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        lines: queue.Queue[bytes] = queue.Queue()
        threading.Thread(target=lambda: [lines.put(x) for x in tap.stdout or ()]).start()
        try:
            records, covered = 0, False
            while not covered:  # the open shard keeps the tap waiting for 120 s
                message = json.loads(lines.get(timeout=30))
                records += message["type"] == "RECORD"
                covered = message["type"] == "STATE" and records == events
            assert tap.poll() is None, "the STATE came only when the tap ended"
        finally:
            tap.kill()
            tap.wait()
