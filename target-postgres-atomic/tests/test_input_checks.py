"""Input PostgreSQL would accept but Singer does not mean, and input that used to crash raw.

Each refusal is one line on stderr naming stream, input line and field; nothing of its batch
lands; the traceback only shows at debug level.
"""

from __future__ import annotations

import json

import pytest

from safe_singer_testing.target_messages import record, schema, state

PROPS = {
    "id": {"type": "integer"},
    "ts": {"type": ["string", "null"], "format": "date-time"},
    "d": {"type": ["string", "null"], "format": "date"},
    "amount": {"type": ["string", "null"], "format": "x-singer.decimal"},
    "n": {"type": ["number", "null"]},
}
SPECIAL_LITERALS = {
    "ts": [
        "yesterday",
        "now",
        "infinity",
        "-infinity",
        "epoch",
        "today",
        "2024-01-01 epoch",
        "2024-01-01 infinity",
    ],
    "d": ["tomorrow", "infinity", "epoch"],
    "amount": ["NaN", "Infinity", "-Infinity", "inf", "INF"],
}


@pytest.mark.parametrize(
    ("field", "value"),
    [(field, value) for field, values in SPECIAL_LITERALS.items() for value in values],
)
def test_postgres_special_literals_are_not_data(field: str, value: str, run_target, rows) -> None:
    run = run_target(
        [
            schema("t", PROPS),
            record("t", {"id": 1, "ts": "2024-01-02T03:04:05Z", "d": "2024-01-02"}),
            record("t", {"id": 2, field: value}),
        ]
    )
    assert run.returncode != 0
    assert f"stream 't', input line 3, field '{field}'" in run.stderr, run.stderr
    assert rows("SELECT count(*) FROM t") == [(0,)]


def test_rfc3339_times_and_finite_numbers_still_load(run_target, rows) -> None:
    values = [
        {"id": 1, "ts": "2024-01-02T03:04:05Z", "d": "2024-01-02", "amount": "1.5", "n": 2},
        {"id": 2, "ts": "2024-01-02t03:04:05.123+02:00", "amount": "-1e3", "n": -0.5e-3},
        {"id": 3, "ts": "2024-01-02 03:04:05-01:30"},
    ]
    run = run_target([schema("t", PROPS), *(record("t", v) for v in values)])
    assert run.returncode == 0, run.stderr
    assert rows("SELECT id, ts::text, amount::text FROM t ORDER BY id") == [
        (1, "2024-01-02 03:04:05+00", "1.5"),
        (2, "2024-01-02 01:04:05.123+00", "-1000"),
        (3, "2024-01-02 04:34:05+00", None),
    ]


def test_a_special_literal_as_version_does_not_freeze_the_row(run_target, rows) -> None:
    props = {"id": {"type": "integer"}, "updated": {"type": "string", "format": "date-time"}}
    head = schema("v", props, bookmark="updated")
    run = run_target([head, record("v", {"id": 1, "updated": "infinity"})])
    assert run.returncode != 0
    assert "field 'updated'" in run.stderr
    ok = run_target([head, record("v", {"id": 1, "updated": "2024-01-01T00:00:00Z"})])
    assert ok.returncode == 0, ok.stderr
    assert rows("SELECT updated::text FROM v") == [("2024-01-01 00:00:00+00",)]


@pytest.mark.parametrize("value", ["5", "null", '"abc"', "[1, 2]", "true"])
def test_a_state_that_is_not_an_object_is_refused(value: str, run_target, rows) -> None:
    lines = [
        json.dumps(schema("t", PROPS)),
        json.dumps(record("t", {"id": 1})),
        json.dumps(state({"ok": 1})),
        json.dumps(record("t", {"id": 2})),
        f'{{"type": "STATE", "value": {value}}}',
    ]
    run = run_target(lines, batch_size_rows=1)
    assert run.returncode != 0
    assert "input line 5: STATE value must be a JSON object" in run.stderr, run.stderr
    assert run.states == [{"ok": 1}]
    assert rows("SELECT state FROM _sdc_target_state") == [({"ok": 1},)]
    assert rows("SELECT id FROM t ORDER BY id") == [(1,), (2,)]


def test_nul_in_a_state_is_refused_before_its_batch(run_target, rows) -> None:
    messages = [schema("t", PROPS), record("t", {"id": 1}), state({"cursor": "a\u0000b"})]
    run = run_target(messages)
    assert run.returncode != 0
    assert "input line 3: STATE contains a NUL character" in run.stderr, run.stderr
    assert "UntranslatableCharacter" not in run.stderr
    assert run.states == []


BAD_LINE = 7
# Lines 1-6 commit in batches of two (STATE {"s": 1} after the first); line 7 is bad.
GOOD = [
    schema("t", PROPS),
    record("t", {"id": 1}),
    record("t", {"id": 2}),
    state({"s": 1}),
    record("t", {"id": 3}),
    record("t", {"id": 4}),
]


def _nested(depth: int) -> str:
    return '{"id": 5, "n": ' + "[" * depth + "]" * depth + "}"


RAW_ERRORS = {
    # name: (bad line 7, expected field, settings)
    "invalid_utf8": (b'{"type":"RECORD","stream":"t","record":{"id":5,"ts":"\xff"}}', "ts", {}),
    "invalid_utf8_unchecked": (
        b'{"type":"RECORD","stream":"t","record":{"id":5,"ts":"\xff"}}',
        "ts",
        {"validate_records": False},
    ),
    "lone_surrogate": (
        b'{"type":"RECORD","stream":"t","record":{"id":5,"n":{"x":"\\ud800"}}}',
        "n",
        {},
    ),
    "deep_nesting": (
        ('{"type":"RECORD","stream":"t","record":' + _nested(5000) + "}").encode(),
        "n",
        {},
    ),
    "type_names_are_json": (
        json.dumps(record("t", {"id": "five"})).encode(),
        "id",
        {},
    ),
    "unchecked_bad_timestamp": (
        json.dumps(record("t", {"id": 5, "ts": "soon"})).encode(),
        "ts",
        {"validate_records": False},
    ),
}


@pytest.mark.parametrize("case", sorted(RAW_ERRORS))
def test_raw_errors_name_stream_line_and_field(case: str, run_target, rows) -> None:
    bad, field, settings = RAW_ERRORS[case]
    lines = [json.dumps(m).encode() for m in GOOD] + [bad]
    run = run_target(lines, batch_size_rows=2, **settings)
    assert run.returncode != 0
    assert f"input line {BAD_LINE}" in run.stderr, run.stderr
    assert f"stream 't', input line {BAD_LINE}, field '{field}'" in run.stderr, run.stderr
    assert "Traceback" not in run.stderr
    if case == "type_names_are_json":
        assert "expected integer, got string" in run.stderr, run.stderr
    assert run.states == [{"s": 1}]
    assert rows("SELECT id FROM t ORDER BY id") == [(1,), (2,), (3,), (4,)]


def test_property_named_like_the_targets_own_columns(run_target, rows) -> None:
    props = {"id": {"type": "integer"}, "_sdc_seq": {"type": "integer"}}
    run = run_target([schema("q", props), record("q", {"id": 1, "_sdc_seq": 9})])
    assert run.returncode != 0
    assert "stream 'q', input line 1, field '_sdc_seq'" in run.stderr, run.stderr
    assert "stream map" in run.stderr
    assert "AmbiguousColumn" not in run.stderr


def test_missing_key_with_a_quote_in_its_name(run_target, rows) -> None:
    props = {'k"1': {"type": "string"}, "v": {"type": "string"}}
    run = run_target(
        [schema("q", props, keys=['k"1']), record("q", {'k"1': "a"}), record("q", {"v": "b"})]
    )
    assert run.returncode != 0
    assert "stream 'q', input line 3, field 'k\"1'" in run.stderr, run.stderr
    assert "NotNullViolation" not in run.stderr
    assert rows("SELECT count(*) FROM q") == [(0,)]


def test_nul_in_a_property_name(run_target, rows) -> None:
    head = schema("q", {"id": {"type": "integer"}})
    bad = record("q", {"id": 1, "a\u0000b": "x"})
    run = run_target([head, bad])
    assert run.returncode != 0
    assert "stream 'q', input line 2, field 'a\\x00b'" in run.stderr, run.stderr
    ok = run_target([head, bad], sanitize_null_text_characters=True)
    assert ok.returncode == 0, ok.stderr
    assert rows("SELECT id FROM q") == [(1,)]
