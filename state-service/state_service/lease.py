"""All lease logic: start, fenced heartbeat / bookmark / finish, reclaim.

Every step is one transaction. Expiry is judged only against the database clock. Every write of
a run is conditional on its fencing token still being the lease's token, so a run that lost its
lease (reclaimed because it went quiet, or forced out) can no longer change anything.

A run's heartbeat, bookmark and finish ride out transient database faults (a killed connection,
a restart): each is retried as a whole transaction, fence included, until the lease may have
run out by this process's own clock (the last renewal it saw confirmed, plus the lease).
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    Row,
    String,
    Text,
    bindparam,
    func,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import psycopg
from sqlalchemy.sql.elements import ColumnElement

from state_service.errors import StateServiceError
from state_service.faults import fault_point
from state_service.schema import (
    FAILED,
    RECLAIMED,
    RUNNING,
    SUCCESS,
    bookmark_history,
    bookmarks,
    leases,
    run_streams,
    runs,
)
from state_service.store import Store


class LeaseHeld(StateServiceError):
    """The pipeline's lease is held by a live run."""


class LeaseLost(StateServiceError):
    """This run's lease was taken by another run: its writes are refused."""


class NothingToReclaim(StateServiceError):
    """Reclaim found no run holding the lease."""


class BookmarkMoved(StateServiceError):
    """The bookmark a run started from was replaced by another run before this one took the
    lease: writing on would move it backwards."""


class ClaimLost(StateServiceError):
    """Another run took the lease after this process told its target which token it would
    hold: that token is another run's, or fenced off."""


NOT_READ = -1  # start(..., read_token=...) default: the caller read no bookmark beforehand


@dataclass
class Lease:
    pipeline: str
    run_id: int
    token: int
    lease_seconds: float
    started_at: datetime
    # time.monotonic() when the last confirmed renewal was sent: the lease holds until at
    # least this plus lease_seconds, whatever happens to the database meanwhile.
    renewed_at: float = field(default_factory=time.monotonic, compare=False)

    def surely_held_until(self) -> float:
        """Monotonic deadline for retries: a margin before the lease may have run out."""
        return self.renewed_at + self.lease_seconds - min(1.0, self.lease_seconds / 10)


StreamCounts = dict[str, tuple[int | None, int | None]]  # stream: (tap records, target rows)
StreamLags = dict[str, float]  # stream: the tap's last reported replication lag, seconds


def start(
    store: Store,
    pipeline: str,
    *,
    lease_seconds: float,
    kind: str = "run",
    force: bool = False,
    read_token: int | None = NOT_READ,
    claim: int | None = None,
) -> Lease:
    """Take the lease in ONE transaction; a stale (or, with force, live) holder is RECLAIMED.

    ``read_token``: the token of the bookmark the caller read before (None: there was none);
    if another run has written the bookmark since, the start is refused with BookmarkMoved.
    ``claim``: the token the caller expects (``next_token`` when it read); any other is
    refused with ClaimLost.
    """
    sent = time.monotonic()
    with store.transaction() as conn:
        lease_row = _lock_lease(store, conn, pipeline)
        fault_point("start:locked")
        now = store.now(conn)
        if lease_row.run_id is not None:
            _ensure_takeable(store, conn, lease_row, now, force=force)
        if read_token != NOT_READ:
            _ensure_bookmark_unmoved(conn, pipeline, read_token)
        if claim is not None and claim != lease_row.token + 1:
            raise ClaimLost(_claim_lost_message(pipeline, claim, lease_row.token))
        if lease_row.run_id is not None:
            _mark_reclaimed(conn, lease_row.run_id, now, forced=force)
        token = lease_row.token + 1
        run_id = conn.execute(
            runs.insert()
            .values(
                pipeline=pipeline,
                token=token,
                kind=kind,
                status=RUNNING,
                started_at=now,
                last_heartbeat_at=now,
                lease_seconds=lease_seconds,
                host=socket.gethostname(),
                pid=os.getpid(),
            )
            .returning(runs.c.run_id)
        ).scalar_one()
        conn.execute(
            update(leases)
            .where(leases.c.pipeline == pipeline)
            .values(token=token, run_id=run_id, expires_at=now + timedelta(seconds=lease_seconds))
        )
        fault_point("start:before-commit")
    fault_point("start:after-commit")
    return Lease(pipeline, run_id, token, lease_seconds, now, sent)


def next_token(store: Store, pipeline: str) -> int:
    """The token a start would take now: the lease's plus one while the lease is free or its
    holder's has run out (by the database clock); 0 while a live run holds it (a start now
    would be refused, and no run ever holds token 0)."""
    query = select(leases.c.token, leases.c.run_id, leases.c.expires_at).where(
        leases.c.pipeline == pipeline
    )
    with store.reading() as conn:
        row = conn.execute(query).one_or_none()
        now = store.now(conn)
    if row is None:
        return 1
    if row.run_id is not None and store.to_datetime(row.expires_at) > now:
        return 0
    return int(row.token) + 1


def heartbeat(store: Store, lease: Lease) -> None:
    """Renew the lease (fenced), retrying transient faults while it is surely held."""

    def once() -> None:
        with store.transaction() as conn:
            now = _fence(store, conn, lease)
            conn.execute(
                update(leases)
                .where(leases.c.pipeline == lease.pipeline)
                .values(expires_at=now + timedelta(seconds=lease.lease_seconds))
            )
            conn.execute(
                update(runs).where(runs.c.run_id == lease.run_id).values(last_heartbeat_at=now)
            )

    sent = time.monotonic()
    store.retrying(once, until=lease.surely_held_until(), what="heartbeat")
    lease.renewed_at = max(lease.renewed_at, sent)


def write_bookmark(store: Store, lease: Lease, state: str | None) -> None:
    """Store the pipeline's Singer state (None clears it), fenced by the lease's token.

    A retry after a fault that hit the commit's reply may write the same state twice: the
    history then shows it twice, the bookmark is the same.
    """

    def once() -> None:
        if state is not None and not store.is_sqlite:
            _write_bookmark_in_one_statement(store, lease, state)
            return
        with store.transaction() as conn:
            now = _fence(store, conn, lease)
            _store_bookmark(store, conn, lease, state, now)

    store.retrying(once, until=lease.surely_held_until(), what="bookmark write")
    fault_point("bookmark:after-commit")


def _one_statement_bookmark_write() -> str:
    """PostgreSQL: fence, history row and upsert as ONE atomic statement (one round trip).

    The fence CTE returns a row only while the run holds the lease; the inserts select from it,
    so a fenced-out run writes nothing and gets no row back. Compiled once, to SQL for psycopg
    (SQLAlchemy does not cache statements with DML CTEs).
    """
    fence = (
        update(leases)
        .where(
            (leases.c.pipeline == bindparam("b_pipeline"))
            & (leases.c.token == bindparam("b_token"))
            & (leases.c.run_id == bindparam("b_run_id"))
        )
        .values(token=leases.c.token)
        .returning(func.clock_timestamp().label("now"))
        .cte("fence")
    )
    row = select(
        bindparam("b_pipeline", type_=String),
        bindparam("b_state", type_=Text),
        bindparam("b_token", type_=BigInteger),
        bindparam("b_run_id", type_=BigInteger),
        fence.c.now,
    )
    columns = ["pipeline", "state", "token", "run_id", "written_at"]
    history = bookmark_history.insert().from_select(columns, row).cte("history")
    upsert = postgresql.insert(bookmarks).from_select(columns, row)
    upsert = upsert.on_conflict_do_update(
        index_elements=[bookmarks.c.pipeline],
        set_={c: getattr(upsert.excluded, c) for c in columns[1:]},
    )
    statement = upsert.add_cte(history).returning(bookmarks.c.run_id)
    return str(statement.compile(dialect=psycopg.dialect()))


_BOOKMARK_WRITE_PG = _one_statement_bookmark_write()


def _write_bookmark_in_one_statement(store: Store, lease: Lease, state: str) -> None:
    params = {
        "b_pipeline": lease.pipeline,
        "b_state": state,
        "b_token": lease.token,
        "b_run_id": lease.run_id,
    }
    with store.autocommit() as conn:
        if conn.exec_driver_sql(_BOOKMARK_WRITE_PG, params).scalar() is None:
            raise LeaseLost(_lost_message(conn, lease))


def record_target_mark(store: Store, lease: Lease, mark: str) -> None:
    """Note in this run's row the newest commit of the target's state table seen at its start
    (fenced: a run that lost its lease writes nothing)."""

    def once() -> None:
        with store.transaction() as conn:
            _fence(store, conn, lease)
            conn.execute(
                update(runs).where(runs.c.run_id == lease.run_id).values(target_state_mark=mark)
            )

    store.retrying(once, until=lease.surely_held_until(), what="target state mark")


def finish(
    store: Store,
    lease: Lease,
    *,
    exit_code: int,
    error: str | None = None,
    tap_exit_code: int | None = None,
    target_exit_code: int | None = None,
    final_state: str | None = None,
    clear_state: bool = False,
    counts: StreamCounts | None = None,
    lags: StreamLags | None = None,
) -> None:
    """Final bookmark (or clear), counts and lags, outcome, lease released (token kept): one
    fenced transaction, retried on transient faults while the lease is surely held."""
    per_stream = _stream_rows(lease.run_id, counts or {}, lags or {})
    attempts = 0

    def once() -> None:
        nonlocal attempts
        attempts += 1
        with store.transaction() as conn:
            if attempts > 1 and _finished_already(conn, lease):
                return  # the earlier attempt committed; only its reply was lost
            now = _fence(store, conn, lease, release=True)
            if final_state is not None or clear_state:
                _store_bookmark(store, conn, lease, final_state, now)
            if per_stream:
                conn.execute(run_streams.insert(), per_stream)
            conn.execute(
                update(runs)
                .where(runs.c.run_id == lease.run_id)
                .values(
                    status=SUCCESS if exit_code == 0 else FAILED,
                    ended_at=now,
                    exit_code=exit_code,
                    tap_exit_code=tap_exit_code,
                    target_exit_code=target_exit_code,
                    error=error,
                )
            )
            fault_point("finish:before-commit")

    store.retrying(once, until=lease.surely_held_until(), what="finish")


def _stream_rows(run_id: int, counts: StreamCounts, lags: StreamLags) -> list[dict[str, Any]]:
    return [
        {
            "run_id": run_id,
            "stream": stream,
            "tap_records": counts.get(stream, (None, None))[0],
            "target_rows": counts.get(stream, (None, None))[1],
            "lag_seconds": lags.get(stream),
        }
        for stream in sorted(set(counts) | set(lags))
    ]


def _finished_already(conn: Connection, lease: Lease) -> bool:
    """This run ended SUCCESS/FAILED (only finish writes those) and released its lease."""
    row = conn.execute(
        select(runs.c.status, leases.c.token, leases.c.run_id.label("holder"))
        .join(leases, leases.c.pipeline == runs.c.pipeline)
        .where(runs.c.run_id == lease.run_id)
    ).one()
    return row.status in (SUCCESS, FAILED) and row.token == lease.token and row.holder is None


def reclaim(store: Store, pipeline: str, *, force: bool = False) -> int:
    """Take the lease from a stale run (any run with force), fencing it out; its run id."""
    with store.transaction() as conn:
        lease_row = _lock_lease(store, conn, pipeline)
        if lease_row.run_id is None:
            raise NothingToReclaim(f"pipeline {pipeline!r} has no running run to reclaim")
        now = store.now(conn)
        _ensure_takeable(store, conn, lease_row, now, force=force)
        _mark_reclaimed(conn, lease_row.run_id, now, forced=force)
        conn.execute(
            update(leases)
            .where(leases.c.pipeline == pipeline)
            .values(token=lease_row.token + 1, run_id=None, expires_at=None)
        )
        return int(lease_row.run_id)


def _lock_lease(store: Store, conn: Connection, pipeline: str) -> Row[Any]:
    """The pipeline's lease row, created at token 0 if new, locked until commit."""
    dialect_insert = sqlite.insert if store.is_sqlite else postgresql.insert
    conn.execute(dialect_insert(leases).values(pipeline=pipeline, token=0).on_conflict_do_nothing())
    return conn.execute(select(leases).where(leases.c.pipeline == pipeline).with_for_update()).one()


def _held_by(lease: Lease) -> ColumnElement[bool]:
    return (
        (leases.c.pipeline == lease.pipeline)
        & (leases.c.token == lease.token)
        & (leases.c.run_id == lease.run_id)
    )


def _fence(store: Store, conn: Connection, lease: Lease, *, release: bool = False) -> datetime:
    """Lock the lease if this run still holds it (else LeaseLost); the database's now."""
    held = _held_by(lease)
    values: dict[str, Any] = {"token": lease.token}
    if release:
        values = {"run_id": None, "expires_at": None}
    now = conn.execute(
        update(leases).where(held).values(**values).returning(store.now_sql())
    ).scalar()
    if now is None:
        raise LeaseLost(_lost_message(conn, lease))
    return store.to_datetime(now)


def _store_bookmark(
    store: Store, conn: Connection, lease: Lease, state: str | None, now: datetime
) -> None:
    """History row plus current bookmark (None deletes it); one statement on PostgreSQL."""
    history = bookmark_history.insert().values(
        pipeline=lease.pipeline,
        state=state,
        token=lease.token,
        run_id=lease.run_id,
        written_at=now,
    )
    if state is None:
        conn.execute(history)
        conn.execute(bookmarks.delete().where(bookmarks.c.pipeline == lease.pipeline))
        return
    values = {"state": state, "token": lease.token, "run_id": lease.run_id, "written_at": now}
    on_conflict = {"index_elements": [bookmarks.c.pipeline], "set_": values}
    if store.is_sqlite:
        conn.execute(history)
        upsert = sqlite.insert(bookmarks).values(pipeline=lease.pipeline, **values)
        conn.execute(upsert.on_conflict_do_update(**on_conflict))  # type: ignore[arg-type]
        return
    pg_upsert = postgresql.insert(bookmarks).values(pipeline=lease.pipeline, **values)
    pg_upsert = pg_upsert.add_cte(history.cte("history"))
    conn.execute(pg_upsert.on_conflict_do_update(**on_conflict))  # type: ignore[arg-type]


def _ensure_takeable(
    store: Store, conn: Connection, lease_row: Row[Any], now: datetime, *, force: bool
) -> None:
    expires_at = store.to_datetime(lease_row.expires_at)
    if force or expires_at <= now:
        return
    holder = conn.execute(select(runs).where(runs.c.run_id == lease_row.run_id)).one()
    beat_age = (now - store.to_datetime(holder.last_heartbeat_at)).total_seconds()
    raise LeaseHeld(
        f"pipeline {lease_row.pipeline!r} is held by run {holder.run_id} "
        f"(host {holder.host}, pid {holder.pid}, token {lease_row.token}), "
        f"last heartbeat {beat_age:.1f}s ago, lease expires in "
        f"{(expires_at - now).total_seconds():.1f}s at {expires_at.isoformat()}. "
        "Wait for it, or `state-service reclaim --force` to fence it out."
    )


def _ensure_bookmark_unmoved(conn: Connection, pipeline: str, read_token: int | None) -> None:
    """Exact under the locked lease row: every bookmark write holds that lock too."""
    query = select(bookmarks.c.token, bookmarks.c.run_id).where(bookmarks.c.pipeline == pipeline)
    row = conn.execute(query).one_or_none()
    if (None if row is None else row.token) != read_token:
        writer = "it was cleared" if row is None else f"run {row.run_id} (token {row.token})"
        raise BookmarkMoved(
            f"pipeline {pipeline!r}: the bookmark this process started from was replaced "
            f"meanwhile by {writer}; another run ran beside this one. Nothing was written: "
            "run again to start from the new bookmark."
        )


def _claim_lost_message(pipeline: str, claim: int, token: int) -> str:
    why = (
        "a live run held the lease when this process read its state"
        if claim == 0
        else f"another run took the lease (token {token}) after this process read its state"
    )
    return (
        f"pipeline {pipeline!r}: {why}, and this process's target committed under token "
        f"{claim}, which is not this run's. Nothing was written: run again."
    )


def _mark_reclaimed(conn: Connection, run_id: int, now: datetime, *, forced: bool) -> None:
    reason = "forced out" if forced else "no heartbeat within its lease"
    conn.execute(
        update(runs)
        .where((runs.c.run_id == run_id) & (runs.c.status == RUNNING))
        .values(status=RECLAIMED, ended_at=now, error=f"lease reclaimed: {reason}")
    )


def _lost_message(conn: Connection, lease: Lease) -> str:
    row = conn.execute(select(leases).where(leases.c.pipeline == lease.pipeline)).one_or_none()
    now_held = (
        f"it is now held by run {row.run_id} with token {row.token}"
        if row is not None and row.run_id is not None
        else f"the lease is free at token {row.token if row is not None else '?'}"
    )
    return (
        f"run {lease.run_id} of pipeline {lease.pipeline!r} lost its lease (token {lease.token}): "
        f"{now_held}. Its heartbeat, bookmark and finish are refused; the run stops."
    )
