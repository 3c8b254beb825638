"""Must show: 1,000 random writes, three split generations, faults and SIGKILLs of the tap,
loaded through target-postgres-atomic: every event at least once, per key in order, and the
PostgreSQL table equals the DynamoDB table item by item."""

from __future__ import annotations

import random
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from psycopg import sql

from tests.emulators.dynamodb_streams import Faults, Stack
from tests.support.dynamodb import (
    PipelineRun,
    random_writes,
    run_pipeline,
    running_stack,
    scan_items,
)
from tests.support.postgres import PgServer

TABLE = "orders_events"
WRITES_PER_PHASE = 250
FAULTS = Faults(
    empty_page_rate=0.15,
    throttle_rate=0.03,
    server_error_rate=0.01,
    stall_rate=0.01,
    close_lag_calls=2,
    describe_page_size=4,
    seed=5,
)


def load_rows(db: PgServer, table: str) -> dict[str, dict[str, Any]]:
    with db.connect() as conn:
        cur = conn.execute(sql.SQL("SELECT pk, n, i, s FROM {} ").format(sql.Identifier(table)))
        return {row[0]: {"n": row[1], "i": row[2], "s": row[3]} for row in cur.fetchall()}


def source_rows(stack: Stack) -> dict[str, dict[str, Any]]:
    out = {}
    for item in scan_items(stack.dynamodb(), TABLE):
        out[item["pk"]["S"]] = {
            "n": Decimal(item["n"]["N"]) if "n" in item else None,
            "i": Decimal(item["i"]["N"]) if "i" in item else None,
            "s": item["s"]["S"] if "s" in item else None,
        }
    return out


def drive(
    stack: Stack, tmp_path: Path, db: PgServer, rng: random.Random, phases: int, kills: int
) -> tuple[list[PipelineRun], dict[str, Any] | None]:
    tap_config = stack.tap_config([TABLE], max_records_per_request=50)
    target_config = {**db.target_config(), "hard_delete": True, "batch_size_rows": 40}
    runs: list[PipelineRun] = []
    state: dict[str, Any] | None = None
    db_client = stack.dynamodb()
    for phase in range(phases):
        random_writes(db_client, TABLE, WRITES_PER_PHASE, keys=120, rng=rng)
        if phase < 3:
            stack.streams.split(TABLE)  # three generations of splits over the phases
        stack.streams.sync()
        for attempt in range(12):
            kill_at = rng.randint(3, 400) if kills and attempt < 2 else None
            run = run_pipeline(tmp_path, tap_config, target_config, state, kill_at)
            runs.append(run)
            if kill_at is None:
                assert run.tap_returncode == 0, run.stderr[-3000:]
            else:
                kills -= 1
            assert run.target_returncode == 0, run.stderr[-3000:]
            state = run.committed_state
            if kill_at is None and not run.records:
                break
    return runs, state


def check(stack: Stack, runs: list[PipelineRun], db: PgServer) -> None:
    truth = stack.streams.events(TABLE)
    emitted = {str(r["_sdc_sequence_number"]) for run in runs for r in run.records}
    missing = [e for e in truth if e["sequence_number"] not in emitted]
    assert not missing, f"{len(missing)} of {len(truth)} events never emitted"
    for run in runs:
        per_key: dict[str, list[int]] = {}
        for r in run.records:
            per_key.setdefault(str(r["pk"]), []).append(int(str(r["_sdc_sequence_number"])))
        assert all(s == sorted(s) for s in per_key.values()), "a key's events out of order"
    assert load_rows(db, TABLE) == source_rows(stack)


def test_thousand_writes_split_faults_sigkill_resume_equal_in_postgres(
    pg_db: PgServer, tmp_path: Path
) -> None:
    with running_stack(FAULTS) as stack:
        stack.create_table(TABLE)
        runs, _ = drive(stack, tmp_path, pg_db, random.Random(20261123), phases=4, kills=4)
        assert sum(1 for r in runs if r.tap_returncode != 0) >= 2  # the SIGKILLs happened
        truth = stack.streams.events(TABLE)
        assert len(truth) > 900  # 1,000 writes; deletes of absent keys write no event
        check(stack, runs, pg_db)
        assert stack.streams.errors.get("ExpiredIteratorException", 0) > 0
        assert stack.streams.errors.get("LimitExceededException", 0) > 0


@pytest.mark.soak
def test_soak_many_phases_and_kills(pg_db: PgServer, tmp_path: Path) -> None:
    with running_stack(FAULTS) as stack:
        stack.create_table(TABLE)
        runs, _ = drive(stack, tmp_path, pg_db, random.Random(7), phases=12, kills=20)
        check(stack, runs, pg_db)
