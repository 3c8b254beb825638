"""The state database: engine set-up, the database clock, and serialised migrations."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, func, inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.sql.elements import ColumnElement

from state_service.schema import metadata, schema_version

DEFAULT_URL = "sqlite:///.state-service/state.db"
URL_ENV = "STATE_SERVICE_DATABASE_URL"
# pg_advisory_lock key for migrations: a session lock, so it dies with its connection.
MIGRATION_LOCK_KEY = 0x5747E5E7


def _create_all(conn: Connection) -> None:
    metadata.create_all(conn)


MIGRATIONS: list[Callable[[Connection], None]] = [_create_all]


class Store:
    """One state database. SQLite transactions are BEGIN IMMEDIATE: writers queue, never race."""

    def __init__(self, url: str) -> None:
        sa_url = make_url(url)
        if sa_url.drivername in ("postgresql", "postgres"):
            sa_url = sa_url.set(drivername="postgresql+psycopg")
        self.is_sqlite = sa_url.get_backend_name() == "sqlite"
        if self.is_sqlite:
            self.engine = _sqlite_engine(sa_url.render_as_string(hide_password=False))
        else:
            self.engine = create_engine(sa_url)
            self.autocommit_engine = create_engine(sa_url, isolation_level="AUTOCOMMIT")
        self.migrate()

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        """A read: on PostgreSQL in autocommit (no BEGIN/COMMIT round trips)."""
        if self.is_sqlite:
            with self.transaction() as conn:
                yield conn
            return
        with self.autocommit_engine.connect() as conn:
            yield conn

    def now_sql(self) -> ColumnElement[Any]:
        """The database clock as an SQL expression (wall clock, not transaction start)."""
        if self.is_sqlite:
            return func.strftime("%Y-%m-%d %H:%M:%f", "now")
        return func.clock_timestamp()

    def now(self, conn: Connection) -> datetime:
        return self.to_datetime(conn.execute(select(self.now_sql())).scalar_one())

    @staticmethod
    def to_datetime(value: datetime | str) -> datetime:
        """A database timestamp as an aware UTC datetime (SQLite hands back text or naive)."""
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)

    def migrate(self) -> None:
        """Bring the schema up to date; concurrent migrators queue on a lock that dies with them."""
        with self.engine.connect() as conn:
            with conn.begin():
                if _version(conn) == len(MIGRATIONS):
                    return
            if not self.is_sqlite:
                conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
                conn.commit()
            try:
                with conn.begin():
                    for version in range(_version(conn), len(MIGRATIONS)):
                        MIGRATIONS[version](conn)
                        conn.execute(schema_version.insert().values(version=version + 1))
            finally:
                if not self.is_sqlite:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK_KEY})
                    conn.commit()

    def dispose(self) -> None:
        self.engine.dispose()
        if not self.is_sqlite:
            self.autocommit_engine.dispose()


def _version(conn: Connection) -> int:
    if not inspect(conn).has_table(schema_version.name):
        return 0
    return int(conn.execute(select(func.max(schema_version.c.version))).scalar() or 0)


def _sqlite_engine(url: str) -> Engine:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's begin() issue BEGIN IMMEDIATE itself (pysqlite would defer it).
        dbapi_connection.isolation_level = None
        dbapi_connection.execute("PRAGMA journal_mode=WAL")
        dbapi_connection.execute("PRAGMA busy_timeout=60000")

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def database_url(explicit: str | None = None) -> str:
    return explicit or os.environ.get(URL_ENV) or DEFAULT_URL
