"""The one place that talks to AWS: boto3 clients, the retry policy and error classification.

One retry layer: botocore's ``standard`` mode, ``aws_max_attempts`` attempts a call (throttling,
5xx and connection errors, exponential backoff with jitter, within its retry quota), each
attempt bounded by ``aws_call_timeout_seconds``. Two hooks here: one logs every failed attempt
(table, call, what failed), so a stalled endpoint is visible while the tap waits; one refuses
another attempt once the run's time is up or botocore's backoff could end past it, so a stalled
or always-throttling endpoint ends the run at most one call timeout after ``max_run_seconds``.
Errors about the data asked for become named outcomes (``errors.DATA_ERRORS``) for the reader;
every other failure is ``AwsCallFailed``, naming the call and what came back.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import boto3
import msgspec
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from tap_dynamodb_streams import direct
from tap_dynamodb_streams.errors import (
    DATA_ERRORS,
    AwsCallFailed,
    MalformedResponse,
    OutOfTime,
    field,
    received,
)
from tap_dynamodb_streams.settings import TapSettings

T = TypeVar("T")
LOG = logging.getLogger("tap-dynamodb-streams.client")
# botocore's JSON parser meets a body of the wrong shape with these (a list where an object
# belongs, say); only the parse stage of a call is taken to have raised them (see _Calls).
SHAPE_ERRORS = (AttributeError, TypeError, KeyError, ValueError)
# botocore's standard retry mode waits up to min(2 ** (attempt - 1), 20) s before the next
# attempt (less after errors other than throttles in newer releases), and up to 5 s more when
# the answer carries x-amz-retry-after: the longest wait a retry may start after.
MAX_BACKOFF_SECONDS = 20.0
RETRY_AFTER_EXTRA_SECONDS = 5.0


def longest_backoff(attempts: int, response: Any) -> float:
    """The longest botocore may wait after failed attempt number ``attempts``."""
    extra = 0.0
    if response is not None and "x-amz-retry-after" in response[0].headers:
        extra = RETRY_AFTER_EXTRA_SECONDS
    return min(2.0 ** (attempts - 1), MAX_BACKOFF_SECONDS) + extra


def error_code(err: ClientError) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))


def _described(err: BaseException) -> str:
    if isinstance(err, ClientError):
        error = err.response.get("Error", {})
        status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return f"HTTP {status} {error.get('Code')}: {error.get('Message') or ''}".strip()
    return f"{type(err).__name__}: {err}"


class _Calls:
    """botocore hooks shared by both clients: attempt logging, the run's time, body checks."""

    def __init__(self, settings: TapSettings) -> None:
        self.max_attempts = settings.aws_max_attempts
        self.timeout = settings.aws_call_timeout_seconds
        self.table = "?"  # the table whose calls these are (tables are read one at a time)
        self.deadline = time.monotonic() + settings.max_run_seconds
        self.last_failure: str | None = None  # of this run, for a run that made no progress
        self._parsing = threading.local()

    def register(self, client: Any) -> None:
        events = client.meta.events
        events.register_first("needs-retry", self._attempt_failed)
        events.register_first("request-created", self._refuse_when_out_of_time)
        events.register_first("before-parse", self._check_body)

    def _attempt_failed(
        self,
        attempts: int,
        operation: Any,
        response: Any = None,
        caught_exception: BaseException | None = None,
        **_: Any,
    ) -> None:
        if caught_exception is not None:
            what = f"no answer within {self.timeout:g} s or no connection ({caught_exception})"
        elif response is not None and response[0].status_code >= 400:
            error = response[1].get("Error", {})
            if error.get("Code") in DATA_ERRORS:
                return  # the reader acts on it; botocore does not retry it
            what = f"HTTP {response[0].status_code} {error.get('Code')}"
        else:
            return
        self.last_failure = f"{operation.name}: {what}"
        self.log_failure(operation.name, what, attempts)
        # Not after the deadline, nor when botocore's backoff may end past it: its sleep cannot
        # be cut short, and up to 20 s of it would overrun max_run_seconds (a throttled run
        # then ends a little early instead, failing as it would have after the sleep).
        next_start = time.monotonic() + longest_backoff(attempts, response)
        if attempts < self.max_attempts and next_start > self.deadline:
            raise OutOfTime(
                f"{operation.name} failed ({what}) after {attempts} attempt(s) and the run's "
                "max_run_seconds is up before another could start; check the endpoint, the "
                "network or the AWS limits"
            )

    def log_failure(self, operation: str, what: str, attempt: int) -> None:
        LOG.warning(
            "Table %r: %s: %s (attempt %d of at most %d)",
            self.table,
            operation,
            what,
            attempt,
            self.max_attempts,
        )

    def _refuse_when_out_of_time(self, request: Any, operation_name: str, **_: Any) -> None:
        """A retry after a backoff that crossed the deadline is not sent."""
        attempt = request.context.get("retries", {}).get("attempt", 1)
        if attempt > 1 and time.monotonic() > self.deadline:
            raise OutOfTime(
                f"{operation_name} failed ({self.last_failure}) and the run's max_run_seconds "
                "is up; check the endpoint, the network or the AWS limits"
            )

    def _check_body(self, operation_model: Any, response_dict: dict[str, Any], **_: Any) -> None:
        """A 200 that is no JSON object (a proxy's HTML page, a cut-off body) is named as what
        it is; botocore would parse it into an empty answer. GetRecords: see direct.py."""
        self._parsing.active = True
        if operation_model.name == "GetRecords" or response_dict.get("status_code") != 200:
            return
        try:
            decoded = msgspec.json.decode(response_dict.get("body") or b"")
        except (TypeError, ValueError):
            decoded = None
        if not isinstance(decoded, dict):
            raise MalformedResponse(f"{operation_model.name} answered {received(response_dict)}")

    def call(self, operation: str, send: Callable[[], T], data_errors: bool = False) -> T:
        """``send()`` (one botocore call), its failures as ``AwsCallFailed`` (or, with
        ``data_errors``, a data error as its own type)."""
        self._parsing.active = False
        try:
            return send()
        except ClientError as err:
            code = error_code(err)
            if data_errors and code in DATA_ERRORS:
                raise DATA_ERRORS[code](str(err)) from err
            raise AwsCallFailed(f"{operation} failed: {_described(err)}") from err
        except (AwsCallFailed, BotoCoreError) as err:
            if isinstance(err, AwsCallFailed):
                raise
            raise AwsCallFailed(
                f"{operation} failed after at most {self.max_attempts} attempts: {_described(err)}"
            ) from err
        except SHAPE_ERRORS as err:
            if not self._parsing.active:
                raise
            raise MalformedResponse(
                f"{operation} answered JSON of a shape the API reference does not allow "
                f"({type(err).__name__}: {err})"
            ) from err


class Pacer:
    """At most ``rate`` calls per second across threads (0: unpaced); logs what it waits for."""

    def __init__(self, rate: float, what: str) -> None:
        self.interval = 1.0 / rate if rate else 0.0
        self.what = what
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        if not self.interval:
            return
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next)
            self._next = slot + self.interval
        if slot > now:
            LOG.debug("waiting %.2f s for the %s rate limit", slot - now, self.what)
            time.sleep(slot - now)


class AwsClients:
    """DynamoDB (tables) and DynamoDB Streams clients built from the tap's settings."""

    def __init__(self, settings: TapSettings) -> None:
        session = boto3.Session(
            aws_access_key_id=settings.aws_access_key_id,
            aws_secret_access_key=settings.aws_secret_access_key,
            aws_session_token=settings.aws_session_token,
            profile_name=settings.aws_profile,
            region_name=settings.region_name,
        )
        config = Config(
            retries={"mode": "standard", "total_max_attempts": settings.aws_max_attempts},
            connect_timeout=settings.aws_call_timeout_seconds,
            read_timeout=settings.aws_call_timeout_seconds,
            max_pool_connections=max(
                10, settings.scan_segments + 2, settings.max_parallel_shards + 2
            ),
        )
        # DescribeStream: "a maximum rate of 10 times per second" (API reference); the default
        # half leaves the other half to other readers of the account.
        self._describe_pacer = Pacer(settings.describe_stream_per_second, "DescribeStream")
        self._clock_offset: float | None = None
        self.calls = _Calls(settings)
        self.dynamodb = session.client(
            "dynamodb", endpoint_url=settings.endpoint_url, config=config
        )
        self.streams = session.client(
            "dynamodbstreams", endpoint_url=settings.streams_endpoint_url, config=config
        )
        for client in (self.dynamodb, self.streams):
            self.calls.register(client)
        credentials = session.get_credentials()
        self._direct = direct.install(self.streams, credentials, settings.direct_shard_reads)

    def use_direct_calls(self, direct_calls: direct.DirectCalls | None) -> None:
        """Shard reads through ``direct_calls`` (None: botocore only) from now on."""
        self._direct = direct_calls

    def start(self, table: str, deadline: float) -> None:
        """The calls from now on are for ``table`` and end at ``deadline`` (monotonic)."""
        self.calls.table = table
        self.calls.deadline = deadline
        self.calls.last_failure = None

    def describe_table(self, table: str) -> dict[str, Any]:
        answer = self.calls.call(
            "DescribeTable", lambda: self.dynamodb.describe_table(TableName=table)
        )
        return dict(field(answer, "Table", "DescribeTable", dict))

    def stream_arns(self, table: str) -> list[str]:
        """The table's streams, oldest first (labels are creation timestamps)."""
        streams: list[dict[str, Any]] = []
        request: dict[str, Any] = {"TableName": table}
        while True:
            page = self.calls.call("ListStreams", lambda: self.streams.list_streams(**request))
            self._learn_clock(page)
            streams += field(page, "Streams", "ListStreams", list)
            if not page.get("LastEvaluatedStreamArn"):
                break
            request["ExclusiveStartStreamArn"] = page["LastEvaluatedStreamArn"]
        for stream in streams:
            field(stream, "StreamArn", "ListStreams", str)
            field(stream, "StreamLabel", "ListStreams", str)
        return [s["StreamArn"] for s in sorted(streams, key=lambda s: s["StreamLabel"])]

    def describe_stream(
        self, arn: str, children_of: str | None = None
    ) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
        """The stream's description and its shards, 100 per page (the API's upper limit),
        following LastEvaluatedShardId, paced below the API's rate limit; only the children
        of ``children_of`` with ``ShardFilter`` CHILD_SHARDS."""
        shards: dict[str, dict[str, Any]] = {}
        request: dict[str, Any] = {"StreamArn": arn, "Limit": 100}
        if children_of is not None:
            request["ShardFilter"] = {"Type": "CHILD_SHARDS", "ShardId": children_of}
        while True:
            self._describe_pacer.wait()
            response = self.calls.call(
                "DescribeStream", lambda: self.streams.describe_stream(**request)
            )
            self._learn_clock(response)
            page = field(response, "StreamDescription", "DescribeStream", dict)
            for shard in field(page, "Shards", "DescribeStream", list):
                field(shard, "ShardId", "DescribeStream", str)
                field(shard, "SequenceNumberRange", "DescribeStream", dict)
                shards[shard["ShardId"]] = shard
            if not page.get("LastEvaluatedShardId"):
                return page, shards
            request["ExclusiveStartShardId"] = page["LastEvaluatedShardId"]

    def _learn_clock(self, response: Mapping[str, Any]) -> None:
        """The service's clock, from the ``Date`` header: event times are on that clock."""
        date = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
        if date:
            self._clock_offset = parsedate_to_datetime(date).timestamp() - time.time()

    def server_time(self) -> float:
        """Epoch seconds on the service's clock (this host's until a response told it)."""
        return time.time() + (self._clock_offset or 0.0)

    def shard_iterator(self, arn: str, shard_id: str, position: Mapping[str, str]) -> str:
        params = {"StreamArn": arn, "ShardId": shard_id, **position}
        response = self._shard_call("GetShardIterator", params, self.streams.get_shard_iterator)
        return str(field(response, "ShardIterator", "GetShardIterator", str))

    def records(self, iterator: str, limit: int) -> dict[str, Any]:
        params = {"ShardIterator": iterator, "Limit": limit}
        page = self._shard_call("GetRecords", params, self.streams.get_records)
        field(page, "Records", "GetRecords", list)
        return dict(page)

    def _shard_call(
        self, operation: str, params: dict[str, Any], botocore_call: Callable[..., Any]
    ) -> Any:
        """The direct call's answer or data error, else botocore's (see ``direct.py``)."""
        refused = False
        fast = self._direct
        if fast is not None:
            answer, refused, failure = self.calls.call(
                operation, lambda: fast.call(operation, params), data_errors=True
            )
            if answer is not None:
                return answer
            if failure is not None:
                what = f"no answer within {self.calls.timeout:g} s or no connection ({failure})"
                self.calls.last_failure = f"{operation}: {what}"
                self.calls.log_failure(operation, f"{what}; direct call", 1)
        answer = self.calls.call(operation, lambda: botocore_call(**params), data_errors=True)
        if refused and fast is not None:
            fast.botocore_succeeded_instead()
        return answer

    def scan_segment(self, table: str, segment: int, total: int) -> Iterator[list[dict[str, Any]]]:
        """Pages of one parallel-scan segment (strongly consistent reads)."""
        request: dict[str, Any] = {
            "TableName": table,
            "Segment": segment,
            "TotalSegments": total,
            "ConsistentRead": True,
        }
        while True:
            page = self.calls.call("Scan", lambda: self.dynamodb.scan(**request))
            yield field(page, "Items", "Scan", list)
            if not page.get("LastEvaluatedKey"):
                return
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
