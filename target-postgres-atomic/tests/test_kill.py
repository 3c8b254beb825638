"""SIGKILL at random moments (staging, merge, STATE output), rerun the same input, compare.

The target runs in a forked process (the package API, so no interpreter start-up per run) and
is killed with SIGKILL while a poller watches its session in pg_stat_activity: a kill point is
"while it COPYs", "while it merges", "right after it wrote a STATE" or a random instant.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from target_postgres_atomic.target import TargetPostgresAtomic

from safe_singer_testing.postgres import PgServer
from safe_singer_testing.target_messages import activate, record, schema, state

PROPS = {
    "id": {"type": "integer"},
    "updated": {"type": "integer"},
    "val": {"type": "string"},
    "pad": {"type": "string"},
    "_sdc_deleted_at": {"type": ["string", "null"], "format": "date-time"},
}
TABLE_VERSION = 1000
Model = dict[int, tuple[int, str, int | None]]  # id -> (updated, val, table version)


def build_input(keys: int, seed: int) -> tuple[list[dict[str, Any]], Model]:
    """Upserts out of order, deletes, a full refresh, more upserts; and the expected end."""
    rng = random.Random(seed)
    pad = "x" * 200
    messages: list[dict[str, Any]] = [schema("items", PROPS, bookmark="updated")]
    model: Model = {}

    def emit(row: dict[str, Any], version: int | None = None) -> None:
        messages.append(record("items", {**row, "pad": pad}, version=version))
        if len(messages) % 250 == 0:
            messages.append(state({"upto": len(messages)}))

    def apply(row: dict[str, Any]) -> None:
        stored = model.get(row["id"])
        if stored is not None and row["updated"] < stored[0]:
            return
        if row.get("_sdc_deleted_at"):
            model.pop(row["id"], None)
        else:
            model[row["id"]] = (row["updated"], row["val"], stored[2] if stored else None)

    phase1 = [{"id": k, "updated": v, "val": f"{k}-{v}"} for k in range(keys) for v in (1, 2, 3)]
    rng.shuffle(phase1)
    deleted = range(keys * 5 // 8, keys * 6 // 8)
    phase1 += [
        {"id": k, "updated": 4, "val": "gone", "_sdc_deleted_at": "2024-01-01T00:00:00Z"}
        for k in deleted
    ]
    for row in phase1:
        emit(row)
        apply(row)

    refreshed = range(keys // 2)
    messages.append(activate("items", TABLE_VERSION))
    shadow: Model = {}
    for k in refreshed:
        updated = 2 if k < keys // 10 else 10  # older than stored: values stay, row is kept
        row = {"id": k, "updated": updated, "val": f"{k}-refresh"}
        emit(row, version=TABLE_VERSION)
        shadow[k] = (updated, row["val"], TABLE_VERSION)
    messages.append(activate("items", TABLE_VERSION))
    for k, (updated, val, _) in shadow.items():
        stored = model.get(k)
        model[k] = (
            (stored[0], stored[1], TABLE_VERSION)
            if stored and stored[0] > updated
            else (updated, val, TABLE_VERSION)
        )
    model = {k: v for k, v in model.items() if v[2] == TABLE_VERSION}

    phase3 = [
        {"id": k, "updated": v, "val": f"{k}-{v}"}
        for k in range(keys * 3 // 8, keys + keys // 8)
        for v in (19, 20)
    ]
    rng.shuffle(phase3)
    for row in phase3:
        emit(row)
        apply(row)
    messages.append(state({"upto": "end"}))
    return messages, model


def _child(config: dict[str, Any], input_path: str, write_fd: int) -> None:
    os.dup2(write_fd, 1)
    sys.stdout = os.fdopen(1, "w", buffering=1)
    target = TargetPostgresAtomic(config=config)
    with open(input_path, "rb") as handle:
        target.listen(handle)
    sys.stdout.flush()


PHASE_QUERIES = {"copy": ("COPY",), "merge": ("WITH src", "INSERT INTO", "DELETE", "UPDATE")}


def run_and_kill(
    server: PgServer, config: dict[str, Any], input_path: Path, phase: str, rng: random.Random
) -> tuple[bool, list[str]]:
    """One run, killed at `phase` (or not, if it ended first). Returns (killed, STATE lines)."""
    read_fd, write_fd = os.pipe()
    os.set_blocking(read_fd, False)
    process = multiprocessing.get_context("fork").Process(
        target=_child, args=(config, str(input_path), write_fd)
    )
    process.start()
    os.close(write_fd)
    output = b""
    skip = rng.randint(0, 6)
    killed = False
    try:
        with psycopg.connect(server.conninfo(), autocommit=True) as watch:
            deadline = time.monotonic() + (rng.uniform(0.0, 1.5) if phase == "random" else 60)
            while process.is_alive() and time.monotonic() < deadline:
                try:
                    chunk = os.read(read_fd, 65536)
                except BlockingIOError:
                    chunk = b""
                if chunk:
                    output += chunk
                    if phase == "state" and output.count(b"\n") > skip % 3:
                        break
                if phase in PHASE_QUERIES:
                    active = watch.execute(
                        "SELECT query FROM pg_stat_activity WHERE state = 'active' "
                        "AND application_name = 'target-postgres-atomic' "
                        "AND datname = current_database()"
                    ).fetchall()
                    if any(q.lstrip().startswith(PHASE_QUERIES[phase]) for (q,) in active):
                        if skip == 0:
                            break
                        skip -= 1
            if process.is_alive():
                os.kill(process.pid, signal.SIGKILL)
                killed = True
    finally:
        process.join(30)
        while True:
            try:
                chunk = os.read(read_fd, 65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            output += chunk
        os.close(read_fd)
    assert killed or process.exitcode == 0, f"target failed on its own (exit {process.exitcode})"
    return killed, output.decode().splitlines()


def table(server: PgServer) -> Model:
    with server.connect() as conn:
        rows = conn.execute("SELECT id, updated, val, _sdc_table_version FROM items").fetchall()
    return {k: (u, v, tv) for k, u, v, tv in rows}


def stored_state(server: PgServer) -> Any:
    with server.connect() as conn:
        row = conn.execute("SELECT state FROM _sdc_target_state WHERE stream = 'items'").fetchone()
    return row[0] if row else None


def kill_sweep(pg_db: PgServer, tmp_path: Path, kills_wanted: int, keys: int, seed: int) -> None:
    messages, expected = build_input(keys, seed)
    input_path = tmp_path / "input.jsonl"
    input_path.write_text("\n".join(json.dumps(m) for m in messages) + "\n")
    config = {**pg_db.target_config(), "hard_delete": True, "batch_size_rows": 500}
    rng = random.Random(seed)
    phases = ["copy", "merge", "state", "random"]
    kills: dict[str, int] = dict.fromkeys(phases, 0)
    attempts = 0
    while sum(kills.values()) < kills_wanted:
        attempts += 1
        assert attempts < kills_wanted * 4, f"too few kill points reached: {kills}"
        phase = phases[attempts % len(phases)]
        killed, states = run_and_kill(pg_db, config, input_path, phase, rng)
        kills[phase] += killed
        if states:
            # What was written to stdout is committed: the stored state is that one or later.
            last = json.loads(states[-1])
            assert stored_state(pg_db) is not None
            if last["upto"] != "end" and stored_state(pg_db)["upto"] != "end":
                assert stored_state(pg_db)["upto"] >= last["upto"]
        if not killed or attempts % 7 == 0:
            run_and_kill(pg_db, config, input_path, "none", rng)
            assert table(pg_db) == expected, f"after {kills}"
    run_and_kill(pg_db, config, input_path, "none", rng)
    assert table(pg_db) == expected
    print("kill points:", kills, "attempts:", attempts)
    assert kills["copy"] + kills["merge"] > 0 and kills["state"] > 0, kills


def test_sigkill_anywhere_then_rerun_gives_the_expected_table(pg_db, tmp_path) -> None:
    kill_sweep(pg_db, tmp_path, kills_wanted=22, keys=1600, seed=7)


@pytest.mark.soak
def test_sigkill_sweep_soak(pg_db, tmp_path) -> None:
    kill_sweep(pg_db, tmp_path, kills_wanted=200, keys=4000, seed=11)
