"""Two streams bound for one table are refused across runs too (issue 23 item 5): the table's
owning stream is kept in the schema's `_sdc_target_streams`."""

from __future__ import annotations

from safe_singer_testing.target_messages import record, schema

PROPS = {"id": {"type": "integer"}, "v": {"type": "string"}}


def load(stream: str, tag: str) -> list[dict]:
    return [schema(stream, PROPS), *(record(stream, {"id": i, "v": tag}) for i in range(3))]


def test_second_stream_naming_a_table_in_a_later_run_is_refused(run_target, rows) -> None:
    first = run_target(load("crm-orders", "crm"), default_target_schema="public")
    assert first.returncode == 0, first.stderr
    second = run_target(load("shop-orders", "shop"), default_target_schema="public")
    assert second.returncode != 0
    errors = [line for line in second.stderr.splitlines() if "crm-orders" in line]
    assert len(errors) == 1, second.stderr
    assert "shop-orders" in errors[0] and "orders" in errors[0], errors
    assert "Traceback" not in second.stderr
    assert rows("SELECT id, v FROM orders ORDER BY id") == [(i, "crm") for i in range(3)]
    # The owner itself loads on.
    again = run_target(load("crm-orders", "crm2"), default_target_schema="public")
    assert again.returncode == 0, again.stderr
    assert rows("SELECT id, v FROM orders ORDER BY id") == [(i, "crm2") for i in range(3)]


def test_a_table_from_before_is_adopted_by_the_first_stream(run_target, rows, pg_db) -> None:
    with pg_db.connect() as conn:
        conn.execute("CREATE TABLE orders (id bigint PRIMARY KEY, v text)")
        conn.execute("INSERT INTO orders VALUES (9, 'x')")
    first = run_target(load("shop-orders", "shop"), default_target_schema="public")
    assert first.returncode == 0, first.stderr
    assert "'shop-orders' now owns the existing table" in first.stderr
    refused = run_target(load("crm-orders", "crm"), default_target_schema="public")
    assert refused.returncode != 0
    assert rows("SELECT id, v FROM orders ORDER BY id") == [
        *((i, "shop") for i in range(3)),
        (9, "x"),
    ]
