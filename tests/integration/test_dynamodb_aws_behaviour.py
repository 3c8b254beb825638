"""The tap against AWS behaviour our endpoint used to smooth over (issue 11, bugs 3 to 6):
empty stretches that move the iterator, transient ResourceNotFound, malformed answers, child
shards whose StartingSequenceNumber names no record, and credentials in debug logs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from botocore.credentials import Credentials
from tap_dynamodb_streams.client import AwsClients
from tap_dynamodb_streams.direct import install
from tap_dynamodb_streams.settings import TapSettings
from tap_dynamodb_streams.tap import TapDynamoDBStreams

from safe_singer_testing.dynamodb import TapRun, run_tap, running_stack
from safe_singer_testing.emulators.dynamodb_streams import Faults, Stack


def put(stack: Stack, table: str, *keys: str) -> None:
    for key in keys:
        stack.dynamodb().put_item(TableName=table, Item={"pk": {"S": key}, "v": {"N": "1"}})
    stack.streams.sync()


def emitted(run: TapRun) -> list[str]:
    return [str(r["_sdc_sequence_number"]) for r in run.records]


def truth(stack: Stack, table: str) -> list[str]:
    return [e["sequence_number"] for e in stack.streams.events(table)]


def settings(config: dict[str, Any]) -> dict[str, Any]:
    """The config as the tap sees it after validation: the schema's defaults filled in."""
    return dict(TapDynamoDBStreams(config=config, validate_config=True).config)


def split_table(stack: Stack, table: str) -> None:
    """Eight events in the root, then a split and eight in the two children."""
    stack.create_table(table)
    put(stack, table, *"abcdefgh")
    stack.streams.split(table)
    put(stack, table, *"ijklmnop")


@pytest.mark.slow
def test_empty_stretches_on_closed_and_open_shards_are_followed(tmp_path: Path) -> None:
    """Bug 3: a closed shard returns runs of empty pages before its null iterator; the old
    reader gave up after 3 and restarted the stretch every run, so the children never came."""
    faults = Faults(closed_tail_pages=16, empty_stretch_rate=0.3, empty_stretch_pages=4, seed=2)
    with running_stack(faults) as stack:
        split_table(stack, "stretch")
        config = stack.tap_config(["stretch"], open_shard_idle_seconds=3)
        run = run_tap(tmp_path, config)
        assert run.returncode == 0, run.stderr
        assert sorted(emitted(run)) == sorted(truth(stack, "stretch"))


def test_transient_resource_not_found_is_retried(tmp_path: Path) -> None:
    """Bug 4: a listed shard answering ResourceNotFound once is not a vanished shard."""
    # With the product's not_found_retries (4), five answers in a row ended 2 of 30 seeded
    # runs of this scenario (0.3: 4 of 30): the stack's tap_config allows 8. Every retry
    # restarts the empty stretch, so an open shard may idle out of a run before its last
    # events (by design, the next run reads them): up to 5 runs, all clean.
    with running_stack(Faults(transient_not_found_rate=0.2, seed=4)) as stack:
        split_table(stack, "flaky")
        expected = sorted(truth(stack, "flaky"))
        records: list[str] = []
        state = None
        for _ in range(5):
            run = run_tap(tmp_path, stack.tap_config(["flaky"]), state=state)
            assert run.returncode == 0, run.stderr
            assert "full resync" not in run.stderr
            records += emitted(run)
            state = run.last_state
            if len(records) >= len(expected):
                break
        assert sorted(records) == expected
        assert stack.streams.errors["ResourceNotFoundException"] > 0


def test_a_malformed_answer_names_table_and_shard(tmp_path: Path) -> None:
    """Bug 4: a 200 body without Records was a bare KeyError."""
    with running_stack(Faults(malformed_get_records=1)) as stack:
        stack.create_table("garbled")
        put(stack, "garbled", "a")
        run = run_tap(tmp_path, stack.tap_config(["garbled"]))
        assert run.returncode != 0
        shard = stack.streams.shards("garbled")[0]["shard_id"]
        assert re.search(
            rf"Table 'garbled': shard {shard}: GetRecords answered without 'Records'", run.stderr
        ), run.stderr[-2000:]
        assert run.records == [] and "KeyError" not in run.stderr


def test_children_start_where_aws_lets_them_and_a_trimmed_start_stays_loud(
    tmp_path: Path,
) -> None:
    """Bug 5: AT_SEQUENCE_NUMBER at a child's StartingSequenceNumber (which no record carries)
    is refused with ValidationException; the tap falls back to TRIM_HORIZON as the KCL adapter
    does, yet a child whose first events aged out still stops the run."""
    with running_stack() as stack:
        split_table(stack, "kids")
        run = run_tap(tmp_path, stack.tap_config(["kids"]))
        assert run.returncode == 0, run.stderr
        assert sorted(emitted(run)) == sorted(truth(stack, "kids"))
        assert stack.streams.errors.get("ValidationException", 0) >= 2  # both children asked

        stack.streams.split("kids")  # grandchildren: read (empty) by the next run
        again = run_tap(tmp_path, stack.tap_config(["kids"]), state=run.last_state)
        assert again.returncode == 0 and again.records == [], again.stderr
        state: dict[str, Any] = again.last_state  # type: ignore[assignment]
        put(stack, "kids", *"qrst")  # into grandchildren never read past their start
        stack.streams.advance(25 * 3600)
        lost = run_tap(tmp_path, stack.tap_config(["kids"]), state=state)
        assert lost.returncode != 0
        assert "trimmed" in lost.stderr and "full resync" in lost.stderr
        assert lost.records == [] and all(s == state for s in lost.states)


def test_no_credential_in_any_log_line_at_debug_level(tmp_path: Path) -> None:
    """Bug 6: botocore printed X-Amz-Security-Token (and signatures) at debug level."""
    key, secret, token = "AKIAEXAMPLEKEY123456", "s3cret/Key+never-logged", "FwoGZXIvYXdzTOKEN"
    with running_stack(Faults.lenient()) as stack:
        stack.create_table("quiet")
        put(stack, "quiet", "a", "b")
        config = stack.tap_config(
            ["quiet"], aws_access_key_id=key, aws_secret_access_key=secret, aws_session_token=token
        )
        run = run_tap(tmp_path, config, env={"LOGLEVEL": "DEBUG"})
    assert run.returncode == 0, run.stderr[-2000:]
    assert "botocore" in run.stderr and "X-Amz-Security-Token" in run.stderr  # debug was on
    for value in (key, secret, token, token[:12]):
        assert value not in run.stderr, f"{value!r} leaked into the log"
    assert not re.search(r"Signature=[0-9a-f]{16}", run.stderr)


@pytest.mark.slow
def test_throttling_inside_an_empty_stretch_does_not_end_an_open_shard(tmp_path: Path) -> None:
    """Crash soak: an open shard counted as caught up after 1 s without a record, backoff
    included, so a 4-page stretch plus a throttle ended it short of its records every run
    (a new run walks the stretch again). Idle now also needs the pages the pace allows."""
    faults = Faults(empty_stretch_rate=1.0, empty_stretch_pages=4, throttle_rate=0.15, seed=5)
    with running_stack(faults) as stack:
        stack.create_table("throttled")
        put(stack, "throttled", *"abcdefgh")
        run = run_tap(tmp_path, stack.tap_config(["throttled"]))
        assert run.returncode == 0, run.stderr
        assert emitted(run) == truth(stack, "throttled")
        assert "counted as caught up for this run" in run.stderr


def test_unpaced_quiet_open_shard_passes_an_empty_stretch(tmp_path: Path) -> None:
    """Unpaced (``max_get_records_per_shard_per_second: 0``), a quiet open shard is still
    polled at the quiet rate for all of open_shard_idle_seconds: records behind a 3-page empty
    stretch are read (a new iterator walks the stretch again, so a run that gave up after 2
    pages would never pass it; found in review)."""
    faults = Faults.lenient(empty_stretch_rate=1.0, empty_stretch_pages=3)
    with running_stack(faults) as stack:
        stack.create_table("quiet")
        db = stack.dynamodb()
        for n in range(2):
            db.put_item(TableName="quiet", Item={"pk": {"S": f"k{n}"}})
        stack.streams.sync()
        config = stack.tap_config(["quiet"], max_get_records_per_shard_per_second=0)
        first = run_tap(tmp_path / "1", config)
        second = run_tap(tmp_path / "2", config, state=first.last_state)
    assert first.returncode == 0 and second.returncode == 0, second.stderr[-3000:]
    assert len(first.records) + len(second.records) == 2, first.stderr[-2000:]


def test_shard_reads_are_signed_directly_and_a_refused_key_fails_loudly(tmp_path: Path) -> None:
    """GetShardIterator and GetRecords skip botocore's per-call machinery (client.py,
    DirectCalls) with signatures the endpoint checks as AWS does: none is refused and none
    falls back to botocore. A secret key AWS refuses stops the run, naming AWS's error."""
    wrong = "Wr0ng/secret+never-logged"
    with running_stack(Faults.lenient()) as stack:
        stack.create_table("signed")
        put(stack, "signed", "a", "b", "c")
        run = run_tap(tmp_path / "ok", stack.tap_config(["signed"]), env={"LOGLEVEL": "DEBUG"})
        refused = run_tap(
            tmp_path / "refused",
            {**stack.tap_config(["signed"]), "aws_secret_access_key": wrong},
        )
    assert run.returncode == 0, run.stderr[-3000:]
    assert sorted(r["pk"] for r in run.records) == ["a", "b", "c"]
    assert "Making request for OperationModel(name=DescribeStream)" in run.stderr  # debug on
    assert "OperationModel(name=GetRecords)" not in run.stderr
    assert "OperationModel(name=GetShardIterator)" not in run.stderr
    assert "refused where botocore's were not" not in run.stderr
    assert refused.returncode != 0 and not refused.records
    assert "InvalidSignatureException" in refused.stderr and wrong not in refused.stderr


def test_direct_shard_reads_can_be_switched_off(tmp_path: Path) -> None:
    """``direct_shard_reads: false``: every shard read goes through botocore (the kill-switch
    for a botocore release the fast path no longer fits)."""
    with running_stack(Faults.lenient()) as stack:
        stack.create_table("plain")
        put(stack, "plain", "a", "b")
        config = stack.tap_config(["plain"], direct_shard_reads=False)
        run = run_tap(tmp_path, config, env={"LOGLEVEL": "DEBUG"})
    assert run.returncode == 0, run.stderr[-3000:]
    assert sorted(r["pk"] for r in run.records) == ["a", "b"]
    assert "OperationModel(name=GetRecords)" in run.stderr
    assert "OperationModel(name=GetShardIterator)" in run.stderr


def test_direct_reads_refused_where_botocore_is_not_fall_back_then_switch_off() -> None:
    """A direct shard read that AWS refuses (here: signed with a secret the endpoint does not
    know, while botocore's is right) is asked again through botocore and answered; after 3
    such refusals the direct path is off, so a broken one cannot double every call."""
    with running_stack(Faults.lenient()) as stack:
        stack.create_table("fallback")
        put(stack, "fallback", "a")
        aws = AwsClients(TapSettings.from_config(settings(stack.tap_config(["fallback"]))))
        arn = aws.stream_arns("fallback")[-1]
        _, listing = aws.describe_stream(arn)
        shard_id = next(iter(listing))
        # The direct path gets credentials the endpoint refuses; botocore keeps the right ones.
        direct = install(aws.streams, Credentials("testing", "not-the-secret"), enabled=True)
        aws.use_direct_calls(direct)
        aws.describe_stream(arn)  # botocore's request tells the direct path its URL
        iterators = [
            aws.shard_iterator(arn, shard_id, {"ShardIteratorType": "TRIM_HORIZON"})
            for _ in range(5)
        ]
        refused = stack.streams.errors.get("InvalidSignatureException", 0)
    assert all(iterators)
    assert refused == 3
    assert direct is not None and not direct.usable
