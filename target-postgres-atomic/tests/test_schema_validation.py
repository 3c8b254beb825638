"""`validate_records` checks everything the schema says (issue 23 item 4), on every path."""

from __future__ import annotations

from typing import Any

import pytest
from target_postgres_atomic.spec import TableSpec, build_spec
from target_postgres_atomic.validation import typed_path_refusal

from safe_singer_testing.target_messages import record, schema, state

ID = {"id": {"type": "integer"}}
CODE = "^[A-Z]+-[0-9]+$"
ITEMS = {
    "type": ["array", "null"],
    "items": {"type": "object", "properties": {"price": {"type": "number", "minimum": 0}}},
}
# keyword family -> (properties, extra top-level schema keywords, a bad record, the field named)
CASES: dict[str, tuple[dict[str, Any], dict[str, Any], dict[str, Any], str | None]] = {
    "required": ({"name": {"type": ["string", "null"]}}, {"required": ["id", "name"]}, {}, "name"),
    "enum": ({"size": {"type": "string", "enum": ["S", "M"]}}, {}, {"size": "XL"}, "size"),
    "nested_object": (
        {"owner": {"type": "object", "properties": {"age": {"type": "integer"}}}},
        {},
        {"owner": {"age": "old"}},
        "owner.age",
    ),
    "array_items": ({"items": ITEMS}, {}, {"items": [{}, {}, {"price": -1}]}, "items[2].price"),
    "format": ({"mail": {"type": "string", "format": "email"}}, {}, {"mail": "nobody"}, "mail"),
    "format_date_time": (
        {"at": {"type": ["string", "null"], "format": "date-time"}, "note": {"type": "string"}},
        {},
        {"at": "yesterday", "note": "x"},
        "at",
    ),
    "minimum_maximum": ({"qty": {"type": "integer", "maximum": 10}}, {}, {"qty": 11}, "qty"),
    "pattern": ({"code": {"type": "string", "pattern": CODE}}, {}, {"code": "x"}, "code"),
    "min_max_length": ({"tag": {"type": "string", "maxLength": 3}}, {}, {"tag": "long"}, "tag"),
    "additional_properties": ({}, {"additionalProperties": False}, {"extra": 1}, None),
}


def _schema(properties: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    message = schema("t", {**ID, **properties})
    message["schema"].update(extra)
    return message


@pytest.mark.parametrize("family", list(CASES))
def test_a_record_breaking_its_schema_is_refused_naming_line_and_field(
    family: str, run_target, rows
) -> None:
    properties, extra, bad, field = CASES[family]
    messages = [
        _schema(properties, extra),
        record("t", {"id": 1}) if family != "required" else record("t", {"id": 1, "name": None}),
        state({"s": 1}),
        record("t", {"id": 2, **({"name": "n"} if family == "required" else {})}),
        record("t", {"id": 3, **bad}),
        state({"s": 2}),
    ]
    run = run_target(messages, batch_size_rows=2)
    assert run.returncode != 0
    where = "stream 't', input line 5" + (f", field '{field}'" if field else "")
    assert where in run.stderr, run.stderr[-2000:]
    assert "Traceback" not in run.stderr
    assert len([line for line in run.stderr.splitlines() if "error:" in line]) == 1
    assert run.states == [{"s": 1}]
    assert rows("SELECT id FROM t ORDER BY id") == [(1,), (2,)]


def test_records_valid_under_a_rich_schema_load(run_target, rows) -> None:
    properties = {key: value for case in CASES.values() for key, value in case[0].items()}
    record_ = {
        "id": 1,
        "name": "n",
        "size": "S",
        "owner": {"age": 3},
        "items": [{"price": 0}, {"price": 2.5}],
        "mail": "a@example.com",
        "at": "2024-05-01T10:00:00",
        "note": "x",
        "qty": 10,
        "code": "PROJ-1",
        "tag": "abc",
    }
    run = run_target([_schema(properties, {"required": ["id", "name"]}), record("t", record_)])
    assert run.returncode == 0, run.stderr[-2000:]
    assert rows("SELECT id, size, qty, code FROM t") == [(1, "S", 10, "PROJ-1")]


def test_validate_records_false_skips_the_schema_rules(run_target, rows) -> None:
    properties, extra, bad, _ = CASES["minimum_maximum"]
    run = run_target(
        [_schema(properties, extra), record("t", {"id": 1, **bad})], validate_records=False
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert rows("SELECT id, qty FROM t") == [(1, 11)]


DISQUALIFYING = [
    ("required", {"required": ["id", "name"]}, {}),
    ("additionalProperties", {"additionalProperties": False}, {}),
    ("patternProperties", {"patternProperties": {"^x": {"type": "string"}}}, {}),
    ("allOf", {"allOf": [{"required": ["name"]}]}, {}),
    ("$ref", {}, {"$ref": "#/definitions/x"}),
    *(
        (keyword, {}, {"type": "string", keyword: value})
        for keyword, value in {
            "enum": ["a"],
            "const": "a",
            "pattern": "^a",
            "minLength": 1,
            "maxLength": 1,
            "format": "email",
            "not": {"type": "integer"},
            "anyOf": [{"type": "string"}],
        }.items()
    ),
    *(
        (keyword, {}, {"type": "integer", keyword: 1})
        for keyword in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")
    ),
]
QUALIFYING = [
    ({}, {"type": ["string", "null"], "title": "Name", "description": "d", "default": "x"}),
    ({"required": ["id"]}, {"type": "string"}),  # a key: the typed decode requires it
    ({"additionalProperties": True, "$schema": "x", "type": "object"}, {"type": "boolean"}),
    ({}, {"type": ["string", "null"], "format": "date-time"}),  # decoded as RFC 3339
    ({}, {"type": "string", "format": "singer.decimal"}),  # a format nobody checks
    ({}, {"type": "object", "properties": {}}),
    ({}, {"type": "array", "items": {"description": "anything"}}),
    # Objects and arrays are raw JSON on the typed path, checked by their own compiled schema.
    ({}, {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}),
    ({}, {"type": ["array", "null"], "items": {"type": "integer"}, "minItems": 1}),
]


def _spec(top: dict[str, Any], prop: dict[str, Any]) -> TableSpec:
    message = _schema({"name": prop}, top)
    return build_spec(
        message, 1, default_schema=None, add_record_metadata=False, version_columns={}
    )


@pytest.mark.parametrize(("keyword", "top", "prop"), DISQUALIFYING)
def test_keywords_the_typed_decode_does_not_check_refuse_the_fast_path(
    keyword: str, top: dict[str, Any], prop: dict[str, Any]
) -> None:
    spec = _spec(top, prop)
    refusal = typed_path_refusal(spec)
    assert refusal is not None and keyword in refusal, refusal


@pytest.mark.parametrize(("top", "prop"), QUALIFYING)
def test_types_and_annotations_keep_the_fast_path(
    top: dict[str, Any], prop: dict[str, Any]
) -> None:
    spec = _spec(top, prop)
    assert typed_path_refusal(spec) is None
