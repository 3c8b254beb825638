"""Lock waits: logged with the session that holds the lock, given up after `lock_timeout`.

A watcher thread looks (on its own connection) at every transaction that has run longer than
a poll interval; while PostgreSQL reports it blocked (`pg_blocking_pids`), it logs the holder
once and cancels the statement when the wait exceeds the timeout. The cancelled transaction
rolls back, so nothing of its batch lands.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
from singer_sdk.exceptions import FatalSyncError

POLL_SECONDS = 0.5
HOLDERS = (
    "SELECT a.pid, coalesce(a.usename, '?'), a.application_name, "
    "coalesce(a.client_addr::text, 'local'), a.state, "
    "date_trunc('second', now() - coalesce(a.xact_start, a.backend_start)), left(a.query, 120) "
    "FROM pg_stat_activity a WHERE a.pid = ANY(pg_blocking_pids(%s)) ORDER BY a.pid"
)


class LockWaitTimeout(FatalSyncError):
    """A lock stayed held by another session for longer than lock_timeout."""


@dataclass
class _Wait:
    conn: psycopg.Connection
    what: str
    pid: int
    blocked_since: float | None = None
    holder: str = ""
    gave_up: bool = False


def _describe(rows: list[tuple]) -> str:
    return "; ".join(
        f"pid {pid} (user {user}, application '{app}', {client}, {state} for {age}, "
        f"last query: {query!r})"
        for pid, user, app, client, state, age, query in rows
    )


class LockWatcher:
    """Watches the transactions run inside `watch(...)` for lock waits."""

    def __init__(self, conninfo: str, timeout: float, logger: logging.Logger) -> None:
        self._conninfo = conninfo
        self._timeout = timeout
        self._logger = logger
        self._waits: dict[int, _Wait] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @contextmanager
    def watch(self, conn: psycopg.Connection, what: str) -> Iterator[None]:
        """Run a transaction on `conn` that takes locks on `what` (named in the messages)."""
        wait = _Wait(conn, what, conn.info.backend_pid)
        with self._lock:
            self._waits[id(wait)] = wait
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="lock-watch", daemon=True)
                self._thread.start()
        try:
            yield
        except (psycopg.errors.QueryCanceled, psycopg.errors.LockNotAvailable) as exc:
            # LockNotAvailable: the server's lock_timeout backstop, should this watcher fail.
            if wait.gave_up or isinstance(exc, psycopg.errors.LockNotAvailable):
                raise LockWaitTimeout(
                    f"gave up after {self._timeout:g} s (lock_timeout) waiting for a lock on "
                    f"{what} held by {wait.holder or 'another session'}; nothing of this "
                    "batch was committed. End that session's transaction "
                    "(pg_terminate_backend(pid) if it is stuck) and run again, or raise "
                    "lock_timeout"
                ) from None
            raise
        finally:
            with self._lock:
                del self._waits[id(wait)]

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        conn: psycopg.Connection | None = None
        try:
            while not self._stop.wait(POLL_SECONDS):
                with self._lock:
                    waits = list(self._waits.values())
                if waits:
                    conn = conn or psycopg.connect(self._conninfo, autocommit=True)
                    for wait in waits:
                        self._check(conn, wait)
        except psycopg.Error as exc:
            self._logger.warning("Lock waits are not watched any more: %s", exc)
        finally:
            if conn is not None:
                conn.close()

    def _check(self, conn: psycopg.Connection, wait: _Wait) -> None:
        rows = conn.execute(HOLDERS, (wait.pid,)).fetchall()
        if not rows:
            wait.blocked_since = None
            return
        now = time.monotonic()
        if wait.blocked_since is None:
            wait.blocked_since, wait.holder = now, _describe(rows)
            self._logger.warning(
                "Waiting for a lock on %s held by %s; giving up after %g s (lock_timeout).",
                wait.what,
                wait.holder,
                self._timeout,
            )
        elif now - wait.blocked_since >= self._timeout:
            with self._lock:
                if id(wait) in self._waits and not wait.gave_up:
                    wait.gave_up = True
                    wait.conn.cancel_safe()
