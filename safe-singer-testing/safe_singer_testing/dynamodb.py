"""Run tap-dynamodb-streams as a user does (a subprocess) and read what it said."""

from __future__ import annotations

import gzip
import json
import os
import random
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from safe_singer_testing.cli import script
from safe_singer_testing.emulators.dynamodb_streams import Faults, Stack, start_stack

TAP = "tap-dynamodb-streams"


@dataclass
class TapRun:
    returncode: int
    messages: list[dict[str, Any]]
    stderr: str
    killed: bool = False
    records: list[dict[str, Any]] = field(init=False)
    states: list[dict[str, Any]] = field(init=False)

    def __post_init__(self) -> None:
        self.records = [m["record"] for m in self.messages if m["type"] == "RECORD"]
        self.states = [m["value"] for m in self.messages if m["type"] == "STATE"]

    @property
    def last_state(self) -> dict[str, Any] | None:
        return self.states[-1] if self.states else None


def _write_inputs(
    workdir: Path,
    config: dict[str, Any],
    state: dict[str, Any] | None,
    catalog: dict[str, Any] | None = None,
) -> list[str]:
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / "tap-config.json"
    config_path.write_text(json.dumps(config))
    args = [script(TAP), "--config", str(config_path)]
    for name, value in (("state", state), ("catalog", catalog)):
        if value is not None:
            path = workdir / f"tap-{name}.json"
            path.write_text(json.dumps(value))
            args += [f"--{name}", str(path)]
    return args


def discovered(workdir: Path, config: dict[str, Any]) -> dict[str, Any]:
    """The tap's own catalog (``--discover``), for a test to change selections in."""
    args = [*_write_inputs(workdir, config, None), "--discover"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=120, check=True)
    return dict(json.loads(done.stdout))


def _parse(lines: list[str]) -> list[dict[str, Any]]:
    out = []
    for line in lines:
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            break  # a SIGKILL can cut the last line short; it was never a whole message
    return out


def run_tap(
    workdir: Path,
    config: dict[str, Any],
    state: dict[str, Any] | None = None,
    timeout: float = 120,
    env: dict[str, str] | None = None,
    catalog: dict[str, Any] | None = None,
) -> TapRun:
    args = _write_inputs(workdir, config, state, catalog)
    done = subprocess.run(
        args, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )
    return TapRun(done.returncode, _parse(done.stdout.splitlines()), done.stderr)


def run_tap_killed(
    workdir: Path,
    config: dict[str, Any],
    state: dict[str, Any] | None,
    kill_after_lines: int,
    timeout: float = 120,
) -> TapRun:
    """Run the tap and SIGKILL it once it has written ``kill_after_lines`` lines."""
    args = _write_inputs(workdir, config, state)
    err_path = workdir / "tap-stderr.txt"
    with err_path.open("w") as err:
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=err, text=True)
        lines: list[str] = []
        killed = False
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.append(line)
                if len(lines) >= kill_after_lines:
                    os.kill(proc.pid, signal.SIGKILL)
                    killed = True
                    break
            proc.wait(timeout=timeout)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return TapRun(proc.returncode, _parse(lines), err_path.read_text(), killed=killed)


def batch_records(message: dict[str, Any]) -> list[dict[str, Any]]:
    """The records of a BATCH message's (local, gzipped JSONL) files."""
    out = []
    for url in message["manifest"]:
        with gzip.open(urlparse(url).path, "rt") as lines:
            out += [json.loads(line) for line in lines]
    return out


def random_writes(client: Any, table: str, count: int, keys: int, rng: random.Random) -> None:
    """``count`` random puts, updates and deletes over ``keys`` keys."""
    for i in range(count):
        pk = {"S": f"k{rng.randrange(keys):03d}"}
        roll = rng.random()
        if roll < 0.55:
            item = {"pk": pk, "n": {"N": str(rng.randrange(10**12))}, "i": {"N": str(i)}}
            client.put_item(TableName=table, Item=item)
        elif roll < 0.85:
            client.update_item(
                TableName=table,
                Key={"pk": pk},
                UpdateExpression="SET i = :i, s = :s",
                ExpressionAttributeValues={":i": {"N": str(i)}, ":s": {"S": f"v{i}"}},
            )
        else:
            client.delete_item(TableName=table, Key={"pk": pk})


def scan_items(client: Any, table: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    request: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
    while True:
        page = client.scan(**request)
        items += page["Items"]
        if "LastEvaluatedKey" not in page:
            return items
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


@contextmanager
def running_stack(faults: Faults | None = None) -> Iterator[Stack]:
    """moto + the Streams endpoint for one test, stopped even when the test fails."""
    stack = start_stack(faults)
    try:
        yield stack
    finally:
        stack.stop()


@dataclass
class PipelineRun:
    tap_returncode: int
    target_returncode: int
    records: list[dict[str, Any]]
    committed_state: dict[str, Any] | None
    stderr: str


def run_pipeline(
    workdir: Path,
    tap_config: dict[str, Any],
    target_config: dict[str, Any],
    state: dict[str, Any] | None,
    kill_tap_after_lines: int | None = None,
    timeout: float = 120,
) -> PipelineRun:
    """tap | target-postgres-atomic, the test relaying lines so it can SIGKILL the tap.

    The state to resume from is the last STATE the *target* emitted (after its commit).
    """
    tap_args = _write_inputs(workdir, tap_config, state)
    target_config_path = workdir / "target-config.json"
    target_config_path.write_text(json.dumps(target_config))
    tap_err, target_err = workdir / "tap-stderr.txt", workdir / "target-stderr.txt"
    target_out = workdir / "target-stdout.txt"
    records: list[dict[str, Any]] = []
    with tap_err.open("w") as terr, target_err.open("w") as gerr, target_out.open("w") as gout:
        target = subprocess.Popen(
            [script("target-postgres-atomic"), "--config", str(target_config_path)],
            stdin=subprocess.PIPE,
            stdout=gout,
            stderr=gerr,
            text=True,
        )
        tap = subprocess.Popen(tap_args, stdout=subprocess.PIPE, stderr=terr, text=True)
        try:
            assert tap.stdout is not None and target.stdin is not None
            for count, line in enumerate(tap.stdout, start=1):
                target.stdin.write(line)
                if line.startswith('{"type":"RECORD"'):
                    records.append(json.loads(line)["record"])
                elif line.startswith('{"type":"BATCH"'):
                    records += batch_records(json.loads(line))
                if kill_tap_after_lines is not None and count >= kill_tap_after_lines:
                    os.kill(tap.pid, signal.SIGKILL)
                    break
            tap.wait(timeout=timeout)
            target.stdin.close()
            target.wait(timeout=timeout)
        finally:
            for proc in (tap, target):
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
    # A Singer target writes each committed state value as one JSON line.
    states = [json.loads(x) for x in target_out.read_text().splitlines() if x.strip()]
    return PipelineRun(
        tap.returncode,
        target.returncode,
        records,
        states[-1] if states else state,
        tap_err.read_text() + target_err.read_text(),
    )


def run_target(workdir: Path, target_config: dict[str, Any], messages: list[dict[str, Any]]) -> str:
    """Feed Singer messages to target-postgres-atomic; its stdout (committed states)."""
    config_path = workdir / "target-config.json"
    config_path.write_text(json.dumps(target_config))
    done = subprocess.run(
        [script("target-postgres-atomic"), "--config", str(config_path)],
        input="".join(json.dumps(m) + "\n" for m in messages),
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        raise AssertionError(f"target failed: {done.stderr[-3000:]}")
    return done.stdout
