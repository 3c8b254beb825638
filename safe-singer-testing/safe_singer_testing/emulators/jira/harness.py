"""Run tap-jira-safe against the emulator and compare what it emitted with the ground truth.

Tests, the benchmark and the demo share this: the tap runs as its console script (a separate
process, as a user runs it); the message stream is reduced by key to the newest version, as
target-postgres-atomic's version guard does.
"""

from __future__ import annotations

import functools
import json
import subprocess
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from safe_singer_testing.cli import script


@dataclass
class TapRun:
    returncode: int
    messages: list[dict[str, Any]]
    stderr: str

    def records(self, stream: str) -> list[dict[str, Any]]:
        return [
            m["record"] for m in self.messages if m["type"] == "RECORD" and m["stream"] == stream
        ]

    @property
    def states(self) -> list[dict[str, Any]]:
        return [m["value"] for m in self.messages if m["type"] == "STATE"]

    @property
    def final_state(self) -> dict[str, Any]:
        return self.states[-1] if self.states else {}

    def bookmark(self, stream: str = "issues") -> str | None:
        value: str | None = (
            self.final_state.get("bookmarks", {}).get(stream, {}).get("replication_key_value")
        )
        return value


def run_tap(
    config: dict[str, Any],
    *,
    state: dict[str, Any] | None = None,
    catalog: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 120,
) -> TapRun:
    with tempfile.TemporaryDirectory(prefix="tap-jira-") as tmp:
        args = [script("tap-jira-safe"), "--config", _write(Path(tmp, "config.json"), config)]
        if state is not None:
            args += ["--state", _write(Path(tmp, "state.json"), state)]
        if catalog is not None:
            args += ["--catalog", _write(Path(tmp, "catalog.json"), catalog)]
        done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env)
    messages = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    return TapRun(done.returncode, messages, done.stderr)


def _write(path: Path, data: dict[str, Any]) -> str:
    path.write_text(json.dumps(data))
    return str(path)


def catalog_selecting(config: dict[str, Any], streams: set[str]) -> dict[str, Any]:
    """The tap's discovered catalog with only ``streams`` selected."""
    with tempfile.TemporaryDirectory(prefix="tap-jira-") as tmp:
        done = subprocess.run(
            [
                script("tap-jira-safe"),
                "--config",
                _write(Path(tmp, "c.json"), config),
                "--discover",
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
    catalog: dict[str, Any] = json.loads(done.stdout)
    for entry in catalog["streams"]:
        for item in entry["metadata"]:
            if item["breadcrumb"] == []:
                item["metadata"]["selected"] = entry["tap_stream_id"] in streams
    return catalog


@functools.cache
def issues_only_catalog() -> dict[str, Any]:
    """A catalog selecting only ``issues`` (discovered once per process; it has no URL)."""
    from safe_singer_testing.emulators.jira import JiraEmulator

    with JiraEmulator(issue_count=1) as quiet:
        return catalog_selecting(quiet.tap_config(), {"issues"})


def newest_by_key(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Reduce records by ``id`` keeping the newest ``updated`` (ties: the later one)."""
    newest: dict[str, dict[str, Any]] = {}
    for record in records:
        held = newest.get(record["id"])
        if held is None or _version(record) >= _version(held):
            newest[record["id"]] = record
    return newest


def _version(record: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(record["updated"])


@dataclass
class Comparison:
    missed: list[str] = field(default_factory=list)  # live in Jira, absent or deleted here
    stale: list[str] = field(default_factory=list)  # here, but older than Jira's version
    undeleted: list[str] = field(default_factory=list)  # deleted in Jira, live here

    @property
    def clean(self) -> bool:
        return not (self.missed or self.stale or self.undeleted)


def compare(
    truth: dict[str, int],
    deleted: set[str],
    reduced: dict[str, dict[str, Any]],
    *,
    check_deletes: bool = False,
) -> Comparison:
    """Ground truth (``{id: updated ms}``, deleted ids) against the reduced records."""
    result = Comparison()
    for issue_id, updated_ms in sorted(truth.items()):
        row = reduced.get(issue_id)
        if row is None or row.get("_sdc_deleted_at"):
            result.missed.append(issue_id)
        elif round(_version(row).timestamp() * 1000) != updated_ms:
            result.stale.append(issue_id)
    if check_deletes:
        result.undeleted = sorted(
            i for i in deleted if i in reduced and not reduced[i].get("_sdc_deleted_at")
        )
    return result


@dataclass
class PipelineRun:
    tap_returncode: int
    target_returncode: int
    states: list[dict[str, Any]]  # what the target emitted (after each commit)
    stderr: str

    @property
    def final_state(self) -> dict[str, Any]:
        return self.states[-1] if self.states else {}


def run_pipeline(
    tap_config: dict[str, Any],
    target_config: dict[str, Any],
    *,
    state: dict[str, Any] | None = None,
    catalog: dict[str, Any] | None = None,
    timeout: float = 240,
) -> PipelineRun:
    """``tap-jira-safe | target-postgres-atomic``, as a shell pipeline would run them."""
    with tempfile.TemporaryDirectory(prefix="tap-jira-") as tmp:
        tap = [script("tap-jira-safe"), "--config", _write(Path(tmp, "tap.json"), tap_config)]
        if state is not None:
            tap += ["--state", _write(Path(tmp, "state.json"), state)]
        if catalog is not None:
            tap += ["--catalog", _write(Path(tmp, "catalog.json"), catalog)]
        target = [
            script("target-postgres-atomic"),
            "--config",
            _write(Path(tmp, "target.json"), target_config),
        ]
        tap_log, target_log = Path(tmp, "tap.log"), Path(tmp, "target.log")
        with tap_log.open("w") as tap_err, target_log.open("w") as target_err:
            producer = subprocess.Popen(tap, stdout=subprocess.PIPE, stderr=tap_err)
            assert producer.stdout is not None
            try:
                consumer = subprocess.run(
                    target,
                    stdin=producer.stdout,
                    stdout=subprocess.PIPE,
                    stderr=target_err,
                    timeout=timeout,
                    text=True,
                )
            finally:
                producer.stdout.close()
                try:
                    producer.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    producer.kill()
                    producer.wait()
        stderr = tap_log.read_text() + target_log.read_text()
    states = [
        _state_value(json.loads(line)) for line in consumer.stdout.splitlines() if line.strip()
    ]
    return PipelineRun(producer.returncode, consumer.returncode, states, stderr)


def _state_value(message: dict[str, Any]) -> dict[str, Any]:
    value: dict[str, Any] = message["value"] if message.get("type") == "STATE" else message
    return value


@dataclass
class Audit:
    """A reduced table against Jira, for a tap that syncs some projects and reconciles."""

    missed: list[str] = field(default_factory=list)  # in scope in Jira; absent/stale/deleted here
    false_deletes: list[str] = field(default_factory=list)  # deleted here, in scope or archived
    missed_deletes: list[str] = field(default_factory=list)  # gone from scope, live here
    unflagged_archives: list[str] = field(default_factory=list)  # archived, no archived_at

    @property
    def counts(self) -> dict[str, int]:
        return {name: len(ids) for name, ids in vars(self).items()}


def audit(
    dataset: Any, records: list[dict[str, Any]], projects: set[str], *, moved_out_deleted: bool
) -> Audit:
    """``dataset`` is the emulator's; moved-out issues must be deleted if
    ``moved_out_deleted`` (``issues_leaving_scope: delete``), else just up to date."""
    result = Audit()
    reduced = newest_by_key(records)
    with dataset.lock:
        issues = {str(i.id): i for i in dataset.issues.values()}
    for issue_id, issue in sorted(issues.items()):
        row = reduced.get(issue_id)
        in_scope = issue.project in projects
        deleted_here = row is not None and bool(row.get("_sdc_deleted_at"))
        if issue.archived_ms is not None:
            if deleted_here:
                result.false_deletes.append(issue_id)
            elif row is not None and not row.get("archived_at"):
                result.unflagged_archives.append(issue_id)
        elif in_scope:
            if deleted_here:
                result.false_deletes.append(issue_id)
            elif row is None or _version_ms(row) != issue.updated_ms:
                result.missed.append(issue_id)
        elif row is not None and moved_out_deleted and not deleted_here:
            result.missed_deletes.append(issue_id)
    for issue_id in dataset.deleted_issue_ids():
        row = reduced.get(issue_id)
        if row is not None and not row.get("_sdc_deleted_at"):
            result.missed_deletes.append(issue_id)
    return result


def _version_ms(record: dict[str, Any]) -> int:
    return round(_version(record).timestamp() * 1000)
