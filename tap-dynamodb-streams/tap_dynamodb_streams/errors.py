"""What an AWS call can end in, besides an answer: each a type the reader decides on."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

SNIPPET_CHARS = 120


class AwsCallFailed(Exception):
    """AWS (or whatever answered) refused the call or kept failing; nothing was read."""


class OutOfTime(AwsCallFailed):
    """A call failed and the run's time (``max_run_seconds``) was up: not retried."""


class MalformedResponse(AwsCallFailed):
    """A 200 answer that is no JSON object, or without the fields the API reference promises."""


class ExpiredIterator(Exception):
    """The shard iterator is older than 15 minutes; get a new one from the last position."""


class TrimmedData(Exception):
    """The requested position is older than the stream's 24-hour retention."""


class ResourceNotFound(Exception):
    """The stream or shard does not exist (any more)."""


class InvalidPosition(Exception):
    """GetShardIterator refused the requested position (``ValidationException``)."""


# Errors about the data asked for: each its own outcome for the reader to act on.
DATA_ERRORS: dict[str, type[Exception]] = {
    "ExpiredIteratorException": ExpiredIterator,
    "TrimmedDataAccessException": TrimmedData,
    "ResourceNotFoundException": ResourceNotFound,
    "ValidationException": InvalidPosition,
}


def received(response_dict: Mapping[str, Any]) -> str:
    """What came instead of a JSON object: status, content type, length and its start."""
    body = response_dict.get("body") or b""
    headers = response_dict.get("headers") or {}
    kind = headers.get("content-type") or headers.get("Content-Type") or "no content type"
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
    start = " ".join(text[:SNIPPET_CHARS].split())
    more = "..." if len(text) > SNIPPET_CHARS else ""
    return (
        f"HTTP {response_dict.get('status_code')} with a body that is no JSON object "
        f"({kind}, {len(body):,} bytes): {start!r}{more}"
    )


def field(response: Mapping[str, Any], name: str, operation: str, kind: type = object) -> Any:
    """``response[name]``, or MalformedResponse naming the operation and what was missing."""
    try:
        value = response[name]
    except (KeyError, TypeError):
        raise MalformedResponse(f"{operation} answered without {name!r}") from None
    if not isinstance(value, kind):
        raise MalformedResponse(
            f"{operation} answered {name!r} as {type(value).__name__}, not {kind.__name__}"
        )
    return value
