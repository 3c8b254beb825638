"""`meltano run tap-jira-safe target-postgres-atomic`: a reference row deleted in Jira
disappears downstream at the next run, and a run whose listing failed deletes nothing (the
tap sends the closing ACTIVATE_VERSION only after the last page)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from psycopg import sql

from safe_singer_testing.cli import BIN, script
from safe_singer_testing.emulators.jira import JiraEmulator
from safe_singer_testing.emulators.jira.catalog import reference_data
from safe_singer_testing.postgres import REPO_ROOT, PgServer

SCHEMA = "meltano_jira_streams"


def dashboards(db: PgServer) -> dict[str, bool]:
    query = sql.SQL("SELECT id, _sdc_deleted_at IS NOT NULL FROM {}.dashboards").format(
        sql.Identifier(SCHEMA)
    )
    with db.connect() as conn:
        return dict(conn.execute(query).fetchall())


def test_meltano_run_deletes_a_removed_dashboard_unless_the_listing_failed(
    pg_db: PgServer, tmp_path: Path
) -> None:
    project = re.sub(r"\n    pip_url: -e \./[a-z-]+", "", (REPO_ROOT / "meltano.yml").read_text())
    (tmp_path / "meltano.yml").write_text(project)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MELTANO_", "TAP_", "TARGET_"))}
    with JiraEmulator(issue_count=2) as jira:
        env.update(
            PATH=f"{BIN}{os.pathsep}{env['PATH']}",
            TAP_JIRA_SAFE_DOMAIN=jira.url,
            TAP_JIRA_SAFE_EMAIL=jira.settings.email,
            TAP_JIRA_SAFE_API_TOKEN=jira.settings.api_token,
            TAP_JIRA_SAFE_MAX_RETRIES="1",
            TAP_JIRA_SAFE__SELECT='["dashboards.*"]',
            TARGET_POSTGRES_ATOMIC_HOST=pg_db.host,
            TARGET_POSTGRES_ATOMIC_PORT=str(pg_db.port),
            TARGET_POSTGRES_ATOMIC_USER=pg_db.user,
            TARGET_POSTGRES_ATOMIC_DATABASE=pg_db.dbname,
            TARGET_POSTGRES_ATOMIC_DEFAULT_TARGET_SCHEMA=SCHEMA,
        )
        if pg_db.password:
            env["TARGET_POSTGRES_ATOMIC_PASSWORD"] = pg_db.password

        def meltano_run() -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [script("meltano"), "run", "tap-jira-safe", "target-postgres-atomic"],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                timeout=240,
            )

        data = reference_data(jira)
        first = meltano_run()
        assert first.returncode == 0, first.stderr[-3000:]
        assert dashboards(pg_db) == {d["id"]: False for d in data.dashboards}

        gone = data.dashboards.pop(2)
        second = meltano_run()
        assert second.returncode == 0, second.stderr[-3000:]
        assert dashboards(pg_db) == {d["id"]: False for d in data.dashboards} | {gone["id"]: True}

        kept = data.dashboards.pop(0)
        data.faults["/dashboard"] = "error_after_first"
        third = meltano_run()
        assert third.returncode != 0
        assert dashboards(pg_db)[kept["id"]] is False
