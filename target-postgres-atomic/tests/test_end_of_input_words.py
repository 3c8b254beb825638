"""The end-of-input warning of an unproven full refresh (or overwrite) says what happened to
the rows: how many the records carrying `_sdc_deleted_at` deleted, never what a setting
would allow (issue 22 item 6)."""

from __future__ import annotations

from safe_singer_testing.target_messages import activate, record, schema

HEAD = schema("items", {"id": {"type": "integer"}, "v": {"type": "string"}})
GONE_AT = "2024-01-01T00:00:00Z"


def seed_old_rows(run_target) -> None:
    old = [record("items", {"id": i, "v": "old"}, version=1) for i in range(5)]
    assert run_target([HEAD, *old]).returncode == 0


def new_rows(version: int | None = 7) -> list[dict]:
    return [record("items", {"id": i, "v": "new"}, version=version) for i in range(3)]


def test_hard_delete_without_a_delete_record_says_no_row_was_deleted(run_target, rows) -> None:
    seed_old_rows(run_target)
    run = run_target([HEAD, activate("items", 7), *new_rows()], hard_delete=True)
    assert run.returncode == 0, run.stderr
    assert rows("SELECT id, v FROM items ORDER BY id") == [
        (0, "new"),
        (1, "new"),
        (2, "new"),
        (3, "old"),
        (4, "old"),
    ]
    assert "rows absent from the refresh were kept; no row was deleted." in run.stderr
    assert "deleted by _sdc_deleted_at" not in run.stderr


def test_a_delete_of_a_key_the_table_lacks_deletes_no_row(run_target, rows) -> None:
    seed_old_rows(run_target)
    absent = record("items", {"id": 9, "v": "x", "_sdc_deleted_at": GONE_AT}, 7)
    run = run_target([HEAD, activate("items", 7), *new_rows(), absent], hard_delete=True)
    assert run.returncode == 0, run.stderr
    assert rows("SELECT id FROM items ORDER BY id") == [(i,) for i in range(5)]
    assert "rows absent from the refresh were kept; no row was deleted." in run.stderr


def test_upsert_refresh_counts_the_rows_its_delete_records_deleted(run_target, rows) -> None:
    """One delete lands before the refresh opens (a batch of its own), one inside it: both
    count."""
    seed_old_rows(run_target)
    before = record("items", {"id": 4, "v": "x", "_sdc_deleted_at": GONE_AT})
    inside = record("items", {"id": 3, "v": "x", "_sdc_deleted_at": GONE_AT}, 7)
    run = run_target(
        [HEAD, before, activate("items", 7), *new_rows(), inside],
        hard_delete=True,
        load_method="upsert",
    )
    assert run.returncode == 0, run.stderr
    assert rows("SELECT id, v FROM items ORDER BY id") == [(0, "new"), (1, "new"), (2, "new")]
    assert (
        "rows absent from the refresh were kept; 2 rows were deleted by _sdc_deleted_at "
        "records in this run (hard_delete)." in run.stderr
    )
    assert "no row was deleted" not in run.stderr


def test_overwrite_counts_the_row_its_delete_record_deleted(run_target, rows) -> None:
    seed_old_rows(run_target)
    gone = record("items", {"id": 3, "v": "x", "_sdc_deleted_at": GONE_AT})
    run = run_target([HEAD, *new_rows(None), gone], hard_delete=True, load_method="overwrite")
    assert run.returncode == 0, run.stderr
    assert rows("SELECT id, v FROM items ORDER BY id") == [
        (0, "new"),
        (1, "new"),
        (2, "new"),
        (4, "old"),
    ]
    assert (
        "load_method overwrite, but the input ended without proof that the tap sent all of "
        "it (a failed tap ends the input too): its rows were merged as upserts and rows "
        "absent from the input were kept; 1 row was deleted by _sdc_deleted_at records in "
        "this run (hard_delete)." in run.stderr
    )
    assert "no row was deleted" not in run.stderr


def test_a_delete_property_the_schema_lacks_is_used_not_named_as_dropped(run_target, rows) -> None:
    """`_sdc_deleted_at` is read from a record whose schema does not declare it, so the
    warning about dropped properties must not name it (a property really dropped still is)."""
    seed_old_rows(run_target)
    gone = record("items", {"id": 3, "v": "x", "_sdc_deleted_at": GONE_AT, "extra": 1})
    run = run_target([HEAD, gone], hard_delete=True)
    assert run.returncode == 0, run.stderr
    assert rows("SELECT id FROM items ORDER BY id") == [(0,), (1,), (2,), (4,)]
    assert "dropping properties not in its schema: 'extra' (" in run.stderr
    assert "'_sdc_deleted_at'" not in run.stderr


def test_a_soft_delete_property_the_schema_lacks_is_not_named_as_dropped(run_target, rows) -> None:
    seed_old_rows(run_target)
    gone = record("items", {"id": 3, "v": "x", "_sdc_deleted_at": GONE_AT})
    run = run_target([HEAD, gone])
    assert run.returncode == 0, run.stderr
    assert rows("SELECT id FROM items WHERE _sdc_deleted_at IS NOT NULL") == [(3,)]
    assert "dropping properties" not in run.stderr
