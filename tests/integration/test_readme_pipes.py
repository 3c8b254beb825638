"""The shell pipes the READMEs show, run as written: a first run (no state file yet), a second,
incremental run from the state the first committed, and a failed tap that fails the pipe and
leaves the committed state as it was."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from psycopg import sql

from safe_singer_testing import readme
from safe_singer_testing.dynamodb import running_stack, scan_items
from safe_singer_testing.emulators.jira import JiraEmulator
from safe_singer_testing.postgres import PgServer


def run_block(script: str, workdir: Path) -> subprocess.CompletedProcess[str]:
    """The block as its reader runs it: a bash script in the working directory."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TAP_", "TARGET_"))}
    return subprocess.run(
        ["bash", "-c", script], cwd=workdir, env=env, capture_output=True, text=True, timeout=300
    )


def write_configs(workdir: Path, tap: dict[str, Any], target: dict[str, Any]) -> None:
    (workdir / "tap.json").write_text(json.dumps(tap))
    (workdir / "target.json").write_text(json.dumps(target))


def committed_state(workdir: Path) -> Any:
    """What the next run of the block starts from: the target's `--committed-state`."""
    out = subprocess.run(
        [".venv/bin/target-postgres-atomic", "--config", "target.json", "--committed-state"],
        cwd=workdir, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)


def issue_rows(pg_db: PgServer) -> dict[str, int]:
    query = sql.SQL("SELECT id, updated FROM pipe.issues WHERE _sdc_deleted_at IS NULL")
    with pg_db.connect() as conn:
        return {str(i): round(u.timestamp() * 1000) for i, u in conn.execute(query)}


def records_loaded(log: str, stream: str) -> int:
    """Records of `stream` the run counted: singer-sdk's record_count METRIC lines, summed per
    process (the tap counts what it emitted, the target what it loaded); the larger sum."""
    per_process: dict[int, int] = {}
    for line in log.splitlines():
        if "METRIC:" not in line:
            continue
        metric = json.loads(line[line.index("{") :])
        tags = metric.get("tags", {})
        if metric["metric"] == "record_count" and tags.get("stream") == stream:
            per_process[tags["pid"]] = per_process.get(tags["pid"], 0) + metric["value"]
    return max(per_process.values(), default=0)


def test_jira_shell_pipe_first_and_incremental_run(pg_db: PgServer, tmp_path: Path) -> None:
    script = readme.block("jira-pipe")
    workdir = readme.linked_venv(tmp_path)
    target = {**pg_db.target_config(), "default_target_schema": "pipe"}
    with JiraEmulator(issue_count=30) as jira:
        write_configs(workdir, jira.tap_config(), target)
        assert not (workdir / "state.json").exists()
        first = run_block(script, workdir)
        assert first.returncode == 0, first.stderr[-3000:]
        assert issue_rows(pg_db) == jira.live_issues()
        assert json.loads((workdir / "state.json").read_text()) == {}  # it started from nothing
        bookmark = committed_state(workdir)
        assert bookmark["bookmarks"]["issues"]["replication_key_value"]

        edited = next(iter(jira.live_issues()))
        jira.dataset.edit_issue(int(edited))
        jira.dataset.create_issue("ALPHA")
        jira.advance(minutes=2)  # past the search lag: the edits are in the next window
        second = run_block(script, workdir)
        assert second.returncode == 0, second.stderr[-3000:]
        assert issue_rows(pg_db) == jira.live_issues()
        # incremental: the second run read the edits and its lookback, not all 31 issues
        assert 2 <= records_loaded(second.stderr, "issues") < len(jira.live_issues())
        assert json.loads((workdir / "state.json").read_text()) == bookmark  # it started there

        kept = committed_state(workdir)
        write_configs(workdir, jira.tap_config(api_token="wrong-token"), target)
        failed = run_block(script, workdir)
    assert failed.returncode != 0, failed.stderr[-3000:]
    assert json.loads((workdir / "state.json").read_text()) == kept
    assert committed_state(workdir) == kept


def test_dynamodb_shell_pipe_first_and_incremental_run(pg_db: PgServer, tmp_path: Path) -> None:
    script = readme.block("dynamodb-pipe", "tap-dynamodb-streams/README.md")
    workdir = readme.linked_venv(tmp_path)
    target = {**pg_db.target_config(), "default_target_schema": "pipe"}
    query = sql.SQL("SELECT pk, v FROM pipe.orders WHERE _sdc_deleted_at IS NULL ORDER BY pk")
    with running_stack() as stack:
        stack.create_table("orders")
        client = stack.dynamodb()
        for key in "abc":
            client.put_item(TableName="orders", Item={"pk": {"S": key}, "v": {"N": "1"}})
        stack.streams.sync()
        write_configs(workdir, stack.tap_config(["orders"]), target)
        first = run_block(script, workdir)
        assert first.returncode == 0, first.stderr[-3000:]
        with pg_db.connect() as conn:
            assert [(k, int(v)) for k, v in conn.execute(query)] == [("a", 1), ("b", 1), ("c", 1)]

        client.put_item(TableName="orders", Item={"pk": {"S": "a"}, "v": {"N": "2"}})
        client.put_item(TableName="orders", Item={"pk": {"S": "d"}, "v": {"N": "1"}})
        stack.streams.sync()
        second = run_block(script, workdir)
        assert second.returncode == 0, second.stderr[-3000:]
        truth = sorted((i["pk"]["S"], int(i["v"]["N"])) for i in scan_items(client, "orders"))
        with pg_db.connect() as conn:
            assert [(k, int(v)) for k, v in conn.execute(query)] == truth
        assert records_loaded(second.stderr, "orders") == 2  # only the 2 new events

        kept = committed_state(workdir)
        write_configs(workdir, {**stack.tap_config(["orders"]), "tables": ["missing"]}, target)
        failed = run_block(script, workdir)
    assert failed.returncode != 0, failed.stderr[-3000:]
    assert json.loads((workdir / "state.json").read_text()) == kept
    assert committed_state(workdir) == kept
