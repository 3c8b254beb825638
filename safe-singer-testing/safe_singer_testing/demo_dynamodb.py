"""`make demo`, DynamoDB part: moto + our Streams endpoint -> tap-dynamodb-streams ->
target-postgres-atomic, with a shard split and an expired iterator on the way."""

from __future__ import annotations

import random
from pathlib import Path

from psycopg import sql

from safe_singer_testing.dynamodb import random_writes, run_pipeline, running_stack, scan_items
from safe_singer_testing.emulators.dynamodb_streams import Faults
from safe_singer_testing.postgres import PgServer

TABLE = "demo_orders"
SCHEMA = "dynamodb_demo"


def run(server: PgServer, workdir: Path) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    faults = Faults(empty_page_rate=0.1, stall_first_get_records=1, seed=1)
    with running_stack(faults) as stack:
        stack.create_table(TABLE)
        db = stack.dynamodb()
        rng = random.Random(1)
        random_writes(db, TABLE, 150, keys=40, rng=rng)
        stack.streams.split(TABLE)
        random_writes(db, TABLE, 150, keys=40, rng=rng)
        stack.streams.sync()
        events = len(stack.streams.events(TABLE))
        target = {**server.target_config(), "default_target_schema": SCHEMA, "hard_delete": True}
        state = None
        emitted = 0
        for _ in range(10):
            result = run_pipeline(workdir, stack.tap_config([TABLE]), target, state)
            if result.tap_returncode or result.target_returncode:
                raise RuntimeError(f"pipeline failed:\n{result.stderr[-3000:]}")
            emitted += len(result.records)
            state = result.committed_state
            if not result.records:
                break
        items = len(scan_items(db, TABLE))
        shards = stack.streams.shards(TABLE)

    with server.connect() as conn:
        rows = conn.execute(
            sql.SQL("SELECT count(*) FROM {}.{}").format(
                sql.Identifier(SCHEMA), sql.Identifier(TABLE)
            )
        ).fetchone()
    assert state is not None
    tracked = state["bookmarks"][TABLE]["shards"]
    print(f"DynamoDB {TABLE}: {events} change events over {len(shards)} shards, {items} items")
    print(
        f"tap emitted {emitted} records; PostgreSQL {SCHEMA}.{TABLE}: {rows[0] if rows else 0} rows"
    )
    print(
        "final state: "
        + ", ".join(
            f"{sid[-8:]} seq={e['sequence_number']} ended={e['ended']}"
            for sid, e in tracked.items()
        )
    )
