"""`make demo`, state-service part: tap-jira-safe | target-postgres-atomic under a lease.

Two `state-service run` invocations against the Jira emulator (the second resumes from the
bookmark the first stored), a refused concurrent start, then what landed: the table's row
count, the runs, the stored bookmark. State lives in the demo's own PostgreSQL database.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from psycopg import sql

from safe_singer_testing.cli import script
from safe_singer_testing.emulators.jira import JiraEmulator
from safe_singer_testing.emulators.jira.harness import issues_only_catalog
from safe_singer_testing.postgres import PgServer

SCHEMA = "jira_state_demo"
PIPELINE = "jira-issues"


def _write(path: Path, data: object) -> str:
    path.write_text(json.dumps(data))
    return str(path)


def run(server: PgServer, workdir: Path) -> None:
    url = server.url("postgresql+psycopg")
    service = [script("state-service"), "--db", url]
    with JiraEmulator(issue_count=25) as jira:
        tap_config = jira.tap_config(search_lag_seconds=0, lookback_minutes=1, page_size=10)
        tap = (
            f"{script('tap-jira-safe')} --config {_write(workdir / 'tap.json', tap_config)}"
            f" --catalog {_write(workdir / 'catalog.json', issues_only_catalog())}"
        )
        target_config = {**server.target_config(), "default_target_schema": SCHEMA}
        target = (
            f"{script('target-postgres-atomic')} --config "
            f"{_write(workdir / 'target.json', target_config)}"
        )
        command = [*service, "run", PIPELINE, "--tap", tap, "--target", target]
        for attempt in (1, 2):
            subprocess.run(command, check=True, capture_output=True, text=True, timeout=120)
            print(f"state-service run {PIPELINE} #{attempt}: ok")
            jira.dataset.churn(edits=2, deletes=0, moves=0, creates=1)

        holder = subprocess.Popen(
            [*service, "run", PIPELINE, "--", "sleep", "30"], stderr=subprocess.PIPE, text=True
        )
        try:
            assert holder.stderr is not None
            held = holder.stderr.readline().strip()
            print("a run holding the lease: " + held)
            refused = subprocess.run(
                [*service, "run", PIPELINE, "--", "true"],
                capture_output=True,
                text=True,
                timeout=60,
            )
            print(f"a concurrent start is refused (exit {refused.returncode}):")
            print("  " + refused.stderr.strip().splitlines()[-1])
        finally:
            holder.terminate()  # it stops its command and records the run as FAILED
            holder.communicate(timeout=60)
        holder_run = held.split(" of ", 1)[0].removeprefix("state-service: ")
        print(
            f"the demo stopped that lease holder ({holder_run}, `-- sleep 30`) on purpose with "
            "SIGTERM: `status` and `runs` below show it FAILED (exit -15); the pipeline's own "
            "runs before it succeeded"
        )

    count = sql.SQL("SELECT count(*) FROM {}.issues").format(sql.Identifier(SCHEMA))
    with server.connect() as conn:
        row = conn.execute(count).fetchone()
    print(f"{SCHEMA}.issues: {row[0] if row else 0} rows")
    for args in (["status"], ["runs", PIPELINE], ["state", "get", PIPELINE]):
        out = subprocess.run([*service, *args], check=True, capture_output=True, text=True)
        print(f"$ state-service {' '.join(args)}\n{out.stdout.rstrip()}")
