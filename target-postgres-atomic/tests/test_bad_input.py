"""Bad input stops the run loudly: stream, line and field named; its batch not committed."""

from __future__ import annotations

import json

import pytest

from safe_singer_testing.target_messages import record, schema, state

PROPS = {
    "id": {"type": "integer"},
    "n": {"type": ["integer", "null"]},
    "ts": {"type": ["string", "null"], "format": "date-time"},
    "s": {"type": ["string", "null"]},
}
# Lines 1-4 commit as one batch (batch_size_rows=2) and STATE {"s": 1} is emitted; line 5 is
# a good record of the next batch, line 6 the bad input, line 7 a STATE never to be emitted.
PREFIX = [
    schema("t", PROPS),
    record("t", {"id": 1}),
    state({"s": 1}),
    record("t", {"id": 2}),
    record("t", {"id": 3}),
]
BAD_LINE = 6

CASES = {
    "invalid_json": ('{"type": "RECORD", "stream": "t", "record": {"id": 4', None),
    "record_before_schema": (json.dumps(record("other", {"id": 4})), None),
    "schema_violation": (json.dumps(record("t", {"id": 4, "n": "four"})), "n"),
    "missing_key_property": (json.dumps(record("t", {"n": 4})), "id"),
    "nul_in_text": (json.dumps(record("t", {"id": 4, "s": "a\u0000b"})), "s"),
    "not_a_timestamp": (json.dumps(record("t", {"id": 4, "ts": "yesterday-ish"})), "ts"),
    "integer_too_big_for_column": (json.dumps(record("t", {"id": 4, "n": 2**70})), "n"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_names_line_and_field_and_commits_nothing_of_its_batch(
    case: str, run_target, rows
) -> None:
    bad, field = CASES[case]
    run = run_target([*PREFIX, bad, state({"s": 2})], batch_size_rows=2)
    assert run.returncode != 0
    assert f"input line {BAD_LINE}" in run.stderr
    if field is not None:
        assert f"field '{field}'" in run.stderr
    if case != "invalid_json":  # an unparseable line names no stream, only its number
        assert "stream 't'" in run.stderr or "stream 'other'" in run.stderr
    assert run.states == [{"s": 1}]
    assert rows("SELECT id FROM t ORDER BY id") == [(1,), (2,)]
    assert rows("SELECT state FROM _sdc_target_state") == [({"s": 1},)]


def test_nul_is_replaced_when_sanitising(run_target, rows) -> None:
    run = run_target(
        [schema("t", PROPS), record("t", {"id": 1, "s": "a\u0000b"})],
        sanitize_null_text_characters=True,
    )
    assert run.returncode == 0, run.stderr
    assert rows("SELECT s FROM t") == [("a\ufffdb",)]


def test_password_never_appears_in_output(run_target, pg_db) -> None:
    secret = "s3cr3t-never-logged"
    run = run_target([schema("t", PROPS)], password=secret, port=1)
    assert run.returncode != 0
    assert secret not in run.stderr + run.stdout


def test_name_postgres_would_truncate_is_rejected_before_any_ddl(run_target, rows) -> None:
    long_name = "x" * 64
    run = run_target([schema("t", {**PROPS, long_name: {"type": "string"}})])
    assert run.returncode != 0
    assert "stream 't', input line 1" in run.stderr and long_name in run.stderr
    assert rows("SELECT count(*) FROM pg_tables WHERE tablename = 't'") == [(0,)]


def test_a_failed_commit_stops_every_later_batch_and_state(run_target, rows) -> None:
    bad_ts = record("t", {"id": 3, "ts": "not a time"})
    messages = [
        schema("t", PROPS),
        record("t", {"id": 1}),
        record("t", {"id": 2}),
        state({"s": 1}),
        bad_ts,
        record("t", {"id": 4}),
        state({"s": 2}),
        record("t", {"id": 5}),
        record("t", {"id": 6}),
        state({"s": 3}),
        record("t", {"id": 7}),
        record("t", {"id": 8}),
    ]
    run = run_target(messages, batch_size_rows=2)
    assert run.returncode != 0
    assert "input line 5, field 'ts'" in run.stderr
    assert run.states == [{"s": 1}]
    assert rows("SELECT id FROM t ORDER BY id") == [(1,), (2,)]
    assert rows("SELECT state FROM _sdc_target_state") == [({"s": 1},)]
