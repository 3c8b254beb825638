"""The four DynamoDB Streams operations over the shard model, with their real error codes.

Iterators are opaque, self-contained tokens (stream, shard, position, issue time) so the server
keeps no per-iterator memory; one issued more than 15 virtual minutes ago is expired.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import collections
import json
import time
from typing import Any

from safe_singer_testing.emulators.dynamodb_streams.model import (
    EPOCH,
    ITERATOR_TTL_SECONDS,
    Record,
    Shard,
    Stream,
    StreamsError,
    StreamsModel,
)

MAX_LIMIT = 1000


def _issue(model: StreamsModel, arn: str, shard_id: str, after: int, passed: int = 0) -> str:
    """An iterator: ``passed`` counts the empty pages already walked at this position."""
    raw = json.dumps({"a": arn, "s": shard_id, "p": str(after), "t": model.clock, "k": passed})
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _parse(token: str) -> tuple[str, str, int, float, int]:
    try:
        raw = json.loads(base64.urlsafe_b64decode(token.encode()))
        return raw["a"], raw["s"], int(raw["p"]), float(raw["t"]), int(raw["k"])
    except (ValueError, KeyError, binascii.Error):
        raise StreamsError("ValidationException", "Invalid ShardIterator") from None


def _limit(body: dict[str, Any], default: int, maximum: int) -> int:
    limit = int(body.get("Limit", default))
    if not 1 <= limit <= maximum:
        raise StreamsError(
            "ValidationException",
            f"1 validation error detected: Value '{limit}' at 'limit' failed to satisfy "
            f"constraint: Member must have value between 1 and {maximum}",
        )
    return limit


def _epoch(model_seconds: float) -> float:
    return EPOCH.timestamp() + model_seconds


def list_streams(model: StreamsModel, body: dict[str, Any]) -> dict[str, Any]:
    table = body.get("TableName")
    streams = [s for s in model.streams.values() if table is None or s.table == table]
    start = body.get("ExclusiveStartStreamArn")
    if start:
        arns = [s.arn for s in streams]
        streams = streams[arns.index(start) + 1 :] if start in arns else []
    limit = _limit(body, 100, 100)
    page = streams[:limit]
    out: dict[str, Any] = {
        "Streams": [
            {"StreamArn": s.arn, "TableName": s.table, "StreamLabel": s.label} for s in page
        ]
    }
    if len(streams) > limit:
        out["LastEvaluatedStreamArn"] = page[-1].arn
    return out


def _shard_description(shard: Shard) -> dict[str, Any]:
    rng: dict[str, str] = {"StartingSequenceNumber": str(shard.starting_sequence_number)}
    if shard.closed and shard.open_looking_calls > 0:
        shard.open_looking_calls -= 1  # listed as open although its children already exist
    elif shard.closed:
        rng["EndingSequenceNumber"] = str(shard.ending_sequence_number)
    out: dict[str, Any] = {"ShardId": shard.shard_id, "SequenceNumberRange": rng}
    if shard.parent_id:
        out["ParentShardId"] = shard.parent_id
    return out


def _filtered_parent(shard_filter: dict[str, Any]) -> str:
    """``ShardFilter`` (API reference, "ShardFilter"): ``Type`` "Currently, the only value this
    parameter accepts is CHILD_SHARDS"; ``ShardId`` "Contains the shardId of the parent shard
    for which you are requesting child shards", "Minimum length of 28. Maximum length of 65".
    Both are marked not required, yet a filter without them names no parent: refused here
    (the harsher reading). The filtered shards page like the full list (``Limit``,
    ``ExclusiveStartShardId``); a parent without children, or unknown, has none."""
    kind, parent = shard_filter.get("Type"), shard_filter.get("ShardId")
    if kind != "CHILD_SHARDS":
        raise StreamsError(
            "ValidationException",
            f"1 validation error detected: Value '{kind}' at 'shardFilter.type' failed to "
            "satisfy constraint: Member must satisfy enum value set: [CHILD_SHARDS]",
        )
    if not isinstance(parent, str) or not 28 <= len(parent) <= 65:
        raise StreamsError(
            "ValidationException",
            f"1 validation error detected: Value '{parent}' at 'shardFilter.shardId' failed "
            "to satisfy constraint: Member must have length between 28 and 65",
        )
    return parent


def describe_stream(model: StreamsModel, body: dict[str, Any]) -> dict[str, Any]:
    stream = model.stream(body["StreamArn"])
    shards = list(stream.shards.values())
    if model.faults.scramble_listing:
        shards.sort(key=lambda s: s.listing_key)
    shard_filter = body.get("ShardFilter")
    if shard_filter is not None and not model.faults.ignore_shard_filter:
        shards = [s for s in shards if s.parent_id == _filtered_parent(shard_filter)]
    start = body.get("ExclusiveStartShardId")
    if start:
        ids = [s.shard_id for s in shards]
        shards = shards[ids.index(start) + 1 :] if start in ids else []
    limit = min(_limit(body, 100, 100), model.faults.describe_page_size)
    page = shards[:limit]
    description: dict[str, Any] = {
        "StreamArn": stream.arn,
        "StreamLabel": stream.label,
        "StreamStatus": "ENABLED" if stream.enabled else "DISABLED",
        "StreamViewType": stream.view_type,
        "CreationRequestDateTime": _epoch(stream.created_at),
        "TableName": stream.table,
        "KeySchema": stream.key_schema,
        "Shards": [_shard_description(s) for s in page],
    }
    if len(shards) > limit:
        description["LastEvaluatedShardId"] = page[-1].shard_id
    return {"StreamDescription": description}


def get_shard_iterator(model: StreamsModel, body: dict[str, Any]) -> dict[str, Any]:
    arn, kind = body["StreamArn"], body["ShardIteratorType"]
    shard = model.shard(arn, body["ShardId"])
    if kind == "TRIM_HORIZON":
        after = shard.trimmed_upto
    elif kind == "LATEST":
        after = shard.next_sequence_number - 1
    elif kind in ("AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER"):
        if "SequenceNumber" not in body:
            raise StreamsError("ValidationException", f"{kind} requires a SequenceNumber")
        seq = int(body["SequenceNumber"])
        after = seq - 1 if kind == "AT_SEQUENCE_NUMBER" else seq
        if after < shard.trimmed_upto:
            raise StreamsError(
                "TrimmedDataAccessException",
                f"Sequence number {seq} in shard {shard.shard_id} is beyond the trim horizon",
            )
        if seq < shard.starting_sequence_number or (
            shard.closed
            and shard.ending_sequence_number is not None
            and seq > shard.ending_sequence_number
        ):
            raise StreamsError(
                "ValidationException",
                f"Invalid SequenceNumber {seq} for shard {shard.shard_id}",
            )
        if model.faults.strict_at_sequence_number and not _is_record(shard, seq):
            raise StreamsError(
                "ValidationException",
                f"Invalid SequenceNumber {seq} for shard {shard.shard_id}: no such record",
            )
    else:
        raise StreamsError("ValidationException", f"Invalid ShardIteratorType {kind}")
    return {"ShardIterator": _issue(model, arn, shard.shard_id, after)}


def _is_record(shard: Shard, seq: int) -> bool:
    index = bisect.bisect_left(shard.records, seq, key=lambda r: r.sequence_number)
    return index < len(shard.records) and shard.records[index].sequence_number == seq


class WireRecords(list[bytes]):
    """Records already encoded as JSON bytes; the server splices them into the body."""


def _encoded(model: StreamsModel, stream: Stream, record: Record) -> bytes:
    if record.wire is None:
        record.wire = json.dumps(_wire_record(model, stream, record)).encode()
    return record.wire


def _wire_record(model: StreamsModel, stream: Stream, record: Record) -> dict[str, Any]:
    data: dict[str, Any] = {
        "ApproximateCreationDateTime": _epoch(record.created_at),
        "Keys": record.keys,
        "SequenceNumber": str(record.sequence_number),
        "SizeBytes": 100,
        "StreamViewType": stream.view_type,
    }
    if record.new_image is not None:
        data["NewImage"] = record.new_image
    if record.old_image is not None:
        data["OldImage"] = record.old_image
    out: dict[str, Any] = {
        "eventID": record.event_id,
        "eventName": record.event_name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": model.region,
        "dynamodb": data,
    }
    if record.user_identity is not None:
        out["userIdentity"] = record.user_identity
    return out


def get_records(model: StreamsModel, body: dict[str, Any]) -> dict[str, Any]:
    arn, shard_id, after, issued, passed = _parse(body["ShardIterator"])
    model.reads.append(shard_id)
    limit = _limit(body, MAX_LIMIT, MAX_LIMIT)
    if model.clock - issued > ITERATOR_TTL_SECONDS:
        raise StreamsError(
            "ExpiredIteratorException", f"Iterator expired. The iterator was created at {issued}"
        )
    stream = model.stream(arn)
    shard = model.shard(arn, shard_id)
    if after < shard.trimmed_upto:
        raise StreamsError(
            "TrimmedDataAccessException",
            f"Attempted to access data past the trim horizon of shard {shard_id}",
        )
    faults = model.faults
    if faults.empty_page_rate and model.rng.random() < faults.empty_page_rate:
        return {"Records": [], "NextShardIterator": _issue(model, arn, shard_id, after, passed)}
    start = bisect.bisect_right(shard.records, after, key=lambda r: r.sequence_number)
    if passed < faults.stretch_before(shard, start):
        # An empty stretch: the iterator moves on although no record comes back.
        return {"Records": [], "NextShardIterator": _issue(model, arn, shard_id, after, passed + 1)}
    end = start + 1 if start < len(shard.records) else start
    while end < min(start + limit, len(shard.records)) and not faults.stretch_before(shard, end):
        end += 1  # a page stops where the next stretch begins
    page = shard.records[start:end]
    position = page[-1].sequence_number if page else after
    out: dict[str, Any] = {"Records": WireRecords(_encoded(model, stream, r) for r in page)}
    # At a closed shard's end, once its tail stretch is passed: no NextShardIterator.
    at_end = shard.closed and end >= len(shard.records)
    if at_end and (not page or not faults.stretch_before(shard, end)):
        if shard.open_looking_calls <= 0:
            return out
        shard.open_looking_calls -= 1
    out["NextShardIterator"] = _issue(model, arn, shard_id, position, passed if not page else 0)
    return out


OPERATIONS = {
    "ListStreams": list_streams,
    "DescribeStream": describe_stream,
    "GetShardIterator": get_shard_iterator,
    "GetRecords": get_records,
}


def call(model: StreamsModel, operation: str, body: dict[str, Any]) -> dict[str, Any]:
    """Run one operation, or raise StreamsError with the code the real service would send."""
    handler = OPERATIONS.get(operation)
    if handler is None:
        raise StreamsError("UnknownOperationException", f"Unknown operation {operation}")
    faults = model.faults
    stalled = operation == "GetRecords" and faults.stall_first_get_records > 0
    if stalled:
        faults.stall_first_get_records -= 1
    if stalled or (faults.stall_rate and model.rng.random() < faults.stall_rate):
        model.advance(ITERATOR_TTL_SECONDS + 60)
    if faults.throttle_rate and model.rng.random() < faults.throttle_rate:
        raise StreamsError("LimitExceededException", "Rate of requests exceeds the allowed rate")
    if faults.server_error_rate and model.rng.random() < faults.server_error_rate:
        raise StreamsError("InternalServerError", "Internal server error", status=500)
    try:
        _rate_limit(model, operation, body)
        if operation in ("GetRecords", "GetShardIterator") and (
            faults.transient_not_found_rate and model.rng.random() < faults.transient_not_found_rate
        ):
            raise StreamsError(
                "ResourceNotFoundException", "Requested resource not found (transient)"
            )
        if operation == "GetRecords" and faults.malformed_get_records > 0:
            faults.malformed_get_records -= 1
            return {"NextShardIterator": body["ShardIterator"]}
        return handler(model, body)
    except KeyError as missing:
        raise StreamsError("ValidationException", f"Missing parameter {missing}") from None


def _rate_limit(model: StreamsModel, operation: str, body: dict[str, Any]) -> None:
    """DescribeStream per account and GetRecords per shard, over the last wall-clock second."""
    faults = model.faults
    if operation == "DescribeStream" and faults.describe_stream_per_second:
        key, rate = "DescribeStream", faults.describe_stream_per_second
    elif operation == "GetRecords" and faults.get_records_per_shard_per_second:
        key, rate = _parse(body["ShardIterator"])[1], faults.get_records_per_shard_per_second
    else:
        return
    now = time.monotonic()
    recent = model.recent_calls.setdefault(key, collections.deque())
    while recent and now - recent[0] >= 1.0:
        recent.popleft()
    if len(recent) >= rate:
        raise StreamsError(
            "LimitExceededException",
            f"Rate exceeded for {operation} on {key}: at most {rate:g} per second",
        )
    recent.append(now)
