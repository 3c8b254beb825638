"""tap-jira-safe | target-postgres-atomic into a real PostgreSQL table, under adversity.

Two runs (the second resumes from the state the target emitted after committing) while other
users edit, move, create and delete issues and the API rate-limits, fails and drops
connections; at the end the `issues` table equals the emulator's ground truth.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from psycopg import sql

from safe_singer_testing.emulators.jira import JiraEmulator
from safe_singer_testing.emulators.jira.harness import issues_only_catalog, run_pipeline
from safe_singer_testing.postgres import PgServer

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
            search_lag_seconds=0,
            lookback_minutes=1,
            page_size=10,
            reconcile_deletes=True,
            max_delete_fraction=0.5,
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


@pytest.mark.parametrize("jira_ahead_minutes", [0, 10])
def test_reconciled_delete_lands_when_jira_clock_is_ahead_of_the_tap(
    pg_db: PgServer, jira_ahead_minutes: int
) -> None:
    """A delete found by reconciliation is versioned on Jira's clock, not the tap host's: with
    the host 10 minutes behind Jira, a host-clock version is older than the stored row, the
    target's version guard refuses the delete, and the issue stays live in PostgreSQL."""
    with JiraEmulator(issue_count=5, clock_ahead_ms=jira_ahead_minutes * 60_000) as jira:
        tap = jira.tap_config(
            search_lag_seconds=0,
            lookback_minutes=1,
            reconcile_deletes=True,
            max_delete_fraction=0.5,
        )
        target = {**pg_db.target_config(), "default_target_schema": SCHEMA}
        state = None
        for change in ("edit", "delete"):
            run = run_pipeline(tap, target, state=state, catalog=issues_only_catalog())
            assert (run.tap_returncode, run.target_returncode) == (0, 0), run.stderr[-2000:]
            state = run.final_state
            victim = int(min(jira.live_issues(), key=int))
            if change == "edit":
                jira.dataset.edit_issue(victim)  # `updated` = now, on Jira's clock
            else:
                jira.dataset.delete_issue(victim)
            time.sleep(0.2)
        last = run_pipeline(tap, target, state=state, catalog=issues_only_catalog())
        assert (last.tap_returncode, last.target_returncode) == (0, 0), last.stderr[-2000:]
        truth = jira.live_issues()
    stored = table_versions(pg_db)
    assert stored[str(victim)][1], "deleted in Jira, still live in PostgreSQL"
    assert {i for i, (_, gone) in stored.items() if not gone} == set(truth)
