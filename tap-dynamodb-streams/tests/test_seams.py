"""Every private member of singer-sdk (sdk_compat.py) and botocore (direct.py, client.py) this
tap relies on still exists with the signature it calls: a release that moves one fails here
instead of in a user's run."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest, create_request_object
from botocore.endpoint import Endpoint
from botocore.retries.standard import RetryContext, StandardRetryConditions
from singer_sdk import Stream
from singer_sdk.contrib.msgspec import MsgSpecWriter
from singer_sdk.mapper import PluginMapper
from singer_sdk.streams._state import StreamStateManager

from tap_dynamodb_streams import sdk_compat
from tap_dynamodb_streams.tap import TapDynamoDBStreams


def parameters(function: Callable[..., Any]) -> list[str]:
    return list(inspect.signature(function).parameters)


@pytest.mark.parametrize(
    ("function", "expected"),
    [
        (Stream._write_state_message, ["self"]),
        (Stream._write_schema_message, ["self"]),
        (Stream._write_activate_version_message, ["self", "full_table_version"]),
        (Stream._increment_stream_state, ["self", "latest_record", "context"]),
        (Stream._generate_record_messages, ["self", "record"]),
        (TapDynamoDBStreams.__mro__[1]._validate_config, ["self", "raise_errors"]),
        (
            PluginMapper.register_raw_stream_schema,
            ["self", "stream_name", "schema", "key_properties"],
        ),
        (MsgSpecWriter.write_message, ["self", "message"]),
        (MsgSpecWriter.format_message, ["self", "message"]),
    ],
)
def test_singer_sdk_seams_keep_their_signatures(
    function: Callable[..., Any], expected: list[str]
) -> None:
    assert parameters(function) == expected


def test_singer_sdk_attributes_the_seams_set_still_exist() -> None:
    init = inspect.getsource(Stream.__init__)
    for attribute in ("self._tap = ", "self._stream_version", "self._input_schema"):
        assert attribute in init, attribute
    assert "_stream_maps" in inspect.getsource(Stream)
    manager = inspect.signature(Stream.state_manager.fget).return_annotation  # type: ignore[attr-defined]
    assert "StreamStateManager" in str(manager)
    assert "self.is_flushed = " in inspect.getsource(StreamStateManager)
    for cls, names in sdk_compat.OVERRIDDEN.items():
        for name in names:
            assert callable(getattr(cls, name)), f"{cls.__name__}.{name}"


def test_botocore_internals_of_the_direct_path_still_exist() -> None:
    client = boto3.Session(region_name="us-east-1").client(
        "dynamodbstreams",
        aws_access_key_id="k",
        aws_secret_access_key="s",
        endpoint_url="http://127.0.0.1:9",
    )
    endpoint = client._endpoint
    assert isinstance(endpoint, Endpoint) and hasattr(endpoint.http_session, "send")
    model = client.meta.service_model
    assert model.metadata["targetPrefix"] == "DynamoDBStreams_20120810"
    assert model.signing_name == "dynamodb"
    assert isinstance(client.meta.config.user_agent, str)
    assert parameters(SigV4Auth.__init__) == ["self", "credentials", "service_name", "region_name"]
    assert parameters(SigV4Auth.add_auth) == ["self", "request"]
    request = parameters(AWSRequest.__init__)
    assert request[:3] == ["self", "method", "url"] and {"data", "headers"} <= set(request)
    assert "context" in inspect.getsource(create_request_object)
    assert parameters(RetryContext.__init__)[:5] == [
        "self",
        "attempt_number",
        "operation_model",
        "parsed_response",
        "http_response",
    ]
    assert parameters(StandardRetryConditions.is_retryable) == ["self", "context"]


def test_botocore_events_the_hooks_use_are_emitted_with_their_arguments() -> None:
    source = inspect.getsource(Endpoint)
    assert 'f"before-send.{service_id}.{operation_model.name}"' in source
    assert "event_name, request=request" in source
    assert 'f"before-parse.{service_id}.{operation_model.name}"' in source
    for argument in ("operation_model=", "response_dict=", "customized_response_dict="):
        assert argument in source, argument
    assert 'f"needs-retry.{service_id}.{operation_model.name}"' in source
    for argument in ("response=", "operation=", "attempts=", "caught_exception="):
        assert argument in source, argument
    assert "f'request-created.{service_id}.{operation_model.name}'" in source
    assert "_update_retries_context(context, attempts" in source
