"""tap-jira-safe | target-postgres-atomic into a real PostgreSQL table, under adversity.

Two runs (the second resumes from the state the target emitted after committing) while other
users edit, move, create and delete issues and the API rate-limits, fails and drops
connections; at the end the `issues` table equals the emulator's ground truth.
"""

from __future__ import annotations

import time
from typing import Any

from psycopg import sql

from tests.emulators.jira import JiraEmulator
from tests.emulators.jira.harness import issues_only_catalog, run_pipeline
from tests.support.postgres import PgServer

SCHEMA = "jira"


def table_versions(db: PgServer) -> dict[str, tuple[int, bool]]:
    query = sql.SQL("SELECT id, updated, _sdc_deleted_at IS NOT NULL FROM {}.{}").format(
        sql.Identifier(SCHEMA), sql.Identifier("issues")
    )
    with db.connect() as conn:
        rows = conn.execute(query).fetchall()
    return {str(i): (round(u.timestamp() * 1000), gone) for i, u, gone in rows}


def test_pipeline_into_postgres_matches_jira(pg_db: PgServer) -> None:
    with JiraEmulator(
        issue_count=80,
        rate_limit_every=10,
        error_every=9,
        drop_every=13,
        page_cap_fields=9,
        churn_every_searches=1,
        churn_edits=2,
        churn_deletes=1,
        churn_moves=1,
        churn_creates=1,
    ) as jira:
        tap: dict[str, Any] = jira.tap_config(
            search_lag_seconds=0, lookback_minutes=1, page_size=10, reconcile_deletes=True
        )
        target = {**pg_db.target_config(), "default_target_schema": SCHEMA}
        first = run_pipeline(tap, target, catalog=issues_only_catalog())
        assert (first.tap_returncode, first.target_returncode) == (0, 0), first.stderr[-3000:]
        jira.settings.churn_every_searches = 0
        time.sleep(0.2)
        second = run_pipeline(tap, target, state=first.final_state, catalog=issues_only_catalog())
        assert (second.tap_returncode, second.target_returncode) == (0, 0), second.stderr[-3000:]
        truth, deleted = jira.live_issues(), jira.deleted_issue_ids()

    rows = table_versions(pg_db)
    live_rows = {i: v for i, (v, gone) in rows.items() if not gone}
    assert deleted, "the churn should have deleted issues"
    missed = sorted(set(truth) - set(live_rows))
    stale = sorted(i for i in truth if i in live_rows and live_rows[i] != truth[i])
    undeleted = sorted(deleted & set(live_rows))
    assert (missed, stale, undeleted) == ([], [], [])
    one = first.final_state["bookmarks"]["issues"]["replication_key_value"]
    two = second.final_state["bookmarks"]["issues"]["replication_key_value"]
    assert two >= one
