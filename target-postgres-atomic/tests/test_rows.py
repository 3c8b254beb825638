"""Row-level outcomes of loading: upserts, versions, deletes, keys, types, names."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest

from safe_singer_testing.postgres import PgServer
from safe_singer_testing.target_messages import record, schema, state

ISSUE = {
    "id": {"type": "string"},
    "updated": {"type": "string", "format": "date-time"},
    "summary": {"type": ["string", "null"]},
}


def issue(key: str, updated: str, summary: str, **extra: object) -> dict:
    return record(
        "issues",
        {"id": key, "updated": f"2024-01-{updated}T00:00:00Z", "summary": summary, **extra},
    )


def test_upsert_replaces_by_key_and_keeps_others(run_target, rows) -> None:
    head = schema("issues", ISSUE, bookmark="updated")
    assert run_target([head, issue("A", "01", "a1"), issue("B", "01", "b1")]).returncode == 0
    assert run_target([head, issue("A", "02", "a2"), issue("C", "02", "c1")]).returncode == 0
    assert rows("SELECT id, summary FROM issues ORDER BY id") == [
        ("A", "a2"),
        ("B", "b1"),
        ("C", "c1"),
    ]


def test_in_batch_duplicates_newest_version_wins_whatever_the_order(run_target, rows) -> None:
    head = schema("issues", ISSUE, bookmark="updated")
    run = run_target(
        [
            head,
            issue("A", "03", "newest"),
            issue("A", "01", "old"),
            issue("A", "02", "middle"),
            issue("B", "01", "b-first"),
            issue("B", "01", "b-last-same-version"),
        ]
    )
    assert run.returncode == 0, run.stderr
    assert rows("SELECT id, summary FROM issues ORDER BY id") == [
        ("A", "newest"),
        ("B", "b-last-same-version"),
    ]


def test_older_version_never_overwrites_newer_across_runs(run_target, rows) -> None:
    head = schema("issues", ISSUE, bookmark="updated")
    assert run_target([head, issue("A", "05", "new")]).returncode == 0
    assert run_target([head, issue("A", "04", "replayed-old")]).returncode == 0
    assert rows("SELECT summary FROM issues") == [("new",)]
    assert run_target([head, issue("A", "06", "newer")]).returncode == 0
    assert rows("SELECT summary FROM issues") == [("newer",)]


def test_version_column_from_setting_when_schema_has_no_bookmark(run_target, rows) -> None:
    head = schema("issues", ISSUE)
    settings = {"version_columns": {"issues": "updated"}}
    assert run_target([head, issue("A", "05", "new")], **settings).returncode == 0
    assert run_target([head, issue("A", "04", "old")], **settings).returncode == 0
    assert rows("SELECT summary FROM issues") == [("new",)]


def test_replay_of_same_rows_changes_nothing(run_target, rows) -> None:
    head = schema("issues", ISSUE, bookmark="updated")
    batch = [head, issue("A", "01", "a"), issue("B", "01", "b")]
    assert run_target(batch).returncode == 0
    before = rows("SELECT id, xmin::text FROM issues ORDER BY id")
    assert run_target(batch).returncode == 0
    assert rows("SELECT id, xmin::text FROM issues ORDER BY id") == before


def test_decimal_strings_compare_as_numbers(run_target, rows) -> None:
    props = {
        "id": {"type": "string"},
        "_sdc_sequence_number": {"type": ["string"], "format": "x-singer.decimal"},
        "v": {"type": "string"},
    }
    head = schema("events", props, bookmark="_sdc_sequence_number")
    seq_new, seq_old = "100000000000000000000000000010", "99999999999999999999999999999"
    run = run_target(
        [
            head,
            record("events", {"id": "k", "_sdc_sequence_number": seq_new, "v": "new"}),
            record("events", {"id": "k", "_sdc_sequence_number": seq_old, "v": "old"}),
        ]
    )
    assert run.returncode == 0, run.stderr
    assert rows("SELECT _sdc_sequence_number, v FROM events") == [(Decimal(seq_new), "new")]


def test_soft_delete_keeps_row_with_deleted_at(run_target, rows) -> None:
    head = schema("issues", ISSUE, bookmark="updated")
    deleted = issue("A", "02", "gone", _sdc_deleted_at="2024-01-02T00:00:00Z")
    assert run_target([head, issue("A", "01", "a"), issue("B", "01", "b")]).returncode == 0
    assert run_target([head, deleted]).returncode == 0
    assert rows("SELECT id, _sdc_deleted_at IS NOT NULL FROM issues ORDER BY id") == [
        ("A", True),
        ("B", False),
    ]


def test_hard_delete_removes_row_but_not_when_delete_is_older(run_target, rows) -> None:
    head = schema("issues", ISSUE, bookmark="updated")
    assert run_target([head, issue("A", "05", "a"), issue("B", "05", "b")]).returncode == 0
    run = run_target(
        [
            head,
            issue("A", "06", "x", _sdc_deleted_at="2024-01-06T00:00:00Z"),
            issue("B", "04", "x", _sdc_deleted_at="2024-01-04T00:00:00Z"),
        ],
        hard_delete=True,
    )
    assert run.returncode == 0, run.stderr
    assert rows("SELECT id, summary FROM issues ORDER BY id") == [("B", "b")]


def test_composite_keys_whose_joined_strings_collide_stay_two_rows(run_target, rows) -> None:
    props = {"a": {"type": "string"}, "b": {"type": "string"}, "v": {"type": "integer"}}
    head = schema("pairs", props, keys=("a", "b"))
    run = run_target(
        [
            head,
            record("pairs", {"a": "x-", "b": "y", "v": 1}),
            record("pairs", {"a": "x", "b": "-y", "v": 2}),
            record("pairs", {"a": "x|", "b": "y", "v": 3}),
            record("pairs", {"a": "x", "b": "|y", "v": 4}),
        ]
    )
    assert run.returncode == 0, run.stderr
    assert rows("SELECT a, b, v FROM pairs ORDER BY v") == [
        ("x-", "y", 1),
        ("x", "-y", 2),
        ("x|", "y", 3),
        ("x", "|y", 4),
    ]


def test_integer_widened_to_number_keeps_fraction(run_target, rows) -> None:
    as_int = schema("m", {"id": {"type": "integer"}, "x": {"type": "integer"}})
    as_num = schema("m", {"id": {"type": "integer"}, "x": {"type": "number"}})
    run = run_target(
        [as_int, record("m", {"id": 1, "x": 1}), as_num, record("m", {"id": 2, "x": 1.5})]
    )
    assert run.returncode == 0, run.stderr
    assert rows("SELECT id, x FROM m ORDER BY id") == [(1, Decimal(1)), (2, Decimal("1.5"))]
    assert rows(
        "SELECT data_type FROM information_schema.columns WHERE table_name = 'm' "
        "AND column_name = 'x'"
    ) == [("numeric",)]


def test_schema_change_mid_stream_flushes_older_rows_first(run_target, rows) -> None:
    v1 = schema("issues", ISSUE)
    v2 = schema("issues", {**ISSUE, "priority": {"type": ["string", "null"]}})
    run = run_target([v1, issue("A", "01", "old"), v2, issue("A", "02", "new", priority="high")])
    assert run.returncode == 0, run.stderr
    assert rows("SELECT summary, priority FROM issues") == [("new", "high")]


def test_schema_change_never_drops_or_narrows(run_target, rows) -> None:
    wide = schema(
        "t", {"id": {"type": "integer"}, "x": {"type": "string"}, "y": {"type": "string"}}
    )
    narrow = schema("t", {"id": {"type": "integer"}, "x": {"type": "integer"}})
    run = run_target(
        [
            wide,
            record("t", {"id": 1, "x": "abc", "y": "kept"}),
            narrow,
            record("t", {"id": 2, "x": 7}),
        ]
    )
    assert run.returncode == 0, run.stderr
    assert rows("SELECT id, x, y FROM t ORDER BY id") == [(1, "abc", "kept"), (2, "7", None)]


def test_types_nested_objects_arrays_timestamps_big_numbers(run_target, rows) -> None:
    props = {
        "id": {"type": "integer"},
        "o": {"type": "object"},
        "a": {"type": "array"},
        "ts": {"type": "string", "format": "date-time"},
        "big": {"type": "integer"},
        "n": {"type": "number"},
        "flag": {"type": "boolean"},
    }
    big_props = {**props, "big": {"type": "integer", "maximum": 10**30}}
    run = run_target(
        [
            schema("ty", big_props),
            '{"type":"RECORD","stream":"ty","record":{"id":1,"o":{"k":[1,{"z":null}]},'
            '"a":["x",2],"ts":"2024-05-01T12:00:00+02:00","big":123456789012345678901234567890,'
            '"n":0.1000000000000000055511151231257827,"flag":true}}',
        ]
    )
    assert run.returncode == 0, run.stderr
    (row,) = rows("SELECT o, a, ts::text, big, n, flag FROM ty")
    assert row == (
        {"k": [1, {"z": None}]},
        ["x", 2],
        "2024-05-01 10:00:00+00",
        Decimal("123456789012345678901234567890"),
        Decimal("0.1000000000000000055511151231257827"),
        True,
    )


def test_special_characters_in_stream_and_property_names(run_target, rows) -> None:
    props = {
        "Id": {"type": "integer"},
        "Weird Name.with-dots": {"type": "string"},
        'quote"d': {"type": "string"},
    }
    run = run_target(
        [
            schema("My-Odd Stream", props, keys=("Id",)),
            record(
                "My-Odd Stream", {"Id": 1, "Weird Name.with-dots": "w", 'quote"d': "q\ttab\\slash"}
            ),
        ]
    )
    assert run.returncode == 0, run.stderr
    # Names are kept as sent (quoted), like MeltanoLabs target-postgres; "schema-table" streams.
    assert rows('SELECT "Id", "Weird Name.with-dots", "quote""d" FROM "My"."Odd Stream"') == [
        (1, "w", "q\ttab\\slash")
    ]


def test_streams_without_keys_append(run_target, rows) -> None:
    head = schema("log", {"msg": {"type": "string"}}, keys=())
    assert (
        run_target([head, record("log", {"msg": "a"}), record("log", {"msg": "a"})]).returncode == 0
    )
    assert rows("SELECT count(*) FROM log") == [(2,)]


def test_state_is_emitted_once_in_order_and_stored_with_the_data(run_target, rows) -> None:
    head = schema("issues", ISSUE, bookmark="updated")
    run = run_target(
        [
            head,
            issue("A", "01", "a"),
            state({"n": 1}),
            state({"n": 1}),
            issue("B", "01", "b"),
            state({"n": 2}),
        ],
        batch_size_rows=1,
    )
    assert run.returncode == 0, run.stderr
    assert run.states == [{"n": 1}, {"n": 2}]
    assert rows("SELECT stream, state FROM _sdc_target_state") == [("issues", {"n": 2})]


def test_state_numbers_keep_every_digit_on_stdout_and_in_the_database(run_target, rows) -> None:
    raw_state = (
        '{"type":"STATE","value":{"bookmarks":{"t":{"replication_key_value":'
        "12345678901234567890.123456789}}}}"
    )
    run = run_target([schema("t", {"id": {"type": "integer"}}), raw_state])
    assert run.returncode == 0, run.stderr
    assert "12345678901234567890.123456789" in run.stdout
    stored = rows("SELECT state #>> '{bookmarks,t,replication_key_value}' FROM _sdc_target_state")
    assert stored == [("12345678901234567890.123456789",)]


def test_date_column_widens_to_timestamp_and_lossy_changes_are_refused(run_target, rows) -> None:
    v1 = schema("t", {"id": {"type": "integer"}, "d": {"type": "string", "format": "date"}})
    v2 = schema("t", {"id": {"type": "integer"}, "d": {"type": "string", "format": "date-time"}})
    assert run_target([v1, record("t", {"id": 1, "d": "2024-01-01"})]).returncode == 0
    run = run_target([v2, record("t", {"id": 2, "d": "2024-03-04T10:30:00Z"})])
    assert run.returncode == 0, run.stderr
    assert rows("SELECT id, d FROM t ORDER BY id") == [
        (1, datetime(2024, 1, 1, tzinfo=timezone.utc)),
        (2, datetime(2024, 3, 4, 10, 30, tzinfo=timezone.utc)),
    ]
    flag = schema("t", {"id": {"type": "integer"}, "d": {"type": "boolean"}})
    run = run_target([flag, record("t", {"id": 3, "d": True})])
    assert run.returncode != 0
    assert "stream 't'" in run.stderr and "column 'd'" in run.stderr


def load_a_and_b_then_delete_a(run_target, head: dict) -> None:
    """Issues A and B at version 03, then A deleted at 05, with hard_delete."""
    first = run_target([head, issue("A", "03", "a3"), issue("B", "03", "b3")], hard_delete=True)
    assert first.returncode == 0, first.stderr
    deleted = issue("A", "05", "gone", _sdc_deleted_at="2024-01-05T00:00:00Z")
    assert run_target([head, deleted], hard_delete=True).returncode == 0


def test_hard_delete_keeps_a_tombstone_so_an_older_replay_stays_deleted(run_target, rows) -> None:
    head = schema("issues", ISSUE, bookmark="updated")
    settings = {"hard_delete": True}
    load_a_and_b_then_delete_a(run_target, head)
    # A replay of older upserts (in a later run, and in one batch with a newer key) stays out.
    run = run_target([head, issue("A", "04", "replayed"), issue("B", "04", "b4")], **settings)
    assert run.returncode == 0, run.stderr
    assert rows("SELECT id, summary FROM issues ORDER BY id") == [("B", "b4")]
    # A newer upsert after the delete brings the key back.
    assert run_target([head, issue("A", "06", "back")], **settings).returncode == 0
    assert rows("SELECT id, summary FROM issues ORDER BY id") == [("A", "back"), ("B", "b4")]


def test_hard_delete_tombstone_matches_keys_as_the_key_column_collation_does(
    run_target, rows, pg_db: PgServer, ci_collation: str
) -> None:
    """In a case-insensitive key collation 'a' is the key 'A': once 'A' is deleted, an older
    version spelled 'a' stays deleted, and a newer one (either spelling) comes back."""
    with pg_db.connect() as conn:
        conn.execute(
            f"CREATE TABLE issues (id text COLLATE {ci_collation} PRIMARY KEY, "
            "updated timestamp with time zone, summary text)"
        )
    head = schema("issues", ISSUE, bookmark="updated")
    settings = {"hard_delete": True}
    load_a_and_b_then_delete_a(run_target, head)
    run = run_target([head, issue("a", "04", "replayed"), issue("b", "04", "b4")], **settings)
    assert run.returncode == 0, run.stderr
    assert rows("SELECT id, summary FROM issues") == [("b", "b4")]
    # The delete spelled in the other case also keeps its version: its older replay stays out.
    deleted = issue("b", "06", "gone", _sdc_deleted_at="2024-01-06T00:00:00Z")
    run = run_target([head, deleted], **settings)
    assert run.returncode == 0, run.stderr
    run = run_target([head, issue("a", "06", "back"), issue("B", "05", "replayed")], **settings)
    assert run.returncode == 0, run.stderr
    assert rows("SELECT id, summary FROM issues") == [("a", "back")]


@pytest.mark.parametrize(
    ("key_type", "key"),
    [("number", "{}"), ("object", '{{"n": {}}}')],
    ids=["numeric", "jsonb"],
)
def test_hard_delete_tombstone_matches_keys_by_value_not_spelling(
    run_target, rows, key_type: str, key: str
) -> None:
    """A number key is a numeric column (an object key a jsonb one), where 1.0, 1.00 and 1
    are one key: once 1.0 is deleted, an older replay spelled 1.00 stays deleted, and a newer
    one spelled 1 comes back."""
    head = schema("m", {"id": {"type": key_type}, "v": {"type": "integer"}}, bookmark="v")

    def line(number: str, version: int, deleted: bool = False) -> str:
        gone = ', "_sdc_deleted_at": "2024-01-05T00:00:00Z"' if deleted else ""
        row = f'{{"id": {key.format(number)}, "v": {version}{gone}}}'
        return f'{{"type": "RECORD", "stream": "m", "record": {row}}}'

    settings = {"hard_delete": True}
    assert run_target([head, line("1.0", 1), line("2.50", 1)], **settings).returncode == 0
    assert run_target([head, line("1.0", 5, deleted=True)], **settings).returncode == 0
    run = run_target([head, line("1.00", 3), line("2.5", 2)], **settings)
    assert run.returncode == 0, run.stderr
    assert rows("SELECT v FROM m") == [(2,)]
    # Deleted spelled 2.500: the tombstone's key is the value, so an older 2.5 stays out too.
    assert run_target([head, line("2.500", 4, deleted=True)], **settings).returncode == 0
    run = run_target([head, line("1", 6), line("2.5", 3)], **settings)
    assert run.returncode == 0, run.stderr
    assert rows("SELECT id::text, v FROM m") == [(key.format("1"), 6)]
