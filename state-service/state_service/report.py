"""Read-only views: bookmarks, the status of every pipeline, a pipeline's runs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from state_service.schema import bookmarks, leases, run_streams, runs
from state_service.store import Store


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


def _age(store: Store, now: datetime, value: Any) -> str:
    if value is None:
        return "-"
    return f"{(now - store.to_datetime(value)).total_seconds():.1f}s"


def status(store: Store) -> list[dict[str, str]]:
    """One row per pipeline: its latest run, its holder (if any), ages by the database clock."""
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
    table = []
    for row in rows:
        holder = "-"
        if row.holder is not None:
            stale = " (expired)" if store.to_datetime(row.expires_at) <= now else ""
            holder = f"run {row.holder} {row.host}:{row.pid}{stale}"
        table.append(
            {
                "pipeline": row.pipeline,
                "status": row.status,
                "started": store.to_datetime(row.started_at).isoformat(timespec="seconds"),
                "heartbeat_age": _age(store, now, row.last_heartbeat_at),
                "holder": holder,
                "bookmark_age": _age(store, now, row.written_at),
            }
        )
    return table


def stream_counts(store: Store, run_ids: list[int]) -> dict[int, list[tuple[str, Any, Any]]]:
    """Per run: (stream, tap records, target rows), None where a side reported nothing."""
    query = (
        select(run_streams)
        .where(run_streams.c.run_id.in_(run_ids))
        .order_by(run_streams.c.run_id, run_streams.c.stream)
    )
    with store.reading() as conn:
        rows = conn.execute(query).all()
    counts: dict[int, list[tuple[str, Any, Any]]] = {}
    for row in rows:
        counts.setdefault(row.run_id, []).append((row.stream, row.tap_records, row.target_rows))
    return counts


def counts_disagree(counts: list[tuple[str, Any, Any]]) -> bool:
    """A stream whose tap and target both reported counts that differ."""
    return any(t is not None and r is not None and t != r for _, t, r in counts)


def counts_text(counts: list[tuple[str, Any, Any]]) -> str:
    """``stream tap/target`` per stream, ``?`` for a side that reported nothing."""
    if not counts:
        return "-"
    text = ", ".join(f"{s} {_known(t)}/{_known(r)}" for s, t, r in counts)
    return f"{text} MISMATCH" if counts_disagree(counts) else text


def _known(value: Any) -> str:
    return "?" if value is None else str(value)


def run_history(store: Store, pipeline: str, limit: int) -> list[dict[str, Any]]:
    query = (
        select(runs).where(runs.c.pipeline == pipeline).order_by(runs.c.run_id.desc()).limit(limit)
    )
    with store.reading() as conn:
        rows = conn.execute(query).all()
    counts = stream_counts(store, [row.run_id for row in rows])
    return [
        {
            "run_id": row.run_id,
            "token": row.token,
            "kind": row.kind,
            "status": row.status,
            "started": store.to_datetime(row.started_at).isoformat(timespec="seconds"),
            "ended": store.to_datetime(row.ended_at).isoformat(timespec="seconds")
            if row.ended_at is not None
            else "-",
            "holder": f"{row.host}:{row.pid}",
            "exit": "-" if row.exit_code is None else str(row.exit_code),
            "tap/target": f"{_code(row.tap_exit_code)}/{_code(row.target_exit_code)}",
            "records tap/target": counts_text(counts.get(row.run_id, [])),
            "error": row.error or "",
        }
        for row in rows
    ]


def _code(value: int | None) -> str:
    return "-" if value is None else str(value)
