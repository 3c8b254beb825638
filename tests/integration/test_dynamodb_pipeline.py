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

from safe_singer_testing.dynamodb import (
    PipelineRun,
    random_writes,
    run_pipeline,
    running_stack,
    scan_items,
)
from safe_singer_testing.emulators.dynamodb_streams import Faults, Stack
from safe_singer_testing.postgres import PgServer

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


def load_rows(db: PgServer, table: str = TABLE) -> dict[str, dict[str, Any]]:
    with db.connect() as conn:
        cur = conn.execute(sql.SQL("SELECT pk, n, i, s FROM {} ").format(sql.Identifier(table)))
        return {row[0]: {"n": row[1], "i": row[2], "s": row[3]} for row in cur.fetchall()}


def source_rows(stack: Stack, table: str = TABLE) -> dict[str, dict[str, Any]]:
    out = {}
    for item in scan_items(stack.dynamodb(), table):
        out[item["pk"]["S"]] = {
            "n": Decimal(item["n"]["N"]) if "n" in item else None,
            "i": Decimal(item["i"]["N"]) if "i" in item else None,
            "s": item["s"]["S"] if "s" in item else None,
        }
    return out


def drive(
    stack: Stack, tmp_path: Path, db: PgServer, rng: random.Random, phases: int, kills: int
) -> tuple[list[PipelineRun], dict[str, Any] | None]:
    tap_config = stack.tap_config([TABLE], max_records_per_request=50, state_interval_seconds=0)
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
            kill_at = rng.randint(3, 120) if kills and attempt < 2 else None
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
    # A run with no record can still have left an open shard behind an empty stretch that the
    # injected empty pages lengthened past open_shard_idle_seconds (caught up is a guess; the
    # position stays before the events): like a user, run again until every event went out.
    state = run_until_every_event_out(
        stack, TABLE, tmp_path, (tap_config, target_config), runs, state
    )
    return runs, state


def run_until_every_event_out(
    stack: Stack,
    table: str,
    tmp_path: Path,
    configs: tuple[dict[str, Any], dict[str, Any]],
    runs: list[PipelineRun],
    state: dict[str, Any] | None,
) -> dict[str, Any] | None:
    """Open shards idle out at random (empty stretches): runs go on, at most 6 more."""
    truth = {e["sequence_number"] for e in stack.streams.events(table)}
    for _ in range(6):
        if truth <= {str(r["_sdc_sequence_number"]) for run in runs for r in run.records}:
            break
        run = run_pipeline(tmp_path, *configs, state)
        assert run.tap_returncode == 0 and run.target_returncode == 0, run.stderr[-3000:]
        runs.append(run)
        state = run.committed_state
    return state


def check(stack: Stack, runs: list[PipelineRun], db: PgServer, table: str = TABLE) -> None:
    truth = stack.streams.events(table)
    emitted = {str(r["_sdc_sequence_number"]) for run in runs for r in run.records}
    missing = [e for e in truth if e["sequence_number"] not in emitted]
    assert not missing, f"{len(missing)} of {len(truth)} events never emitted"
    for run in runs:
        per_key: dict[str, list[int]] = {}
        for r in run.records:
            per_key.setdefault(str(r["pk"]), []).append(int(str(r["_sdc_sequence_number"])))
        assert all(s == sorted(s) for s in per_key.values()), "a key's events out of order"
    assert load_rows(db, table) == source_rows(stack, table)


@pytest.mark.soak  # the 1,024-shard test below covers this in `make test`
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


WIDE = "wide_events"
WIDE_FAULTS = Faults(
    empty_page_rate=0.05,
    throttle_rate=0.01,
    server_error_rate=0.005,
    transient_not_found_rate=0.01,
    stall_first_get_records=5,
    close_lag_calls=1,
    scramble_listing=True,
    seed=12,
)


def drive_wide(
    stack: Stack,
    tmp_path: Path,
    db: PgServer,
    config: dict[str, Any],
    rng: random.Random,
    kill_range: tuple[int, int],
) -> list[PipelineRun]:
    """Three phases of writes with splits between; the tap SIGKILLed in the second; then
    resumed from the target's committed state until every event went out."""
    target_config = {**db.target_config(), "hard_delete": True, "batch_size_rows": 200}
    runs: list[PipelineRun] = []
    state: dict[str, Any] | None = None
    for phase, split in enumerate([256, 128, 0]):
        random_writes(stack.dynamodb(), WIDE, 150, keys=200, rng=rng)
        if split:
            stack.streams.split(WIDE, limit=split)
        stack.streams.sync()
        # With batch_config a run writes a handful of lines (SCHEMA, BATCH, STATE, ...).
        kill_at = rng.randint(*kill_range) if phase == 1 else None
        run = run_pipeline(tmp_path, config, target_config, state, kill_at)
        assert run.target_returncode == 0, run.stderr[-3000:]
        assert (run.tap_returncode != 0) is (kill_at is not None), run.stderr[-3000:]
        runs.append(run)
        state = run.committed_state
    run_until_every_event_out(stack, WIDE, tmp_path, (config, target_config), runs, state)
    return runs


@pytest.mark.slow
@pytest.mark.parametrize(
    "batched",
    # Records mode is what every other test here reads; `make soak` runs it at this scale too.
    [pytest.param(False, marks=pytest.mark.soak), True],
    ids=["records", "batch_config"],
)
def test_thousand_shards_generations_faults_sigkill_equal_in_postgres(
    pg_db: PgServer, tmp_path: Path, batched: bool
) -> None:
    """1,024 shards in three generations (256 roots, all split, 128 of the children split
    again; 640 open), AWS-faithful empty stretches and rate limits plus empty pages,
    throttling, 500s, transient ResourceNotFound and iterator expiry; a SIGKILL of the tap
    mid-run and resumes from the target's committed state; equal item by item."""
    batches = tmp_path / "batches"
    batches.mkdir()
    batch_config = {
        "encoding": {"format": "jsonl", "compression": "gzip"},
        "storage": {"root": batches.as_uri(), "prefix": "b-"},
        "batch_size": 100,
    }
    extra: dict[str, Any] = {"batch_config": batch_config} if batched else {}
    with running_stack(WIDE_FAULTS) as stack:
        stack.create_table(WIDE, roots=256)
        config = stack.tap_config(
            [WIDE], max_parallel_shards=256, state_interval_seconds=0, **extra
        )
        kills = (4, 5) if batched else (20, 60)
        runs = drive_wide(stack, tmp_path, pg_db, config, random.Random(1024 + batched), kills)
        assert len(stack.streams.shards(WIDE)) == 1024
        assert any(r.records for r in runs[2:])  # resumed after the kill
        check(stack, runs, pg_db, WIDE)
        for code in ("ExpiredIteratorException", "LimitExceededException"):
            assert stack.streams.errors.get(code, 0) > 0, code
        assert stack.streams.errors.get("ResourceNotFoundException", 0) > 0
