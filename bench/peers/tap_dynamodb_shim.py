"""Run singer-io tap-dynamodb against ephemeral local endpoints (used by the benchmark).

Its boto3 1.14 knows only a hard-coded ``http://localhost:8000`` for local use; this shim swaps
that for PEER_DYNAMODB_URL / PEER_STREAMS_URL and changes nothing else.
"""

import os
import sys

import boto3

_client = boto3.client
_URLS = {"dynamodb": "PEER_DYNAMODB_URL", "dynamodbstreams": "PEER_STREAMS_URL"}


def _client_with_endpoint(service, *args, **kwargs):
    if kwargs.get("endpoint_url") == "http://localhost:8000" and service in _URLS:
        kwargs["endpoint_url"] = os.environ[_URLS[service]]
    return _client(service, *args, **kwargs)


boto3.client = _client_with_endpoint

if __name__ == "__main__":
    from tap_dynamodb import main

    sys.argv[0] = "tap-dynamodb"
    main()
