"""`state-service run` over a real pipeline: tap-jira-safe into target-postgres-atomic.

Two runs: the second is handed the bookmark the first stored (only after the target committed
and emitted it). The table ends equal to the emulator's ground truth; the stored bookmark is
the target's last STATE.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from psycopg import sql
from state_service.report import read_bookmark, run_history
from state_service.store import Store

from safe_singer_testing.cli import script
from safe_singer_testing.emulators.jira import JiraEmulator
from safe_singer_testing.emulators.jira.harness import issues_only_catalog
from safe_singer_testing.postgres import PgServer

SCHEMA = "jira"


def write(path: Path, data: dict[str, Any]) -> str:
    path.write_text(json.dumps(data))
    return str(path)


def table_versions(db: PgServer) -> dict[str, int]:
    query = sql.SQL("SELECT id, updated FROM {}.{} WHERE _sdc_deleted_at IS NULL").format(
        sql.Identifier(SCHEMA), sql.Identifier("issues")
    )
    with db.connect() as conn:
        return {str(i): round(u.timestamp() * 1000) for i, u in conn.execute(query)}


@pytest.mark.parametrize("state_db", ["sqlite", "postgresql"])
def test_state_service_run_over_jira_into_postgres(
    state_db: str, pg_db: PgServer, tmp_path: Path
) -> None:
    url = (
        f"sqlite:///{tmp_path / 'state.db'}"
        if state_db == "sqlite"
        else pg_db.url("postgresql+psycopg")
    )
    store = Store(url)
    with JiraEmulator(issue_count=40) as jira:
        tap_config = jira.tap_config(search_lag_seconds=0, lookback_minutes=1, page_size=10)
        tap = (
            f"{script('tap-jira-safe')} --config {write(tmp_path / 'tap.json', tap_config)}"
            f" --catalog {write(tmp_path / 'catalog.json', issues_only_catalog())}"
        )
        target_config = {**pg_db.target_config(), "default_target_schema": SCHEMA}
        target_file = write(tmp_path / "target.json", target_config)
        target = f"{script('target-postgres-atomic')} --config {target_file}"
        command = [
            script("state-service"),
            "--db",
            url,
            "run",
            "jira",
            "--tap",
            tap,
            "--target",
            target,
        ]
        first = subprocess.run(command, capture_output=True, text=True, timeout=240)
        assert first.returncode == 0, first.stderr[-3000:]
        after_first = json.loads(read_bookmark(store, "jira") or "{}")
        jira.dataset.churn(edits=3, deletes=0, moves=0, creates=2)
        second = subprocess.run(command, capture_output=True, text=True, timeout=240)
        assert second.returncode == 0, second.stderr[-3000:]
        truth = jira.live_issues()

    assert table_versions(pg_db) == truth
    final = json.loads(read_bookmark(store, "jira") or "{}")
    one = after_first["bookmarks"]["issues"]["replication_key_value"]
    two = final["bookmarks"]["issues"]["replication_key_value"]
    assert two > one  # the second run resumed from the first bookmark and moved it on
    history = run_history(store, "jira", 10)
    assert [(r["status"], r["tap/target"]) for r in history] == [
        ("SUCCESS", "0/0"),
        ("SUCCESS", "0/0"),
    ]
    # Both sides log record_count metrics: what the tap emitted is what the target committed,
    # shown as the run ends and stored with it.
    assert re.search(r"state-service: done: issues: 40 records \(\d+/s\), target 40,", first.stderr)
    assert history[-1]["records tap/target"] == "issues 40/40"
    assert re.fullmatch(r"issues (\d+)/\1", history[0]["records tap/target"]), history[0]
    store.dispose()
