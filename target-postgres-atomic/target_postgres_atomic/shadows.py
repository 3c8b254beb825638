"""Who fills a shadow table: the run holding its session-level advisory lock.

A shadow whose lock nobody holds was left by a killed run and is dropped at the next start; a
live run's shadow is waited for (bounded, logged), never dropped under it.
"""

from __future__ import annotations

import hashlib
import logging
import time

import psycopg
from psycopg import sql
from singer_sdk.exceptions import FatalSyncError

POLL_SECONDS = 0.5


class ShadowBusy(FatalSyncError):
    """Another live run is filling the shadow table of the same table."""


def _key(shadow: sql.Identifier) -> int:
    digest = hashlib.blake2b(b"shadow:" + shadow.as_string(None).encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big", signed=True)


def _holder(conn: psycopg.Connection, key: int) -> str:
    """The session holding the lock, as a user can find it in pg_stat_activity."""
    row = conn.execute(
        "SELECT a.pid, a.application_name, coalesce(a.client_addr::text, 'local'), "
        "a.backend_start FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
        "AND l.classid::bigint = %s AND l.objid::bigint = %s",
        # pg_locks shows a bigint key as its high and low 32 bits, unsigned.
        ((key >> 32) & 0xFFFFFFFF, key & 0xFFFFFFFF),
    ).fetchone()
    if row is None:
        return "a session that just ended"
    pid, application, client, since = row
    return f"pid {pid} ({application or 'no application_name'}, {client}, since {since})"


def hold(
    conn: psycopg.Connection,
    shadow: sql.Identifier,
    logger: logging.Logger,
    wait_seconds: float,
) -> None:
    """Take the shadow's lock for this session (until it closes), waiting a bounded time.

    A killed run's server session may outlive it for a moment (until the server notices the
    closed socket), hence the wait rather than an immediate refusal.
    """
    key = _key(shadow)
    deadline = time.monotonic() + wait_seconds
    logged = False
    while conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone() != (True,):
        holder = _holder(conn, key)
        if time.monotonic() >= deadline:
            raise ShadowBusy(
                f"shadow table {shadow.as_string(None)} is being filled by another run "
                f"({holder}) after {wait_seconds:.0f} s of waiting; two full refreshes of one "
                "table cannot run at once: run again when it has ended"
            )
        if not logged:
            logger.warning(
                "Waiting up to %.0f s for %s, which fills shadow table %s.",
                wait_seconds,
                holder,
                shadow.as_string(None),
            )
            logged = True
        time.sleep(POLL_SECONDS)
