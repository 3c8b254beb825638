"""Issue 19 items 8 and 17: a bad or stalled AWS endpoint ends the run in bounded time with one
line naming the table, the call and what came back, never a wrong diagnosis."""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from safe_singer_testing.dynamodb import TapRun, run_tap
from safe_singer_testing.emulators.dynamodb_streams import Stack
from safe_singer_testing.faults import AMZ_JSON, Fault, FaultFront, Rule, aws_operation

WRONG_DIAGNOSIS = "no stream is enabled"
ERROR = "tap-dynamodb-streams: error: "  # the start of the tap's one error line
THROTTLE = Fault.json_answer(
    {"__type": "com.amazonaws.dynamodb.v20120810#LimitExceededException", "message": "slow"},
    status=400,
    content_type=AMZ_JSON,
)


def table_with_events(stack: Stack, table: str) -> None:
    stack.create_table(table)
    for key in "abc":
        stack.dynamodb().put_item(TableName=table, Item={"pk": {"S": key}})
    stack.streams.sync()


def run_through(stack: Stack, tmp_path: Path, table: str, rule: Rule, **settings: Any) -> TapRun:
    with FaultFront(stack.streams.url, rule) as front:
        config = stack.tap_config([table], streams_endpoint_url=front.url, **settings)
        return run_tap(tmp_path, config, timeout=120)


def assert_one_line(run: TapRun, *pattern: str) -> None:
    """The run failed with one error line holding every ``pattern``, and no traceback."""
    assert run.returncode != 0, run.stderr[-2000:]
    assert run.records == []
    assert WRONG_DIAGNOSIS not in run.stderr and "full resync" not in run.stderr
    assert "Traceback" not in run.stderr, run.stderr[-3000:]
    errors = [line for line in run.stderr.splitlines() if line.startswith(ERROR)]
    assert len(errors) == 1, run.stderr[-3000:]
    missing = [p for p in pattern if p not in errors[0]]
    assert not missing, f"{missing} not in the error line: {errors[0]}"


@pytest.mark.parametrize(
    ("operation", "fault", "received"),
    [
        ("ListStreams", Fault.gateway_page(), "text/html"),
        ("ListStreams", Fault.cut_short({"Streams": [{"StreamArn": "x" * 80}]}), "bytes"),
        ("DescribeStream", Fault.gateway_page(), "Bad Gateway"),
        ("DescribeStream", Fault.json_answer({"StreamDescription": []}, 200, AMZ_JSON), "shape"),
        ("ListStreams", Fault.json_answer({"Streams": "none"}, 200, AMZ_JSON), "shape"),
        ("GetShardIterator", Fault.cut_short({"ShardIterator": "abcdef" * 20}), "no JSON"),
        ("GetRecords", Fault.gateway_page(), "text/html"),
    ],
)
def test_a_malformed_streams_answer_is_named_with_table_and_call(
    stack: Stack, tmp_path: Path, operation: str, fault: Fault, received: str
) -> None:
    table_with_events(stack, "orders")
    run = run_through(stack, tmp_path, "orders", aws_operation(operation, fault))
    assert_one_line(run, "Table 'orders'", operation, received)


def test_a_stalled_endpoint_is_logged_and_ends_the_run_within_its_time(
    stack: Stack, tmp_path: Path
) -> None:
    """Before: no log line for minutes, then a traceback (10 botocore attempts x 30 s read
    timeout x 6 tries of our own)."""
    table_with_events(stack, "stalled")
    started = time.monotonic()
    run = run_through(
        stack,
        tmp_path,
        "stalled",
        aws_operation("ListStreams", Fault.never_answer()),
        max_run_seconds=4,
        aws_call_timeout_seconds=2,
    )
    elapsed = time.monotonic() - started
    assert_one_line(run, "Table 'stalled'", "ListStreams", "max_run_seconds")
    waiting = [line for line in run.stderr.splitlines() if "attempt 1 of at most" in line]
    assert waiting and "Table 'stalled': ListStreams: no answer within 2 s" in waiting[0]
    # max_run_seconds + one call timeout + the last backoff (at most 2 s for the 2nd retry),
    # plus the process's start-up on a loaded machine.
    assert elapsed < 4 + 2 + 2 + 15, f"{elapsed:.1f} s"


def test_stalled_shard_reads_end_the_run_within_its_time(stack: Stack, tmp_path: Path) -> None:
    table_with_events(stack, "slow")
    started = time.monotonic()
    run = run_through(
        stack,
        tmp_path,
        "slow",
        aws_operation("GetRecords", Fault.never_answer()),
        max_run_seconds=4,
        aws_call_timeout_seconds=2,
    )
    elapsed = time.monotonic() - started
    assert_one_line(run, "Table 'slow'", "GetRecords", "no answer within 2 s")
    assert elapsed < 4 + 2 + 2 + 15, f"{elapsed:.1f} s"


def test_an_always_throttling_endpoint_fails_after_botocores_attempts(
    stack: Stack, tmp_path: Path
) -> None:
    table_with_events(stack, "throttled")
    started = time.monotonic()
    run = run_through(
        stack, tmp_path, "throttled", aws_operation("DescribeStream", THROTTLE), aws_max_attempts=3
    )
    elapsed = time.monotonic() - started
    assert_one_line(run, "Table 'throttled'", "DescribeStream", "LimitExceededException")
    assert run.stderr.count("attempt 2 of at most 3") == 1, run.stderr[-3000:]
    assert elapsed < 30, f"{elapsed:.1f} s"


def test_an_always_throttling_endpoint_ends_the_run_within_max_run_seconds(
    stack: Stack, tmp_path: Path
) -> None:
    """Before: 446 s of retries. Ten attempts back off for up to 20 s each in botocore's
    standard mode (about a minute in all): the run's time ends them first."""
    table_with_events(stack, "busy")
    started = time.monotonic()
    run = run_through(
        stack,
        tmp_path,
        "busy",
        aws_operation("DescribeStream", THROTTLE),
        aws_max_attempts=10,
        max_run_seconds=3,
        aws_call_timeout_seconds=2,
    )
    elapsed = time.monotonic() - started
    assert_one_line(run, "Table 'busy'", "DescribeStream", "LimitExceeded", "max_run_seconds")
    assert "attempt 10 of at most 10" not in run.stderr, run.stderr[-3000:]
    # max_run_seconds + one call timeout, plus the process's start-up on a loaded machine.
    assert elapsed < 3 + 2 + 15, f"{elapsed:.1f} s"


@pytest.mark.parametrize(
    ("operation", "fault", "received"),
    [
        ("DescribeTable", Fault.gateway_page(), "text/html"),
        ("Scan", Fault.json_answer({"Items": {"pk": {"S": "a"}}}, 200, AMZ_JSON), "shape"),
    ],
)
def test_a_malformed_dynamodb_answer_is_named_with_table_and_call(
    stack: Stack, tmp_path: Path, operation: str, fault: Fault, received: str
) -> None:
    table_with_events(stack, "orders")
    with FaultFront(stack.moto.url, aws_operation(operation, fault)) as front:
        config = stack.tap_config(["orders"], endpoint_url=front.url, initial_snapshot=True)
        run = run_tap(tmp_path, config, timeout=120)
    assert_one_line(run, "Table 'orders'", operation, received)


def test_unreachable_aws_is_one_line_naming_the_table(stack: Stack, tmp_path: Path) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    config = stack.tap_config(["far"], endpoint_url=f"http://127.0.0.1:{port}", aws_max_attempts=2)
    run = run_tap(tmp_path, config)
    assert_one_line(run, "Table 'far'", "DescribeTable", "Could not connect")
    # aws_max_attempts counts every attempt, the first included (botocore's total_max_attempts)
    attempts = re.findall(r"\(attempt (\d+) of at most 2\)", run.stderr)
    assert attempts == ["1", "2"], run.stderr


def test_a_missing_table_is_one_line_naming_it(stack: Stack, tmp_path: Path) -> None:
    run = run_tap(tmp_path, stack.tap_config(["missing"]))
    assert_one_line(run, "Table 'missing'", "DescribeTable", "ResourceNotFoundException")
    assert re.search(r"Check the table name, region_name and endpoint_url", run.stderr)
