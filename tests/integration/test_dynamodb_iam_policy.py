"""tap-dynamodb-streams/iam-policy.json is the least privilege the tap needs: every AWS action
the tap calls (discovery, a stream run, an initial snapshot) is in it, and nothing more.

The actions are read from what the emulators received: moto's request recorder for the table
API, the Streams endpoint's own per-operation counts for the Streams API (the tap signs
GetShardIterator and GetRecords itself, outside botocore's hooks)."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from moto.moto_api import recorder

from safe_singer_testing.cli import script
from safe_singer_testing.dynamodb import running_stack
from safe_singer_testing.emulators.dynamodb_streams import Stack
from safe_singer_testing.postgres import REPO_ROOT

POLICY = REPO_ROOT / "tap-dynamodb-streams" / "iam-policy.json"
TABLE_API = "DynamoDB_20120810."  # X-Amz-Target of the table API; the Streams API's differs


def policy_actions() -> set[str]:
    policy = json.loads(POLICY.read_text())
    actions: set[str] = set()
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        listed = statement["Action"]
        actions.update([listed] if isinstance(listed, str) else listed)
    return actions


def moto_api(stack: Stack, path: str) -> bytes:
    method = "GET" if path.startswith("download") else "POST"
    request = urllib.request.Request(
        f"{stack.moto.url}/moto-api/recorder/{path}", data=None if method == "GET" else b""
    )
    with urllib.request.urlopen(request) as response:
        body: bytes = response.read()
    return body


@contextmanager
def recorded_actions(stack: Stack, tmp_path: Path) -> Iterator[set[str]]:
    """IAM actions of the calls the emulators receive inside the block."""
    # moto writes its recording to a file of this process (it runs in a thread here)
    recorder._location = str(tmp_path / "moto-recording")  # type: ignore[attr-defined]
    moto_api(stack, "reset-recording")
    moto_api(stack, "start-recording")
    streams_before = dict(stack.streams.calls)
    actions: set[str] = set()
    yield actions
    moto_api(stack, "stop-recording")
    for line in moto_api(stack, "download-recording").decode().splitlines():
        target = json.loads(line).get("headers", {}).get("X-Amz-Target", "")
        if target.startswith(TABLE_API):  # the Streams endpoint's own reads of moto are not
            actions.add("dynamodb:" + target.removeprefix(TABLE_API))
    for operation, count in stack.streams.calls.items():
        if count > streams_before.get(operation, 0):
            actions.add("dynamodb:" + operation)


def run_tap(tmp_path: Path, config: dict[str, Any], *args: str) -> None:
    path = tmp_path / "tap.json"
    path.write_text(json.dumps(config))
    done = subprocess.run(
        [script("tap-dynamodb-streams"), "--config", str(path), *args],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.fixture
def stack() -> Iterator[Stack]:
    with running_stack() as running:
        yield running


def test_iam_policy_allows_exactly_what_the_tap_calls(stack: Stack, tmp_path: Path) -> None:
    for table in ("orders", "snapshot"):
        stack.create_table(table)
        for key in "abc":
            stack.dynamodb().put_item(TableName=table, Item={"pk": {"S": key}})
    stack.streams.sync()
    stack.streams.split("orders")  # a parent and its children: the child-shard calls too
    stack.dynamodb().put_item(TableName="orders", Item={"pk": {"S": "d"}})
    stack.streams.sync()
    with recorded_actions(stack, tmp_path) as actions:
        run_tap(tmp_path, stack.tap_config(["orders", "snapshot"]), "--discover")
        run_tap(tmp_path, stack.tap_config(["orders"]))
        run_tap(tmp_path, stack.tap_config(["snapshot"], initial_snapshot=True))
    assert actions, "no AWS call recorded"
    assert actions - policy_actions() == set(), "called but not in iam-policy.json"
    assert policy_actions() - actions == set(), "in iam-policy.json but never called"


def test_iam_policy_scopes_each_action_to_the_tables() -> None:
    """Table actions on the table ARN, Streams actions on its streams; `*` only where AWS
    allows no resource (ListStreams)."""
    for statement in json.loads(POLICY.read_text())["Statement"]:
        resources = statement["Resource"]
        resources = [resources] if isinstance(resources, str) else resources
        if statement["Action"] in ("dynamodb:ListStreams", ["dynamodb:ListStreams"]):
            assert resources == ["*"]
        else:
            assert all(r.startswith("arn:aws:dynamodb:") for r in resources), statement
