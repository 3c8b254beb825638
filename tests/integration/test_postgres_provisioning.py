"""The provisioned PostgreSQL is real: a row written is a row read back."""

import shutil
import uuid

import pgserver

from safe_singer_testing.postgres import REPO_ROOT, PgServer, start_embedded


def test_write_and_read_a_row(pg_db: PgServer) -> None:
    with pg_db.connect() as conn:
        conn.execute("CREATE TABLE probe (id int PRIMARY KEY, note text)")
        conn.execute("INSERT INTO probe VALUES (1, 'hello')")
        conn.commit()
    with pg_db.connect() as conn:
        rows = conn.execute("SELECT id, note FROM probe").fetchall()
    assert rows == [(1, "hello")]


def test_each_test_gets_its_own_database(pg_db: PgServer, pg_admin: PgServer) -> None:
    assert pg_db.dbname != pg_admin.dbname
    with pg_db.connect() as conn:
        tables = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()
    assert tables == (0,)


def test_embedded_server_is_the_fallback() -> None:
    """Machines without a server get pgserver's, over its Unix socket."""
    # Not under pytest's tmp_path: that folder is private to root, and pgserver runs the
    # server as its own unprivileged user, who must be able to reach the data folder.
    pgdata = REPO_ROOT / ".emulators" / f"pgdata-{uuid.uuid4().hex[:8]}"
    try:
        server = start_embedded(pgdata, keep_running=False)
        assert server.host.startswith("/")
        with server.connect() as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        pgserver.get_server(pgdata, cleanup_mode="stop").cleanup()
        shutil.rmtree(pgdata, ignore_errors=True)
