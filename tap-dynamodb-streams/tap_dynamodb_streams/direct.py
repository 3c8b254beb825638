"""The fast path for shard reads: GetShardIterator and GetRecords without botocore's per-call
machinery, and GetRecords bodies decoded by msgspec. ``direct_shard_reads: false`` turns the
direct calls off (every call then goes through botocore); the msgspec decoding stays, as it
changes no value botocore would give.

Both lean on botocore internals that its releases may change: the client's endpoint and HTTP
session, the service model's metadata, ``SigV4Auth``, ``AWSRequest``, the ``before-send`` and
``before-parse`` events and the ``retries.standard`` checkers. ``tests/test_direct_seams.py``
asserts each still exists with the signature used here.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.exceptions import BotoCoreError, ClientError
from botocore.retries.standard import RetryContext, StandardRetryConditions

from tap_dynamodb_streams.errors import DATA_ERRORS, MalformedResponse, received

LOG = logging.getLogger("tap-dynamodb-streams.client")


def records_as_wire_json(
    response_dict: dict[str, Any], customized_response_dict: dict[str, Any], **_: Any
) -> None:
    """``before-parse`` of GetRecords: decode a 200 body with msgspec, not botocore's shapes.

    botocore spends most of a tap's CPU walking every AttributeValue of every record; the wire
    JSON is already what convert.py reads (B as base64 text, times as epoch seconds). msgspec
    decodes it to the same values as ``json.loads`` in about half the time. Errors are left to
    botocore, so retries and error codes are unchanged.
    """
    if response_dict.get("status_code") == 200 and response_dict.get("body"):
        try:
            decoded = msgspec.json.decode(response_dict["body"])
        except (TypeError, ValueError):  # msgspec.DecodeError is a ValueError
            decoded = None
        if not isinstance(decoded, dict):
            raise MalformedResponse(f"GetRecords answered {received(response_dict)}")
        customized_response_dict.update(decoded)
        response_dict["body"] = b"{}"


class DirectCalls:
    """GetShardIterator and GetRecords signed with botocore's signer, sent on its HTTP session.

    botocore spends about 1.2 ms of CPU on each call (parameter validation, a dozen event
    hooks, endpoint rules, parsing); this costs about 0.8 ms, to the URL botocore itself last
    sent to, with the client's pool, proxies, TLS settings and timeouts. A 200 JSON object is
    the answer. An error about the data (``DATA_ERRORS``) is raised as botocore raises it.
    Anything else gives None and the caller asks botocore, whose retries then apply. Should
    botocore succeed a few times where this was refused for a reason other than load (a
    signature AWS refuses, a proxy's HTML page), this path turns itself off for the run.
    """

    GIVE_UP_AFTER = 3

    def __init__(self, client: Any, credentials: Any) -> None:
        self._credentials = credentials
        self._http = getattr(getattr(client, "_endpoint", None), "http_session", None)
        self._url: str | None = None  # learnt from botocore's own requests (before-send)
        self._model = client.meta.service_model
        self._target = self._model.metadata["targetPrefix"] + "."
        self._signing_name = self._model.signing_name
        self._region = client.meta.region_name
        self._user_agent = client.meta.config.user_agent
        self._retryable = StandardRetryConditions(max_attempts=2)
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

    def call(
        self, operation: str, params: dict[str, Any]
    ) -> tuple[dict[str, Any] | None, bool, str | None]:
        """The answer of a 200 (else None); whether AWS refused the call for a reason that is
        neither load nor the data (an auth error, say: botocore may not be refused); and why
        no answer came, if none did."""
        if not self.usable:
            return None, False, None
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
        except (BotoCoreError, ValueError) as err:  # no answer, or no JSON: botocore asks again
            # Counted like a refusal: a path that always fails must not double every call.
            failure = f"{type(err).__name__}: {err}" if isinstance(err, BotoCoreError) else None
            return None, True, failure
        if response.status_code == 200:
            return (body, False, None) if isinstance(body, dict) else (None, True, None)
        error = body if isinstance(body, dict) else {}
        code = str(error.get("__type", "")).rpartition("#")[2]
        parsed = {
            "Error": {"Code": code, "Message": str(error.get("message", ""))},
            "ResponseMetadata": {"HTTPStatusCode": response.status_code},
        }
        if code in DATA_ERRORS:
            raise ClientError(parsed, operation)
        context = RetryContext(
            attempt_number=1,
            operation_model=self._model.operation_model(operation),
            parsed_response=parsed,
            http_response=response,
        )
        return None, not self._retryable.is_retryable(context), None

    def botocore_succeeded_instead(self) -> None:
        """botocore answered where this path was refused: after a few, stop using it."""
        self._misses += 1
        if self._misses == self.GIVE_UP_AFTER:
            LOG.info("direct Streams calls were refused where botocore's were not: using botocore")


def install(client: Any, credentials: Any, enabled: bool) -> DirectCalls | None:
    """Hook the msgspec decoding into ``client``; the direct calls when ``enabled``."""
    client.meta.events.register("before-parse.dynamodb-streams.GetRecords", records_as_wire_json)
    return DirectCalls(client, credentials) if enabled else None
