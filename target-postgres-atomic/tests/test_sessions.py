"""Waits are bounded and say what they wait for; signals and idle taps do not corrupt a run."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
from typing import Any

import pytest

from safe_singer_testing.postgres import PgServer
from safe_singer_testing.target_messages import record, schema, state

PROPS = {"id": {"type": "integer"}}
WAIT = 60  # bound on waiting for the target's output, never an expected duration


def send(proc: subprocess.Popen[str], *messages: dict[str, Any]) -> None:
    assert proc.stdin is not None
    proc.stdin.write("".join(json.dumps(m) + "\n" for m in messages))
    proc.stdin.flush()


def test_a_locked_table_is_waited_for_a_bounded_time_naming_the_holder(
    run_target, rows, pg_db: PgServer
) -> None:
    assert run_target([schema("t", PROPS), record("t", {"id": 1})]).returncode == 0
    with pg_db.connect(autocommit=True) as holder:
        holder.execute("SET application_name = 'nightly-report'")
        holder.execute("BEGIN")
        holder.execute("LOCK TABLE t IN ACCESS EXCLUSIVE MODE")
        holder_pid = holder.info.backend_pid
        run = run_target([schema("t", PROPS), record("t", {"id": 2})], lock_timeout=1)
        holder.execute("ROLLBACK")
    assert run.returncode != 0
    assert f"Waiting for a lock on public.t held by pid {holder_pid}" in run.stderr, run.stderr
    assert (
        f"gave up after 1 s (lock_timeout) waiting for a lock on public.t held by pid {holder_pid}"
        in run.stderr
    )
    assert "nightly-report" in run.stderr
    assert rows("SELECT id FROM t") == [(1,)]


def test_a_server_that_never_answers_times_out(run_target) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # the kernel completes the handshake; nobody ever answers
        run = run_target(
            [schema("t", PROPS)], host="127.0.0.1", port=silent.getsockname()[1], connect_timeout=2
        )
    assert run.returncode != 0
    assert "timeout expired" in run.stderr, run.stderr
    assert "Traceback" not in run.stderr


def test_no_statement_stays_open_while_the_tap_is_idle(start_target, rows, pg_db: PgServer) -> None:
    with pg_db.connect(autocommit=True) as admin:
        dbname = admin.info.dbname
        admin.execute(f"ALTER DATABASE \"{dbname}\" SET statement_timeout = '1s'")
        admin.execute(f"ALTER DATABASE \"{dbname}\" SET idle_session_timeout = '1s'")
        # (A batch writing its table straight keeps a transaction open: it commits instead.)
        admin.execute(f"ALTER DATABASE \"{dbname}\" SET idle_in_transaction_session_timeout = '1s'")
    proc = start_target()
    # 1,500 records: a first chunk of 1,000 is sent (straight into the new table, in an open
    # transaction), the rest still buffered.
    send(proc, schema("t", PROPS), *(record("t", {"id": k}) for k in range(1, 1501)))
    time.sleep(2.5)  # the tap waits out a Retry-After: longer than the server's timeouts
    send(proc, record("t", {"id": 1501}), state({"s": 1}))
    out, err = proc.communicate(timeout=WAIT)
    assert proc.returncode == 0, err
    assert out.splitlines() == ['{"s": 1}']
    assert rows("SELECT count(*), min(id), max(id) FROM t") == [(1501, 1, 1501)]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_ends_the_run_non_zero_committing_nothing_more(
    signum: int, start_target, rows
) -> None:
    proc = start_target(batch_size_rows=2)
    send(proc, schema("t", PROPS), record("t", {"id": 1}), record("t", {"id": 2}), state({"s": 1}))
    assert proc.stdout is not None
    assert proc.stdout.readline() == '{"s": 1}\n'
    send(proc, record("t", {"id": 3}), state({"s": 2}))
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=WAIT)
    assert proc.returncode == 128 + signum, err
    assert f"Stopped by {signal.Signals(signum).name}" in err
    assert out == ""
    assert rows("SELECT id FROM t ORDER BY id") == [(1,), (2,)]
    assert rows("SELECT state FROM _sdc_target_state") == [({"s": 1},)]
