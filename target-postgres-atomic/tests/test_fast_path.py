"""The fast path takes runs of RECORD lines a read at a time and checks them per chunk: every
record is still checked, in input order, and batches still end where they should."""

from __future__ import annotations

import json
import re

from safe_singer_testing.target_messages import record, schema, state

PROPS = {
    "id": {"type": "integer"},
    "amount": {"type": ["number", "null"]},
    "tags": {"type": ["array", "null"], "items": {"type": "string"}},
    "doc": {"type": ["object", "null"], "properties": {"n": {"type": ["integer", "null"]}}},
}


def good(stream: str, i: int) -> dict:
    return record(stream, {"id": i, "amount": i / 4, "tags": [f"t{i}"], "doc": {"n": i}})


def test_a_record_breaking_a_nested_rule_mid_run_is_the_one_named(run_target, rows) -> None:
    """A bad record among hundreds of good ones (one chunk, checked at once) is named by its
    line and field, before a later bad line, and nothing of its batch lands."""
    messages = [
        schema("t", PROPS),
        *(good("t", i) for i in range(1, 301)),
        record("t", {"id": 301, "tags": ["a", 7]}),  # line 302: an item that is no string
        *(good("t", i) for i in range(302, 401)),
        '{"type": "RECORD", "stream": "t", "record": {"id": 401,',  # line 402: no JSON
        state({"s": 1}),
    ]
    run = run_target(messages)
    assert run.returncode != 0
    assert "stream 't', input line 302, field 'tags[1]'" in run.stderr, run.stderr[-2000:]
    assert "Traceback" not in run.stderr
    assert run.states == []
    assert rows("SELECT count(*) FROM t") == [(0,)]


def test_interleaved_streams_name_the_first_bad_record(run_target, rows) -> None:
    """Two streams alternate line by line; each has a bad record, the first one is named."""
    messages = [
        schema("a", PROPS),
        schema("b", PROPS),
        *(good(stream, i) for i in range(1, 50) for stream in ("a", "b")),
        record("b", {"id": 50, "doc": {"n": "five"}}),  # line 101
        record("a", {"id": 50, "tags": [5]}),  # line 102
        *(good(stream, i) for i in range(51, 60) for stream in ("a", "b")),
    ]
    run = run_target(messages)
    assert run.returncode != 0
    assert "stream 'b', input line 101, field 'doc.n'" in run.stderr, run.stderr[-2000:]
    assert rows("SELECT count(*) FROM b") == [(0,)]


def test_a_json_kind_the_decode_leaves_unchecked_is_loaded_the_general_way(
    run_target, rows
) -> None:
    """Without validate_records, a string holding an array's JSON text in an array column
    (a JSON kind the one-pass decode does not check) is stored as that array, as the general
    way stores it, between typed records of the same chunk."""
    messages = [
        schema("t", PROPS),
        *(good("t", i) for i in range(1, 101)),
        record("t", {"id": 101, "tags": '["x", "y"]', "amount": 2}),
        *(good("t", i) for i in range(102, 201)),
    ]
    run = run_target(messages, validate_records=False)
    assert run.returncode == 0, run.stderr[-2000:]
    assert rows("SELECT count(*) FROM t") == [(200,)]
    assert rows("SELECT tags, amount FROM t WHERE id IN (100, 101, 102) ORDER BY id") == [
        (["t100"], 25),
        (["x", "y"], 2),
        (["t102"], 25.5),
    ]


def test_properties_the_schema_lacks_are_named_in_every_thousandth_record(run_target, rows) -> None:
    """After the first 1,000 records, one record in 1,000 is compared with the schema."""
    messages = [
        schema("t", PROPS),
        *(good("t", i) for i in range(1, 2000)),
        record("t", {"id": 2000, "extra": "value"}),  # the 2,000th record
        *(good("t", i) for i in range(2001, 2101)),
    ]
    run = run_target(messages)
    assert run.returncode == 0, run.stderr[-2000:]
    warned = [line for line in run.stderr.splitlines() if "not in its schema" in line]
    assert len(warned) == 1 and "'extra'" in warned[0], run.stderr[-2000:]
    assert rows("SELECT count(*) FROM t") == [(2100,)]


def test_batches_end_at_batch_size_rows_inside_a_read(run_target, rows) -> None:
    """Records of one read fill many small batches: each commits at batch_size_rows (summed
    over streams), with the latest STATE before it."""
    messages = [schema("a", PROPS), schema("b", PROPS)]
    for block in range(5):
        for stream in ("a", "b"):
            messages += [good(stream, block * 20 + i) for i in range(1, 21)]
        messages.append(state({"s": block}))
    run = run_target(messages, batch_size_rows=7)
    assert run.returncode == 0, run.stderr[-2000:]
    counts = [
        json.loads(found)["value"]
        for found in re.findall(r"METRIC: (\{.*\})", run.stderr)
        if '"record_count"' in found
    ]
    assert sum(counts) == 200 and max(counts) <= 7, counts
    assert run.states[-1] == {"s": 4}
    assert rows("SELECT count(*) FROM a") == [(100,)]
    assert rows("SELECT count(*) FROM b") == [(100,)]
