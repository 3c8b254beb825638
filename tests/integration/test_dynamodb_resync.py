"""The documented gap recovery (clear the state, run with ``initial_snapshot: true``) makes the
PostgreSQL table equal the DynamoDB table, through the real target: rows changed during the gap
are replaced, rows deleted during the gap are removed, and stream events after the snapshot's
positions still win over the snapshot, in every shard lineage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from safe_singer_testing.dynamodb import run_pipeline, running_stack
from safe_singer_testing.postgres import PgServer

TABLE = "resync_t"
KEYS = [f"k{i:02d}" for i in range(24)]


def put(ddb: Any, key: str, value: str) -> None:
    ddb.put_item(TableName=TABLE, Item={"pk": {"S": key}, "s": {"S": value}})


def source(ddb: Any) -> list[tuple[str, str]]:
    items = ddb.scan(TableName=TABLE, ConsistentRead=True)["Items"]
    return sorted((i["pk"]["S"], i["s"]["S"]) for i in items)


def destination(pg_db: PgServer) -> list[tuple[str, str]]:
    with pg_db.connect() as conn:
        rows = conn.execute(
            f"SELECT pk, s FROM {TABLE} WHERE _sdc_deleted_at IS NULL ORDER BY pk"
        ).fetchall()
    return [(r[0], r[1]) for r in rows]


@pytest.mark.parametrize("hard_delete", [True, False])
def test_resync_with_snapshot_makes_the_table_equal_the_source(
    pg_db: PgServer, tmp_path: Path, hard_delete: bool
) -> None:
    with running_stack() as stack:
        stack.create_table(TABLE)
        ddb = stack.dynamodb()
        stack.streams.split(TABLE)  # two sibling lineages: sequence numbers not comparable
        for key in KEYS:
            put(ddb, key, "v1")
        stack.streams.sync()
        target = {**pg_db.target_config(), "hard_delete": hard_delete}
        run = run_pipeline(tmp_path / "r1", stack.tap_config([TABLE]), target, None)
        assert run.target_returncode == 0 and run.tap_returncode == 0, run.stderr[-2000:]
        assert destination(pg_db) == source(ddb)

        # The gap: changes the next run will not read from the stream.
        for key in KEYS[:8]:
            put(ddb, key, "v2")
        for key in KEYS[8:12]:
            ddb.delete_item(TableName=TABLE, Key={"pk": {"S": key}})
        put(ddb, "new", "v2")
        stack.streams.sync()

        # Documented recovery: clear the state, run with initial_snapshot: true.
        config = stack.tap_config([TABLE], initial_snapshot=True)
        run2 = run_pipeline(tmp_path / "r2", config, target, None)
        assert run2.target_returncode == 0 and run2.tap_returncode == 0, run2.stderr[-2000:]
        assert destination(pg_db) == source(ddb)

        # Events after the snapshot's positions win over it, in both lineages.
        for key in KEYS[:4] + KEYS[12:20]:
            put(ddb, key, "v3")
        ddb.delete_item(TableName=TABLE, Key={"pk": {"S": KEYS[20]}})
        stack.streams.sync()
        run3 = run_pipeline(tmp_path / "r3", config, target, run2.committed_state)
        assert run3.target_returncode == 0 and run3.tap_returncode == 0, run3.stderr[-2000:]
        assert len(run3.records) == 13
        assert destination(pg_db) == source(ddb)
