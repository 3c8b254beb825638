"""Transient state-database faults during a run, on a real PostgreSQL.

The outage: the test database stops accepting connections (`ALLOW_CONNECTIONS false`) and every
connection to it is killed (`pg_terminate_backend`), while the run goes on writing bookmarks and
heartbeats. A short outage is ridden out (reconnect with backoff, each retry fenced again); one
that outlasts the lease fails the run, because the lease may then be lost.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

pytestmark = pytest.mark.parametrize("svc", ["postgresql"], indirect=True)


@contextmanager
def outage(pg_admin, dbname: str) -> Iterator[None]:
    """No connection to ``dbname`` can be made, and the open ones are killed, until exit."""
    with psycopg.connect(pg_admin.conninfo(), autocommit=True) as admin:
        name = sql.Identifier(dbname)
        admin.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(name))
        try:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (dbname,),
            )
            yield
        finally:
            admin.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(name))


def paused_run(svc, go_on: Path, lease_seconds: str):
    """A run that stores its first bookmark, then waits until ``go_on`` exists."""
    proc = svc.spawn(
        "run", "p", "--lease-seconds", lease_seconds, "--heartbeat-seconds", "0.3",
        *svc.singer(), COUNTER_TAP_WAIT=str(go_on),
    )  # fmt: skip
    svc.wait_until("the first bookmark", lambda: svc.bookmark("p") is not None)
    svc.store.dispose()  # the test's own pooled connections would be killed too
    return proc


def test_a_run_rides_out_killed_connections_and_a_short_outage(svc, pg_admin, pg_db) -> None:
    go_on = svc.workdir / "go-on"
    proc = paused_run(svc, go_on, lease_seconds="30")
    with outage(pg_admin, pg_db.dbname):
        go_on.touch()  # the tap goes on: two more bookmarks to write, into the outage
        for line in proc.stderr:
            if "reconnecting" in line:  # the run is retrying: end the outage
                break
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert svc.bookmark("p") == {"bookmarks": {"counter": {"n": 3, "label": "tap"}}}
    runs = svc.runs("p")
    assert [(r["status"], r["error"]) for r in runs] == [("SUCCESS", "")]
    assert "password" not in err and "Traceback" not in err


def test_an_outage_longer_than_the_lease_fails_the_run(svc, pg_admin, pg_db) -> None:
    go_on = svc.workdir / "go-on"
    proc = paused_run(svc, go_on, lease_seconds="2")
    with outage(pg_admin, pg_db.dbname):
        _out, err = proc.communicate(timeout=60)
    assert proc.returncode not in (0, None), err
    assert "heartbeat failed until the lease may have run out" in err, err
    assert "Traceback" not in err
    # The bookmark stayed at the last write that landed; the run is left to be reclaimed.
    assert svc.bookmark("p") == {"bookmarks": {"counter": {"n": 1, "label": "tap"}}}
    svc.wait_expired("p")
    assert svc.cli("run", "p", *svc.FAST, *svc.singer()).returncode == 0
    assert [r["status"] for r in svc.runs("p")] == ["RECLAIMED", "SUCCESS"]
