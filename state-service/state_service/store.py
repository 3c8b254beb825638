"""The state database: engine set-up, timeouts, clear errors, retries, and migrations."""

from __future__ import annotations

import os
import random
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, func, inspect, select, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.sql.elements import ColumnElement

from state_service.errors import DatabaseUnavailable, describe_error
from state_service.schema import MIGRATIONS, schema_version
from state_service.urls import check_usable, display_url, scrub

DEFAULT_URL = "sqlite:///.state-service/state.db"
URL_ENV = "STATE_SERVICE_DATABASE_URL"
# pg_advisory_lock key for migrations: a session lock, so it dies with its connection.
MIGRATION_LOCK_KEY = 0x5747E5E7
T = TypeVar("T")


@dataclass(frozen=True)
class Timeouts:
    """How long one connection attempt and one statement may take before they fail."""

    connect: float = 10.0
    statement: float = 30.0


class Store:
    """One state database. SQLite transactions are BEGIN IMMEDIATE: writers queue, never race.

    Every database error leaves as DatabaseUnavailable, naming the database (never its
    password). ``read_only`` opens it so that it cannot be written (and never migrates).
    """

    def __init__(
        self, url: str, timeouts: Timeouts = Timeouts(), *, read_only: bool = False
    ) -> None:
        sa_url = check_usable(url)
        self.display = display_url(sa_url)
        self._url = url  # kept to scrub its passwords from driver messages
        self.is_sqlite = sa_url.get_backend_name() == "sqlite"
        self.read_only = read_only
        with self._translated():
            if self.is_sqlite:
                self.engine = _sqlite_engine(sa_url, timeouts, read_only)
            else:
                args = _postgres_connect_args(timeouts, read_only)
                self.engine = create_engine(sa_url, pool_pre_ping=True, connect_args=args)
                self.autocommit_engine = create_engine(
                    sa_url, pool_pre_ping=True, connect_args=args, isolation_level="AUTOCOMMIT"
                )
            if read_only:
                self._check_schema()
            else:
                self.migrate()

    @contextmanager
    def _translated(self) -> Iterator[None]:
        """Database and file errors as one line naming the database."""
        try:
            yield
        except SQLAlchemyError as exc:
            transient = not self.is_sqlite and isinstance(exc, (OperationalError, InterfaceError))
            if isinstance(exc, DBAPIError) and exc.connection_invalidated:
                transient = True
            reason = scrub(describe_error(exc), self._url)
            raise DatabaseUnavailable(self.display, reason, transient) from exc
        except OSError as exc:
            reason = scrub(describe_error(exc), self._url)
            raise DatabaseUnavailable(self.display, reason, False) from exc

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        with self._translated(), self.engine.begin() as conn:
            yield conn

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        """A read: on PostgreSQL in autocommit (no BEGIN/COMMIT round trips)."""
        if self.is_sqlite:
            with self.transaction() as conn:
                yield conn
            return
        with self.autocommit() as conn:
            yield conn

    @contextmanager
    def autocommit(self) -> Iterator[Connection]:
        """PostgreSQL: a connection where each statement commits on its own."""
        with self._translated(), self.autocommit_engine.connect() as conn:
            yield conn

    def retrying(self, action: Callable[[], T], *, until: float, what: str) -> T:
        """``action`` again after a transient fault, with backoff, until ``until`` (monotonic).

        Each attempt is a whole transaction that checks its fence again, so a retry never
        writes for a run that lost its lease in the meantime.
        """
        delay = 0.1
        while True:
            try:
                return action()
            except DatabaseUnavailable as exc:
                left = until - time.monotonic()
                if not exc.transient or left <= delay:
                    raise
                print(
                    f"state-service: {what} failed ({exc.reason}); reconnecting in "
                    f"{delay:.1f}s, giving up in {left:.1f}s while the lease is surely held",
                    file=sys.stderr,
                    flush=True,
                )
                time.sleep(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, 2.0)

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

    def _check_schema(self) -> None:
        with self.engine.connect() as conn:
            version = _version(conn)
        if version != len(MIGRATIONS):
            reason = f"schema version {version}, expected {len(MIGRATIONS)}"
            if version < len(MIGRATIONS):
                reason += ": run any state-service command against it once to create or migrate it"
            raise DatabaseUnavailable(self.display, reason, False)

    def dispose(self) -> None:
        self.engine.dispose()
        if not self.is_sqlite:
            self.autocommit_engine.dispose()


def _version(conn: Connection) -> int:
    if not inspect(conn).has_table(schema_version.name):
        return 0
    return int(conn.execute(select(func.max(schema_version.c.version))).scalar() or 0)


def _postgres_connect_args(timeouts: Timeouts, read_only: bool) -> dict[str, Any]:
    """libpq: bounded connect, server-side statement timeout, and a TCP timeout for a server
    that stops answering mid-statement (statement_timeout cannot fire on a dead link)."""
    statement_ms = int(timeouts.statement * 1000)
    options = f"-c statement_timeout={statement_ms}"
    if read_only:
        options += " -c default_transaction_read_only=on"
    return {
        "connect_timeout": max(1, round(timeouts.connect)),
        "options": options,
        "tcp_user_timeout": statement_ms,
        "keepalives_idle": max(1, round(timeouts.statement / 3)),
        "keepalives_interval": max(1, round(timeouts.statement / 6)),
        "keepalives_count": 3,
    }


def _sqlite_engine(url: URL, timeouts: Timeouts, read_only: bool) -> Engine:
    database = url.database
    if read_only and database and database != ":memory:":
        if not Path(database).is_file():
            raise FileNotFoundError(f"no such file: {database}")
        # SQLite's own read-only mode: no writes, not even a WAL checkpoint or a migration.
        url = url.set(database=f"file:{Path(database).resolve()}?mode=ro", query={"uri": "true"})
    elif database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url, connect_args={"timeout": timeouts.statement, "check_same_thread": False}
    )
    busy_ms = int(timeouts.statement * 1000)

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's begin() issue BEGIN IMMEDIATE itself (pysqlite would defer it).
        dbapi_connection.isolation_level = None
        if not read_only:
            dbapi_connection.execute("PRAGMA journal_mode=WAL")
        dbapi_connection.execute(f"PRAGMA busy_timeout={busy_ms}")

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


def database_url(explicit: str | None = None) -> str:
    return explicit or os.environ.get(URL_ENV) or DEFAULT_URL
