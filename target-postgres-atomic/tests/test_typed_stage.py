"""Typed stage rows (binary COPY) and the plain-INSERT merge keep every promise of the target."""

from __future__ import annotations

import time
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
    "v": {"type": ["integer", "null"]},
}
WAIT = 60  # bound on waiting for another session, never an expected duration


def test_a_value_typed_copy_refuses_names_line_and_field(run_target, rows) -> None:
    """A number jsonb cannot hold fails inside the binary COPY: its line and field are named."""
    messages = [
        schema("t", PROPS),
        record("t", {"id": 1, "amount": 1.5}),
        state({"s": 1}),
        record("t", {"id": 2, "amount": 2}),
        state({"s": 2}),
        record("t", {"id": 3, "amount": 3}),
        '{"type": "RECORD", "stream": "t", "record": {"id": 4, "amount": 1e400000}}',
        record("t", {"id": 5, "amount": 5}),
        state({"s": 3}),
    ]
    run = run_target(messages, batch_size_rows=2)
    assert run.returncode != 0
    assert "stream 't', input line 7, field 'amount'" in run.stderr, run.stderr
    assert "does not fit column type numeric" in run.stderr, run.stderr
    assert "Traceback" not in run.stderr
    assert run.states == [{"s": 1}, {"s": 2}]
    assert rows("SELECT id FROM t ORDER BY id") == [(1,), (2,)]


def test_an_array_value_jsonb_refuses_names_line_and_field(run_target, rows) -> None:
    """Arrays are staged as JSON text and cast in the merge: a number jsonb cannot hold
    inside one fails there, and the record and field are still named."""
    messages = [
        schema("t", PROPS),
        record("t", {"id": 1, "tags": ["a"]}),
        state({"s": 1}),
        record("t", {"id": 2, "tags": None}),
        '{"type": "RECORD", "stream": "t", "record": {"id": 3, "tags": [1, 1e400000]}}',
        state({"s": 2}),
    ]
    run = run_target(messages, batch_size_rows=2)
    assert run.returncode != 0
    assert "stream 't', input line 5, field 'tags'" in run.stderr, run.stderr
    assert "does not fit column type jsonb" in run.stderr, run.stderr
    assert "Traceback" not in run.stderr
    assert run.states == [{"s": 1}]
    assert rows("SELECT id FROM t ORDER BY id") == [(1,), (2,)]


def test_a_record_nested_too_deep_after_typed_records_names_line_and_field(
    run_target, rows
) -> None:
    """The one-pass decode meets nesting msgspec cannot skip: the general path names it."""
    deep = "[" * 200_000 + "]" * 200_000
    messages = [
        schema("t", PROPS),
        record("t", {"id": 1, "tags": ["a"]}),
        state({"s": 1}),
        '{"type": "RECORD", "stream": "t", "record": {"id": 2, "tags": ' + deep + "}}",
    ]
    run = run_target(messages, batch_size_rows=1)
    assert run.returncode != 0
    assert "stream 't', input line 4, field 'tags'" in run.stderr, run.stderr[-2000:]
    assert "Traceback" not in run.stderr
    assert run.states == [{"s": 1}]
    assert rows("SELECT id FROM t ORDER BY id") == [(1,)]


def test_typed_and_raw_rows_of_one_batch_load_alike(run_target, rows) -> None:
    """A time without an offset (read by PostgreSQL, refused by the strict decode) is staged
    as raw JSON next to typed rows of the same batch; numbers keep every digit."""
    run = run_target(
        [
            schema("t", PROPS),
            '{"type": "RECORD", "stream": "t", "record": '
            '{"id": 1, "amount": 0.1000000000000000055511, "ts": "2024-05-01T10:00:00Z"}}',
            record("t", {"id": 2, "amount": None, "ts": "2024-05-01T10:00:00", "tags": ["a"]}),
            record("t", {"id": 3, "amount": 7, "tags": [], "v": 2**62}),
        ]
    )
    assert run.returncode == 0, run.stderr
    ten = datetime(2024, 5, 1, 10, tzinfo=timezone.utc)
    assert rows("SELECT id, amount, ts, tags, v FROM t ORDER BY id") == [
        (1, Decimal("0.1000000000000000055511"), ten, None, None),
        (2, None, ten, ["a"], None),
        (3, Decimal(7), None, [], 2**62),
    ]


def test_duplicate_keys_in_a_typed_batch_keep_the_newest(run_target, rows) -> None:
    run = run_target(
        [
            schema("t", PROPS, bookmark="v"),
            record("t", {"id": 1, "v": 2}),
            record("t", {"id": 1, "v": 3}),
            record("t", {"id": 1, "v": 1}),
            record("t", {"id": 2, "v": 1}),
        ]
    )
    assert run.returncode == 0, run.stderr
    assert rows("SELECT id, v FROM t ORDER BY id") == [(1, 3), (2, 1)]


def _load(stream_version: int, keys: range) -> list[dict[str, Any]]:
    return [
        schema("t", PROPS, bookmark="v"),
        *(record("t", {"id": k, "v": stream_version}) for k in keys),
        state({"v": stream_version}),
    ]


def test_concurrent_loaders_of_new_keys_never_put_older_over_newer(start_target, rows) -> None:
    """Two loaders whose keys are all new to the (empty) table, overlapping each other: the
    one that merges second sees the first's keys and upserts under the version guard."""
    older = start_target(_load(1, range(0, 3000)))
    newer = start_target(_load(2, range(2000, 5000)))
    for proc in (older, newer):
        _, err = proc.communicate(timeout=WAIT)
        assert proc.returncode == 0, err
    assert rows("SELECT v, count(*) FROM t GROUP BY v ORDER BY v") == [(1, 2000), (2, 3000)]


def test_a_key_another_writer_inserts_meanwhile_is_merged_by_version(
    start_target, rows, pg_db: PgServer
) -> None:
    """Another writer's open transaction holds a key the batch also has: the batch waits
    for it (rows written straight into the table wait for its lock; a plain INSERT for the
    key, and fails on it), then upserts, and the newer stored version stays."""
    assert start_target(_load(1, range(1, 3))).wait(timeout=WAIT) == 0
    with pg_db.connect() as writer:
        writer.execute("INSERT INTO t (id, v) VALUES (100, 9)")  # not committed yet
        loader = start_target(_load(5, range(10, 101)))
        deadline = time.monotonic() + WAIT
        while not rows(
            "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND (query LIKE '%INSERT INTO%' OR query LIKE 'LOCK TABLE%') "
            "AND pid <> pg_backend_pid()"
        ):
            assert loader.poll() is None, loader.communicate()
            assert time.monotonic() < deadline, "the loader never waited for the open insert"
            time.sleep(0.05)
        writer.commit()
    _, err = loader.communicate(timeout=WAIT)
    assert loader.returncode == 0, err
    assert rows("SELECT v, count(*) FROM t GROUP BY v ORDER BY v") == [(1, 2), (5, 90), (9, 1)]


def test_interleaved_streams_of_one_shape_land_in_their_own_tables(run_target, rows) -> None:
    """A line decoded in one pass as the last stream's record still goes by its own stream."""
    messages: list[dict[str, Any]] = [schema("a", PROPS), schema("b", PROPS)]
    for k in range(6):
        messages.append(record("a" if k % 3 else "b", {"id": k, "v": k}))
    messages.append(state({"done": True}))
    run = run_target(messages)
    assert run.returncode == 0, run.stderr
    assert rows("SELECT id FROM a ORDER BY id") == [(1,), (2,), (4,), (5,)]
    assert rows("SELECT id FROM b ORDER BY id") == [(0,), (3,)]


def test_a_record_field_named_stream_does_not_pick_the_stream(run_target, rows) -> None:
    """The one-pass decode picks its struct by the first "stream" in the line, which may be
    the record's own field: the decoded envelope's stream still decides the table."""
    messages: list[dict[str, Any] | str] = [schema("a", PROPS), schema("b", PROPS)]
    messages += [record("a", {"id": 1}), record("b", {"id": 2})]
    messages.append('{"type": "RECORD", "record": {"id": 3, "stream": "b"}, "stream": "a"}')
    messages.append('{"type": "RECORD", "record": {"stream": "a", "id": 4}, "stream": "b"}')
    messages.append(state({"done": True}))
    run = run_target(messages)
    assert run.returncode == 0, run.stderr
    assert rows("SELECT id FROM a ORDER BY id") == [(1,), (3,)]
    assert rows("SELECT id FROM b ORDER BY id") == [(2,), (4,)]


def test_nul_after_typed_records_is_sanitised_or_named(run_target, rows) -> None:
    """A NUL escape in a record that follows typed records of its stream takes the NUL rules."""
    props = {"id": {"type": "integer"}, "s": {"type": ["string", "null"]}}
    messages = [
        schema("t", props),
        record("t", {"id": 1, "s": "a"}),
        record("t", {"id": 2, "s": "a\u0000b"}),
    ]
    run = run_target(messages, sanitize_null_text_characters=True)
    assert run.returncode == 0, run.stderr
    assert rows("SELECT id, s FROM t ORDER BY id") == [(1, "a"), (2, "a\ufffdb")]
    refused = run_target([*messages, state({"s": 1})])
    assert refused.returncode != 0
    assert "input line 3, field 's': text contains a NUL character" in refused.stderr


TEXT_PROPS = {"id": {"type": "string"}, "v": {"type": ["integer", "null"]}}


def test_duplicate_text_keys_in_a_batch_keep_the_newest(run_target, rows) -> None:
    """Jira-shaped string keys: the newest version of each key wins, older never over newer."""
    run = run_target(
        [
            schema("t", TEXT_PROPS, bookmark="v"),
            record("t", {"id": "PROJ-1", "v": 2}),
            record("t", {"id": "PROJ-2", "v": 1}),
            record("t", {"id": "PROJ-1", "v": 3}),
            record("t", {"id": "PROJ-1", "v": 1}),
            state({"s": 1}),
            record("t", {"id": "PROJ-2", "v": 5}),
            record("t", {"id": "PROJ-3", "v": 1}),
            record("t", {"id": "PROJ-2", "v": 4}),
        ],
        batch_size_rows=4,
    )
    assert run.returncode == 0, run.stderr
    assert rows("SELECT id, v FROM t ORDER BY id") == [("PROJ-1", 3), ("PROJ-2", 5), ("PROJ-3", 1)]


def test_a_case_insensitive_key_collation_dedupes_as_postgresql_does(
    run_target, rows, pg_db: PgServer, ci_collation: str
) -> None:
    """'A' and 'a' are one key in a nondeterministic collation, though Python sees two: the
    batch still keeps only the newest of them, and the all-new-keys INSERT is not taken."""
    with pg_db.connect() as conn:
        conn.execute(f"CREATE TABLE t (id text COLLATE {ci_collation} PRIMARY KEY, v bigint)")
    run = run_target(
        [
            schema("t", TEXT_PROPS, bookmark="v"),
            record("t", {"id": "A", "v": 2}),
            record("t", {"id": "b", "v": 1}),
            record("t", {"id": "a", "v": 3}),
            state({"s": 1}),
            record("t", {"id": "B", "v": 0}),
            record("t", {"id": "c", "v": 1}),
            record("t", {"id": "C", "v": 2}),
        ],
        batch_size_rows=3,
    )
    assert run.returncode == 0, run.stderr
    assert rows('SELECT id, v FROM t ORDER BY id COLLATE "C"') == [
        ("C", 2),
        ("a", 3),
        ("b", 1),
    ]


def test_a_key_change_mid_run_merges_in_the_new_key_columns_collation(
    run_target, rows, pg_db: PgServer, ci_collation: str
) -> None:
    """How the table compares its keys is learnt again after a SCHEMA changes the table: the
    new key 'name' is case-insensitive, so 'A' and 'a' of one batch are one key, the newest."""
    with pg_db.connect() as conn:
        conn.execute(
            f"CREATE TABLE t (id bigint PRIMARY KEY, name text COLLATE {ci_collation}, v bigint)"
        )
    props = {"id": {"type": "integer"}, "name": {"type": "string"}, "v": {"type": "integer"}}
    run = run_target(
        [
            schema("t", props, bookmark="v"),
            record("t", {"id": 1, "name": "x", "v": 1}),
            record("t", {"id": 2, "name": "y", "v": 1}),
            state({"s": 1}),
            schema("t", props, keys=("name",), bookmark="v"),
            record("t", {"id": 3, "name": "a", "v": 3}),
            record("t", {"id": 4, "name": "A", "v": 2}),
            record("t", {"id": 5, "name": "z", "v": 1}),
            state({"s": 2}),
        ]
    )
    assert run.returncode == 0, run.stderr
    assert rows("SELECT id, name, v FROM t ORDER BY id") == [
        (1, "x", 1),
        (2, "y", 1),
        (3, "a", 3),
        (5, "z", 1),
    ]


def _text_load(stream_version: int, keys: range) -> list[dict[str, Any]]:
    return [
        schema("t", TEXT_PROPS, bookmark="v"),
        *(record("t", {"id": f"K-{k:05}", "v": stream_version}) for k in keys),
        state({"v": stream_version}),
    ]


def test_concurrent_loaders_of_new_text_keys_never_put_older_over_newer(start_target, rows) -> None:
    """As with integer keys: the loader that merges second sees the first's keys (all above
    its own or not) and upserts under the version guard."""
    older = start_target(_text_load(1, range(0, 3000)))
    newer = start_target(_text_load(2, range(2000, 5000)))
    for proc in (older, newer):
        _, err = proc.communicate(timeout=WAIT)
        assert proc.returncode == 0, err
    assert rows("SELECT v, count(*) FROM t GROUP BY v ORDER BY v") == [(1, 2000), (2, 3000)]
