"""Tables of the state database and their migrations. Lease rows are never deleted: their
token only grows."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    inspect,
    text,
)

metadata = MetaData()

RUNNING, SUCCESS, FAILED, RECLAIMED = "RUNNING", "SUCCESS", "FAILED", "RECLAIMED"

schema_version = Table(
    "state_service_schema",
    metadata,
    Column("version", Integer, primary_key=True),
)

runs = Table(
    "state_service_runs",
    metadata,
    Column("run_id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("pipeline", String(255), nullable=False),
    Column("token", BigInteger, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("last_heartbeat_at", DateTime(timezone=True), nullable=False),
    Column("ended_at", DateTime(timezone=True)),
    Column("lease_seconds", Float, nullable=False),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("exit_code", Integer),
    Column("tap_exit_code", Integer),
    Column("target_exit_code", Integer),
    Column("error", Text),
    # The newest commit in the target's state table seen at the run's start (target clock).
    Column("target_state_mark", Text),
    Index("state_service_runs_pipeline", "pipeline", "run_id"),
)

leases = Table(
    "state_service_leases",
    metadata,
    Column("pipeline", String(255), primary_key=True),
    Column("token", BigInteger, nullable=False),
    Column("run_id", ForeignKey(runs.c.run_id)),
    Column("expires_at", DateTime(timezone=True)),
)

bookmarks = Table(
    "state_service_bookmarks",
    metadata,
    Column("pipeline", String(255), primary_key=True),
    Column("state", Text, nullable=False),
    Column("token", BigInteger, nullable=False),
    Column("run_id", ForeignKey(runs.c.run_id), nullable=False),
    Column("written_at", DateTime(timezone=True), nullable=False),
)

bookmark_history = Table(
    "state_service_bookmark_history",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("pipeline", String(255), nullable=False),
    Column("state", Text),
    Column("token", BigInteger, nullable=False),
    Column("run_id", ForeignKey(runs.c.run_id), nullable=False),
    Column("written_at", DateTime(timezone=True), nullable=False),
    Index("state_service_bookmark_history_pipeline", "pipeline", "id"),
)

# Per run and stream: records the tap reported emitting, rows the target reported committing,
# the tap's last reported replication lag (seconds).
run_streams = Table(
    "state_service_run_streams",
    metadata,
    Column("run_id", ForeignKey(runs.c.run_id), nullable=False),
    Column("stream", String(255), nullable=False),
    Column("tap_records", BigInteger),
    Column("target_rows", BigInteger),
    Column("lag_seconds", Float),
    PrimaryKeyConstraint("run_id", "stream"),
)


def _create_first_tables(conn: Connection) -> None:
    tables = [schema_version, runs, leases, bookmarks, bookmark_history]
    metadata.create_all(conn, tables=tables)


def _add_run_streams(conn: Connection) -> None:
    run_streams.create(conn, checkfirst=True)  # a new database gets later columns here too


def _add_lag_and_target_mark(conn: Connection) -> None:
    """Nullable columns: old rows read as "no lag reported" and "no mark"; no table rewrite in
    either database (PostgreSQL and SQLite add a NULL column in the catalog only). A new
    database got them when its tables were created."""
    for table, column, sql_type in (
        (run_streams.name, "lag_seconds", "FLOAT"),
        (runs.name, "target_state_mark", "TEXT"),
    ):
        if column not in {c["name"] for c in inspect(conn).get_columns(table)}:
            conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {column} {sql_type}"))


MIGRATIONS: list[Callable[[Connection], None]] = [
    _create_first_tables,
    _add_run_streams,
    _add_lag_and_target_mark,
]
