"""hard_delete tombstones are pruned after tombstone_retention_days (issue 23 item 3); the
guard stays correct for every delete newer than that horizon."""

from __future__ import annotations

from safe_singer_testing.target_messages import record, schema

PROPS = {"id": {"type": "integer"}, "v": {"type": "integer"}, "_sdc_deleted_at": {}}
HEAD = schema("items", PROPS, bookmark="v")
TOMBSTONES = "SELECT key FROM _sdc_target_tombstones WHERE table_name = 'items' ORDER BY key"


def rows_at(version: int, deleted: bool = False) -> list[dict]:
    extra = {"_sdc_deleted_at": "2024-01-01T00:00:00Z"} if deleted else {}
    return [record("items", {"id": i, "v": version, **extra}) for i in range(1, 5)]


def test_pruning_keeps_the_guard_for_deletes_newer_than_the_horizon(run_target, rows) -> None:
    assert run_target([HEAD, *rows_at(1)], hard_delete=True).returncode == 0
    assert run_target([HEAD, *rows_at(5, deleted=True)], hard_delete=True).returncode == 0
    assert rows(TOMBSTONES) == [(["1"],), (["2"],), (["3"],), (["4"],)]
    # The deletes of 1 and 2 happened 100 days ago.
    rows(
        "UPDATE _sdc_target_tombstones SET deleted_at = now() - interval '100 days' "
        "WHERE key IN ('{1}', '{2}') RETURNING 1"
    )
    # A long retention keeps them all: the older replay stays out.
    kept = run_target([HEAD, *rows_at(2)[:1]], hard_delete=True, tombstone_retention_days=365)
    assert kept.returncode == 0, kept.stderr
    assert rows("SELECT count(*) FROM items") == [(0,)]
    # The default (90 days) prunes them, says so once, and still guards 3 and 4.
    run = run_target([HEAD, *rows_at(2)], hard_delete=True)
    assert run.returncode == 0, run.stderr
    pruned = [line for line in run.stderr.splitlines() if "pruned" in line]
    assert len(pruned) == 1 and "2 tombstones" in pruned[0] and "90 days" in pruned[0], pruned
    assert rows(TOMBSTONES) == [(["3"],), (["4"],)]
    assert rows("SELECT id FROM items ORDER BY id") == [(1,), (2,)]
    # A newer delete of a pruned key writes a fresh tombstone.
    again = run_target([HEAD, *rows_at(6, deleted=True)[:1], *rows_at(3)[:1]], hard_delete=True)
    assert again.returncode == 0, again.stderr
    assert rows("SELECT id FROM items ORDER BY id") == [(2,)]
