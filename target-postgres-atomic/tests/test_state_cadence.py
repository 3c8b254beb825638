"""Which STATE lines the target prints, as its README states ("Which STATE lines are
printed"): a STATE with no record buffered commits on its own; STATEs that arrive while
records are buffered join their batch, and its commit prints only the latest of them."""

from __future__ import annotations

from safe_singer_testing.target_messages import record, schema, state

HEAD = schema("items", {"id": {"type": "integer"}})


def item(i: int) -> dict:
    return record("items", {"id": i})


def test_states_between_buffered_records_print_only_the_last(run_target, rows) -> None:
    """R, S1, R, S2 with the default batch size: one commit at the end of input, one STATE."""
    run = run_target([HEAD, item(1), state({"s": 1}), item(2), state({"s": 2})])
    assert run.returncode == 0, run.stderr
    assert run.states == [{"s": 2}]
    assert rows("SELECT id FROM items ORDER BY id") == [(1,), (2,)]


def test_a_state_with_no_record_buffered_is_printed_on_its_own(run_target, rows) -> None:
    run = run_target([HEAD, state({"s": 0}), item(1), state({"s": 1}), item(2), state({"s": 2})])
    assert run.returncode == 0, run.stderr
    assert run.states == [{"s": 0}, {"s": 2}]
    assert rows("SELECT id FROM items ORDER BY id") == [(1,), (2,)]


def test_each_commit_at_a_batch_limit_prints_the_latest_state_before_it(run_target, rows) -> None:
    """batch_size_rows 3: the third record commits the first batch with S2 (S1 is covered by
    it); the end of input commits the rest with S4."""
    messages = [
        HEAD,
        item(1),
        state({"s": 1}),
        item(2),
        state({"s": 2}),
        item(3),
        item(4),
        state({"s": 3}),
        state({"s": 4}),
    ]
    run = run_target(messages, batch_size_rows=3)
    assert run.returncode == 0, run.stderr
    assert run.states == [{"s": 2}, {"s": 4}]
    assert rows("SELECT id FROM items ORDER BY id") == [(1,), (2,), (3,), (4,)]


def test_a_repeated_state_is_printed_once(run_target) -> None:
    run = run_target([HEAD, state({"s": 1}), state({"s": 1}), item(1), state({"s": 1})])
    assert run.returncode == 0, run.stderr
    assert run.states == [{"s": 1}]
