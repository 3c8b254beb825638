"""When a full refresh ends (issue 9 points 5 and 6): only a proven end publishes it.

Proof is a closing ACTIVATE_VERSION, or a runner that ends the input only after the tap exited
0 (SINGER_END_OF_INPUT_MEANS_TAP_SUCCEEDED, set by `state-service run`). Without proof the
refresh's rows are merged and nothing is deleted; no shadow table outlives its run.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from target_postgres_atomic.target import END_OF_INPUT_PROOF

from safe_singer_testing.cli import script
from safe_singer_testing.postgres import PgServer
from safe_singer_testing.target_messages import activate, record, schema, state

HEAD = schema("items", {"id": {"type": "integer"}, "v": {"type": "string"}})
SHADOWS = "SELECT count(*) FROM pg_tables WHERE tablename LIKE '\\_sdc\\_shadow%'"
LIVE = "SELECT id, v FROM items WHERE _sdc_deleted_at IS NULL ORDER BY id"


def rows_of(version: int, ids: range, tag: str) -> list[dict]:
    return [record("items", {"id": i, "v": tag}, version=version) for i in ids]


@pytest.fixture
def old_table(run_target) -> None:
    assert run_target([HEAD, *rows_of(1, range(5), "old")]).returncode == 0


def test_unproven_refresh_is_merged_and_deletes_nothing(old_table, run_target, rows) -> None:
    # singer-sdk taps: one ACTIVATE_VERSION, the records, end of input (maybe a dead tap's).
    sdk_tap = [HEAD, activate("items", 7), *rows_of(7, range(3), "new"), state({"s": 1})]
    run = run_target(sdk_tap, hard_delete=True, batch_size_rows=2)
    assert run.returncode == 0, run.stderr
    assert rows(LIVE) == [(0, "new"), (1, "new"), (2, "new"), (3, "old"), (4, "old")]
    assert run.states == [{"s": 1}]
    assert "without proof that the full refresh of version 7 is complete" in run.stderr
    assert "state-service run" in run.stderr and "refresh-seal" in run.stderr
    assert rows(SHADOWS) == [(0,)]


def test_refresh_vouched_for_by_the_runner_swaps_in(
    old_table, run_target, rows, monkeypatch
) -> None:
    monkeypatch.setenv(END_OF_INPUT_PROOF, "1")
    sdk_tap = [HEAD, activate("items", 7), *rows_of(7, range(3), "new"), state({"s": 1})]
    run = run_target(sdk_tap, hard_delete=True, batch_size_rows=2)
    assert run.returncode == 0, run.stderr
    assert rows(LIVE) == [(0, "new"), (1, "new"), (2, "new")]
    assert run.states == [{"s": 1}]
    assert rows(SHADOWS) == [(0,)]


def test_refresh_with_no_records_empties_the_table_only_when_complete(
    old_table, run_target, rows, monkeypatch
) -> None:
    # Point 5: the source table became empty.
    unproven = run_target([HEAD, activate("items", 7)], hard_delete=True)
    assert unproven.returncode == 0, unproven.stderr
    assert len(rows(LIVE)) == 5
    assert rows(SHADOWS) == [(0,)]
    closed = run_target([HEAD, activate("items", 8), activate("items", 8)])
    assert closed.returncode == 0, closed.stderr
    assert rows(LIVE) == []
    assert rows("SELECT count(*) FROM items") == [(5,)]  # soft delete: marked
    monkeypatch.setenv(END_OF_INPUT_PROOF, "1")
    vouched = run_target([HEAD, activate("items", 9)], hard_delete=True)
    assert vouched.returncode == 0, vouched.stderr
    assert rows("SELECT count(*) FROM items") == [(0,)]
    assert rows(SHADOWS) == [(0,)]


def _fake_tap(tmp_path: Path, messages: list[dict], ending: str) -> Path:
    """A tap that writes its messages, then exits 0, or dies by SIGKILL mid-refresh."""
    tap = tmp_path / "tap.py"
    lines = "".join(json.dumps(m) + "\n" for m in messages)
    end = "os.kill(os.getpid(), signal.SIGKILL)" if ending == "killed" else "sys.exit(0)"
    tap.write_text(
        f"import os, signal, sys\nsys.stdout.write({lines!r})\nsys.stdout.flush()\n{end}\n"
    )
    return tap


@pytest.mark.parametrize("ending", ["killed", "exit 0"])
def test_refresh_seal_publishes_a_finished_refresh_and_stops_at_a_dead_tap(
    ending: str, old_table, rows, pg_db: PgServer, tmp_path: Path
) -> None:
    messages = [HEAD, activate("items", 7), *rows_of(7, range(3), "new"), state({"s": 1})]
    tap = _fake_tap(tmp_path, messages, ending)
    config = tmp_path / "target.json"
    config.write_text(json.dumps({**pg_db.target_config(), "batch_size_rows": 1}))
    pipeline = subprocess.run(
        [script("refresh-seal"), sys.executable, str(tap)],
        stdout=subprocess.PIPE,
        check=False,
    )
    target = subprocess.run(
        [script("target-postgres-atomic"), "--config", str(config)],
        input=pipeline.stdout,
        capture_output=True,
        check=False,
    )
    stderr = target.stderr.decode()
    if ending == "killed":
        assert pipeline.returncode == 128 + 9
        assert target.returncode != 0
        assert "the tap failed (exit code -9" in stderr
        assert rows(LIVE) == [(i, "old") for i in range(5)]
        assert target.stdout == b""
    else:
        assert pipeline.returncode == 0 and target.returncode == 0, stderr
        assert rows(LIVE) == [(i, "new") for i in range(3)]
        assert json.loads(target.stdout) == {"s": 1}
    assert rows(SHADOWS) == [(0,)]


def open_target(pg_db: PgServer, tmp_path: Path, messages: list[dict]) -> subprocess.Popen[bytes]:
    """The target's console script, fed `messages` one batch each, its input left open."""
    config = tmp_path / "target.json"
    config.write_text(json.dumps({**pg_db.target_config(), "batch_size_rows": 1}))
    target = subprocess.Popen(
        [script("target-postgres-atomic"), "--config", str(config)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert target.stdin is not None
    target.stdin.write(b"".join(json.dumps(m).encode() + b"\n" for m in messages))
    target.stdin.flush()
    return target


def wait_for_shadow_rows(rows, count: int) -> None:
    """Until the (one) shadow table holds `count` rows: a live run is mid-refresh."""
    for _ in range(600):  # a guard against hanging, not a timing assertion
        found = rows("SELECT tablename FROM pg_tables WHERE tablename LIKE '\\_sdc\\_shadow%'")
        if found and rows(f'SELECT count(*) FROM "{found[0][0]}"') >= [(count,)]:
            return
        time.sleep(0.1)
    raise AssertionError("the target never filled its shadow table")


def test_refresh_seal_takes_a_tap_stopped_by_sigterm_for_failed(tmp_path: Path) -> None:
    # singer-sdk taps exit 0 on SIGTERM ("gracefully shutting down") mid-refresh.
    tap = tmp_path / "tap.py"
    opening = json.dumps(activate("items", 7))
    tap.write_text(
        "import signal, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))\n"
        f"print({json.dumps(HEAD)!r}, {opening!r}, sep='\\n', flush=True)\n"
        "time.sleep(120)\n"
    )
    seal = subprocess.Popen(
        [script("refresh-seal"), sys.executable, str(tap)], stdout=subprocess.PIPE
    )
    assert seal.stdout is not None
    seal.stdout.readline()
    assert json.loads(seal.stdout.readline())["type"] == "ACTIVATE_VERSION"
    seal.terminate()
    rest, _ = seal.communicate(timeout=60)
    assert seal.returncode == 128 + 15
    assert [json.loads(line)["type"] for line in rest.splitlines()] == ["TAP_FAILED"]


def test_shadow_of_a_killed_target_is_dropped_at_the_next_start(
    old_table, run_target, rows, pg_db: PgServer, tmp_path: Path
) -> None:
    target = open_target(
        pg_db, tmp_path, [HEAD, activate("items", 7), *rows_of(7, range(3), "new")]
    )
    try:
        wait_for_shadow_rows(rows, 2)
    finally:
        target.kill()
        target.wait()
    assert rows(LIVE) == [(i, "old") for i in range(5)]
    assert rows(SHADOWS) == [(1,)]
    run = run_target([HEAD, record("items", {"id": 9, "v": "later"})])
    assert run.returncode == 0, run.stderr
    assert "dropped shadow table" in run.stderr
    assert rows(SHADOWS) == [(0,)]
    assert rows(LIVE) == [*((i, "old") for i in range(5)), (9, "later")]


def test_refresh_that_fails_at_the_end_of_input_leaves_no_shadow(
    old_table, run_target, rows, pg_db: PgServer
) -> None:
    # The shadow takes any row; the real table refuses one (a user's constraint) at the merge.
    with pg_db.connect(autocommit=True) as conn:
        conn.execute("ALTER TABLE items ADD CONSTRAINT no_bad CHECK (v <> 'bad')")
    sdk_tap = [
        HEAD,
        activate("items", 7),
        *rows_of(7, range(2), "new"),
        *rows_of(7, range(2, 3), "bad"),
    ]
    run = run_target(sdk_tap, batch_size_rows=2)
    assert run.returncode != 0
    assert rows(LIVE) == [(i, "old") for i in range(5)]
    assert rows(SHADOWS) == [(0,)]


def test_second_refresh_of_a_table_waits_for_the_live_one_then_stops_naming_it(
    old_table, run_target, rows, pg_db: PgServer, tmp_path: Path
) -> None:
    first = open_target(
        pg_db, tmp_path, [HEAD, activate("items", 7), *rows_of(7, range(2), "first")]
    )
    try:
        wait_for_shadow_rows(rows, 2)
        second = run_target(
            [HEAD, activate("items", 8), *rows_of(8, range(1), "second")], lock_timeout=1
        )
        assert second.returncode != 0
        assert "is being filled by another run (pid" in second.stderr, second.stderr[-2000:]
        assert "target-postgres-atomic" in second.stderr
        _, err = first.communicate(json.dumps(activate("items", 7)).encode() + b"\n", 120)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert first.returncode == 0, err.decode()[-2000:]
    assert rows(LIVE) == [(0, "first"), (1, "first")]
    assert rows(SHADOWS) == [(0,)]
