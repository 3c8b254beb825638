"""What the crash soak found, replayed deterministically (each one a named package bug).

Seed 80841 of the long soak (`make soak`) ended with issues deleted in Jira still live in
PostgreSQL, under both wrappers. The cause, replayed here: a run loads a new issue and is
killed before its final STATE; the next run resumes from the last stored state, whose
`live_issue_ids` never heard of that issue, so when the issue is deleted meanwhile the
reconciliation (stored ids | ids emitted this run, minus the listing) could not see it go.
Fixed: the tap names such an id a candidate in a STATE before its first RECORD, and the next
reconciliation looks every stored candidate up.
"""

from __future__ import annotations

import json
from pathlib import Path

from psycopg import sql

from safe_singer_testing.dynamodb import run_target
from safe_singer_testing.emulators.jira import JiraEmulator
from safe_singer_testing.emulators.jira.harness import issues_only_catalog, run_pipeline, run_tap
from safe_singer_testing.postgres import PgServer

SCHEMA = "jira"


def live_rows(db: PgServer) -> set[str]:
    query = sql.SQL("SELECT id FROM {}.issues WHERE _sdc_deleted_at IS NULL").format(
        sql.Identifier(SCHEMA)
    )
    with db.connect() as conn:
        return {str(row[0]) for row in conn.execute(query)}


def test_issue_loaded_by_a_killed_run_then_deleted_is_deleted(
    pg_db: PgServer, tmp_path: Path
) -> None:
    catalog = issues_only_catalog()
    target = {**pg_db.target_config(), "default_target_schema": SCHEMA}
    with JiraEmulator(issue_count=8) as jira:
        tap = jira.tap_config(
            search_lag_seconds=0,
            lookback_minutes=1,
            reconcile_deletes=True,
            max_delete_fraction=0.5,
        )
        first = run_pipeline(tap, target, catalog=catalog)
        assert (first.tap_returncode, first.target_returncode) == (0, 0), first.stderr[-2000:]
        new_issue = str(jira.dataset.create_issue(jira.settings.projects[0]))

        # The killed run: the target got everything up to the new issue's RECORD (a SIGKILL of
        # the tap right after it), committed it, and stored the last STATE it had seen.
        whole = run_tap(tap, state=first.final_state, catalog=catalog)
        assert whole.returncode == 0, whole.stderr[-2000:]
        cut = max(i for i, m in enumerate(whole.messages) if m["type"] == "RECORD")
        committed = run_target(tmp_path, target, whole.messages[: cut + 1]).splitlines()
        assert new_issue in live_rows(pg_db)
        stored = first.final_state if not committed else json.loads(committed[-1])

        jira.dataset.delete_issue(int(new_issue))
        last = run_pipeline(tap, target, state=stored, catalog=catalog)
        assert (last.tap_returncode, last.target_returncode) == (0, 0), last.stderr[-2000:]
        truth = set(jira.live_issues())
    assert "live_issue_candidates" in json.dumps(stored), "the cut state names no candidate"
    assert "live_issue_candidates" not in json.dumps(last.final_state), "a complete run clears them"
    assert live_rows(pg_db) == truth, f"issue {new_issue} was deleted in Jira"
