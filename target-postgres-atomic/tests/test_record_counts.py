"""singer-sdk `record_count` METRIC lines on stderr: one per stream per committed batch, so a
runner (state-service) can compare what the tap emitted with what landed in the tables."""

from __future__ import annotations

import json
from collections import Counter

from safe_singer_testing.target_messages import activate, record, schema

HEAD = schema("items", {"id": {"type": "integer"}, "n": {"type": "integer"}})
OTHER = schema("other", {"id": {"type": "integer"}})
TORN_LINE = '{"type": "RECORD", "stream": "it'


def counted(stderr: str) -> Counter[str]:
    """The records per stream that the target's record_count lines report."""
    totals: Counter[str] = Counter()
    for line in stderr.splitlines():
        _, mark, payload = line.partition("METRIC: ")
        point = json.loads(payload) if mark else {}
        if point.get("metric") == "record_count":
            assert point["type"] == "counter" and isinstance(point["value"], int), line
            totals[point["tags"]["stream"]] += point["value"]
    return totals


def test_record_counts_sum_to_the_records_committed_and_a_failed_batch_counts_none(
    run_target, rows
) -> None:
    """Batches of 2 records (of all streams): the fourth batch fails in PostgreSQL (its bad
    record is only checked there), so its good record is not counted, nor committed."""
    messages = [
        HEAD,
        OTHER,
        record("other", {"id": 1}),
        *(record("items", {"id": i, "n": i}) for i in range(6)),
        record("items", {"id": 6, "n": "not a number"}),
    ]
    run = run_target(messages, batch_size_rows=2, validate_records=False)
    assert run.returncode != 0
    assert "stream 'items'" in run.stderr, run.stderr
    assert rows("SELECT count(*) FROM items") == [(5,)]
    assert rows("SELECT count(*) FROM other") == [(1,)]
    assert counted(run.stderr) == {"items": 5, "other": 1}


def test_record_counts_carry_the_stream_tag_as_singer_sdk_targets_do(run_target) -> None:
    run = run_target([HEAD, *(record("items", {"id": i, "n": i}) for i in range(5))])
    assert run.returncode == 0, run.stderr
    lines = [line for line in run.stderr.splitlines() if '"record_count"' in line]
    assert lines, run.stderr
    # singer-sdk's compact JSON, on its metrics logger, at INFO.
    point = json.loads(lines[0].partition("METRIC: ")[2])
    assert point == {
        "type": "counter",
        "metric": "record_count",
        "value": 5,
        "tags": {"stream": "items", "pid": point["tags"]["pid"]},
    }
    assert "singer_sdk.metrics" in lines[0] and "INFO" in lines[0]
    assert lines[0].endswith(json.dumps(point, separators=(",", ":")))


def test_records_of_a_refresh_count_when_swapped_in_not_when_staged_in_its_shadow(
    run_target, rows
) -> None:
    """A full refresh loads into a shadow table, published only when complete: a refresh
    that fails lands (and counts) nothing; one that completes counts every record once."""
    refresh = [HEAD, activate("items", 1)]
    refresh += [record("items", {"id": i, "n": i}, version=1) for i in range(5)]
    failed = run_target([*refresh, TORN_LINE], batch_size_rows=2)
    assert failed.returncode != 0
    assert rows("SELECT count(*) FROM items") == [(0,)]
    assert counted(failed.stderr)["items"] == 0

    run = run_target([*refresh, activate("items", 1)], batch_size_rows=2)
    assert run.returncode == 0, run.stderr
    assert rows("SELECT count(*) FROM items") == [(5,)]
    assert counted(run.stderr) == {"items": 5}


def test_a_refresh_restarted_in_one_run_counts_only_the_records_it_swaps_in(
    run_target, rows
) -> None:
    """A new opening ACTIVATE_VERSION empties the shadow: the first attempt's records never
    land, so they never count."""
    messages = [HEAD, activate("items", 1)]
    messages += [record("items", {"id": i, "n": 1}, version=1) for i in range(3)]
    messages += [activate("items", 2)]
    messages += [record("items", {"id": i, "n": 2}, version=2) for i in range(2)]
    run = run_target([*messages, activate("items", 2)], batch_size_rows=2)
    assert run.returncode == 0, run.stderr
    assert rows("SELECT id, n FROM items ORDER BY id") == [(0, 2), (1, 2)]
    assert counted(run.stderr) == {"items": 2}
