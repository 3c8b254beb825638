"""Read-only views: bookmarks, every pipeline's lease and latest run, runs with their counts.

Ages and expiries are measured with the database clock, like the leases themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select

from state_service.schema import SUCCESS, bookmarks, leases, run_streams, runs
from state_service.store import Store

# (stream, tap records, target rows, tap lag seconds); None: not reported
Counts = list[tuple[str, Any, Any, Any]]


def read_bookmark(store: Store, pipeline: str) -> str | None:
    return read_bookmark_and_token(store, pipeline)[0]


def read_bookmark_and_token(store: Store, pipeline: str) -> tuple[str | None, int | None]:
    """The pipeline's state and the token of the run that wrote it, read together."""
    query = select(bookmarks.c.state, bookmarks.c.token).where(bookmarks.c.pipeline == pipeline)
    with store.reading() as conn:
        row = conn.execute(query).one_or_none()
    return (None, None) if row is None else (str(row.state), int(row.token))


def pipelines_with_bookmarks(store: Store, like: str | None = None) -> list[str]:
    query = select(bookmarks.c.pipeline).order_by(bookmarks.c.pipeline)
    if like is not None:
        query = query.where(bookmarks.c.pipeline.like(like))
    with store.reading() as conn:
        return [str(p) for p in conn.execute(query).scalars()]


@dataclass(frozen=True)
class PipelineView:
    pipeline: str
    status: str  # of its latest run
    started: datetime
    heartbeat_age: float
    holder: str | None  # "run N host:pid" while a run holds the lease
    expires_in: float | None  # seconds until the holder's lease runs out (negative: stale)
    bookmark_age: float | None

    @property
    def stale(self) -> bool:
        return self.expires_in is not None and self.expires_in <= 0


@dataclass(frozen=True)
class RunView:
    run_id: int
    pipeline: str
    token: int
    kind: str
    status: str
    started: datetime
    last_heartbeat: datetime
    ended: datetime | None
    lease_seconds: float
    holder: str
    exit_code: int | None
    tap_exit_code: int | None
    target_exit_code: int | None
    error: str
    counts: Counts

    @property
    def counts_disagree(self) -> bool:
        return counts_disagree(self.counts)


def pipelines(store: Store) -> tuple[datetime, list[PipelineView]]:
    """The database's now, and one view per pipeline."""
    latest = (
        select(runs.c.pipeline, func.max(runs.c.run_id).label("run_id"))
        .group_by(runs.c.pipeline)
        .subquery()
    )
    query = (
        select(runs, leases.c.run_id.label("holder"), leases.c.expires_at, bookmarks.c.written_at)
        .join(latest, latest.c.run_id == runs.c.run_id)
        .join(leases, leases.c.pipeline == runs.c.pipeline)
        .outerjoin(bookmarks, bookmarks.c.pipeline == runs.c.pipeline)
        .order_by(runs.c.pipeline)
    )
    with store.reading() as conn:
        now = store.now(conn)
        rows = conn.execute(query).all()

    def age(value: Any) -> float | None:
        return None if value is None else (now - store.to_datetime(value)).total_seconds()

    views = [
        PipelineView(
            pipeline=row.pipeline,
            status=row.status,
            started=store.to_datetime(row.started_at),
            heartbeat_age=age(row.last_heartbeat_at) or 0.0,
            holder=None if row.holder is None else f"run {row.holder} {row.host}:{row.pid}",
            expires_in=None
            if row.holder is None
            else (store.to_datetime(row.expires_at) - now).total_seconds(),
            bookmark_age=age(row.written_at),
        )
        for row in rows
    ]
    return now, views


def recent_runs(store: Store, limit: int, pipeline: str | None = None) -> list[RunView]:
    """The latest runs (of one pipeline, or of all), newest first, with their counts."""
    query: Select[Any] = select(runs).order_by(runs.c.run_id.desc()).limit(limit)
    if pipeline is not None:
        query = query.where(runs.c.pipeline == pipeline)
    return _run_views(store, query)


def _run_views(store: Store, query: Select[Any]) -> list[RunView]:
    with store.reading() as conn:
        rows = conn.execute(query).all()
    counts = stream_counts(store, [row.run_id for row in rows])
    return [
        RunView(
            run_id=row.run_id,
            pipeline=row.pipeline,
            token=row.token,
            kind=row.kind,
            status=row.status,
            started=store.to_datetime(row.started_at),
            last_heartbeat=store.to_datetime(row.last_heartbeat_at),
            ended=None if row.ended_at is None else store.to_datetime(row.ended_at),
            lease_seconds=row.lease_seconds,
            holder=f"{row.host}:{row.pid}",
            exit_code=row.exit_code,
            tap_exit_code=row.tap_exit_code,
            target_exit_code=row.target_exit_code,
            error=row.error or "",
            counts=counts.get(row.run_id, []),
        )
        for row in rows
    ]


def stream_counts(store: Store, run_ids: list[int]) -> dict[int, Counts]:
    """Per run: (stream, tap records, target rows)."""
    query = (
        select(run_streams)
        .where(run_streams.c.run_id.in_(run_ids))
        .order_by(run_streams.c.run_id, run_streams.c.stream)
    )
    with store.reading() as conn:
        rows = conn.execute(query).all()
    counts: dict[int, Counts] = {}
    for row in rows:
        counts.setdefault(row.run_id, []).append(
            (row.stream, row.tap_records, row.target_rows, row.lag_seconds)
        )
    return counts


def counts_disagree(counts: Counts) -> bool:
    """A stream whose tap and target both reported counts, and they differ."""
    return any(t is not None and r is not None and t != r for _, t, r, _ in counts)


def counts_text(counts: Counts) -> str:
    """``stream tap/target`` per stream, ``?`` for a side that reported nothing."""
    if not counts:
        return "-"
    text = ", ".join(f"{s} {_known(t)}/{_known(r)}" for s, t, r, _ in counts)
    return f"{text} MISMATCH" if counts_disagree(counts) else text


def lags_text(counts: Counts) -> str:
    """``stream SECONDSs`` per stream whose tap reported its replication lag, else ``-``."""
    lags = [f"{s} {lag:.0f}s" for s, _, _, lag in counts if lag is not None]
    return ", ".join(lags) or "-"


def last_successes(store: Store) -> dict[str, datetime]:
    """Per pipeline, the end of its latest successful run."""
    query = (
        select(runs.c.pipeline, func.max(runs.c.ended_at))
        .where(runs.c.status == SUCCESS)
        .group_by(runs.c.pipeline)
    )
    with store.reading() as conn:
        return {str(p): store.to_datetime(at) for p, at in conn.execute(query).all()}


def latest_finished_runs(store: Store) -> list[RunView]:
    """Per pipeline, its latest run that ended, with its counts and lags."""
    latest = (
        select(func.max(runs.c.run_id))
        .where(runs.c.ended_at.is_not(None), runs.c.kind != "edit")
        .group_by(runs.c.pipeline)
    )
    return _run_views(store, select(runs).where(runs.c.run_id.in_(latest)))


def status(store: Store) -> list[dict[str, str]]:
    """`state-service status`: one row per pipeline."""
    _, views = pipelines(store)
    return [
        {
            "pipeline": v.pipeline,
            "status": v.status,
            "started": v.started.isoformat(timespec="seconds"),
            "heartbeat_age": f"{v.heartbeat_age:.1f}s",
            "holder": "-" if v.holder is None else v.holder + (" (expired)" if v.stale else ""),
            "bookmark_age": "-" if v.bookmark_age is None else f"{v.bookmark_age:.1f}s",
        }
        for v in views
    ]


def run_history(store: Store, pipeline: str, limit: int) -> list[dict[str, Any]]:
    """`state-service runs`: a pipeline's latest runs, newest first."""
    return [
        {
            "run_id": r.run_id,
            "token": r.token,
            "kind": r.kind,
            "status": r.status,
            "started": r.started.isoformat(timespec="seconds"),
            "ended": "-" if r.ended is None else r.ended.isoformat(timespec="seconds"),
            "holder": r.holder,
            "exit": _known(r.exit_code, "-"),
            "tap/target": f"{_known(r.tap_exit_code, '-')}/{_known(r.target_exit_code, '-')}",
            "records tap/target": counts_text(r.counts),
            "lag": lags_text(r.counts),
            "error": r.error,
        }
        for r in recent_runs(store, limit, pipeline)
    ]


def _known(value: Any, unknown: str = "?") -> str:
    return unknown if value is None else str(value)
