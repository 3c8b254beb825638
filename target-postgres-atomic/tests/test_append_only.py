"""append-only into a table that has a primary key is refused at its SCHEMA, with the reason
(issue 23 item 8): before, the run failed at the first repeated key, mid-load."""

from __future__ import annotations

from safe_singer_testing.target_messages import record, schema, state

PROPS = {"id": {"type": "integer"}, "v": {"type": "string"}}


def test_append_only_into_a_keyed_table_is_refused_at_its_schema(run_target, rows) -> None:
    keyed = [schema("items", PROPS), record("items", {"id": 1, "v": "a"})]
    assert run_target(keyed).returncode == 0
    again = [
        schema("items", PROPS),
        record("items", {"id": 2, "v": "b"}),
        state({"s": 1}),
        record("items", {"id": 1, "v": "b"}),
    ]
    run = run_target(again, load_method="append-only", batch_size_rows=1)
    assert run.returncode == 1, run.stderr
    assert "Traceback" not in run.stderr
    found = [line for line in run.stderr.splitlines() if "append-only" in line]
    assert len(found) == 1, run.stderr
    assert "'items'" in found[0] and "input line 1" in found[0] and "(id)" in found[0], found
    assert run.states == []
    assert rows("SELECT id, v FROM items ORDER BY id") == [(1, "a")]


def test_append_only_creates_keyless_tables_that_take_repeats(run_target, rows) -> None:
    repeated = [schema("items", PROPS), *(record("items", {"id": 1, "v": v}) for v in "ab")]
    assert run_target(repeated, load_method="append-only").returncode == 0
    assert run_target(repeated, load_method="append-only").returncode == 0
    assert rows("SELECT count(*) FROM items") == [(4,)]
