"""ACTIVATE_VERSION and load_method overwrite: the old version goes only with the new one."""

from __future__ import annotations

import gzip
import json
import time
from pathlib import Path

from safe_singer_testing.target_messages import activate, record, schema, state

PROPS = {"id": {"type": "integer"}, "v": {"type": "string"}}
HEAD = schema("items", PROPS)
TORN_LINE = '{"type": "RECORD", "stream": "it'
SHADOWS = "SELECT count(*) FROM pg_tables WHERE tablename LIKE '\\_sdc\\_shadow%'"


def version_rows(version: int, ids: range, tag: str) -> list[dict]:
    return [record("items", {"id": i, "v": tag}, version=version) for i in ids]


def test_full_refresh_replaces_table_and_first_activate_deletes_nothing(run_target, rows) -> None:
    first = [HEAD, activate("items", 1), *version_rows(1, range(10), "old"), activate("items", 1)]
    assert run_target(first, hard_delete=True).returncode == 0
    assert rows("SELECT count(*) FROM items WHERE v = 'old'") == [(10,)]

    second = [
        HEAD,
        activate("items", 2),
        *version_rows(2, range(5, 12), "new"),
        activate("items", 2),
    ]
    run = run_target(second, hard_delete=True, batch_size_rows=3)
    assert run.returncode == 0, run.stderr
    assert rows("SELECT id, v, _sdc_table_version FROM items ORDER BY id") == [
        (i, "new", 2) for i in range(5, 12)
    ]
    assert rows(SHADOWS) == [(0,)]


def test_killed_after_first_activate_and_one_record_keeps_all_old_rows(run_target, rows) -> None:
    assert run_target([HEAD, *version_rows(1, range(10), "old")]).returncode == 0
    # The known failure: a target that deletes at the first ACTIVATE_VERSION leaves one row.
    # Here the run fails (as a killed tap's torn last line does) after the first
    # ACTIVATE_VERSION and two records.
    partial = [
        HEAD,
        activate("items", 2),
        *version_rows(2, range(1), "new"),
        state({"s": 1}),
        *version_rows(2, range(1, 2), "new"),
        TORN_LINE,
    ]
    run = run_target(partial, hard_delete=True, batch_size_rows=1)
    assert run.returncode != 0
    assert run.states == []  # the rows are only in the shadow table
    assert rows("SELECT id, v FROM items ORDER BY id") == [(i, "old") for i in range(10)]


def test_failed_refresh_leaves_table_and_no_shadow_and_a_resent_refresh_swaps_in(
    run_target, rows
) -> None:
    assert run_target([HEAD, *version_rows(1, range(6), "old")]).returncode == 0
    head_part = [
        HEAD,
        activate("items", 2),
        *version_rows(2, range(3), "new"),
        state({"p": 3}),
        TORN_LINE,
    ]
    failed = run_target(head_part, hard_delete=True, batch_size_rows=1)
    assert failed.returncode != 0
    assert failed.states == []  # the rows it loaded were never acknowledged...
    assert rows("SELECT id, v FROM items ORDER BY id") == [(i, "old") for i in range(6)]
    assert rows(SHADOWS) == [(0,)]  # ...so they went with the shadow
    # The tap starts again from its last emitted STATE (none): the whole refresh again.
    again = [HEAD, activate("items", 3), *version_rows(3, range(4), "new"), activate("items", 3)]
    assert run_target(again, hard_delete=True).returncode == 0
    assert rows("SELECT id, v FROM items ORDER BY id") == [(i, "new") for i in range(4)]


def test_soft_delete_marks_rows_of_older_versions(run_target, rows) -> None:
    assert run_target([HEAD, *version_rows(1, range(3), "old")]).returncode == 0
    run = run_target(
        [HEAD, activate("items", 2), *version_rows(2, range(1), "new"), activate("items", 2)]
    )
    assert run.returncode == 0, run.stderr
    assert rows("SELECT id, v, _sdc_deleted_at IS NOT NULL FROM items ORDER BY id") == [
        (0, "new", False),
        (1, "old", True),
        (2, "old", True),
    ]


def test_refresh_keeps_grants_indexes_and_dependent_views(run_target, rows, pg_db) -> None:
    assert run_target([HEAD, *version_rows(1, range(3), "old")]).returncode == 0
    with pg_db.connect(autocommit=True) as conn:
        conn.execute("CREATE VIEW items_view AS SELECT id, v FROM items")
        conn.execute("CREATE INDEX items_v ON items (v)")
        conn.execute(
            "CREATE ROLE reader_x NOLOGIN"
            if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = 'reader_x'").fetchone()
            else "SELECT 1"
        )
        conn.execute("GRANT SELECT ON items TO reader_x")
    run = run_target(
        [HEAD, activate("items", 2), *version_rows(2, range(2), "new"), activate("items", 2)],
        hard_delete=True,
        batch_size_rows=1,
    )
    assert run.returncode == 0, run.stderr
    assert rows("SELECT id, v FROM items_view ORDER BY id") == [(0, "new"), (1, "new")]
    assert rows("SELECT count(*) FROM pg_indexes WHERE indexname = 'items_v'") == [(1,)]
    assert rows("SELECT has_table_privilege('reader_x', 'items', 'SELECT')") == [(True,)]


def test_record_of_new_version_counts_even_when_guard_keeps_stored_values(run_target, rows) -> None:
    props = {"id": {"type": "integer"}, "updated": {"type": "integer"}, "v": {"type": "string"}}
    head = schema("items", props, bookmark="updated")
    assert (
        run_target([head, record("items", {"id": 1, "updated": 9, "v": "newer"})]).returncode == 0
    )
    run = run_target(
        [
            head,
            activate("items", 5),
            record("items", {"id": 1, "updated": 3, "v": "older"}, version=5),
            activate("items", 5),
        ],
        hard_delete=True,
    )
    assert run.returncode == 0, run.stderr
    assert rows("SELECT id, updated, v, _sdc_table_version FROM items") == [(1, 9, "newer", 5)]


def test_overwrite_replaces_table_only_at_the_end(run_target, rows, monkeypatch) -> None:
    assert run_target([HEAD, *version_rows(1, range(4), "old")]).returncode == 0
    monkeypatch.setenv("SINGER_END_OF_INPUT_MEANS_TAP_SUCCEEDED", "1")  # the runner's word
    run = run_target(
        [
            HEAD,
            record("items", {"id": 7, "v": "new"}),
            state({"x": 1}),
            record("items", {"id": 8, "v": "new"}),
        ],
        load_method="overwrite",
        hard_delete=True,
        batch_size_rows=1,
    )
    assert run.returncode == 0, run.stderr
    assert run.states == [{"x": 1}]
    assert rows("SELECT id, v FROM items ORDER BY id") == [(7, "new"), (8, "new")]


def test_batch_messages_load_jsonl_and_gzip_files(run_target, rows, tmp_path: Path) -> None:
    plain = tmp_path / "a.jsonl"
    plain.write_text("\n".join(json.dumps({"id": i, "v": "plain"}) for i in range(3)) + "\n")
    zipped = tmp_path / "b.jsonl.gz"
    with gzip.open(zipped, "wt") as handle:
        handle.write("\n".join(json.dumps({"id": i, "v": "gz"}) for i in range(2, 5)))
    batch = {
        "type": "BATCH",
        "stream": "items",
        "encoding": {"format": "jsonl", "compression": "gzip"},
        "manifest": [plain.as_uri(), zipped.as_uri()],
    }
    run = run_target(
        [
            HEAD,
            {
                **batch,
                "encoding": {"format": "jsonl", "compression": "none"},
                "manifest": [plain.as_uri()],
            },
            {**batch, "manifest": [zipped.as_uri()]},
            state({"b": 1}),
        ]
    )
    assert run.returncode == 0, run.stderr
    assert rows("SELECT id, v FROM items ORDER BY id") == [
        (0, "plain"),
        (1, "plain"),
        (2, "gz"),
        (3, "gz"),
        (4, "gz"),
    ]
    assert run.states == [{"b": 1}]


def test_bad_record_in_multi_batch_refresh_fails_its_batch_before_state(run_target, rows) -> None:
    props = {"id": {"type": "integer"}, "ts": {"type": ["string", "null"], "format": "date-time"}}
    head = schema("items", props)
    first = [
        head,
        activate("items", 2),
        record("items", {"id": 1, "ts": "not-a-timestamp"}, version=2),
        state({"s": 1}),
        record("items", {"id": 2, "ts": "2024-01-01T00:00:00Z"}, version=2),
        activate("items", 2),
    ]
    run = run_target(first, batch_size_rows=1)
    assert run.returncode != 0
    assert run.states == []
    assert "'items'" in run.stderr and "ts" in run.stderr
    # The tap resumes from its last STATE (none), so the refresh can finish once fixed.
    fixed = [
        head,
        activate("items", 3),
        record("items", {"id": 1, "ts": None}, version=3),
        record("items", {"id": 2, "ts": "2024-01-01T00:00:00Z"}, version=3),
        activate("items", 3),
    ]
    assert run_target(fixed, batch_size_rows=1).returncode == 0
    assert rows("SELECT id FROM items ORDER BY id") == [(1,), (2,)]


def test_resent_opening_activate_publishes_nothing(run_target, rows) -> None:
    assert run_target([HEAD, *version_rows(1, range(10), "old")]).returncode == 0
    head_part = [HEAD, activate("items", 2), *version_rows(2, range(3), "new"), TORN_LINE]
    assert run_target(head_part, batch_size_rows=1).returncode != 0
    # The next run opens the same refresh again and ends before any record of it.
    assert run_target([HEAD, activate("items", 2)]).returncode == 0
    assert rows("SELECT count(*) FROM items WHERE _sdc_deleted_at IS NULL AND v = 'old'") == [(10,)]
    assert rows(SHADOWS) == [(0,)]
    # ...and a later run that sends it all, opening and closing, finishes it.
    whole = [HEAD, activate("items", 2), *version_rows(2, range(5), "new"), activate("items", 2)]
    assert run_target(whole).returncode == 0
    assert rows("SELECT id, v FROM items WHERE _sdc_deleted_at IS NULL ORDER BY id") == [
        (i, "new") for i in range(5)
    ]


def test_overwrite_takes_its_table_version_from_the_database_clock(
    run_target, rows, monkeypatch
) -> None:
    old = [HEAD, *version_rows(0, range(3), "old")]
    monkeypatch.setenv("SINGER_END_OF_INPUT_MEANS_TAP_SUCCEEDED", "1")  # the runner's word
    assert run_target(old, load_method="overwrite").returncode == 0
    real = time.time_ns
    monkeypatch.setattr(time, "time_ns", lambda: real() - 10 * 60 * 10**9)  # host 10 min behind
    run = run_target([HEAD, record("items", {"id": 0, "v": "new"})], load_method="overwrite")
    assert run.returncode == 0, run.stderr
    assert rows("SELECT id, v FROM items WHERE _sdc_deleted_at IS NULL") == [(0, "new")]
