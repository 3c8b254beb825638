"""The end-of-input warning of an unproven full refresh says what happened to the rows."""

from __future__ import annotations

from safe_singer_testing.target_messages import activate, record, schema

HEAD = schema("items", {"id": {"type": "integer"}, "v": {"type": "string"}})


def test_the_unproven_refresh_warning_says_which_rows_were_deleted(run_target, rows) -> None:
    old = [record("items", {"id": i, "v": "old"}, version=1) for i in range(5)]
    assert run_target([HEAD, *old]).returncode == 0
    new = [record("items", {"id": i, "v": "new"}, version=7) for i in range(3)]
    gone = record("items", {"id": 3, "v": "x", "_sdc_deleted_at": "2024-01-01T00:00:00Z"}, 7)
    run = run_target([HEAD, activate("items", 7), *new, gone], hard_delete=True)
    assert run.returncode == 0, run.stderr
    assert rows("SELECT id FROM items ORDER BY id") == [(0,), (1,), (2,), (4,)]
    assert "no row was deleted" not in run.stderr
    assert (
        "rows absent from the refresh were kept, and records carrying _sdc_deleted_at "
        "deleted their rows (hard_delete)" in run.stderr
    )
