"""Values other targets decode land decoded here too: base16 with a 0x prefix or an odd number
of digits (as MeltanoLabs), JSON text in object and array columns (as pipelinewise)."""

from __future__ import annotations

import pytest

from safe_singer_testing.target_messages import record, schema

HEX = {
    "id": {"type": "string"},
    "data": {"type": ["string", "null"], "contentEncoding": "base16"},
}


def test_base16_is_read_as_meltanolabs_reads_it(run_target, rows) -> None:
    values = {
        "prefixed": "0xA1B2",
        "bare_prefix": "0x",
        "odd": "A12",
        "backslash": "\\xff00",
        "plain": "a1b2",
        "empty": "",
        "none": None,
    }
    messages = [schema("h", HEX)] + [record("h", {"id": k, "data": v}) for k, v in values.items()]
    run = run_target(messages, interpret_content_encoding=True)
    assert run.returncode == 0, run.stderr
    found = dict(rows("SELECT id, data FROM h"))
    assert {k: None if v is None else bytes(v) for k, v in found.items()} == {
        "prefixed": b"\xa1\xb2",
        "bare_prefix": b"",
        "odd": b"\x0a\x12",
        "backslash": b"\xff\x00",
        "plain": b"\xa1\xb2",
        "empty": b"",
        "none": None,
    }


@pytest.mark.parametrize("bad", ["0xZZ", "12 34", "0x0x12"])
def test_base16_that_cannot_be_decoded_is_refused_naming_line_and_field(
    bad: str, run_target, rows
) -> None:
    messages = [schema("h", HEX), record("h", {"id": "ok", "data": "00"})]
    messages.append(record("h", {"id": "bad", "data": bad}))
    run = run_target(messages, interpret_content_encoding=True)
    assert run.returncode == 1
    assert "stream 'h', input line 3, field 'data'" in run.stderr, run.stderr
    assert "Traceback" not in run.stderr
    assert rows("SELECT count(*) FROM h") == [(0,)]


JSONS = {
    "id": {"type": "integer"},
    "obj": {"type": ["object", "null"]},
    "arr": {"type": ["array", "null"], "items": {}},
    "other": {"type": ["string", "null"]},
}


@pytest.mark.parametrize("typed", [True, False], ids=["typed-stage", "general-stage"])
def test_json_text_in_object_and_array_columns_is_stored_as_json_without_validation(
    typed: bool, run_target, rows
) -> None:
    props = dict(JSONS)
    if not typed:  # a column that does not map onto a typed stage column
        props["mixed"] = {"anyOf": [{"type": "integer"}, {"type": "string"}]}
    cases = [
        {"id": 1, "obj": '{"k": 1, "n": 1.10}', "arr": "[]", "other": "[1]"},
        {"id": 2, "obj": "not json", "arr": "[unclosed", "other": "x"},
        {"id": 3, "obj": {"real": True}, "arr": [1, 2], "other": None},
        {"id": 4, "obj": " [1, 2]", "arr": '"quoted"', "other": None},
    ]
    messages = [schema("j", props)] + [record("j", case) for case in cases]
    run = run_target(messages, validate_records=False)
    assert run.returncode == 0, run.stderr
    found = rows("SELECT id, obj::text, arr::text, other FROM j ORDER BY id")
    assert found == [
        (1, '{"k": 1, "n": 1.10}', "[]", "[1]"),
        (2, '"not json"', '"[unclosed"', "x"),
        (3, '{"real": true}', "[1, 2]", None),
        (4, "[1, 2]", '"\\"quoted\\""', None),
    ]


def test_json_text_in_an_object_column_is_refused_when_validating(run_target) -> None:
    run = run_target([schema("j", JSONS), record("j", {"id": 1, "obj": "{}"})])
    assert run.returncode == 1
    assert "input line 2, field 'obj'" in run.stderr, run.stderr
