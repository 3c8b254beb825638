"""The committed state: `<schema>._sdc_target_state`, fenced by the run's lease token.

Each commit that carries a STATE writes it here, in the data's transaction, once per stream
the run has seen (one row per stream, replaced by the next commit). A runner that leases its
runs (`state-service run`, its Meltano backend) tells the target which pipeline it loads and
that run's fencing token (STATE_SERVICE_PIPELINE, STATE_SERVICE_TOKEN); both are stored with
each row. Tokens of a pipeline only grow, so a row of a higher token means a newer run of the
pipeline has committed: this run's lease was taken, and it commits nothing more (the store
rejects the stale writer). Without those variables (a bare pipe) nothing is fenced and the
rows carry NULL, as rows written before the columns existed do.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

import psycopg
from psycopg import sql
from singer_sdk.exceptions import ConfigurationError, FatalSyncError

from target_postgres_atomic.connector import existing_columns, lock_table

STATE_TABLE = "_sdc_target_state"
PIPELINE_ENV = "STATE_SERVICE_PIPELINE"
TOKEN_ENV = "STATE_SERVICE_TOKEN"
# Added after the first release: a table created before them gets them, rows it holds stay NULL.
ADDED_COLUMNS = {"pipeline": "text", "fencing_token": "bigint"}


class FencedOff(FatalSyncError):
    """A newer run of the same pipeline has committed its state: this run lost its lease."""


@dataclass(frozen=True)
class RunFence:
    """The pipeline this run loads for and the fencing token of its lease."""

    pipeline: str
    token: int

    @classmethod
    def from_environment(cls, env: Mapping[str, str] = os.environ) -> RunFence | None:
        """The runner's word, or None for a run under no lease (a bare shell pipe)."""
        pipeline, token = pipeline_from_environment(env), env.get(TOKEN_ENV)
        if not pipeline or token is None:
            return None
        try:
            return cls(pipeline, int(token))
        except ValueError:
            raise ConfigurationError(
                f"{TOKEN_ENV} must be the run's fencing token, an integer; it is {token!r}"
            ) from None


def pipeline_from_environment(env: Mapping[str, str] = os.environ) -> str | None:
    """The pipeline a runner names (None: a run under no lease, such as a bare pipe)."""
    return env.get(PIPELINE_ENV) or None


def _table(schema: str) -> sql.Identifier:
    return sql.Identifier(schema, STATE_TABLE)


def ensure(conn: psycopg.Connection, schema: str, fence: RunFence | None) -> None:
    """Create or migrate the table (caller's transaction, table lock held); a run already
    fenced off is refused here, before it loads anything."""
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
    conn.execute(
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} (stream text PRIMARY KEY, state jsonb NOT NULL, "
            "committed_at timestamp with time zone NOT NULL, pipeline text, fencing_token bigint)"
        ).format(_table(schema))
    )
    # Looked up first: ALTER TABLE takes an exclusive lock even when nothing is missing, and
    # every commit of every run in the schema writes this table.
    have = existing_columns(conn, schema, STATE_TABLE)
    for name, pg_type in ADDED_COLUMNS.items():
        if name not in have:
            conn.execute(
                sql.SQL("ALTER TABLE {} ADD COLUMN {} {}").format(
                    _table(schema), sql.Identifier(name), sql.SQL(pg_type)
                )
            )
    if fence is not None:
        hold_fence(conn, schema, fence)


def hold_fence(conn: psycopg.Connection, schema: str, fence: RunFence) -> None:
    """Refuse a run whose lease was taken: a newer token of its pipeline has a row here.

    Called at the start of each of the run's transactions; the pipeline's lock (a transaction
    lock, taken after the data tables' locks, so never in a cycle with them) makes the check
    and everything the transaction writes one step for the pipeline's other runs: once a
    newer token's row is committed, no older token commits anything, data or state.
    """
    lock_table(conn, schema, f"{STATE_TABLE} of pipeline {fence.pipeline}")
    newest = conn.execute(
        sql.SQL("SELECT max(fencing_token) FROM {} WHERE pipeline = %s").format(_table(schema)),
        (fence.pipeline,),
    ).fetchone()
    if newest is None or newest[0] is None or newest[0] <= fence.token:
        return
    raise FencedOff(
        f"pipeline '{fence.pipeline}': a newer run (fencing token {newest[0]}) has committed "
        f"its state in {schema}.{STATE_TABLE}, so this run (token {fence.token}) has lost its "
        "lease and commits nothing more (nothing of the batch at hand was committed). If the "
        "state database was replaced, its tokens started again: delete this pipeline's rows "
        f"from {schema}.{STATE_TABLE}."
    )


def save(
    conn: psycopg.Connection,
    schema: str,
    streams: list[str],
    state: str,
    fence: RunFence | None,
) -> None:
    """Record the STATE that covers these streams' committed rows (caller's transaction, in
    which a fenced run has called `hold_fence` first)."""
    with conn.cursor() as cur:
        cur.executemany(
            sql.SQL(
                "INSERT INTO {} (stream, state, committed_at, pipeline, fencing_token) "
                "VALUES (%s, %s::jsonb, now(), %s, %s) "
                "ON CONFLICT (stream) DO UPDATE SET state = EXCLUDED.state, "
                "committed_at = EXCLUDED.committed_at, pipeline = EXCLUDED.pipeline, "
                "fencing_token = EXCLUDED.fencing_token"
            ).format(_table(schema)),
            [(stream, state, *_tag(fence)) for stream in streams],
        )


def _tag(fence: RunFence | None) -> tuple[str | None, int | None]:
    """What a row carries: the pipeline and token of its run, NULL for a bare pipe."""
    return (None, None) if fence is None else (fence.pipeline, fence.token)


def newest(conn: psycopg.Connection, schema: str, pipeline: str | None) -> str | None:
    """The state a resume starts from: the newest committed by runs of ``pipeline`` (None: runs
    under no lease, such as bare pipes), of the highest token among them. Reads a table of any
    version, and only reads."""
    # Quoted: to_regclass folds an unquoted name to lower case, as SQL does ("Jira" is not jira).
    exists = conn.execute("SELECT to_regclass(%s)", (_table(schema).as_string(conn),)).fetchone()
    if exists is None or exists[0] is None:
        return None
    # to_jsonb(row): a table created before the added columns reads as NULL in them.
    row = conn.execute(
        sql.SQL(
            "SELECT state::text FROM {} AS t "
            "WHERE to_jsonb(t)->>'pipeline' IS NOT DISTINCT FROM %s "
            "ORDER BY (to_jsonb(t)->>'fencing_token')::bigint DESC NULLS LAST, "
            "committed_at DESC LIMIT 1"
        ).format(_table(schema)),
        (pipeline,),
    ).fetchone()
    return None if row is None else str(row[0])
