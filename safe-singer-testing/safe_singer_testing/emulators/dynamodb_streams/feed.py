"""Moto (server mode) as the table service, and the feed that moves its writes into our shards.

Why read moto's own stream instead of accepting writes ourselves: moto already computes the
item images for every write API (PutItem, UpdateItem expressions, DeleteItem, BatchWriteItem,
transactions), in commit order. We only redistribute those ordered events into our shard model.
One moto quirk is repaired here: its stream ``Keys`` base64-encode binary keys twice, so keys are
taken from the images instead.
"""

from __future__ import annotations

import base64
import logging
import urllib.request
from dataclasses import dataclass
from typing import Any

import boto3
from moto.server import ThreadedMotoServer

from safe_singer_testing.emulators.dynamodb_streams.model import StreamsModel

CREDENTIALS = {
    "region_name": "us-east-1",
    "aws_access_key_id": "testing",
    "aws_secret_access_key": "testing",
}


class MotoServer:
    """moto in server mode on 127.0.0.1, ephemeral port, in a thread of this process."""

    def __init__(self) -> None:
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.url = ""

    def start(self) -> MotoServer:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.url = f"http://{host}:{port}"
        # moto keeps its tables in this process's globals: start every server empty.
        urllib.request.urlopen(urllib.request.Request(f"{self.url}/moto-api/reset", b"")).close()
        return self

    def stop(self) -> None:
        self._server.stop()

    def client(self, service: str = "dynamodb") -> Any:
        return boto3.client(service, endpoint_url=self.url, **CREDENTIALS)


def to_wire(value: Any) -> Any:
    """A boto3-decoded AttributeValue back to its JSON wire form (bytes -> base64)."""
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {k: to_wire(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_wire(v) for v in value]
    return value


@dataclass
class _Source:
    moto_stream_arn: str
    moto_shard_id: str
    last_sequence_number: str | None = None


class MotoFeed:
    """Reads each attached table's moto stream and appends new events to the model."""

    def __init__(self, model: StreamsModel, moto_url: str) -> None:
        self.model = model
        kwargs: dict[str, Any] = {"endpoint_url": moto_url, **CREDENTIALS}
        self._dynamodb = boto3.client("dynamodb", **kwargs)
        self._streams = boto3.client("dynamodbstreams", **kwargs)
        self._sources: dict[str, _Source] = {}

    def attach(self, table: str, view_type: str = "NEW_AND_OLD_IMAGES", roots: int = 1) -> str:
        """Start mirroring ``table``; our stream's ARN.

        The moto table's stream must be NEW_AND_OLD_IMAGES (so every event has an image to
        take keys from); ``view_type`` is what our stream shows its readers.
        """
        description = self._dynamodb.describe_table(TableName=table)["Table"]
        spec = description.get("StreamSpecification") or {}
        if spec.get("StreamViewType") != "NEW_AND_OLD_IMAGES":
            raise ValueError(f"table {table} needs a NEW_AND_OLD_IMAGES stream in moto")
        moto_arn = description["LatestStreamArn"]
        shards = self._streams.describe_stream(StreamArn=moto_arn)["StreamDescription"]["Shards"]
        self._sources[table] = _Source(moto_arn, shards[0]["ShardId"])
        key_schema = [
            {"AttributeName": k["AttributeName"], "KeyType": k["KeyType"]}
            for k in description["KeySchema"]
        ]
        # Same ARN as moto's DescribeTable LatestStreamArn, so readers that take the ARN from
        # the table (as singer-io tap-dynamodb does) find our stream.
        return self.model.create_stream(table, key_schema, view_type, arn=moto_arn, roots=roots)

    def detach(self, table: str) -> None:
        self._sources.pop(table, None)

    def pull(self) -> int:
        """Move every new moto stream event into the model; the number moved."""
        moved = 0
        for table, source in self._sources.items():
            moved += self._pull_table(table, source)
        return moved

    def _pull_table(self, table: str, source: _Source) -> int:
        position: dict[str, str] = (
            {
                "ShardIteratorType": "AFTER_SEQUENCE_NUMBER",
                "SequenceNumber": source.last_sequence_number,
            }
            if source.last_sequence_number
            else {"ShardIteratorType": "TRIM_HORIZON"}
        )
        iterator = self._streams.get_shard_iterator(
            StreamArn=source.moto_stream_arn, ShardId=source.moto_shard_id, **position
        )["ShardIterator"]
        events: list[dict[str, Any]] = []
        while iterator:
            page = self._streams.get_records(ShardIterator=iterator, Limit=1000)
            events += page["Records"]
            if not page["Records"]:
                break
            iterator = page.get("NextShardIterator")
        for event in _without_moto_duplicates(events):
            data = event["dynamodb"]
            self.model.append(
                table,
                event["eventName"],
                to_wire(data["NewImage"]) if "NewImage" in data else None,
                to_wire(data["OldImage"]) if "OldImage" in data else None,
            )
        if events:
            source.last_sequence_number = events[-1]["dynamodb"]["SequenceNumber"]
        return len(events)


def _without_moto_duplicates(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Drop moto's extra event for an UpdateItem that creates an item.

    moto records such an update as two INSERTs (first with only the key attributes, then the
    full item); DynamoDB records one. Two INSERTs of one key in a row cannot happen otherwise
    (the item would have to be removed in between), so the first of such a pair goes.
    """
    kept: list[dict[str, Any]] = []
    for event in events:
        if kept and event["eventName"] == "INSERT" and kept[-1]["eventName"] == "INSERT":
            previous = kept[-1]["dynamodb"]
            if previous["Keys"] == event["dynamodb"]["Keys"] and previous["NewImage"].keys() <= (
                previous["Keys"].keys()
            ):
                kept.pop()
        kept.append(event)
    return kept
