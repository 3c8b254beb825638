"""Every `.singer` file singer-sdk ships for targets, through our target, row by row.

The files are read where the installed singer-sdk keeps them
(`singer_sdk/testing/target_test_streams/`); a file without a case here fails the suite, so a
new singer-sdk release cannot add inputs we never looked at. Each case says what must land, or
the exact refusal and why refusing is right.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

STREAMS = Path(str(resources.files("singer_sdk.testing") / "target_test_streams"))
NUL_REFUSAL = "stream 'test_strings', input line 12, field 'info': text contains a NUL character"


@dataclass
class Case:
    files: tuple[str, ...]
    """Run one after the other into one database (the later ones see the earlier tables)."""
    tables: dict[str, list[tuple[Any, ...]]] = field(default_factory=dict)
    """Query -> rows it must return after the last run."""
    refusal: str | None = None
    """Text the last run's error must contain (it must exit non-zero)."""
    settings: dict[str, Any] = field(default_factory=dict)


def q(table: str, columns: str, order: str = "1") -> str:
    return f'SELECT {columns} FROM "{table}" ORDER BY {order}'


def columns_of(table: str) -> str:
    return (
        "SELECT column_name, data_type FROM information_schema.columns "
        f"WHERE table_name = '{table}' AND column_name NOT LIKE '\\_sdc%' ORDER BY column_name"
    )


def primary_key(table: str) -> str:
    relation = f"'\"{table}\"'::regclass"
    return f"SELECT count(*) FROM pg_constraint WHERE conrelid = {relation} AND contype = 'p'"


STRINGS = [
    (1, "simple string 2837"),
    (2, "απλή συμβολοσειρά"),
    (3, "简单的字串"),
    (4, "chaîne simple"),
    (5, 'quoted "string"'),
    (6, 'various " \\ / \n escape sequences'),
    (7, "m"),
    (8, "ā"),
    (9, "ƙ"),
    (10, "Double quoting: \\u0000 \\u0041 \\u0001"),
    (11, "Control Characters in string: \ufffd A \x01"),
]
USERS = [(1, "Yannis"), (2, "Micael"), (3, "Jacob"), (4, "Josh"), (5, "Thomas")]

CASES: dict[str, Case] = {
    "array_data": Case(
        ("array_data",),
        {
            q("test_array_data", "id, fruits"): [
                (1, ["apple", "orange", "pear"]),
                (2, ["banana", "apple"]),
                (3, ["pear"]),
                (4, ["orange", "banana", "apple", "pear"]),
            ]
        },
    ),
    "camelcase": Case(
        ("camelcase",),
        {
            q("TestCamelcase", '"Id", "clientName"'): [
                ("1", "Gitter Windows Desktop App"),
                ("2", "Gitter iOS App"),
            ]
        },
    ),
    # Two SCHEMA messages, no records: the second adds three columns; names kept as sent.
    "camelcase_complex_schema": Case(
        ("camelcase_complex_schema",),
        {
            q("ForecastingTypeToCategory", "count(*)"): [(0,)],
            "SELECT count(*) FROM information_schema.columns WHERE table_name = "
            "'ForecastingTypeToCategory' AND column_name IN ('IsOwnerAdjustable', "
            "'NewCamelCasedAttribute', '_attribute_startswith_underscore')": [(3,)],
            primary_key("ForecastingTypeToCategory"): [(1,)],
        },
    ),
    "duplicate_records": Case(
        ("duplicate_records",), {q("test_duplicate_records", "id, metric"): [(1, 100), (2, 20)]}
    ),
    # PostgreSQL text cannot hold NUL: refused by default (nothing of the batch lands)...
    "encoded_string_data": Case(
        ("encoded_string_data",),
        {q("test_strings", "count(*)"): [(0,)]},
        refusal=NUL_REFUSAL,
    ),
    # ...and loaded, every other character exact, when the user opts in to U+FFFD.
    "encoded_string_data, sanitized": Case(
        ("encoded_string_data",),
        {
            q("test_strings", "id, info"): STRINGS,
            q("test_strings_in_objects", "id, info ->> 'value'"): [
                *STRINGS[:9],
                (10, " \\u0000 \\u0041 \\u0001"),
                (11, "\ufffd A \x01"),
            ],
            q("test_strings_in_arrays", "id, strings ->> -1"): [
                (1, "简单的字串"),
                (2, 'quoted "string"'),
                (3, 'various " \\ / \n escape sequences'),
                (4, "ƙ"),
                (5, "Double quoting: \\u0000 \\u0041 \\u0001"),
                (6, "Control Characters in string: \ufffd A \x01"),
            ],
        },
        settings={"sanitize_null_text_characters": True},
    ),
    # No properties at all: there is no column to load into.
    "invalid_schema": Case(
        ("invalid_schema",),
        {"SELECT to_regclass('test_invalid_schema')": [(None,)]},
        refusal="stream 'test_invalid_schema', input line 1: the SCHEMA message has no "
        "'properties' object",
    ),
    "multiple_state_messages": Case(
        ("multiple_state_messages",),
        {
            q("test_multiple_state_messages_a", "id, metric"): [(i, i * 100) for i in range(1, 7)],
            q("test_multiple_state_messages_b", "id, metric"): [(i, i * 110) for i in range(1, 7)],
        },
        settings={"batch_size_rows": 2},
    ),
    # Keyless streams append: the second file adds its five rows to the first's three.
    "no_primary_keys": Case(
        ("no_primary_keys", "no_primary_keys_append"),
        {
            q("test_no_pk", "id, metric", "2"): [
                (1, 11),
                (2, 22),
                (3, 33),
                (1, 101),
                (2, 202),
                (3, 303),
                (4, 404),
                (5, 505),
            ]
        },
    ),
    "optional_attributes": Case(
        ("optional_attributes",),
        {
            q("test_optional_attributes", "id, optional"): [
                (1, "This is optional"),
                (2, None),
                (3, "Also optional"),
                (4, None),
            ]
        },
    ),
    # key_properties sit inside "schema", not in the message: the stream has no keys (as for
    # MeltanoLabs target-postgres), so both rows are appended and the table has no key.
    "pk_updates": Case(
        ("pk_updates",),
        {
            q("example_stream", "id, name, email"): [
                (1, "Alice", "alice@example.com"),
                (2, "Bob", "bob@example.com"),
            ],
            primary_key("example_stream"): [(0,)],
        },
    ),
    "record_before_schema": Case(
        ("record_before_schema",),
        {"SELECT to_regclass('test_record_before_schema')": [(None,)]},
        refusal="input line 1: a RECORD for stream 'test_record_before_schema' came before its "
        "SCHEMA message",
    ),
    "record_missing_fields": Case(
        ("record_missing_fields",),
        {q("record_missing_fields", "id, optional"): [(1, "now you see me"), (2, None)]},
    ),
    # A key is what the upsert matches on: a record without one cannot be placed.
    "record_missing_key_property": Case(
        ("record_missing_key_property",),
        {q("test_record_missing_key_property", "count(*)"): [(0,)]},
        refusal="stream 'test_record_missing_key_property', input line 2, field 'id': the "
        "record has no value for key property",
    ),
    # `required` is enforced (validate_records): the record breaks its schema (issue 23).
    "record_missing_required_property": Case(
        ("record_missing_required_property",),
        {},
        refusal="stream 'test_record_missing_required_property', input line 2, field 'id': "
        "the schema requires this property (required)",
    ),
    "schema_no_properties": Case(
        ("schema_no_properties",),
        {
            q("test_object_schema_with_properties", "object_store", "object_store ->> 'id'"): [
                ({"id": 1, "metric": 187},),
                ({"id": 2, "metric": 203},),
            ],
            q("test_object_schema_no_properties", "object_store", "object_store ->> 'id'"): [
                ({"id": 1, "metric": 1},),
                ({"id": 2, "metric": 2},),
            ],
        },
    ),
    "schema_updates": Case(
        ("schema_updates",),
        {
            q("test_schema_updates", "id, a1, a2, a3, a4, a5, a6"): [
                (1, 101, "string1", None, None, None, None),
                (2, 102, "string2", True, None, None, None),
                (3, 103, "string3", False, {"id": 1, "value": 1}, ["banana", "apple"], None),
                (4, 104, "string4", True, {"id": 2, "value": 22}, ["orange", "pear"], None),
                (5, 105, "string5", False, {"id": 3, "value": 33}, ["apple"], 985),
                (6, 106, "string6", True, {"id": 4, "value": 444}, ["banana", "orange"], 341),
            ],
            columns_of("test_schema_updates"): [
                ("a1", "numeric"),
                ("a2", "text"),
                ("a3", "boolean"),
                ("a4", "jsonb"),
                ("a5", "jsonb"),
                ("a6", "bigint"),
                ("id", "bigint"),
            ],
        },
    ),
    # Names are kept as sent (quoted); the record's version lands without any activation.
    "special_chars_in_attributes": Case(
        ("special_chars_in_attributes",),
        {
            q("test:SpecialChars!in?attributes", "_id, d, _sdc_table_version"): [
                (
                    "a2e98886",
                    {"env": "prod", "agent:type": "desktop", "agent:os:version": "10.13.1"},
                    1541199424491,
                )
            ]
        },
    ),
    "user_location_data": Case(
        ("user_location_data", "user_location_upsert_data"),
        {
            q("test_users", "id, name"): [
                (1, "Johny"),
                (2, "George"),
                (3, "Jacob"),
                (4, "Josh"),
                (5, "Jim"),
                (8, "Thomas"),
                (12, "Paul"),
                (13, "Mary"),
            ],
            q("test_locations", "id, name"): [
                (1, "Philly"),
                (2, "NY"),
                (3, "San Francisco"),
                (6, "Colorado"),
                (8, "Boston"),
            ],
            q("test_user_in_location", "id, user_id, location_id, info ->> 'mood'"): [
                (1, 1, 4, "sad"),
                (2, 2, 3, "satisfied"),
                (3, 1, 3, "happy"),
                (6, 3, 2, "happy"),
                (14, 4, 1, "ok"),
            ],
        },
    ),
}


def test_every_shipped_file_has_a_case() -> None:
    shipped = {p.stem for p in STREAMS.glob("*.singer")}
    assert shipped, f"no .singer files in {STREAMS}: is singer-sdk installed? run `make install`"
    covered = {name for case in CASES.values() for name in case.files}
    assert shipped == covered, f"files without a case: {shipped - covered}"


@pytest.mark.parametrize("name", sorted(CASES))
def test_shipped_stream(name: str, run_target, rows) -> None:
    case = CASES[name]
    for number, stem in enumerate(case.files, 1):
        lines = (STREAMS / f"{stem}.singer").read_text().splitlines()
        run = run_target(lines, **case.settings)
        if number < len(case.files) or case.refusal is None:
            assert run.returncode == 0, run.stderr[-3000:]
    if case.refusal is not None:
        assert run.returncode != 0
        assert case.refusal in run.stderr, run.stderr[-3000:]
        assert run.states == []
    else:
        # Each emitted STATE is one the tap sent, in order, ending with its last one.
        sent = [json.loads(line)["value"] for line in lines if '"STATE"' in line]
        assert run.states == [s for s in sent if s in run.states]
        assert run.states[-1:] == sent[-1:]
    for query, expected in case.tables.items():
        assert rows(query) == expected, query
