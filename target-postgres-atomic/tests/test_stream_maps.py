"""Settings users expect to take effect do: stream maps, flattening, content encoding; settings
the target does not implement are refused at start rather than silently ignored."""

from __future__ import annotations

import json

import pytest

from safe_singer_testing.cli import about
from safe_singer_testing.target_messages import activate, record, schema, state

USERS = {
    "id": {"type": "integer"},
    "email": {"type": ["string", "null"]},
    "name": {"type": ["string", "null"]},
    "address": {
        "type": ["object", "null"],
        "properties": {"city": {"type": "string"}, "geo": {"type": "object"}},
    },
    "amount": {"type": ["number", "null"]},
}
ALICE = {
    "id": 1,
    "email": "a@example.com",
    "name": "Alice",
    "address": {"city": "Oslo", "geo": {"lat": 59.9}},
    "amount": 0.5,
}
# Every digit of a number must survive the map's decode and re-encode.
ALICE_LINE = json.dumps(record("users", ALICE)).replace("0.5", "12345678901234567890.123456789")


def test_a_stream_map_drops_a_pii_column_and_adds_one(run_target, rows) -> None:
    maps = {"users": {"email": None, "email_domain": "email.split('@')[-1]"}}
    run = run_target([schema("users", USERS), ALICE_LINE, state({"s": 1})], stream_maps=maps)
    assert run.returncode == 0, run.stderr
    assert run.states == [{"s": 1}]
    columns = [
        c
        for (c,) in rows(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'users'"
        )
    ]
    assert "email" not in columns
    assert rows("SELECT id, name, email_domain, amount::text FROM users") == [
        (1, "Alice", "example.com", "12345678901234567890.123456789")
    ]


def test_a_stream_map_filters_renames_and_removes_streams(run_target, rows) -> None:
    maps = {
        "users": {"__alias__": "people", "__filter__": "id != 2"},
        "audit": None,
    }
    messages = [
        activate("users", 7),  # before its SCHEMA, as pipelinewise's test input does
        schema("users", USERS),
        schema("audit", {"id": {"type": "integer"}}),
        record("users", ALICE, version=7),
        record("users", {"id": 2, "name": "Bob"}, version=7),
        record("audit", {"id": 1}),
        activate("users", 7),
    ]
    run = run_target(messages, stream_maps=maps)
    assert run.returncode == 0, run.stderr
    assert rows("SELECT id, name FROM people") == [(1, "Alice")]
    assert rows("SELECT to_regclass('users'), to_regclass('audit')") == [(None, None)]


def test_flattening_unnests_objects_to_the_configured_depth(run_target, rows) -> None:
    run = run_target(
        [schema("users", USERS), record("users", ALICE)],
        flattening_enabled=True,
        flattening_max_depth=1,
    )
    assert run.returncode == 0, run.stderr
    # As singer-sdk flattens: objects deeper than the limit become JSON text.
    assert rows("SELECT address__city, address__geo FROM users") == [("Oslo", '{"lat":59.9}')]


def test_an_invalid_stream_map_is_one_clear_line(run_target) -> None:
    run = run_target(
        [schema("users", USERS), record("users", ALICE)],
        stream_maps={"users": {"x": "no_such_name + 1"}},
    )
    assert run.returncode != 0
    assert "no_such_name" in run.stderr, run.stderr
    assert "Traceback" not in run.stderr


def test_base64_content_is_stored_as_bytes_when_interpreted(run_target, rows) -> None:
    props = {
        "id": {"type": "integer"},
        "blob": {"type": ["string", "null"], "contentEncoding": "base64"},
    }
    messages = [schema("f", props), record("f", {"id": 1, "blob": "AAEC/w=="})]
    run = run_target(messages, interpret_content_encoding=True)
    assert run.returncode == 0, run.stderr
    assert rows("SELECT blob FROM f") == [(b"\x00\x01\x02\xff",)]
    bad = run_target(
        [schema("f", props), record("f", {"id": 2, "blob": "not base64!"})],
        interpret_content_encoding=True,
    )
    assert bad.returncode != 0
    assert "stream 'f', input line 2, field 'blob'" in bad.stderr, bad.stderr
    assert rows("SELECT id FROM f") == [(1,)]


def test_base64_stays_text_by_default(run_target, rows) -> None:
    props = {"id": {"type": "integer"}, "blob": {"type": "string", "contentEncoding": "base64"}}
    run = run_target([schema("f", props), record("f", {"id": 1, "blob": "AAEC/w=="})])
    assert run.returncode == 0, run.stderr
    assert rows("SELECT blob FROM f") == [("AAEC/w==",)]


@pytest.mark.parametrize(
    ("setting", "value", "hint"),
    [
        ("schema_mapping", {"public": {"target_schema": "raw"}}, "default_target_schema"),
        ("data_flattening_max_level", 2, "flattening_max_depth"),
        ("add_metadata_columns", True, "add_record_metadata"),
        ("dbname", "x", "database"),
        ("max_parallelism", 4, "not tunable"),
        ("hard_delet", True, "not a setting"),
    ],
)
def test_settings_the_target_does_not_implement_are_refused_at_start(
    setting: str, value: object, hint: str, run_target, rows
) -> None:
    run = run_target([schema("t", {"id": {"type": "integer"}})], **{setting: value})
    assert run.returncode != 0
    assert f"setting '{setting}'" in run.stderr and hint in run.stderr, run.stderr
    assert "Traceback" not in run.stderr
    assert rows("SELECT to_regclass('t')") == [(None,)]


def test_about_lists_the_mapping_capabilities_and_settings() -> None:
    data = about("target-postgres-atomic")
    assert {"stream-maps", "schema-flattening"} <= set(data["capabilities"])
    assert {
        "stream_maps",
        "flattening_enabled",
        "flattening_max_depth",
        "interpret_content_encoding",
    } <= set(data["settings"]["properties"])
