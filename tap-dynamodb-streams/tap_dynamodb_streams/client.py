"""The one place that talks to AWS: boto3 clients, retry policy and error classification.

Throttling and server errors are retried twice over: by botocore's ``standard`` retry mode on
every call, and, if those attempts run out, by our own bounded exponential backoff with jitter.
Everything else is turned into a named outcome (expired iterator, trimmed data, missing
resource) for the stream reader to act on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import backoff
import boto3
import msgspec
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
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
LOG = logging.getLogger("tap-dynamodb-streams.client")


class ExpiredIterator(Exception):
    """The shard iterator is older than 15 minutes; get a new one from the last position."""


class TrimmedData(Exception):
    """The requested position is older than the stream's 24-hour retention."""


class ResourceNotFound(Exception):
    """The stream or shard does not exist (any more)."""


class StillThrottled(Exception):
    """AWS kept throttling or failing after every retry; carries the last error."""


class InvalidPosition(Exception):
    """GetShardIterator refused the requested position (``ValidationException``)."""


class MalformedResponse(Exception):
    """A 200 answer without the field the API reference promises."""


def field(response: Mapping[str, Any], name: str, operation: str) -> Any:
    try:
        return response[name]
    except (KeyError, TypeError):
        raise MalformedResponse(f"{operation} answered without {name!r}") from None


def error_code(err: ClientError) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))


# Errors about the data asked for: each its own outcome for the reader to act on.
DATA_ERRORS: dict[str, type[Exception]] = {
    "ExpiredIteratorException": ExpiredIterator,
    "TrimmedDataAccessException": TrimmedData,
    "ResourceNotFoundException": ResourceNotFound,
    "ValidationException": InvalidPosition,
}


def _classified(call: Callable[[], T]) -> T:
    try:
        return call()
    except ClientError as err:
        code = error_code(err)
        if code in DATA_ERRORS:
            raise DATA_ERRORS[code](str(err)) from err
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
    """Decode a successful GetRecords body with msgspec's JSON parser, not botocore's shape walk.

    botocore spends most of a tap's CPU walking every AttributeValue of every record; the wire
    JSON is already what convert.py reads (B as base64 text, times as epoch seconds). msgspec
    decodes it to the same values as ``json.loads`` in about half the time (it holds the GIL
    the main thread needs for the records). Errors are left to botocore, so retries and error
    codes are unchanged.
    """
    if response_dict.get("status_code") == 200 and response_dict.get("body"):
        try:
            customized_response_dict.update(msgspec.json.decode(response_dict["body"]))
        except (TypeError, ValueError):  # msgspec.DecodeError is a ValueError
            raise MalformedResponse("GetRecords answered a body that is no JSON object") from None
        response_dict["body"] = b"{}"


class DirectCalls:
    """GetShardIterator and GetRecords without botocore's per-call machinery.

    botocore spends about 1.2 ms of CPU on each call (parameter validation, a dozen event
    hooks, endpoint rules, parsing), and a table with thousands of shards costs a few calls per
    shard per run, all under one GIL. This signs the same JSON request with botocore's own
    SigV4 signer and credentials and sends it on the client's own HTTP session (its pool,
    proxies, TLS settings and timeouts), to the URL botocore itself last sent to: about 0.8 ms.
    A 200 JSON object is the answer. An error about the data (``DATA_ERRORS``: expired
    iterator, trimmed data, missing shard, invalid position) is raised as botocore raises it,
    without asking twice. Anything else (a throttle, a 5xx, a dropped connection, a body that
    is no JSON object, an error botocore might not get) gives None, and the caller makes the
    call again through botocore, whose retries and backoff then apply (a throttle so costs one
    call more). Should botocore succeed a few times where this failed for a reason other than
    load (a signature AWS refuses, a proxy's HTML page, a dropped connection), this path turns
    itself off for the run.
    """

    GIVE_UP_AFTER = 3

    def __init__(self, client: Any, credentials: Any) -> None:
        self._credentials = credentials
        self._http = getattr(getattr(client, "_endpoint", None), "http_session", None)
        self._url: str | None = None  # learnt from botocore's own requests (before-send)
        self._target = client.meta.service_model.metadata["targetPrefix"] + "."
        self._signing_name = client.meta.service_model.signing_name
        self._region = client.meta.region_name
        self._user_agent = client.meta.config.user_agent
        self._misses = 0
        client.meta.events.register("before-send.dynamodb-streams", self._learn_url)

    def _learn_url(self, request: Any, **_: Any) -> None:
        self._url = request.url

    @property
    def usable(self) -> bool:
        return (
            self._url is not None
            and self._http is not None
            and self._credentials is not None
            and self._misses < self.GIVE_UP_AFTER
        )

    def call(self, operation: str, params: dict[str, Any]) -> tuple[dict[str, Any] | None, bool]:
        """The answer of a 200 (else None), and whether AWS refused the call for a reason
        that is not load or the data (an auth error, say): botocore may not be refused."""
        if not self.usable:
            return None, False
        request = AWSRequest(
            "POST",
            self._url,
            data=msgspec.json.encode(params),
            headers={
                "X-Amz-Target": self._target + operation,
                "Content-Type": "application/x-amz-json-1.0",
                "User-Agent": self._user_agent,
            },
        )
        try:
            frozen = self._credentials.get_frozen_credentials()
            SigV4Auth(frozen, self._signing_name, self._region).add_auth(request)
            response = self._http.send(request.prepare())  # type: ignore[union-attr]
            body = msgspec.json.decode(response.content)
        except Exception as err:  # botocore makes the call again and says what failed
            # Counted like a refusal: a path that always fails must not double every call.
            LOG.debug("direct %s failed (%s): botocore asks again", operation, type(err).__name__)
            return None, True
        if response.status_code == 200:
            return (body if isinstance(body, dict) else None), False
        error = body if isinstance(body, dict) else {}
        code = str(error.get("__type", "")).rpartition("#")[2]
        if code in DATA_ERRORS:
            raise ClientError(
                {
                    "Error": {"Code": code, "Message": str(error.get("message", ""))},
                    "ResponseMetadata": {"HTTPStatusCode": response.status_code},
                },
                operation,
            )
        return None, response.status_code < 500 and code not in RETRYABLE_CODES

    def botocore_succeeded_instead(self) -> None:
        """botocore answered where this path was refused: after a few, stop using it."""
        self._misses += 1
        if self._misses == self.GIVE_UP_AFTER:
            LOG.info("direct Streams calls were refused where botocore's were not: using botocore")


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
            max_pool_connections=max(
                10,
                int(config.get("scan_segments") or 0) + 2,
                int(config.get("max_parallel_shards") or 64) + 2,
            ),
        )
        # DescribeStream: "a maximum rate of 10 times per second" (API reference); half of it
        # leaves the other half to other readers of the account.
        self._describe_pacer = Pacer(
            float(config.get("describe_stream_per_second") or 5), "DescribeStream"
        )
        self._clock_offset: float | None = None
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
        self._direct = DirectCalls(self.streams, session.get_credentials())

    def describe_table(self, table: str) -> dict[str, Any]:
        return _retrying(lambda: self.dynamodb.describe_table(TableName=table)["Table"])

    def stream_arns(self, table: str) -> list[str]:
        """The table's streams, oldest first (labels are creation timestamps)."""
        streams: list[dict[str, Any]] = []
        request: dict[str, Any] = {"TableName": table}
        while True:
            page = _retrying(lambda: self.streams.list_streams(**request))
            self._learn_clock(page)
            streams += page.get("Streams", [])
            if not page.get("LastEvaluatedStreamArn"):
                break
            request["ExclusiveStartStreamArn"] = page["LastEvaluatedStreamArn"]
        return [s["StreamArn"] for s in sorted(streams, key=lambda s: s["StreamLabel"])]

    def describe_stream(self, arn: str) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
        """The stream's description and every shard, 100 per page (the API's upper limit),
        following LastEvaluatedShardId, paced below the API's rate limit."""
        shards: dict[str, dict[str, Any]] = {}
        request: dict[str, Any] = {"StreamArn": arn, "Limit": 100}
        while True:
            self._describe_pacer.wait()
            response = _retrying(lambda: self.streams.describe_stream(**request))
            self._learn_clock(response)
            page = field(response, "StreamDescription", "DescribeStream")
            shards.update((s["ShardId"], s) for s in page.get("Shards", []))
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
        response = self._call("GetShardIterator", params, self.streams.get_shard_iterator)
        return str(field(response, "ShardIterator", "GetShardIterator"))

    def records(self, iterator: str, limit: int) -> dict[str, Any]:
        params = {"ShardIterator": iterator, "Limit": limit}
        page = self._call("GetRecords", params, self.streams.get_records)
        if not isinstance(field(page, "Records", "GetRecords"), list):
            raise MalformedResponse("GetRecords answered with 'Records' that is not a list")
        return page

    def _call(
        self, operation: str, params: dict[str, Any], botocore_call: Callable[..., Any]
    ) -> Any:
        """The direct call's answer or data error, else botocore's (see ``DirectCalls``)."""
        answer, refused = _classified(lambda: self._direct.call(operation, params))
        if answer is not None:
            return answer
        answer = _retrying(lambda: botocore_call(**params))
        if refused:
            self._direct.botocore_succeeded_instead()
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
            page = _retrying(lambda: self.dynamodb.scan(**request))
            yield page.get("Items", [])
            if not page.get("LastEvaluatedKey"):
                return
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
