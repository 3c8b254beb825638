"""The Streams endpoint speaks the real wire protocol: boto3 sees the real shapes and errors."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError

from safe_singer_testing.emulators.dynamodb_streams import Faults, Stack, start_stack
from safe_singer_testing.emulators.dynamodb_streams.feed import CREDENTIALS


@pytest.fixture
def stack() -> Iterator[Stack]:
    s = start_stack(Faults.lenient())
    try:
        yield s
    finally:
        s.stop()


def streams_client(stack: Stack, attempts: int = 1) -> Any:
    config = Config(retries={"mode": "standard", "total_max_attempts": attempts})
    return boto3.client(  # type: ignore[call-overload]
        "dynamodbstreams", endpoint_url=stack.streams.url, config=config, **CREDENTIALS
    )


def put(stack: Stack, table: str, pk: str, **attrs: str) -> None:
    item = {"pk": {"S": pk}, **{k: {"N": v} for k, v in attrs.items()}}
    stack.dynamodb().put_item(TableName=table, Item=item)


def test_writes_reach_shards_with_real_shapes_and_growing_sequence_numbers(stack: Stack) -> None:
    arn = stack.create_table("tbl1")
    for i in range(6):
        put(stack, "tbl1", f"k{i}", n="12345678901234567890123456789012345678")
    stack.streams.split("tbl1")
    for i in range(6):
        put(stack, "tbl1", f"k{i}", n=str(i))
    stack.streams.sync()
    client = streams_client(stack)
    assert client.list_streams(TableName="tbl1")["Streams"][0]["StreamArn"] == arn

    first = client.describe_stream(StreamArn=arn, Limit=1)["StreamDescription"]
    assert len(first["Shards"]) == 1 and "LastEvaluatedShardId" in first
    root = first["Shards"][0]
    assert "EndingSequenceNumber" in root["SequenceNumberRange"]
    children = client.describe_stream(
        StreamArn=arn, ShardFilter={"Type": "CHILD_SHARDS", "ShardId": root["ShardId"]}
    )["StreamDescription"]["Shards"]
    assert len(children) == 2 and {c["ParentShardId"] for c in children} == {root["ShardId"]}

    it = client.get_shard_iterator(
        StreamArn=arn, ShardId=root["ShardId"], ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    page = client.get_records(ShardIterator=it)
    assert len(page["Records"]) == 6 and "NextShardIterator" not in page  # closed, drained
    root_seqs = [int(r["dynamodb"]["SequenceNumber"]) for r in page["Records"]]
    assert root_seqs == sorted(root_seqs) and len(str(root_seqs[0])) == 21
    child_seqs = []
    for child in children:
        it = client.get_shard_iterator(
            StreamArn=arn, ShardId=child["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        page = client.get_records(ShardIterator=it)
        assert page["NextShardIterator"]  # open shard: never a null iterator
        child_seqs += [int(r["dynamodb"]["SequenceNumber"]) for r in page["Records"]]
    assert len(child_seqs) == 6 and min(child_seqs) > max(root_seqs)
    assert len(str(min(child_seqs))) == 27


def test_errors_map_to_named_boto3_exceptions(stack: Stack) -> None:
    arn = stack.create_table("tbl2")
    put(stack, "tbl2", "a")
    stack.streams.sync()
    client = streams_client(stack)
    shard = client.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    it = client.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    seq = client.get_records(ShardIterator=it["ShardIterator"])["Records"][0]["dynamodb"][
        "SequenceNumber"
    ]

    stack.streams.advance(15 * 60 + 1)
    with pytest.raises(client.exceptions.ExpiredIteratorException):
        client.get_records(ShardIterator=it["ShardIterator"])

    put(stack, "tbl2", "b")
    stack.streams.sync()
    stack.streams.advance(24 * 3600 + 1)
    with pytest.raises(client.exceptions.TrimmedDataAccessException):
        client.get_shard_iterator(
            StreamArn=arn,
            ShardId=shard,
            ShardIteratorType="AFTER_SEQUENCE_NUMBER",
            SequenceNumber=seq,
        )
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.describe_stream(StreamArn=arn + "x")

    stack.streams.set_faults(Faults(throttle_rate=1.0))
    with pytest.raises(client.exceptions.LimitExceededException):
        client.list_streams()
    stack.streams.set_faults(Faults(server_error_rate=1.0))
    with pytest.raises(client.exceptions.InternalServerError) as err:
        client.list_streams()
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500


def test_boto3_retries_throttling_like_against_aws(stack: Stack) -> None:
    stack.create_table("tbl3")
    stack.streams.set_faults(Faults(throttle_rate=0.5, seed=3))
    client = streams_client(stack, attempts=10)
    for _ in range(5):
        client.list_streams()
    assert stack.streams.errors["LimitExceededException"] > 0


def test_reenabled_stream_has_a_new_arn_and_the_old_one_closes(stack: Stack) -> None:
    old = stack.create_table("tbl4")
    put(stack, "tbl4", "a")
    new = stack.streams.reenable_stream("tbl4")
    assert new != old
    client = streams_client(stack)
    arns = [s["StreamArn"] for s in client.list_streams(TableName="tbl4")["Streams"]]
    assert arns == [old, new]
    described = client.describe_stream(StreamArn=old)["StreamDescription"]
    assert described["StreamStatus"] == "DISABLED"
    assert all("EndingSequenceNumber" in s["SequenceNumberRange"] for s in described["Shards"])


def read_all(client: Any, iterator: str) -> tuple[list[int], int]:
    """Follow an iterator to its null end: (sequence numbers, empty pages seen)."""
    seqs: list[int] = []
    empty = 0
    while iterator:
        page = client.get_records(ShardIterator=iterator)
        seqs += [int(r["dynamodb"]["SequenceNumber"]) for r in page["Records"]]
        empty += not page["Records"]
        iterator = page.get("NextShardIterator")
    return seqs, empty


def throttled(client: Any, call: Callable[[], object], times: int) -> int:
    """How many of ``times`` back-to-back calls were refused with LimitExceededException."""
    refused = 0
    for _ in range(times):
        try:
            call()
        except client.exceptions.LimitExceededException:
            refused += 1
    return refused


def test_aws_faithful_default_empty_stretches_limits_and_strict_positions() -> None:
    """The default Faults(): empty stretches move the iterator, a closed shard ends only after
    its tail stretch, AT_SEQUENCE_NUMBER needs a real record, GetRecords per shard and
    DescribeStream are rate limited, and Date tells the virtual time."""
    s = start_stack(Faults(empty_stretch_rate=0.5, get_records_per_shard_per_second=0))
    try:
        arn = s.create_table("aws")
        for i in range(20):
            put(s, "aws", f"k{i}")
        s.streams.split("aws")
        client = streams_client(s)
        described = client.describe_stream(StreamArn=arn)
        assert described["ResponseMetadata"]["HTTPHeaders"]["date"].startswith("Thu, 01 Jan 2026")
        root = next(x for x in described["StreamDescription"]["Shards"] if "ParentShardId" not in x)
        start = root["SequenceNumberRange"]["StartingSequenceNumber"]
        with pytest.raises(client.exceptions.ClientError, match="ValidationException"):
            client.get_shard_iterator(
                StreamArn=arn,
                ShardId=root["ShardId"],
                ShardIteratorType="AT_SEQUENCE_NUMBER",
                SequenceNumber=start,
            )
        it = client.get_shard_iterator(
            StreamArn=arn, ShardId=root["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        seqs, empty = read_all(client, it)
        assert len(seqs) == 20 and seqs == sorted(seqs)
        assert empty >= 2 + 3  # the closed tail, and at least one stretch before a record

        s.streams.set_faults(Faults())
        # Eight calls, at most five per second per shard; fourteen, at most ten per second.
        # (At least one refusal, not a count: the machine is shared and slow at times.)
        assert throttled(client, lambda: client.get_records(ShardIterator=it), 8)
        assert throttled(client, lambda: client.describe_stream(StreamArn=arn), 14)
    finally:
        s.stop()


def test_requests_are_signature_checked_like_aws(stack: Stack) -> None:
    """Every request's SigV4 signature is checked (sigv4.py): a wrong secret key and a request
    without Authorization get DynamoDB's errors, as from AWS."""
    stack.create_table("signed")
    assert streams_client(stack).list_streams(TableName="signed")["Streams"]
    wrong = {**CREDENTIALS, "aws_secret_access_key": "not-the-secret"}
    client = boto3.client("dynamodbstreams", endpoint_url=stack.streams.url, **wrong)
    with pytest.raises(ClientError) as refused:
        client.list_streams(TableName="signed")
    assert refused.value.response["Error"]["Code"] == "InvalidSignatureException"
    unsigned = requests.post(
        stack.streams.url,
        data=b'{"TableName": "signed"}',
        headers={"X-Amz-Target": "DynamoDBStreams_20120810.ListStreams"},
        timeout=10,
    )
    assert unsigned.status_code == 400
    assert unsigned.json()["__type"].endswith("#MissingAuthenticationTokenException")


def test_shard_filter_lists_only_the_children_of_a_shard_as_aws_documents(stack: Stack) -> None:
    """DescribeStream ``ShardFilter`` (API reference, "ShardFilter"): CHILD_SHARDS of the named
    parent only, paged like the full list; any other type, or a shard id outside 28 to 65
    characters, is a ValidationException."""
    arn = stack.create_table("family", roots=3)
    parents = [s["shard_id"] for s in stack.streams.shards("family")]
    stack.streams.split("family")
    client = streams_client(stack)
    children = {
        parent: [s["shard_id"] for s in stack.streams.shards("family") if s["parent_id"] == parent]
        for parent in parents
    }
    first = client.describe_stream(
        StreamArn=arn, Limit=1, ShardFilter={"Type": "CHILD_SHARDS", "ShardId": parents[0]}
    )["StreamDescription"]
    assert [s["ShardId"] for s in first["Shards"]] == children[parents[0]][:1]
    assert all(s["ParentShardId"] == parents[0] for s in first["Shards"])
    rest = client.describe_stream(
        StreamArn=arn,
        ExclusiveStartShardId=first["LastEvaluatedShardId"],
        ShardFilter={"Type": "CHILD_SHARDS", "ShardId": parents[0]},
    )["StreamDescription"]
    assert [s["ShardId"] for s in rest["Shards"]] == children[parents[0]][1:]
    assert "LastEvaluatedShardId" not in rest
    leaf = children[parents[1]][0]
    none = client.describe_stream(
        StreamArn=arn, ShardFilter={"Type": "CHILD_SHARDS", "ShardId": leaf}
    )["StreamDescription"]
    assert none["Shards"] == [] and none["StreamStatus"] == "ENABLED"
    unchecked = boto3.client(  # type: ignore[call-overload]
        "dynamodbstreams",
        endpoint_url=stack.streams.url,
        config=Config(parameter_validation=False, retries={"total_max_attempts": 1}),
        **CREDENTIALS,
    )
    for bad in (
        {"Type": "AFTER_SHARD_ID", "ShardId": parents[0]},
        {"Type": "CHILD_SHARDS"},
        {"Type": "CHILD_SHARDS", "ShardId": "shardId-1"},  # botocore refuses it client-side
    ):
        with pytest.raises(ClientError, match="ValidationException"):
            unchecked.describe_stream(StreamArn=arn, ShardFilter=bad)
