"""Bookmark history retention: keep the newest N writes per pipeline and none older than D days.

The newest history row of a pipeline is always kept. Pruning is not fenced: the history is a
record for people, the current bookmark lives in its own table and is never touched here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import and_, delete, func, select

from state_service.schema import bookmark_history
from state_service.store import Store


@dataclass(frozen=True)
class Retention:
    keep: int = 1000  # newest writes kept per pipeline (0: no count limit)
    days: float = 90.0  # writes older than this go (0: no age limit)


def prune(store: Store, retention: Retention, pipeline: str | None = None) -> int:
    """Apply ``retention`` to one pipeline's history (or every pipeline's); rows deleted."""
    if pipeline is None:
        with store.reading() as conn:
            names = list(conn.execute(select(bookmark_history.c.pipeline).distinct()).scalars())
    else:
        names = [pipeline]
    return sum(_prune_one(store, retention, name) for name in names)


def _prune_one(store: Store, retention: Retention, pipeline: str) -> int:
    ids = select(bookmark_history.c.id).where(bookmark_history.c.pipeline == pipeline)
    newest = ids.order_by(bookmark_history.c.id.desc()).limit(1).scalar_subquery()
    of_pipeline = bookmark_history.c.pipeline == pipeline
    deleted = 0
    with store.transaction() as conn:
        if retention.keep > 0:
            oldest_kept = (
                ids.order_by(bookmark_history.c.id.desc())
                .offset(retention.keep - 1)
                .limit(1)
                .scalar_subquery()
            )
            result = conn.execute(
                delete(bookmark_history).where(of_pipeline, bookmark_history.c.id < oldest_kept)
            )
            deleted += result.rowcount
        if retention.days > 0:
            cutoff = store.now(conn) - timedelta(days=retention.days)
            old = and_(
                of_pipeline,
                bookmark_history.c.written_at < cutoff,
                bookmark_history.c.id < newest,
            )
            deleted += conn.execute(delete(bookmark_history).where(old)).rowcount
    return deleted


def history_count(store: Store, pipeline: str) -> int:
    with store.reading() as conn:
        query = select(func.count()).where(bookmark_history.c.pipeline == pipeline)
        return int(conn.execute(query).scalar_one())
