"""Connections, table DDL and introspection (psycopg 3; every identifier quoted)."""

from __future__ import annotations

import configparser
import getpass
import hashlib
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from singer_sdk.exceptions import ConfigurationError

from target_postgres_atomic import tls
from target_postgres_atomic.columns import LossyTypeChange, widened
from target_postgres_atomic.merge import KeyCollations
from target_postgres_atomic.spec import TABLE_VERSION, TableSpec, generated_name

LOCK_BACKSTOP_SECONDS = 10
_POSTGRES_URL = re.compile(r"^postgres(ql)?(\+\w+)?://")


class KeyChangeRefused(ValueError):
    """New key_properties the stored rows cannot take as a primary key."""


def conninfo(config: Mapping[str, Any]) -> str:
    """libpq connection string from MeltanoLabs-style settings (never logged: has secrets).

    With `ssh_tunnel` enabled it opens the tunnel (once per process) and points at its end.
    """
    built = _direct_conninfo(config)
    tunnel_settings = config.get("ssh_tunnel") or {}
    if not tunnel_settings.get("enable"):
        return built
    parts = psycopg.conninfo.conninfo_to_dict(built)
    remote = (str(parts.get("host") or ""), int(parts.get("port") or 5432))
    if not remote[0] or remote[0].startswith("/"):
        raise ConfigurationError(
            "ssh_tunnel is enabled but host is not set (or is a socket folder): set host to "
            "the database host as the bastion sees it"
        )
    timeout = float(config.get("connect_timeout", 10))
    # Imported here: paramiko (and its cryptography) costs ~0.1 s of start-up CPU per run,
    # which only tunnelled runs need.
    from target_postgres_atomic import tunnel

    local = tunnel.local_endpoint(tunnel_settings, remote, timeout).local
    # The server's name stays for certificate checks (verify-full) through the tunnel.
    return psycopg.conninfo.make_conninfo(built, host=remote[0], hostaddr=local[0], port=local[1])


def _direct_conninfo(config: Mapping[str, Any]) -> str:
    """The connection string as if the database were reached directly."""
    params: dict[str, Any] = {
        "application_name": "target-postgres-atomic",
        "connect_timeout": config.get("connect_timeout", 10),
    }
    if url := config.get("sqlalchemy_url"):
        built = _url_conninfo(url, params)
    else:
        params.update(
            host=config.get("host"),
            port=config.get("port"),
            user=config.get("user"),
            password=config.get("password"),
            dbname=config.get("database"),
            **tls.ssl_params(config),
        )
        built = psycopg.conninfo.make_conninfo(**{k: v for k, v in params.items() if v is not None})
    _require_database(psycopg.conninfo.conninfo_to_dict(built))
    return built


def _require_database(parts: Mapping[str, Any]) -> None:
    """libpq would fall back to a database named after the user: never load there by chance."""
    if parts.get("dbname") or parts.get("service") or os.environ.get("PGDATABASE"):
        return
    if (service := os.environ.get("PGSERVICE")) and _service_names_database(service):
        return
    raise ConfigurationError(
        "no database is named: set database (or sqlalchemy_url with a database, or the "
        "PGDATABASE environment variable, or a PGSERVICE whose service file entry has dbname)"
    )


def _service_names_database(service: str) -> bool:
    """Whether libpq's service file entry for `service` sets dbname (user file, then system)."""
    files = [
        Path(os.environ.get("PGSERVICEFILE") or Path.home() / ".pg_service.conf"),
        Path(os.environ.get("PGSYSCONFDIR") or "/etc/postgresql-common") / "pg_service.conf",
    ]
    for path in files:
        entries = configparser.ConfigParser(interpolation=None)
        try:
            entries.read(path)
        except configparser.Error:
            continue
        if entries.has_section(service):
            return entries.has_option(service, "dbname")
    return False


def location(config: Mapping[str, Any]) -> str:
    """Where the target loads, as user@host:port/database (never the password)."""
    parts = psycopg.conninfo.conninfo_to_dict(_direct_conninfo(config))
    user = parts.get("user") or os.environ.get("PGUSER") or getpass.getuser()
    host = parts.get("host") or os.environ.get("PGHOST") or "(local socket)"
    port = parts.get("port") or os.environ.get("PGPORT") or 5432
    database = parts.get("dbname") or os.environ.get("PGDATABASE") or ""
    if parts.get("service") or (not database and os.environ.get("PGSERVICE")):
        database = database or f"(service {parts.get('service') or os.environ['PGSERVICE']})"
    where = f"{user}@{host}:{port}/{database}"
    tunnel_settings = config.get("ssh_tunnel") or {}
    if tunnel_settings.get("enable"):
        where += (
            f" through SSH bastion {tunnel_settings['username']}@{tunnel_settings['host']}:"
            f"{tunnel_settings.get('port') or 22}"
        )
    return where


def _url_conninfo(url: str, params: dict[str, Any]) -> str:
    """libpq reads the URL itself once the SQLAlchemy driver suffix is gone.

    Neither error quotes the URL: it holds the password.
    """
    if not _POSTGRES_URL.match(url):
        scheme = url.split("://")[0] if "://" in url else ""
        shown = f"'{scheme}'" if re.fullmatch(r"[\w+.-]{1,30}", scheme) else "no scheme"
        raise ConfigurationError(
            f"sqlalchemy_url must be a PostgreSQL URL (postgresql://user:password@host/db, "
            f"optionally postgresql+psycopg://); it has {shown}"
        )
    try:
        return psycopg.conninfo.make_conninfo(_POSTGRES_URL.sub("postgresql://", url), **params)
    except psycopg.ProgrammingError:
        raise ConfigurationError(
            "sqlalchemy_url is not a valid PostgreSQL URL (check its percent escapes: a '%' "
            "in the password is written %25); the URL is not shown as it holds the password"
        ) from None


def connect(config: Mapping[str, Any]) -> psycopg.Connection:
    try:
        conn = psycopg.connect(conninfo(config), autocommit=True)
    except psycopg.OperationalError:
        # libpq only sees the tunnel's end close; the tunnel knows why.
        from target_postgres_atomic import tunnel

        if (failure := tunnel.take_failure()) is not None:
            raise ConfigurationError(failure) from None
        raise
    # A backstop for the lock watcher (waits.py), which gives up first and names the holder.
    backstop = int((config.get("lock_timeout", 300) + LOCK_BACKSTOP_SECONDS) * 1000)
    settings = [
        sql.SQL("SET TIME ZONE 'UTC'"),
        # The merge sorts a whole batch to keep the newest row per key; keep that sort in memory.
        sql.SQL("SET work_mem = '64MB'"),
        # The sessions idle between batches while the tap works; their stages hold staged rows.
        sql.SQL("SET idle_session_timeout = 0"),
        sql.SQL("SET lock_timeout = {}").format(sql.Literal(backstop)),
    ]
    if (seconds := config.get("statement_timeout")) is not None:
        settings.append(
            sql.SQL("SET statement_timeout = {}").format(sql.Literal(int(seconds * 1000)))
        )
    conn.execute(sql.SQL("; ").join(settings))  # one round trip
    return conn


def lock_table(conn: psycopg.Connection, schema: str, table: str) -> None:
    """Serialise DDL and merges per table across target processes, until the commit."""
    key = int.from_bytes(
        hashlib.blake2b(f"{schema}.{table}".encode(), digest_size=8).digest(), "big", signed=True
    )
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (key,))


# Per key column: its collation (if any), whether that collation is deterministic, whether
# PostgreSQL's equality of its values is Python's (integers; text in a deterministic
# collation compares byte-wise), and its type. A unique index in a nondeterministic collation
# (or of another type: citext, char(n)) makes it not so.
_KEY_COLLATIONS = """
SELECT a.attname, n.nspname, c.collname, c.collisdeterministic,
    a.atttypid = ANY ('{int2,int4,int8,text,varchar}'::regtype[])
    AND (a.attcollation = 0 OR c.collisdeterministic)
    AND NOT EXISTS (
        SELECT 1 FROM pg_index i CROSS JOIN unnest(i.indcollation::oid[]) AS ic (oid)
        JOIN pg_collation ixc ON ixc.oid = ic.oid
        WHERE i.indrelid = a.attrelid AND i.indisunique AND NOT ixc.collisdeterministic),
    a.atttypid::regtype::text
FROM pg_attribute a
LEFT JOIN pg_collation c ON c.oid = a.attcollation
LEFT JOIN pg_namespace n ON n.oid = c.collnamespace
WHERE a.attrelid = %s::regclass AND a.attname = ANY (%s) AND a.attnum > 0
    AND NOT a.attisdropped
"""


def key_collations(conn: psycopg.Connection, spec: TableSpec) -> KeyCollations:
    """How the table compares its keys now (call under the table's lock: DDL waits for it)."""
    found = conn.execute(_KEY_COLLATIONS, (spec.qualified_text(), list(spec.keys))).fetchall()
    collations = {
        name: sql.Identifier(schema, collation)
        for name, schema, collation, *_ in found
        if collation is not None
    }
    types = {name: pg_type for name, *_, pg_type in found}
    loose = frozenset(
        name
        for name, _, _, deterministic, _, pg_type in found
        if deterministic is False or pg_type == "jsonb"
    )
    exact = len(spec.keys) == 1 and len(found) == 1 and bool(found[0][4])
    return KeyCollations(collations, exact, loose, types)


def next_table_version(conn: psycopg.Connection, spec: TableSpec) -> int:
    """A table version newer than every stored one, from the database clock (ms), not ours.

    Call under the table's lock: a host clock running behind would retire nothing.
    """
    found = conn.execute(
        sql.SQL(
            "SELECT greatest(max({tv}) + 1, (extract(epoch FROM clock_timestamp()) * 1000)::bigint)"
            " FROM {table}"
        ).format(tv=sql.Identifier(TABLE_VERSION), table=spec.qualified())
    ).fetchone()
    assert found is not None
    return int(found[0])


def existing_columns(conn: psycopg.Connection, schema: str, table: str) -> dict[str, str]:
    rows = conn.execute(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
        "JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped",
        (schema, table),
    ).fetchall()
    return {name: pg_type for name, pg_type in rows}


def _primary_key(conn: psycopg.Connection, spec: TableSpec) -> tuple[str, list[str]] | None:
    """The table's primary key: constraint name and columns (sorted), or None."""
    return conn.execute(
        "SELECT c.conname::text, array_agg(a.attname::text ORDER BY a.attname) "
        "FROM pg_constraint c JOIN pg_attribute a ON a.attrelid = c.conrelid "
        "AND a.attnum = ANY(c.conkey) WHERE c.conrelid = %s::regclass AND c.contype = 'p' "
        "GROUP BY c.conname",
        (spec.qualified_text(),),
    ).fetchone()


def _replace_key(conn: psycopg.Connection, spec: TableSpec) -> None:
    """key_properties changed: the table's key becomes the new one (caller's transaction).

    The old key would refuse rows that differ only in a new key column (and a unique index
    beside it would keep doing so), so both go; the new primary key needs every stored row
    to have a value and be unique under it, else the run stops here and nothing changes.
    """
    primary = _primary_key(conn, spec)
    old = primary[1] if primary else []
    if old == sorted(spec.keys):
        return
    ours = conn.execute(
        "SELECT i.indexrelid::regclass::text FROM pg_index i JOIN pg_class c "
        "ON c.oid = i.indexrelid WHERE i.indrelid = %s::regclass AND NOT i.indisprimary "
        "AND c.relname LIKE '%%\\_sdc\\_key\\_%%'",
        (spec.qualified_text(),),
    ).fetchall()
    for (index,) in ours:
        conn.execute(sql.SQL("DROP INDEX {}").format(sql.SQL(index)))
    if primary:
        conn.execute(
            sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
                spec.qualified(), sql.Identifier(primary[0])
            )
        )
        # A column that left the key may be null again, as any other property.
        for column in set(old) - set(spec.keys):
            conn.execute(
                sql.SQL("ALTER TABLE {} ALTER COLUMN {} DROP NOT NULL").format(
                    spec.qualified(), sql.Identifier(column)
                )
            )
    try:
        with conn.transaction():
            conn.execute(
                sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} PRIMARY KEY ({})").format(
                    spec.qualified(),
                    sql.Identifier(generated_name(f"{spec.table}_pkey", spec.schema, spec.table)),
                    sql.SQL(", ").join(map(sql.Identifier, spec.keys)),
                )
            )
    except (psycopg.errors.NotNullViolation, psycopg.errors.UniqueViolation) as exc:
        was = ", ".join(old) if old else "none"
        raise KeyChangeRefused(
            f"key_properties changed from ({was}) to ({', '.join(spec.keys)}), but the rows "
            f"already in {spec.qualified_text()} cannot take the new key "
            f"({exc.diag.message_primary}); fill in or remove those rows (or load the stream "
            "into a new table with default_target_schema), then run again"
        ) from None


def primary_key(conn: psycopg.Connection, schema: str, table: str) -> list[str]:
    """The columns of the table's primary key (none if it has none or does not exist)."""
    rows = conn.execute(
        "SELECT a.attname FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY (i.indkey) "
        "WHERE i.indisprimary AND n.nspname = %s AND c.relname = %s ORDER BY a.attnum",
        (schema, table),
    ).fetchall()
    return [row[0] for row in rows]


def ensure_table(conn: psycopg.Connection, spec: TableSpec, *, unique_keys: bool) -> None:
    """Create the table, add missing columns, widen types; never drop or narrow (caller locks).

    With `unique_keys` the key properties are the primary key (replaced when they change),
    which the upsert needs; append-only tables have none.
    """
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(spec.schema)))
    current = existing_columns(conn, spec.schema, spec.table)
    if not current:
        parts = [
            sql.SQL("{} {}").format(sql.Identifier(c.name), sql.SQL(c.pg_type))
            for c in spec.columns
        ]
        if spec.keys and unique_keys:
            parts.append(
                sql.SQL("PRIMARY KEY ({})").format(
                    sql.SQL(", ").join(map(sql.Identifier, spec.keys))
                )
            )
        conn.execute(
            sql.SQL("CREATE TABLE {} ({})").format(spec.qualified(), sql.SQL(", ").join(parts))
        )
        return
    for column in spec.columns:
        have = current.get(column.name)
        if have is None:
            conn.execute(
                sql.SQL("ALTER TABLE {} ADD COLUMN {} {}").format(
                    spec.qualified(), sql.Identifier(column.name), sql.SQL(column.pg_type)
                )
            )
        elif (wider := _widened(column.name, have, column.pg_type)) is not None:
            conn.execute(
                sql.SQL("ALTER TABLE {} ALTER COLUMN {} TYPE {}").format(
                    spec.qualified(), sql.Identifier(column.name), sql.SQL(wider)
                )
            )
    if spec.keys and unique_keys:
        _replace_key(conn, spec)


def _widened(name: str, current: str, wanted: str) -> str | None:
    try:
        return widened(current, wanted)
    except LossyTypeChange as exc:
        raise LossyTypeChange(f"column '{name}': {exc}") from None


def drop_tables(
    config: Mapping[str, Any], tables: list[sql.Identifier], logger: logging.Logger
) -> None:
    """Best effort on a fresh session (the run's own may be mid-COPY): the next run retries."""
    try:
        with connect(config) as conn:
            conn.execute("SET lock_timeout = '10s'")
            for table in tables:
                conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(table))
    except psycopg.Error as exc:
        logger.warning(
            "Could not drop %s (%s); the next run of the stream drops it.",
            ", ".join(t.as_string(None) for t in tables),
            exc.diag.message_primary or type(exc).__name__,
        )


def ensure_tombstone_table(conn: psycopg.Connection, table: sql.Identifier) -> None:
    """Hard-deleted keys with their delete version, per table of the schema (caller locks)."""
    conn.execute(
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} (table_name text, key text[], version text NOT NULL, "
            "PRIMARY KEY (table_name, key))"
        ).format(table)
    )
    # Tombstones from before retention existed start their retention now.
    conn.execute(
        sql.SQL(
            "ALTER TABLE {} ADD COLUMN IF NOT EXISTS deleted_at timestamptz NOT NULL DEFAULT now()"
        ).format(table)
    )


def prune_tombstones(
    conn: psycopg.Connection, tombstones: sql.Identifier, table: str, days: float
) -> int:
    """Drop the table's tombstones older than `days` (caller locks); returns how many."""
    return conn.execute(
        sql.SQL(
            "DELETE FROM {} WHERE table_name = %s "
            "AND deleted_at < now() - make_interval(secs => %s)"
        ).format(tombstones),
        (table, days * 86400),
    ).rowcount
