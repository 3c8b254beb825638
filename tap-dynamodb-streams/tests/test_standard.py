"""singer-sdk's standard tap tests (``get_tap_test_class``) against moto and the Streams
emulator, over HTTP. The stack starts when this module is imported (the test class needs its
endpoints in the config) and stops when the module's tests are done."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from singer_sdk.testing import get_tap_test_class

from safe_singer_testing.emulators.dynamodb_streams import Faults, start_stack
from tap_dynamodb_streams.tap import TapDynamoDBStreams

STACK = start_stack(Faults.lenient())
TABLE = "standard_orders"
KEY = ("line", "N")


def seed() -> None:
    """The table and its events, in moto and in the Streams endpoint."""
    STACK.create_table(TABLE, range_key=KEY)
    for order in range(6):
        STACK.dynamodb().put_item(
            TableName=TABLE,
            Item={"pk": {"S": f"o{order}"}, "line": {"N": "1"}, "total": {"N": f"{order}.5"}},
        )
    STACK.dynamodb().delete_item(TableName=TABLE, Key={"pk": {"S": "o0"}, "line": {"N": "1"}})
    STACK.streams.sync()
    STACK.streams.detach(TABLE)  # the events stay in the endpoint whatever moto does next


def table_again() -> None:
    """Every moto server this process starts (other tests' stacks) empties moto's tables:
    the table is made again (empty; its events are in the Streams endpoint already)."""
    client = STACK.dynamodb()
    try:
        client.describe_table(TableName=TABLE)
    except client.exceptions.ResourceNotFoundException:
        client.create_table(
            TableName=TABLE,
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": KEY[0], "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": KEY[0], "AttributeType": KEY[1]},
            ],
            BillingMode="PAY_PER_REQUEST",
        )


seed()  # the test class's discovery (its parametrization) needs the table now
CONFIG = STACK.tap_config([TABLE], max_run_seconds=60)
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
def _stack() -> Iterator[None]:
    table_again()
    yield
    STACK.stop()
