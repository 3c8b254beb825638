"""`make demo`, Jira part: emulator -> tap-jira-safe -> target-postgres-atomic, twice.

The emulator rate-limits, fails and has other users editing and deleting issues during the
first run; the second run resumes from the state the target emitted. Prints the tables that
landed, their row counts, the final bookmark and the comparison with Jira's ground truth.
"""

from __future__ import annotations

import time
from pathlib import Path

from psycopg import sql

from safe_singer_testing.emulators.jira import JiraEmulator
from safe_singer_testing.emulators.jira.harness import run_pipeline
from safe_singer_testing.postgres import PgServer

SCHEMA = "jira"


def run(server: PgServer, workdir: Path) -> None:
    target = {**server.target_config(), "default_target_schema": SCHEMA}
    with JiraEmulator(
        issue_count=200,
        rate_limit_every=40,
        retry_after_s=1,
        error_every=35,
        churn_every_searches=2,
        churn_edits=2,
        churn_deletes=1,
        churn_creates=1,
    ) as jira:
        tap = jira.tap_config(
            search_lag_seconds=0,
            lookback_minutes=1,
            page_size=50,
            reconcile_deletes=True,
            max_delete_fraction=0.2,
        )
        first = run_pipeline(tap, target)
        _check(first.tap_returncode, first.target_returncode, first.stderr)
        jira.settings.churn_every_searches = 0
        time.sleep(0.2)
        second = run_pipeline(tap, target, state=first.final_state)
        _check(second.tap_returncode, second.target_returncode, second.stderr)
        truth, deleted = jira.live_issues(), jira.deleted_issue_ids()
        served = jira.stats

    with server.connect() as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s "
                "ORDER BY table_name",
                (SCHEMA,),
            )
        ]
        for table in tables:
            count = conn.execute(
                sql.SQL("SELECT count(*) FROM {}.{}").format(
                    sql.Identifier(SCHEMA), sql.Identifier(table)
                )
            ).fetchone()
            print(f"  {SCHEMA}.{table}: {count[0] if count else 0} rows")
        rows = conn.execute(
            sql.SQL("SELECT id, updated, _sdc_deleted_at IS NOT NULL FROM {}.{}").format(
                sql.Identifier(SCHEMA), sql.Identifier("issues")
            )
        ).fetchall()
    live = {str(i): round(u.timestamp() * 1000) for i, u, gone in rows if not gone}
    missed = set(truth) - set(live)
    stale = {i for i in truth if i in live and live[i] != truth[i]}
    print(
        f"  Jira served {served.requests} requests ({served.rate_limited} x 429, "
        f"{served.server_errors} x 5xx); {len(deleted)} issues deleted in Jira"
    )
    print(
        f"  issues: {len(truth)} live in Jira, {len(live)} live in PostgreSQL, "
        f"missed {len(missed)}, stale {len(stale)}, "
        f"not deleted {len(deleted & set(live))}"
    )
    print(f"  bookmark: {second.final_state['bookmarks']['issues']['replication_key_value']}")
    if missed or stale or deleted & set(live):
        raise SystemExit("Jira demo: PostgreSQL differs from Jira")


def _check(tap: int, target: int, stderr: str) -> None:
    if tap or target:
        raise SystemExit(
            f"Jira demo pipeline failed (tap {tap}, target {target}):\n{stderr[-3000:]}"
        )
