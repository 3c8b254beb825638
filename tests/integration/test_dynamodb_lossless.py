"""Must show: numbers keep every digit, binary and sets survive a round trip into PostgreSQL,
and the version guard compares sequence numbers as numbers (not as text)."""

from __future__ import annotations

import base64
import json
from decimal import Decimal
from pathlib import Path

from psycopg import sql

from safe_singer_testing.dynamodb import run_tap, run_target, running_stack
from safe_singer_testing.postgres import PgServer

BIG = "12345678901234567890123456789012345678"  # 38 digits, DynamoDB's maximum precision
TINY = "-0.00000000000000000000000000000000000000000000000000000000000000000000000000000000001"
HUGE = "9.9999999999999999999999999999999999999E+125"
RAW = b"\x00\xff'\"\\binary"


def test_numbers_binary_sets_round_trip_and_guard_is_numeric(
    pg_db: PgServer, tmp_path: Path
) -> None:
    with running_stack() as stack:
        stack.create_table("lossless")
        db = stack.dynamodb()
        item = {
            "pk": {"S": "a"},
            "big": {"N": BIG},
            "tiny": {"N": TINY},
            "huge": {"N": HUGE},
            "raw": {"B": RAW},
            "tags": {"SS": ["zeta", "alpha", "mu"]},
            "nums": {"NS": ["10", "9", "-1.5", BIG]},
            "blobs": {"BS": [b"\x02", b"\x01"]},
            "doc": {"M": {"price": {"N": "1.50"}, "list": {"L": [{"N": BIG}, {"BOOL": True}]}}},
            "flag": {"BOOL": False},
        }
        db.put_item(TableName="lossless", Item=item)
        stack.streams.split("lossless")  # the next version of "a" lives in a child shard
        db.put_item(TableName="lossless", Item={**item, "flag": {"BOOL": True}})
        stack.streams.sync()
        tap = run_tap(tmp_path, stack.tap_config(["lossless"]))
        assert tap.returncode == 0, tap.stderr

    older, newer = tap.records
    assert len(older["_sdc_sequence_number"]) == 21 and len(newer["_sdc_sequence_number"]) == 27
    assert older["_sdc_sequence_number"] > newer["_sdc_sequence_number"]  # as text: backwards
    target_config = {**pg_db.target_config(), "hard_delete": True}
    run_target(tmp_path, target_config, tap.messages)
    last_schema = [m for m in tap.messages if m["type"] == "SCHEMA"][-1]
    late = {"type": "RECORD", "stream": "lossless", "record": older}
    run_target(tmp_path, target_config, [last_schema, late])  # an older event, late: no change

    with pg_db.connect() as conn:
        row = conn.execute(
            sql.SQL(
                "SELECT big, tiny, huge, raw, tags, nums, blobs, doc, flag, _sdc_sequence_number,"
                " pg_typeof(big)::text, pg_typeof(_sdc_sequence_number)::text FROM {}"
            ).format(sql.Identifier("lossless"))
        ).fetchone()
    assert row is not None
    big, tiny, huge, raw, tags, nums, blobs, doc, flag, seq, big_type, seq_type = row
    assert (big_type, seq_type) == ("numeric", "numeric")
    assert big == Decimal(BIG) and str(big) == BIG
    assert tiny == Decimal(TINY) and huge == Decimal(HUGE)
    assert base64.b64decode(raw) == RAW
    assert tags == ["alpha", "mu", "zeta"]
    assert nums == ["-1.5", "9", "10", BIG]
    assert [base64.b64decode(b) for b in blobs] == [b"\x01", b"\x02"]
    assert doc == {"price": "1.50", "list": [BIG, True]}
    assert flag is True and seq == Decimal(newer["_sdc_sequence_number"])
    assert json.dumps(doc)  # plain JSON, nothing float-rounded


def test_an_attribute_changing_type_is_widened_to_text_or_stops_the_run(tmp_path: Path) -> None:
    """S then N: one text column keeps both values, digit for digit; then S and M in one run:
    the run stops naming the attribute (every item's types are checked, not only the first
    item's of each attribute)."""
    with running_stack() as stack:
        stack.create_table("shapes")
        db = stack.dynamodb()
        db.put_item(TableName="shapes", Item={"pk": {"S": "a"}, "v": {"S": "text"}})
        db.put_item(TableName="shapes", Item={"pk": {"S": "b"}, "v": {"N": "12.50"}})
        stack.streams.sync()
        run = run_tap(tmp_path / "widen", stack.tap_config(["shapes"]))
        assert run.returncode == 0, run.stderr
        assert [r["v"] for r in run.records] == ["text", "12.50"]
        schema = [m for m in run.messages if m["type"] == "SCHEMA"][-1]["schema"]
        assert schema["properties"]["v"] == {"type": ["string", "null"]}
        db.put_item(TableName="shapes", Item={"pk": {"S": "c"}, "v": {"S": "more text"}})
        db.put_item(TableName="shapes", Item={"pk": {"S": "d"}, "v": {"M": {"x": {"N": "1"}}}})
        stack.streams.sync()
        clash = run_tap(tmp_path / "clash", stack.tap_config(["shapes"]), state=run.last_state)
        assert clash.returncode != 0
        assert "attribute 'v' changed type" in clash.stderr
