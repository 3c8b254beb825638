"""Rows of new keys go straight into their table (binary COPY in the batch's transaction,
direct.py) and land exactly as the stage and merge land them; everything else still merges.

Which way each row went is read from the table itself: a trigger notes the statement that
inserted it (a COPY, or the merge's INSERT).
"""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from safe_singer_testing.postgres import PgServer
from safe_singer_testing.target_messages import record, schema, state

PROPS = {
    "id": {"type": "integer"},
    "amount": {"type": ["number", "null"]},
    "ts": {"type": ["string", "null"], "format": "date-time"},
    "tags": {"type": ["array", "null"]},
    "doc": {"type": ["object", "null"]},
    "name": {"type": ["string", "null"]},
    "flag": {"type": ["boolean", "null"]},
    "v": {"type": ["integer", "null"]},
}
CHUNK = 1000  # rows.COPY_CHUNK_ROWS: the unit that goes one way or the other


def _watch(pg_db: PgServer, table: str = "t") -> None:
    """Note, per inserted row, whether a COPY or an INSERT statement inserted it."""
    with pg_db.connect() as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS inserted_by (tbl text, id bigint, how text)")
        conn.execute(
            "CREATE OR REPLACE FUNCTION note_insert() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN INSERT INTO inserted_by VALUES (TG_TABLE_NAME, NEW.id, "
            "CASE WHEN current_query() ILIKE 'COPY%' THEN 'copy' ELSE 'merge' END); "
            "RETURN NEW; END $$"
        )
        conn.execute(
            f"CREATE TRIGGER note AFTER INSERT ON {table} FOR EACH ROW "
            "EXECUTE FUNCTION note_insert()"
        )


def _ways(rows: Any, table: str = "t") -> list[tuple[Any, ...]]:
    return rows(
        "SELECT how, count(*), min(id), max(id) FROM inserted_by WHERE tbl = %s "
        "GROUP BY how ORDER BY how",
        table,
    )


def _create(run_target: Any, props: dict[str, Any] = PROPS, **settings: Any) -> None:
    """The table as the target makes it (one row, id -1), before the trigger goes on."""
    run = run_target([schema("t", props, bookmark="v"), record("t", {"id": -1})], **settings)
    assert run.returncode == 0, run.stderr


def test_new_keys_go_straight_in_and_land_as_merged(run_target, rows, pg_db: PgServer) -> None:
    _create(run_target)
    _watch(pg_db)
    values = [
        {
            "id": 1,
            "amount": 0.5,
            "ts": "2024-01-02T03:04:05.123456+02:00",
            "tags": ["a", "b"],
            "doc": {"k": [1, 2.50, None], "s": "x\\y\n"},
            "name": "tab\there",
            "flag": True,
            "v": 1,
        },
        {
            "id": 2,
            "amount": 1.50,
            "ts": None,
            "tags": None,
            "doc": None,
            "name": None,
            "flag": None,
            "v": None,
        },
        {"id": 3, "amount": 1e5, "tags": [], "doc": {}, "name": "", "flag": False, "v": 3},
    ]
    lines: list[Any] = [schema("t", PROPS, bookmark="v")]
    lines += [record("t", value) for value in values]
    # Exact number texts, as a tap writes them (json.dumps would turn 1.50 into 1.5).
    lines.append(
        '{"type": "RECORD", "stream": "t", "record": '
        '{"id": 4, "amount": 12345678901234567890.000100, "doc": {"n": 1.0e2}}}'
    )
    lines.append(
        '{"type": "RECORD", "stream": "t", "record": {"id": 5, "amount": -0, "tags": null}}'
    )
    lines += [record("t", {"id": k, "amount": k % 7 / 4}) for k in range(6, 3000)]
    lines.append(state({"s": 1}))
    run = run_target(lines)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == ['{"s": 1}']
    assert _ways(rows) == [("copy", 2999, 1, 2999)]
    got = rows(
        "SELECT id, amount::text, ts, tags, doc, name, flag, v FROM t "
        "WHERE id BETWEEN 1 AND 5 ORDER BY id"
    )
    assert got == [
        (
            1,
            "0.5",
            datetime(2024, 1, 2, 1, 4, 5, 123456, tzinfo=timezone.utc),
            ["a", "b"],
            {"k": [1, 2.5, None], "s": "x\\y\n"},
            "tab\there",
            True,
            1,
        ),
        (2, "1.5", None, None, None, None, None, None),
        (3, "100000.0", None, [], {}, "", False, 3),
        (4, "12345678901234567890.000100", None, None, {"n": 100.0}, None, None, None),
        (5, "0", None, None, None, None, None, None),
    ]
    assert rows("SELECT count(*), sum(amount) FROM t WHERE id >= 6") == [
        (2994, sum(Decimal(k % 7) / 4 for k in range(6, 3000)))
    ]


def test_the_same_input_lands_alike_either_way(run_target, rows, pg_db: PgServer) -> None:
    """Straight in (a fresh table) and merged (keys not above the table's): the same rows."""
    values = [
        {
            "id": k,
            "amount": k / 8,
            "ts": f"2024-01-01T00:00:{k % 60:02d}Z",
            "tags": [k],
            "doc": {"k": k},
            "name": f"n{k}",
            "flag": k % 2 == 0,
            "v": k,
        }
        for k in range(0, 2500)
    ]
    messages = [schema("t", PROPS, bookmark="v"), *(record("t", v) for v in values)]
    _create(run_target)
    _watch(pg_db)
    assert run_target(messages).returncode == 0
    direct = rows("SELECT * FROM t WHERE id >= 0 ORDER BY id")
    assert _ways(rows) == [("copy", 2500, 0, 2499)]
    with pg_db.connect() as conn:
        conn.execute("DELETE FROM t WHERE id >= 0")
        conn.execute("DELETE FROM inserted_by")
        conn.execute("INSERT INTO t (id) VALUES (100000)")  # every key below the largest
    assert run_target(messages).returncode == 0
    assert _ways(rows) == [("merge", 2501, 0, 100000)]
    assert rows("SELECT * FROM t WHERE id >= 0 AND id < 100000 ORDER BY id") == direct


def test_keys_already_stored_merge_under_the_version_guard(run_target, rows, pg_db) -> None:
    """One batch: stored keys with older versions (merged: older never over newer) and new
    keys above them (straight in)."""
    _create(run_target)
    with pg_db.connect() as conn:
        conn.execute("INSERT INTO t (id, v) SELECT g, 5 FROM generate_series(0, 999) g")
    _watch(pg_db)
    messages = [
        schema("t", PROPS, bookmark="v"),
        *(record("t", {"id": k, "v": 3}) for k in range(0, 3000)),
        state({"s": 1}),
    ]
    run = run_target(messages)
    assert run.returncode == 0, run.stderr
    assert _ways(rows) == [("copy", 2000, 1000, 2999)]
    assert rows("SELECT v, count(*) FROM t WHERE id >= 0 GROUP BY v ORDER BY v") == [
        (3, 2000),
        (5, 1000),
    ]


def test_a_key_repeated_after_going_straight_in_is_merged_newest_wins(
    run_target, rows, pg_db: PgServer
) -> None:
    _create(run_target)
    _watch(pg_db)
    messages = [
        schema("t", PROPS, bookmark="v"),
        *(record("t", {"id": k, "v": 1}) for k in range(0, 2 * CHUNK)),
        record("t", {"id": 5, "v": 2, "name": "newer"}),
        record("t", {"id": 6, "v": 0, "name": "older"}),
        *(record("t", {"id": k, "v": 1}) for k in range(2 * CHUNK, 3 * CHUNK)),
        state({"s": 1}),
    ]
    run = run_target(messages)
    assert run.returncode == 0, run.stderr
    assert rows("SELECT id, v, name FROM t WHERE id IN (5, 6) ORDER BY id") == [
        (5, 2, "newer"),
        (6, 1, None),
    ]
    assert rows("SELECT count(*) FROM t WHERE id >= 0") == [(3 * CHUNK,)]
    # The first two chunks went straight in; after the repeat the batch merges.
    assert _ways(rows)[0] == ("copy", 2 * CHUNK, 0, 2 * CHUNK - 1)


def test_a_value_the_table_refuses_names_line_and_field_and_commits_nothing_of_its_batch(
    run_target, rows, pg_db: PgServer
) -> None:
    _create(run_target)
    _watch(pg_db)
    bad = '{"type": "RECORD", "stream": "t", "record": {"id": 1500, "doc": {"n": 1e400000}}}'
    messages: list[Any] = [
        schema("t", PROPS, bookmark="v"),
        *(record("t", {"id": k}) for k in range(0, 1000)),
        state({"s": 1}),
        *(record("t", {"id": k}) for k in range(1000, 1500)),
        bad,
        *(record("t", {"id": k}) for k in range(1501, 2500)),
        state({"s": 2}),
    ]
    run = run_target(messages, batch_size_rows=1000)
    assert run.returncode != 0
    errors = [line for line in run.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, run.stderr
    assert "stream 't', input line 1503, field 'doc'" in errors[0], errors
    assert "Traceback" not in run.stderr
    assert run.stdout.splitlines() == ['{"s": 1}']
    assert rows("SELECT count(*), max(id) FROM t WHERE id >= 0") == [(1000, 999)]


def test_interleaved_streams_merge_and_a_single_stream_goes_straight_in_again(
    run_target, rows, pg_db: PgServer
) -> None:
    """Two streams in one batch: no batch holds two tables' locks from its first chunk (the
    batch that went straight in commits first); then rows merge, until a batch of one."""
    both = [schema("a", PROPS), schema("b", PROPS)]
    assert run_target([*both, record("a", {"id": -1}), record("b", {"id": -1})]).returncode == 0
    _watch(pg_db, "a")
    _watch(pg_db, "b")
    messages: list[Any] = [*both, *(record("a", {"id": k}) for k in range(0, CHUNK))]
    messages += [record("a" if k % 2 else "b", {"id": k}) for k in range(CHUNK, 2 * CHUNK)]
    messages += [record("b", {"id": k}) for k in range(2 * CHUNK, 6 * CHUNK)]
    messages.append(state({"s": 1}))
    run = run_target(messages, batch_size_rows=CHUNK)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == ['{"s": 1}']
    assert rows("SELECT count(*) FROM a WHERE id >= 0") == [(CHUNK + CHUNK // 2,)]
    assert rows("SELECT count(*) FROM b WHERE id >= 0") == [(4 * CHUNK + CHUNK // 2,)]
    assert _ways(rows, "a") == [
        ("copy", CHUNK, 0, CHUNK - 1),
        ("merge", CHUNK // 2, CHUNK + 1, 2 * CHUNK - 1),
    ]
    ways_b = dict((how, count) for how, count, *_ in _ways(rows, "b"))
    assert ways_b["copy"] >= 2 * CHUNK, ways_b  # b's later batches of one stream
    assert ways_b["merge"] >= CHUNK // 2, ways_b


def test_settings_that_need_the_merge_keep_it(run_target, rows, pg_db: PgServer) -> None:
    """hard_delete (tombstones) and add_record_metadata (values from PostgreSQL) merge."""
    for settings in ({"hard_delete": True}, {"add_record_metadata": True}):
        with pg_db.connect() as conn:
            conn.execute("DROP TABLE IF EXISTS public.t, inserted_by")
            conn.execute("DROP TABLE IF EXISTS public._sdc_target_streams")
        _create(run_target, **settings)
        _watch(pg_db)
        run = run_target(
            [schema("t", PROPS, bookmark="v"), *(record("t", {"id": k}) for k in range(CHUNK))],
            **settings,
        )
        assert run.returncode == 0, run.stderr
        assert _ways(rows) == [("merge", CHUNK, 0, CHUNK - 1)], settings


def test_a_row_a_constraint_refuses_is_named_in_one_line(run_target, rows, pg_db) -> None:
    """A table's own constraint refuses a row written straight: its record is named, nothing
    of its batch is committed, and the STATE before stays the last one out."""
    _create(run_target)
    with pg_db.connect() as conn:
        conn.execute("ALTER TABLE t ADD CONSTRAINT small_ids CHECK (id < 1500)")
    messages: list[Any] = [
        schema("t", PROPS, bookmark="v"),
        *(record("t", {"id": k}) for k in range(0, 1000)),
        state({"s": 1}),
        *(record("t", {"id": k}) for k in range(1000, 2000)),
        state({"s": 2}),
    ]
    run = run_target(messages, batch_size_rows=1000)
    assert run.returncode != 0
    errors = [line for line in run.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, run.stderr
    assert "stream 't', input line 1503: the table refused it" in errors[0], errors
    assert "small_ids" in errors[0], errors
    assert "Traceback" not in run.stderr
    assert run.stdout.splitlines() == ['{"s": 1}']
    assert rows("SELECT count(*), max(id) FROM t WHERE id >= 0") == [(1000, 999)]


def test_a_role_that_may_not_lock_the_table_merges(run_target, rows, pg_db: PgServer) -> None:
    """SHARE ROW EXCLUSIVE needs UPDATE, DELETE or TRUNCATE: a role with INSERT only loads
    new keys by the merge's plain INSERT instead."""
    _create(run_target)
    _watch(pg_db)
    role = "insert_only_loader"
    with pg_db.connect() as conn:
        conn.execute(f'DROP ROLE IF EXISTS "{role}"')
        conn.execute(f'CREATE ROLE "{role}" LOGIN')
        conn.execute(f'GRANT CREATE ON DATABASE "{conn.info.dbname}" TO "{role}"')
        conn.execute(f'GRANT USAGE, CREATE ON SCHEMA public TO "{role}"')
        conn.execute(f'GRANT SELECT, INSERT ON t, inserted_by TO "{role}"')
        conn.execute(f'GRANT ALL ON _sdc_target_state, _sdc_target_streams TO "{role}"')
    try:
        run = run_target(
            [schema("t", PROPS, bookmark="v"), *(record("t", {"id": k}) for k in range(CHUNK))],
            user=role,
        )
        assert run.returncode == 0, run.stderr
    finally:
        with pg_db.connect() as conn:
            conn.execute(f'DROP OWNED BY "{role}" CASCADE')
            conn.execute(f'DROP ROLE "{role}"')
    assert _ways(rows) == [("merge", CHUNK, 0, CHUNK - 1)]
