"""Issue 19 items 2, 5 and 6: no stream reaches the target's own tables or a system schema,
and properties a record has beyond its schema are dropped by name, never silently."""

from __future__ import annotations

from typing import Any

import pytest

from safe_singer_testing.target_messages import record, schema, state

REFUSAL = "target-postgres-atomic: error: "  # the target's one error line
PROPS = {"id": {"type": "integer"}}


@pytest.mark.parametrize("name", ["_sdc_target_state", "_sdc_target_tombstones"])
def test_no_stream_reaches_the_targets_own_tables(name: str, run_target, rows) -> None:
    first = run_target([schema("t", PROPS), record("t", {"id": 1}), state({"kept": 1})])
    assert first.returncode == 0, first.stderr
    attack = [
        schema(name, {"stream": {"type": "string"}, "state": {"type": "object"}}, ["stream"]),
        record(name, {"stream": "t", "state": {"forged": 1}}),
    ]
    run = run_target(attack, hard_delete=True)
    assert run.returncode == 1
    assert f"table name '{name}' is reserved for the target's own tables" in run.stderr
    assert "Traceback" not in run.stderr
    assert rows("SELECT stream, state FROM _sdc_target_state") == [("t", {"kept": 1})]
    assert rows("SELECT to_regclass('_sdc_target_tombstones')") == [(None,)]


@pytest.mark.parametrize(
    ("settings", "stream", "system"),
    [
        ({"default_target_schema": "information_schema"}, "t", "information_schema"),
        ({"default_target_schema": "pg_catalog"}, "t", "pg_catalog"),
        ({"default_target_schema": "pg_toast"}, "t", "pg_toast"),
        ({"default_target_schema": "pg_temp_3"}, "t", "pg_temp_3"),
        ({}, "pg_catalog-pg_class", "pg_catalog"),
        ({}, "information_schema-tables", "information_schema"),
        ({}, "db-pg_temp-t", "pg_temp"),
    ],
)
def test_system_schemas_are_refused(
    settings: dict[str, Any], stream: str, system: str, run_target
) -> None:
    run = run_target([schema(stream, PROPS), record(stream, {"id": 1})], **settings)
    assert run.returncode == 1
    errors = [line for line in run.stderr.splitlines() if "system schema" in line]
    assert len(errors) == 1, run.stderr
    assert f"schema '{system}'" in errors[0] and errors[0].startswith(REFUSAL)
    assert "Traceback" not in run.stderr


@pytest.mark.parametrize("path", ["typed", "general"])
def test_dropped_properties_are_named_once_per_stream(path: str, run_target, rows) -> None:
    """Properties the schema lacks are dropped (as Singer targets do), and named once, with
    no value (issue 19 item 5)."""
    properties: dict[str, dict[str, Any]] = {"name": {"type": "string"}}
    if path == "general":
        properties["name"]["enum"] = ["a", "b"]
    messages = [
        schema("t", {**PROPS, **properties}),
        record("t", {"id": 1, "name": "a"}),
        record("t", {"id": 2, "name": "b", "token": "s3cr3t-value", "zeta": 1}),
        record("t", {"id": 3, "name": "a", "token": "other-value"}),
    ]
    run = run_target(messages)
    assert run.returncode == 0, run.stderr[-2000:]
    assert rows("SELECT id, name FROM t ORDER BY id") == [(1, "a"), (2, "b"), (3, "a")]
    warned = [line for line in run.stderr.splitlines() if "not in its schema" in line]
    assert len(warned) == 1, run.stderr[-2000:]
    assert "WARNING" in warned[0] and "Stream 't'" in warned[0], warned
    assert "'token', 'zeta'" in warned[0], warned
    assert "s3cr3t" not in run.stderr and "other-value" not in run.stderr
