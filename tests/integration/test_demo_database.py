"""`make demo` drops only a database it created itself (it marks it); any other database of
that name is left alone, with a message saying what to do."""

from __future__ import annotations

import uuid

import pytest
from psycopg import sql

from safe_singer_testing.demo import DemoDatabaseError, demo_database
from safe_singer_testing.postgres import PgServer, drop_database


def test_demo_refuses_a_database_it_did_not_create(pg_db: PgServer, pg_admin: PgServer) -> None:
    with pg_db.connect() as conn:
        conn.execute("CREATE TABLE precious (id int)")
        conn.execute("INSERT INTO precious VALUES (1)")
    with pytest.raises(DemoDatabaseError, match="was not created by `make demo`"):
        demo_database(pg_admin, pg_db.dbname)
    with pg_db.connect() as conn:
        assert conn.execute("SELECT id FROM precious").fetchall() == [(1,)]


def test_demo_recreates_its_own_database(pg_admin: PgServer) -> None:
    name = f"t_demo_{uuid.uuid4().hex[:12]}"
    first = demo_database(pg_admin, name)
    try:
        with first.connect() as conn:
            conn.execute("CREATE TABLE from_last_demo (id int)")
        again = demo_database(pg_admin, name)  # marked as the demo's: emptied
        with again.connect() as conn:
            left = conn.execute(
                sql.SQL("SELECT to_regclass({})").format(sql.Literal("from_last_demo"))
            ).fetchone()
        assert left == (None,)
        # A session on it: no FORCE, the demo stops with a message instead.
        with again.connect(), pytest.raises(DemoDatabaseError, match="in use by another session"):
            demo_database(pg_admin, name)
    finally:
        drop_database(pg_admin.with_database(name), pg_admin)
