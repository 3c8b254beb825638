"""Find or start the PostgreSQL server that tests, benchmarks and the demo use.

Order, as the README promises:
1. the server named by ``DATABASE_URL`` or the libpq ``PG*`` variables;
2. the server on 127.0.0.1:5432 (user ``postgres``, trust auth) if it accepts a connection;
3. an embedded server from the ``pgserver`` package, kept in ``.pgdata/`` (Unix socket only).

``python -m safe_singer_testing.postgres`` prints the chosen server as a libpq URL.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

import psycopg
from psycopg import sql

# The package is installed editable from the repository (requirements-dev.txt): the checkout is
# two folders up, where the caches (.pgdata/, .peers/, .emulators/) and the .venv live.
REPO_ROOT = Path(__file__).resolve().parents[2]
EMBEDDED_PGDATA = REPO_ROOT / ".pgdata"
PG_ENV_VARS = ("PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE")


@dataclass(frozen=True)
class PgServer:
    """Connection parameters of one PostgreSQL database."""

    host: str
    port: int
    user: str
    password: str | None
    dbname: str
    origin: str

    def conninfo(self) -> str:
        parts = {
            "host": self.host,
            "port": str(self.port),
            "user": self.user,
            "dbname": self.dbname,
        }
        if self.password:
            parts["password"] = self.password
        return psycopg.conninfo.make_conninfo(**parts)

    def url(self, driver: str = "postgresql") -> str:
        """A URL for libpq (``postgresql``) or SQLAlchemy (``postgresql+psycopg``)."""
        auth = quote(self.user, safe="")
        if self.password:
            auth += ":" + quote(self.password, safe="")
        if self.host.startswith("/"):
            socket = quote(self.host, safe="")
            return f"{driver}://{auth}@/{self.dbname}?host={socket}&port={self.port}"
        return f"{driver}://{auth}@{self.host}:{self.port}/{self.dbname}"

    def target_config(self) -> dict[str, object]:
        """The settings target-postgres-atomic takes for this database."""
        config: dict[str, object] = {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "database": self.dbname,
        }
        if self.password:
            config["password"] = self.password
        return config

    def with_database(self, dbname: str) -> PgServer:
        return replace(self, dbname=dbname)

    def connect(self, **kwargs: object) -> psycopg.Connection:
        return psycopg.connect(self.conninfo(), **kwargs)  # type: ignore[arg-type]


def _from_url(url: str, origin: str) -> PgServer:
    parts = urlsplit(url.replace("postgresql+psycopg://", "postgresql://"))
    query = dict(p.split("=", 1) for p in parts.query.split("&") if "=" in p)
    host = unquote(query.get("host", parts.hostname or "127.0.0.1"))
    return PgServer(
        host=host,
        port=int(query.get("port", parts.port or 5432)),
        user=unquote(parts.username or "postgres"),
        password=unquote(parts.password) if parts.password else None,
        dbname=(parts.path or "/postgres").lstrip("/") or "postgres",
        origin=origin,
    )


def _answers(server: PgServer) -> bool:
    try:
        with psycopg.connect(server.conninfo(), connect_timeout=3) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.OperationalError:
        return False


def start_embedded(pgdata: Path = EMBEDDED_PGDATA, keep_running: bool = True) -> PgServer:
    """Start (or reuse) a pgserver PostgreSQL in ``pgdata``.

    ``keep_running`` leaves the server up after this process exits, so a demo or a test run
    started later reuses it instead of paying the start-up again.
    """
    try:
        import pgserver
    except ImportError as exc:  # pragma: no cover - pgserver is a dev dependency
        raise RuntimeError(
            "No PostgreSQL server answers and the 'pgserver' package is not installed. "
            "Run `make install`, or start PostgreSQL and set DATABASE_URL."
        ) from exc
    pgdata.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(pgdata, cleanup_mode=None if keep_running else "stop")
    return _from_url(server.get_uri(), origin=f"embedded pgserver in {pgdata}")


def find_server() -> PgServer:
    """The server to use, following the documented order; never silently nothing."""
    if url := os.environ.get("DATABASE_URL"):
        server = _from_url(url, origin="DATABASE_URL")
        if not _answers(server):
            raise RuntimeError(
                "DATABASE_URL is set but no PostgreSQL answers there. Start that server, "
                "or unset DATABASE_URL to use 127.0.0.1:5432 or the embedded server."
            )
        return server
    if any(os.environ.get(v) for v in PG_ENV_VARS):
        server = PgServer(
            host=os.environ.get("PGHOST", "127.0.0.1"),
            port=int(os.environ.get("PGPORT", "5432")),
            user=os.environ.get("PGUSER", "postgres"),
            password=os.environ.get("PGPASSWORD"),
            dbname=os.environ.get("PGDATABASE", "postgres"),
            origin="PG* environment variables",
        )
        if not _answers(server):
            raise RuntimeError(
                "PG* variables are set but no PostgreSQL answers at "
                f"{server.host}:{server.port}. Start it, or unset them."
            )
        return server
    local = PgServer("127.0.0.1", 5432, "postgres", None, "postgres", origin="127.0.0.1:5432")
    if _answers(local):
        return local
    return start_embedded()


def create_database(server: PgServer, prefix: str = "t") -> PgServer:
    """A new, empty database on ``server``; each test gets its own."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server.conninfo(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return server.with_database(name)


def drop_database(server: PgServer, admin: PgServer) -> None:
    with psycopg.connect(admin.conninfo(), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(server.dbname))
        )


@contextmanager
def fresh_database(admin: PgServer, prefix: str = "t") -> Iterator[PgServer]:
    db = create_database(admin, prefix)
    try:
        yield db
    finally:
        drop_database(db, admin)


if __name__ == "__main__":
    found = find_server()
    print(found.url())
