"""The one place that talks to AWS: boto3 clients, retry policy and error classification.

Throttling and server errors are retried twice over: by botocore's ``standard`` retry mode on
every call, and, if those attempts run out, by our own bounded exponential backoff with jitter.
Everything else is turned into a named outcome (expired iterator, trimmed data, missing
resource) for the stream reader to act on.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

import backoff
import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

T = TypeVar("T")
RETRYABLE_CODES = {
    "LimitExceededException",
    "ThrottlingException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
}
OUR_MAX_TRIES = 6
OUR_MAX_WAIT_SECONDS = 30


class ExpiredIterator(Exception):
    """The shard iterator is older than 15 minutes; get a new one from the last position."""


class TrimmedData(Exception):
    """The requested position is older than the stream's 24-hour retention."""


class ResourceNotFound(Exception):
    """The stream or shard does not exist (any more)."""


class StillThrottled(Exception):
    """AWS kept throttling or failing after every retry; carries the last error."""


def error_code(err: ClientError) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))


def _classified(call: Callable[[], T]) -> T:
    try:
        return call()
    except ClientError as err:
        code = error_code(err)
        if code == "ExpiredIteratorException":
            raise ExpiredIterator(str(err)) from err
        if code == "TrimmedDataAccessException":
            raise TrimmedData(str(err)) from err
        if code == "ResourceNotFoundException":
            raise ResourceNotFound(str(err)) from err
        if code in RETRYABLE_CODES:
            raise StillThrottled(str(err)) from err
        raise


def _retrying(call: Callable[[], T]) -> T:
    wrapped = backoff.on_exception(
        backoff.expo,
        StillThrottled,
        max_tries=OUR_MAX_TRIES,
        max_value=OUR_MAX_WAIT_SECONDS,
        jitter=backoff.full_jitter,
        logger=logging.getLogger("tap-dynamodb-streams.retry"),
    )(lambda: _classified(call))
    return wrapped()


def _records_as_wire_json(
    response_dict: dict[str, Any], customized_response_dict: dict[str, Any], **_: Any
) -> None:
    """Decode a successful GetRecords body with the C JSON parser, not botocore's shape walk.

    botocore spends most of a tap's CPU walking every AttributeValue of every record; the wire
    JSON is already what convert.py reads (B as base64 text, times as epoch seconds). Errors
    are left to botocore, so retries and error codes are unchanged.
    """
    if response_dict.get("status_code") == 200 and response_dict.get("body"):
        customized_response_dict.update(json.loads(response_dict["body"]))
        response_dict["body"] = b"{}"


class AwsClients:
    """DynamoDB (tables) and DynamoDB Streams clients built from the tap's settings."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        session = boto3.Session(
            aws_access_key_id=config.get("aws_access_key_id"),
            aws_secret_access_key=config.get("aws_secret_access_key"),
            aws_session_token=config.get("aws_session_token"),
            profile_name=config.get("aws_profile"),
            region_name=config.get("region_name"),
        )
        retry = Config(
            retries={"mode": "standard", "max_attempts": 10},
            connect_timeout=10,
            read_timeout=30,
            max_pool_connections=max(10, int(config.get("scan_segments") or 0) + 2),
        )
        endpoint = config.get("endpoint_url")
        self.dynamodb = session.client("dynamodb", endpoint_url=endpoint, config=retry)
        self.streams = session.client(
            "dynamodbstreams",
            endpoint_url=config.get("streams_endpoint_url") or endpoint,
            config=retry,
        )
        self.streams.meta.events.register(
            "before-parse.dynamodb-streams.GetRecords", _records_as_wire_json
        )

    def describe_table(self, table: str) -> dict[str, Any]:
        return _retrying(lambda: self.dynamodb.describe_table(TableName=table)["Table"])

    def stream_arns(self, table: str) -> list[str]:
        """The table's streams, oldest first (labels are creation timestamps)."""
        streams: list[dict[str, Any]] = []
        request: dict[str, Any] = {"TableName": table}
        while True:
            page = _retrying(lambda: self.streams.list_streams(**request))
            streams += page.get("Streams", [])
            if not page.get("LastEvaluatedStreamArn"):
                break
            request["ExclusiveStartStreamArn"] = page["LastEvaluatedStreamArn"]
        return [s["StreamArn"] for s in sorted(streams, key=lambda s: s["StreamLabel"])]

    def describe_stream(self, arn: str) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
        """The stream's description and every shard, following LastEvaluatedShardId."""
        shards: dict[str, dict[str, Any]] = {}
        request: dict[str, Any] = {"StreamArn": arn}
        while True:
            page = _retrying(lambda: self.streams.describe_stream(**request))["StreamDescription"]
            shards.update((s["ShardId"], s) for s in page.get("Shards", []))
            if not page.get("LastEvaluatedShardId"):
                return page, shards
            request["ExclusiveStartShardId"] = page["LastEvaluatedShardId"]

    def shard_iterator(self, arn: str, shard_id: str, position: Mapping[str, str]) -> str:
        return _retrying(
            lambda: self.streams.get_shard_iterator(StreamArn=arn, ShardId=shard_id, **position)
        )["ShardIterator"]

    def records(self, iterator: str, limit: int) -> dict[str, Any]:
        return _retrying(lambda: self.streams.get_records(ShardIterator=iterator, Limit=limit))

    def scan_segment(self, table: str, segment: int, total: int) -> Iterator[list[dict[str, Any]]]:
        """Pages of one parallel-scan segment (strongly consistent reads)."""
        request: dict[str, Any] = {
            "TableName": table,
            "Segment": segment,
            "TotalSegments": total,
            "ConsistentRead": True,
        }
        while True:
            page = _retrying(lambda: self.dynamodb.scan(**request))
            yield page.get("Items", [])
            if not page.get("LastEvaluatedKey"):
                return
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
