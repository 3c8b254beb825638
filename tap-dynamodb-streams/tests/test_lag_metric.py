"""``replication_lag_seconds`` per shard on stderr, in singer-sdk's METRIC format, for
state-service to read into the run record."""

from __future__ import annotations

import json
import re
from pathlib import Path

from safe_singer_testing.dynamodb import run_tap
from safe_singer_testing.emulators.dynamodb_streams import Stack


def test_lag_is_a_gauge_per_shard_with_table_and_shard_tags(stack: Stack, tmp_path: Path) -> None:
    stack.create_table("behind", roots=2)
    for key in range(12):
        stack.dynamodb().put_item(TableName="behind", Item={"pk": {"S": f"k{key}"}})
    stack.streams.sync()
    stack.streams.advance(600)  # the events are ten minutes old when read

    run = run_tap(tmp_path, stack.tap_config(["behind"]))
    assert run.returncode == 0, run.stderr[-3000:]
    points = [
        json.loads(found)
        for found in re.findall(r"METRIC: (\{.*\})$", run.stderr, flags=re.MULTILINE)
        if '"replication_lag_seconds"' in found
    ]
    with_events = {r["_sdc_shard_id"] for r in run.records}
    assert len(with_events) == 2
    by_shard = {p["tags"]["shard"]: p for p in points}
    assert set(by_shard) == with_events
    for shard_id, point in by_shard.items():
        assert point["type"] == "gauge"
        assert point["tags"] == {"stream": "behind", "table": "behind", "shard": shard_id}
        assert 600 <= point["value"] < 900
