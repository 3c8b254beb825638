"""Each tap's replication lag, end to end: the real tap-jira-safe (Jira emulator) and the real
tap-dynamodb-streams (moto + our Streams endpoint) under `state-service run`, into
target-postgres-atomic; the lag each reports reaches the run record (`state-service runs`) and
`/metrics` of `state-service serve`, read back with prometheus_client's own parser."""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from psycopg import sql

from safe_singer_testing.cli import script
from safe_singer_testing.dynamodb import running_stack
from safe_singer_testing.emulators.jira import JiraEmulator
from safe_singer_testing.emulators.jira.harness import issues_only_catalog
from safe_singer_testing.postgres import PgServer

pytestmark = [pytest.mark.slow]

TABLE = "orders"
BEHIND_SECONDS = 1800  # the Streams endpoint's clock moved on this far after the writes
LAG = "state_service_replication_lag_seconds"


def write(path: Path, data: dict[str, Any]) -> str:
    path.write_text(json.dumps(data))
    return str(path)


def state_service(db: str, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [script("state-service"), "--db", db, *args], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def run_pipeline(
    db: str, pipeline: str, tap: str, target_config: dict[str, Any], tmp_path: Path
) -> tuple[float, float]:
    """`state-service run PIPELINE` of `tap` into target-postgres-atomic; the wall-clock
    seconds before it started and after it ended."""
    target_file = write(tmp_path / f"{pipeline}-target.json", target_config)
    target = f"{script('target-postgres-atomic')} --config {target_file}"
    before = time.time()
    state_service(db, "run", pipeline, "--tap", tap, "--target", target)
    return before, time.time()


def runs_lag(db: str, pipeline: str, stream: str) -> int:
    """The lag column of `state-service runs PIPELINE` for the latest run: whole seconds."""
    listing = state_service(db, "runs", pipeline).stdout
    header, latest = listing.splitlines()[:2]
    column = re.split(r"\s{2,}", header).index("lag")
    found = re.search(rf"(?:^|, ){stream} (\d+)s\b", re.split(r"\s{2,}", latest)[column])
    assert found, listing
    return int(found.group(1))


def scraped_lags(db: str) -> dict[tuple[str, str], float]:
    """`state_service_replication_lag_seconds` of `/metrics`, by (pipeline, stream)."""
    serving = subprocess.Popen(
        [script("state-service"), "--db", db, "serve", "--port", "0"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert serving.stderr is not None
        base = re.search(r"http://\S+/", serving.stderr.readline())
        assert base, "serve printed no address"
        with urllib.request.urlopen(base.group(0) + "metrics", timeout=60) as answer:
            page = answer.read().decode()
    finally:
        serving.kill()
        serving.wait()
    lags = {}
    for family in text_string_to_metric_families(page):
        if family.name == LAG:
            for sample in family.samples:
                lags[sample.labels["pipeline"], sample.labels["stream"]] = sample.value
    return lags


@pytest.mark.timeout(600)
def test_each_tap_s_lag_reaches_the_run_record_and_metrics(pg_db: PgServer, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'state.db'}"
    with JiraEmulator(issue_count=20) as jira:
        tap_config = jira.tap_config(search_lag_seconds=0)
        tap = (
            f"{script('tap-jira-safe')} --config {write(tmp_path / 'jira.json', tap_config)}"
            f" --catalog {write(tmp_path / 'catalog.json', issues_only_catalog())}"
        )
        target_config = {**pg_db.target_config(), "default_target_schema": "jira"}
        jira_before, jira_after = run_pipeline(db, "jira", tap, target_config, tmp_path)
        newest_issue = max(jira.live_issues().values()) / 1000  # the bookmark the run reached
    with running_stack() as stack:
        stack.create_table(TABLE)
        for n in range(10):
            stack.dynamodb().put_item(TableName=TABLE, Item={"pk": {"S": f"k{n}"}})
        stack.streams.sync()
        stack.streams.advance(BEHIND_SECONDS)
        tap_config = stack.tap_config([TABLE])
        config_file = write(tmp_path / "ddb.json", tap_config)
        tap = f"{script('tap-dynamodb-streams')} --config {config_file}"
        target_config = {**pg_db.target_config(), "default_target_schema": "orders"}
        ddb_before, ddb_after = run_pipeline(db, TABLE, tap, target_config, tmp_path)
    count = sql.SQL("SELECT count(*) FROM {}.{}")
    with pg_db.connect() as conn:
        loaded = {
            schema: conn.execute(
                count.format(sql.Identifier(schema), sql.Identifier(table))
            ).fetchall()[0][0]
            for schema, table in (("jira", "issues"), ("orders", TABLE))
        }
    assert loaded == {"jira": 20, "orders": 10}

    # Jira: now minus the newest `updated` the run emitted, logged as the tap ended
    jira_lag = runs_lag(db, "jira", "issues")
    assert jira_before - newest_issue - 1 <= jira_lag <= jira_after - newest_issue + 1
    # DynamoDB: the Streams clock minus the creation time of the newest event read
    ddb_lag = runs_lag(db, TABLE, TABLE)
    assert BEHIND_SECONDS <= ddb_lag <= BEHIND_SECONDS + (ddb_after - ddb_before) + 2
    metrics = scraped_lags(db)
    assert set(metrics) == {("jira", "issues"), (TABLE, TABLE)}
    assert abs(metrics["jira", "issues"] - jira_lag) <= 0.5
    assert abs(metrics[TABLE, TABLE] - ddb_lag) <= 0.5
