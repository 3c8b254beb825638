"""Everyday traffic of third-party taps (issue 9): schema shapes, bookmarks, names, keys."""

from __future__ import annotations

from safe_singer_testing.target_messages import activate, record, schema, state

NAME_THEN_ID = {"name": {"type": "string"}, "id": {"type": "integer"}}


def test_key_property_after_other_properties_loads(run_target, rows) -> None:
    # Point 1: taps list columns in table or alphabetical order, the key anywhere.
    run = run_target(
        [
            schema("t", NAME_THEN_ID),
            record("t", {"name": "a", "id": 1}),
            record("t", {"name": "b", "id": 1}),
        ]
    )
    assert run.returncode == 0, run.stderr
    assert rows("SELECT id, name FROM t") == [(1, "b")]


def test_composite_key_with_a_property_between_and_keys_moving_later(run_target, rows) -> None:
    props = {"a": {"type": "integer"}, "x": {"type": "string"}, "b": {"type": "integer"}}
    run = run_target(
        [
            schema("t", props, keys=("a", "b")),
            record("t", {"a": 1, "x": "first", "b": 2}),
            record("t", {"a": 1, "x": "second", "b": 2}),
            record("t", {"a": 1, "x": "other", "b": 3}),
            # key_properties change mid-run to the last column.
            schema("t", props, keys=("b",)),
            record("t", {"x": "by-b", "b": 3}),
        ]
    )
    assert run.returncode == 0, run.stderr
    assert rows("SELECT a, b, x FROM t ORDER BY b") == [(1, 2, "second"), (None, 3, "by-b")]
    missing = run_target([schema("t", props, keys=("b",)), record("t", {"a": 5, "x": "no b"})])
    assert missing.returncode != 0
    assert "stream 't'" in missing.stderr and "field 'b'" in missing.stderr


def test_bookmark_that_is_not_a_property_loads_in_arrival_order(run_target, rows) -> None:
    # Point 2: tap-postgres LOG_BASED streams send "bookmark_properties": ["lsn"].
    head = schema("t", {"id": {"type": "integer"}, "v": {"type": "string"}}, bookmark="lsn")
    run = run_target([head, record("t", {"id": 1, "v": "a"}), record("t", {"id": 1, "v": "b"})])
    assert run.returncode == 0, run.stderr
    assert rows("SELECT v FROM t") == [("b",)]
    assert "bookmark 'lsn' is not a property of the stream" in run.stderr
    assert "stream 't'" in run.stderr


def test_text_bookmark_loads_without_guard_and_says_so_once(run_target, rows) -> None:
    # Point 3: meltanolabs-tap-postgres incremental on a text column.
    props = {"id": {"type": "integer"}, "rev": {"type": "string"}, "v": {"type": "string"}}
    head = schema("docs", props, bookmark="rev")
    run = run_target(
        [
            head,
            record("docs", {"id": 1, "rev": "10", "v": "newer"}),
            head,
            record("docs", {"id": 1, "rev": "9", "v": "arrived last"}),
        ],
        batch_size_rows=1,
    )
    assert run.returncode == 0, run.stderr
    assert rows("SELECT rev, v FROM docs") == [("9", "arrived last")]
    warnings = [line for line in run.stderr.splitlines() if "guard is off" in line]
    assert len(warnings) == 1, run.stderr
    assert "stream 'docs'" in warnings[0] and "bookmark 'rev'" in warnings[0]
    assert "format" in warnings[0] and "version_columns" in warnings[0]


def test_version_columns_null_turns_the_guard_off_quietly(run_target, rows) -> None:
    props = {"id": {"type": "integer"}, "n": {"type": "integer"}}
    head = schema("t", props, bookmark="n")
    run = run_target(
        [head, record("t", {"id": 1, "n": 5}), head, record("t", {"id": 1, "n": 4})],
        version_columns={"t": None},
        batch_size_rows=1,
    )
    assert run.returncode == 0, run.stderr
    assert rows("SELECT n FROM t") == [(4,)]
    assert "guard is off" not in run.stderr


def test_version_column_setting_on_text_is_refused(run_target, rows) -> None:
    props = {"id": {"type": "integer"}, "rev": {"type": "string"}}
    run = run_target(
        [schema("t", props), record("t", {"id": 1, "rev": "a"})], version_columns={"t": "rev"}
    )
    assert run.returncode != 0
    assert "stream 't'" in run.stderr and "version column 'rev' (version_columns)" in run.stderr
    assert rows("SELECT to_regclass('t')") in ([(None,)], [("t",)])
    assert run.states == []


def test_activate_version_before_schema(run_target, rows) -> None:
    # Point 4: pipelinewise's multi-stream input announces refreshes before the SCHEMAs.
    head = schema("t", NAME_THEN_ID)
    assert run_target([head, record("t", {"name": "old", "id": 9})]).returncode == 0
    messages = [
        activate("t", 5),
        head,
        record("t", {"name": "new", "id": 1}, version=5),
        activate("t", 5),
    ]
    run = run_target(messages, hard_delete=True)
    assert run.returncode == 0, run.stderr
    assert rows("SELECT id, name FROM t") == [(1, "new")]
    ignored = run_target([activate("u", 1), schema("u", NAME_THEN_ID)], activate_version=False)
    assert ignored.returncode == 0, ignored.stderr


def test_two_streams_bound_for_one_table_are_refused(run_target, rows) -> None:
    # Point 8: both would land in public.orders (or raw.orders).
    props = {"id": {"type": "integer"}}
    run = run_target(
        [
            schema("crm-orders", props),
            record("crm-orders", {"id": 1}),
            schema("shop-orders", props),
            record("shop-orders", {"id": 1}),
        ],
        default_target_schema="raw",
    )
    assert run.returncode != 0
    assert "'crm-orders'" in run.stderr and "'shop-orders'" in run.stderr
    assert '"raw"."orders"' in run.stderr
    run = run_target(
        [schema("a-b-c-orders", props), schema("x-b-c-orders", props)],
    )
    assert run.returncode != 0 and '"public"."orders"' in run.stderr
    # Mapped apart, both load.
    apart = run_target(
        [
            schema("crm-orders", props),
            record("crm-orders", {"id": 1}),
            schema("shop-orders", props),
            record("shop-orders", {"id": 2}),
        ],
        default_target_schema="raw",
        stream_maps={"shop-orders": {"__alias__": "shop_orders"}},
    )
    assert apart.returncode == 0, apart.stderr
    assert rows("SELECT id FROM raw.orders") == [(1,)]
    assert rows("SELECT id FROM raw.shop_orders") == [(2,)]


def test_long_multibyte_names_get_their_own_shadow_tables(run_target, rows) -> None:
    # Point 9: names that share their first 40 characters (here 60 bytes of 'é'...).
    first, second = "é" * 30 + "_a", "é" * 30 + "_b"
    props = {"id": {"type": "integer"}}
    messages = [
        schema(first, props),
        schema(second, props),
        activate(first, 1),
        activate(second, 1),
        record(first, {"id": 1}, version=1),
        record(second, {"id": 2}, version=1),
        activate(first, 1),
        activate(second, 1),
    ]
    run = run_target(messages, batch_size_rows=1)
    assert run.returncode == 0, run.stderr
    assert rows(f'SELECT id FROM "{first}"') == [(1,)]
    assert rows(f'SELECT id FROM "{second}"') == [(2,)]
    names = rows("SELECT relname, octet_length(relname) FROM pg_class WHERE relname LIKE 'é%'")
    assert all(length <= 63 for _, length in names), names


def test_growing_key_changes_the_primary_key(run_target, rows) -> None:
    # Point 10: id -> (id, k2) must not keep refusing rows that differ only in k2.
    props = {"id": {"type": "integer"}, "k2": {"type": "integer"}, "v": {"type": "string"}}
    assert (
        run_target([schema("t", props), record("t", {"id": 1, "k2": 1, "v": "a"})]).returncode == 0
    )
    grown = schema("t", props, keys=("id", "k2"))
    for _ in range(2):  # every later run too
        run = run_target([grown, record("t", {"id": 1, "k2": 2, "v": "b"}), state({"n": 1})])
        assert run.returncode == 0, run.stderr
    assert rows("SELECT id, k2, v FROM t ORDER BY k2") == [(1, 1, "a"), (1, 2, "b")]
    # A key the stored rows cannot take stops the run, says what to do, changes nothing.
    extra = {**props, "k3": {"type": "integer"}}
    run = run_target([schema("t", extra, keys=("id", "k3")), record("t", {"id": 1, "k3": 1})])
    assert run.returncode != 0
    assert "stream 't'" in run.stderr and "key_properties changed from (id, k2) to (id, k3)" in (
        run.stderr
    )
    assert rows("SELECT count(*) FROM t") == [(2,)]
    columns = "SELECT column_name FROM information_schema.columns WHERE table_name = 't'"
    assert ("k3",) not in rows(columns)
