"""singer-sdk's standard tap tests (``get_tap_test_class``) against moto and the Streams
emulator, over HTTP. The stack starts when this module is imported (the test class needs its
endpoints in the config) and stops when the module's tests are done."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from singer_sdk.testing import get_tap_test_class
from tests.emulators.dynamodb_streams import Faults, start_stack

from tap_dynamodb_streams.tap import TapDynamoDBStreams

STACK = start_stack(Faults.lenient())
STACK.create_table("standard_orders", range_key=("line", "N"))
for order in range(6):
    STACK.dynamodb().put_item(
        TableName="standard_orders",
        Item={"pk": {"S": f"o{order}"}, "line": {"N": "1"}, "total": {"N": f"{order}.5"}},
    )
STACK.dynamodb().delete_item(
    TableName="standard_orders", Key={"pk": {"S": "o0"}, "line": {"N": "1"}}
)
STACK.streams.sync()

CONFIG = STACK.tap_config(["standard_orders"], max_run_seconds=60)
# DynamoDB declares only the key: the tap adds other attributes to the schema (a new SCHEMA
# message) as they first appear. The standard suite compares records with the schema its own
# discovery gave, so it runs with the catalog a user who declared ``total`` would pass.
CATALOG = TapDynamoDBStreams(config=CONFIG).catalog_dict
CATALOG["streams"][0]["schema"]["properties"]["total"] = {
    "type": ["string", "null"],
    "format": "x-singer.decimal",
}

TestTapDynamoDBStreamsStandard = get_tap_test_class(
    TapDynamoDBStreams, config=CONFIG, catalog=CATALOG
)


@pytest.fixture(scope="module", autouse=True)
def _stop_stack() -> Iterator[None]:
    yield
    STACK.stop()
