"""A state database that cannot be used: one line naming it (never its password), exit 3, a
traceback only with --debug; and no SQL statement or parameter in any stored or printed error."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from state_service import lease as leases
from state_service.errors import DatabaseUnavailable
from state_service.store import Store

from safe_singer_testing.cli import script

SECRET = "hunter2"


def state_service(*args: str, stdin: str = "", **popen: object) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STATE_SERVICE_")}
    return subprocess.run(
        [script("state-service"), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        **popen,  # type: ignore[arg-type]
    )


def assert_one_line(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode == 3, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("state-service: error: state database "), lines
    assert all(needle in lines[0] for needle in needles), lines
    assert SECRET not in proc.stderr + proc.stdout


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts TCP connections and never says a word."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()
        for conn in accepted:
            conn.close()


def test_unreachable_and_silent_servers_fail_in_one_line(silent_server) -> None:
    with socket.create_server(("127.0.0.1", 0)) as closed:
        free_port = closed.getsockname()[1]  # nothing listens there once closed
    refused = state_service("--db", f"postgresql://bob:{SECRET}@127.0.0.1:{free_port}/st", "status")
    assert_one_line(refused, f"bob:***@127.0.0.1:{free_port}/st", "Connection refused")
    silent_url = f"postgresql://bob:{SECRET}@127.0.0.1:{silent_server}/st"
    silent = state_service("--connect-timeout", "1", "--db", silent_url, "runs", "p")
    assert_one_line(silent, f"127.0.0.1:{silent_server}/st", "timeout")
    debug = state_service("--debug", "--db", silent_url, "--connect-timeout", "1", "status")
    assert debug.returncode == 3 and "Traceback" in debug.stderr
    assert SECRET not in debug.stderr


def test_read_only_sqlite_file_and_bad_path_fail_in_one_line(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    Store(f"sqlite:///{db}").dispose()
    db.chmod(0o444)
    # root writes anyway: take away the capability that lets it, as an ordinary user lacks it
    drop = ["setpriv", "--inh-caps=-dac_override", "--bounding-set=-dac_override"]
    prefix = drop if os.geteuid() == 0 else []
    proc = subprocess.run(
        [*prefix, script("state-service"), "--db", f"sqlite:///{db}", "state", "clear", "p"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert_one_line(proc, str(db), "readonly database")
    bad = state_service("--db", f"sqlite:///{tmp_path}/state.db/inside/x.db", "status")
    assert_one_line(bad, "inside/x.db", "Error")


@pytest.mark.parametrize("svc", ["postgresql"], indirect=True)
def test_database_errors_carry_no_sql_or_parameters(svc) -> None:
    name = "p" * 300  # longer than the pipeline column: the INSERT fails in PostgreSQL
    with pytest.raises(DatabaseUnavailable) as raised:
        leases.start(svc.store, name, lease_seconds=60)
    assert "StringDataRightTruncation: value too long" in str(raised.value)
    assert "INSERT" not in str(raised.value) and name not in str(raised.value)
    proc = svc.cli("run", name, "--", "true")
    assert proc.returncode == 3 and "INSERT" not in proc.stderr and name not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


@pytest.mark.parametrize("svc", ["postgresql"], indirect=True)
def test_a_run_failed_by_the_database_stores_no_sql(svc) -> None:
    """The run's bookmark read times out behind a lock: the stored error is class + message."""
    Store(svc.url).dispose()
    with psycopg.connect(svc.url.replace("+psycopg", "")) as locker:
        locker.execute("LOCK TABLE state_service_bookmarks IN ACCESS EXCLUSIVE MODE")
        proc = svc.cli("--statement-timeout", "1", "run", "p", *svc.FAST, *svc.singer())
    assert proc.returncode == 1, proc.stderr
    [run] = svc.runs("p")
    assert run["status"] == "FAILED"
    assert "QueryCanceled: canceling statement due to statement timeout" in run["error"], run
    assert "SELECT" not in run["error"] and "state_service_bookmarks" not in run["error"], run
