"""The provisioned PostgreSQL is real: a row written is a row read back."""

from pathlib import Path

from tests.support.postgres import PgServer, start_embedded


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


def test_embedded_server_is_the_fallback(tmp_path: Path) -> None:
    """Machines without a server get pgserver's, over its Unix socket."""
    server = start_embedded(tmp_path / "pgdata", keep_running=False)
    assert server.host.startswith("/")
    with server.connect() as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
