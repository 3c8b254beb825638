"""The load engine on its own (no Singer messages): records land in one transaction with the
STATE after them, and a STATE is written only once that transaction has committed."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from target_postgres_atomic import connector
from target_postgres_atomic.engine import LoadEngine
from target_postgres_atomic.errors import SEQ_SHIFT
from target_postgres_atomic.sinks import PostgresSink, SinkSettings
from target_postgres_atomic.spec import build_spec

from safe_singer_testing.postgres import PgServer

SCHEMA = {"type": "object", "properties": {"id": {"type": "integer"}, "name": {"type": "string"}}}

Rows = Callable[..., list[tuple[Any, ...]]]


def settings(batch_size_rows: int = 1000) -> SinkSettings:
    return SinkSettings(
        batch_size_rows=batch_size_rows,
        batch_size_bytes=1 << 20,
        hard_delete=False,
        validate_records=True,
        upsert=True,
        sanitize_null_text_characters=False,
    )


def new_engine(pg_db: PgServer, batch_size_rows: int = 1000) -> LoadEngine:
    return LoadEngine(
        pg_db.target_config(),
        state_schema="public",
        lock_timeout=10,
        sink_settings=settings(batch_size_rows),
        logger=logging.getLogger("test_engine"),
    )


def open_table(engine: LoadEngine, stream: str) -> PostgresSink:
    """The stream's table created as the target creates it at a SCHEMA, and its sink."""
    message = {"stream": stream, "schema": SCHEMA, "key_properties": ["id"]}
    spec = build_spec(
        message, 1, default_schema=None, add_record_metadata=False, version_columns={}
    )
    conn = engine.conn
    with engine.transaction(conn, spec.qualified_text()):
        connector.lock_table(conn, spec.schema, spec.table)
        connector.ensure_table(conn, spec, unique_keys=True)
        spec = spec.with_types(connector.existing_columns(conn, spec.schema, spec.table))
    return engine.open_sink(spec)


def add(engine: LoadEngine, sink: PostgresSink, *ids: int) -> None:
    for record_id in ids:
        raw = b'{"id": %d, "name": "n%d"}' % (record_id, record_id)
        engine.add(sink, record_id << SEQ_SHIFT, raw, None, None)


@pytest.fixture
def engine(pg_db: PgServer) -> Iterator[LoadEngine]:
    made = new_engine(pg_db)
    yield made
    made.close_after_error()  # (ends the commit thread and lock watcher of a failed test)


def test_state_is_written_only_after_the_records_before_it_commit(
    engine: LoadEngine, rows: Rows, capsys: pytest.CaptureFixture[str]
) -> None:
    sink = open_table(engine, "people")
    add(engine, sink, 1, 2, 3)
    engine.state('{"bookmarks": {"people": 3}}')
    assert capsys.readouterr().out == ""
    assert rows("SELECT count(*) FROM people") == [(0,)]
    engine.close([])
    assert capsys.readouterr().out == '{"bookmarks": {"people": 3}}\n'
    assert rows("SELECT id, name FROM people ORDER BY id") == [(1, "n1"), (2, "n2"), (3, "n3")]
    assert rows("SELECT state FROM _sdc_target_state") == [({"bookmarks": {"people": 3}},)]


def test_a_full_batch_commits_on_its_own_and_a_state_alone_follows_it(
    pg_db: PgServer, rows: Rows, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = new_engine(pg_db, batch_size_rows=2)
    sink = open_table(engine, "people")
    add(engine, sink, 1, 2)
    engine.wait()
    assert rows("SELECT id FROM people ORDER BY id") == [(1,), (2,)]
    engine.state('{"at": 2}')
    engine.wait()
    assert capsys.readouterr().out == '{"at": 2}\n'
    engine.close([])


def test_a_failed_commit_writes_no_state_and_nothing_after_it_lands(
    engine: LoadEngine, pg_db: PgServer, rows: Rows, capsys: pytest.CaptureFixture[str]
) -> None:
    sink = open_table(engine, "people")
    add(engine, sink, 1)
    engine.state('{"at": 1}')
    with pg_db.connect() as other:
        other.execute("ALTER TABLE people RENAME COLUMN name TO gone")
        other.commit()
    engine.commit()
    with pytest.raises(Exception, match="name"):
        engine.wait()
    with pg_db.connect() as other:  # a table the next batch could merge into
        other.execute("ALTER TABLE people RENAME COLUMN gone TO name")
        other.commit()
    add(engine, sink, 2)
    engine.state('{"at": 2}')
    engine.commit()
    engine.wait()
    assert capsys.readouterr().out == ""
    assert rows("SELECT id FROM people") == []
