"""Issue 23 item 6: the delete-candidate window, closed at exactly its point.

`state-service run` of tap-jira-safe into target-postgres-atomic dies right after the target
committed a new issue's RECORD (and the STATE with it, in `jira._sdc_target_state`) and before
the wrapper stored that STATE: a wrapper around the target
(`safe_singer_testing.kill_after_commit`) SIGKILLs the target and `state-service run` the
moment the row is committed. The issue is then deleted in Jira. The next run must start from
the target's committed state (found through the target's `--config`), not the older stored one,
so its reconciliation sees the issue go: the table ends equal to the emulator's truth.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from psycopg import sql
from state_service.report import read_bookmark, run_history
from state_service.store import Store

from safe_singer_testing import kill_after_commit, readme
from safe_singer_testing.cli import script
from safe_singer_testing.emulators.jira import JiraEmulator
from safe_singer_testing.emulators.jira.harness import issues_only_catalog
from safe_singer_testing.postgres import PgServer

SCHEMA = "jira"
LEASE = ["--lease-seconds", "2", "--heartbeat-seconds", "0.5"]
KILLER = Path(kill_after_commit.__file__)


def write(path: Path, data: dict[str, Any]) -> str:
    path.write_text(json.dumps(data))
    return str(path)


def live_rows(db: PgServer) -> dict[str, int]:
    query = sql.SQL("SELECT id, updated FROM {}.issues WHERE _sdc_deleted_at IS NULL").format(
        sql.Identifier(SCHEMA)
    )
    with db.connect() as conn:
        return {str(i): round(u.timestamp() * 1000) for i, u in conn.execute(query)}


class Pipeline:
    """`state-service run jira` over the emulator into ``db``, with a SQLite state database."""

    def __init__(self, db: PgServer, jira: JiraEmulator, tmp: Path, **tap_settings: Any) -> None:
        self.db, self.url = db, f"sqlite:///{tmp / 'state.db'}"
        config = {**db.target_config(), "default_target_schema": SCHEMA}
        self.target_config = write(tmp / "target.json", config)
        tap_config = jira.tap_config(search_lag_seconds=0, lookback_minutes=1, **tap_settings)
        self.tap = (
            f"{script('tap-jira-safe')} --config {write(tmp / 'tap.json', tap_config)}"
            f" --catalog {write(tmp / 'catalog.json', issues_only_catalog())}"
        )
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("STATE_SERVICE_")}

    def cli(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [script("state-service"), "--db", self.url, *args],
            capture_output=True, text=True, timeout=240, env={**self.env, **env},
        )  # fmt: skip

    def run(self) -> subprocess.CompletedProcess[str]:
        target = f"{script('target-postgres-atomic')} --config {self.target_config}"
        return self.cli("run", "jira", *LEASE, "--tap", self.tap, "--target", target)

    def run_killed_after_commit_of(self, issue: str) -> subprocess.CompletedProcess[str]:
        """The run dies once ``issue``'s row is committed; no STATE naming it was stored."""
        target = (
            f"{sys.executable} {KILLER} {script('target-postgres-atomic')}"
            f" --config {self.target_config}"
        )
        found = f"SELECT 1 FROM {SCHEMA}.issues WHERE id = '{int(issue)}'"
        return self.cli(
            "run", "jira", *LEASE, "--target-state-config", self.target_config,
            "--tap", self.tap, "--target", target,
            KILL_AFTER_COMMIT_DSN=self.db.conninfo(), KILL_AFTER_COMMIT_SQL=found,
            KILL_AFTER_COMMIT_HOLD_FROM=issue,
        )  # fmt: skip


def test_a_run_killed_between_the_targets_commit_and_the_stored_state_loses_no_delete(
    pg_db: PgServer, tmp_path: Path
) -> None:
    with JiraEmulator(issue_count=8) as jira:
        pipeline = Pipeline(pg_db, jira, tmp_path, reconcile_deletes=True, max_delete_fraction=0.5)
        first = pipeline.run()
        assert first.returncode == 0, first.stderr[-3000:]
        store = Store(pipeline.url)
        new_issue = str(jira.dataset.create_issue(jira.settings.projects[0]))

        killed = pipeline.run_killed_after_commit_of(new_issue)
        assert killed.returncode == -9, killed.stderr[-3000:]
        assert new_issue in live_rows(pg_db)  # the target committed it...
        assert new_issue not in (read_bookmark(store, "jira") or "")  # ...no stored state knew

        jira.dataset.delete_issue(int(new_issue))
        time.sleep(2.5)  # the killed run's lease runs out; the next start reclaims it
        last = pipeline.run()
        assert last.returncode == 0, last.stderr[-3000:]
        truth = jira.live_issues()
    assert "resuming from the target's committed state" in last.stderr, last.stderr[-3000:]
    assert f"{SCHEMA}._sdc_target_state" in last.stderr
    statuses = [r["status"] for r in run_history(store, "jira", 10)]
    assert statuses == ["SUCCESS", "RECLAIMED", "SUCCESS"]
    assert live_rows(pg_db) == truth, f"issue {new_issue} was deleted in Jira\n{last.stderr}"
    store.dispose()


def test_an_edit_after_the_crash_wins_over_the_targets_state(
    pg_db: PgServer, tmp_path: Path
) -> None:
    """`state clear` after such a crash: the operator's word stands, the target's committed
    state is not taken, and the tap starts from nothing (every issue again)."""
    with JiraEmulator(issue_count=4) as jira:
        pipeline = Pipeline(pg_db, jira, tmp_path)
        assert pipeline.run().returncode == 0
        new_issue = str(jira.dataset.create_issue(jira.settings.projects[0]))
        assert pipeline.run_killed_after_commit_of(new_issue).returncode == -9
        time.sleep(2.5)
        cleared = pipeline.cli("state", "clear", "jira")
        assert cleared.returncode == 0, cleared.stderr
        last = pipeline.run()
        assert last.returncode == 0, last.stderr[-3000:]
    assert "resuming from the target's committed state" not in last.stderr
    store = Store(pipeline.url)
    assert run_history(store, "jira", 1)[0]["records tap/target"] == "issues 5/5"
    store.dispose()


MELTANO_YML = """\
default_environment: dev
project_id: {project_id}
send_anonymous_usage_stats: false
environments:
- name: dev
state_backend:
  uri: statesvc://{state_url}
  statesvc:
    lease_seconds: 2
    heartbeat_seconds: 1
    target_config: {target_config}
plugins:
  extractors:
  - name: tap-jira
    namespace: tap_jira
    executable: {tap}
    capabilities: [state]
  loaders:
  - name: target-pg
    namespace: target_pg
    executable: {target}
"""


def executable(path: Path, command: str, *, meltano_args: bool = False) -> str:
    """A script Meltano can run as a plugin: ``command``, plus Meltano's arguments (its
    `--config` and `--state`) when asked."""
    forwarded = ' "$@"' if meltano_args else ""
    path.write_text(f"#!/bin/sh\nexec {command}{forwarded}\n")
    path.chmod(0o755)
    return str(path)


def test_meltano_run_killed_in_the_window_resumes_from_the_targets_state(
    pg_db: PgServer, tmp_path: Path
) -> None:
    """The same window under `meltano run`: the backend reads the target's state table named
    by `state_backend.statesvc.target_config`."""
    import uuid

    with JiraEmulator(issue_count=8) as jira:
        pipeline = Pipeline(pg_db, jira, tmp_path, reconcile_deletes=True, max_delete_fraction=0.5)
        target = f"{script('target-postgres-atomic')} --config {pipeline.target_config}"
        plugin = tmp_path / "plugin"
        plugin.mkdir()
        (plugin / "meltano.yml").write_text(
            MELTANO_YML.format(
                project_id=uuid.uuid4(),
                state_url=pipeline.url,
                target_config=pipeline.target_config,
                tap=executable(tmp_path / "tap.sh", pipeline.tap, meltano_args=True),
                target=executable(tmp_path / "target.sh", target),
            )
        )
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("STATE_SERVICE_", "MELTANO_"))
        }

        def meltano_run(**extra: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [script("meltano"), "run", "--force", "tap-jira", "target-pg"],
                cwd=plugin, env={**env, **extra}, capture_output=True, text=True, timeout=240,
            )  # fmt: skip

        first = meltano_run()
        assert first.returncode == 0, first.stderr[-3000:]
        new_issue = str(jira.dataset.create_issue(jira.settings.projects[0]))
        killer = f"{sys.executable} {KILLER} {target}"
        (tmp_path / "target.sh").write_text(f"#!/bin/sh\nexec {killer}\n")
        found = f"SELECT 1 FROM {SCHEMA}.issues WHERE id = '{int(new_issue)}'"
        killed = meltano_run(
            KILL_AFTER_COMMIT_DSN=pg_db.conninfo(), KILL_AFTER_COMMIT_SQL=found,
            KILL_AFTER_COMMIT_HOLD_FROM=new_issue,
        )  # fmt: skip
        assert killed.returncode == -9, killed.stderr[-3000:]
        assert new_issue in live_rows(pg_db)
        store = Store(pipeline.url)
        assert new_issue not in (read_bookmark(store, "dev:tap-jira-to-target-pg") or "")

        jira.dataset.delete_issue(int(new_issue))
        executable(tmp_path / "target.sh", target)
        time.sleep(2.5)  # the killed Meltano's lease runs out
        last = meltano_run()
        assert last.returncode == 0, last.stderr[-3000:]
        truth = jira.live_issues()
    assert "resuming from the target's committed state" in last.stderr, last.stderr[-3000:]
    assert live_rows(pg_db) == truth, f"issue {new_issue} was deleted in Jira\n{last.stderr}"
    store.dispose()


def test_the_shell_pipe_killed_between_the_commit_and_its_state_line_loses_no_delete(
    pg_db: PgServer, tmp_path: Path
) -> None:
    """The README's shell pipe, run as written: the target dies right after committing a new
    issue and before the STATE line naming it got out (the script dies with it). The next run
    starts from the target's committed state, so the issue's delete reaches PostgreSQL."""
    block = readme.block("jira-pipe")
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "tap-jira-safe").symlink_to(script("tap-jira-safe"))
    # The target as the block names it; with KILL_AFTER_COMMIT_DSN set, a load runs under the
    # killer, which SIGKILLs the target and then its parent, the script.
    target = script("target-postgres-atomic")
    wrapper = bin_dir / "target-postgres-atomic"
    wrapper.write_text(
        "#!/bin/sh\n"
        'case " $* " in *" --committed-state "*) exec ' + target + ' "$@";; esac\n'
        'if [ -n "$KILL_AFTER_COMMIT_DSN" ]; then '
        f'exec {sys.executable} {KILLER} {target} "$@"; fi\n'
        f'exec {target} "$@"\n'
    )
    wrapper.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TAP_", "TARGET_"))}

    def run_block(**extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-c", block], cwd=tmp_path, env={**env, **extra}, capture_output=True,
            text=True, timeout=240,
        )  # fmt: skip

    with JiraEmulator(issue_count=8) as jira:
        Pipeline(pg_db, jira, tmp_path, reconcile_deletes=True, max_delete_fraction=0.5)
        first = run_block()
        assert first.returncode == 0, first.stderr[-3000:]
        new_issue = str(jira.dataset.create_issue(jira.settings.projects[0]))
        found = f"SELECT 1 FROM {SCHEMA}.issues WHERE id = '{int(new_issue)}'"
        killed = run_block(
            KILL_AFTER_COMMIT_DSN=pg_db.conninfo(), KILL_AFTER_COMMIT_SQL=found,
            KILL_AFTER_COMMIT_HOLD_FROM=new_issue,
        )  # fmt: skip
        assert killed.returncode == -9, killed.stderr[-3000:]
        assert new_issue in live_rows(pg_db)  # the target committed it, then died

        jira.dataset.delete_issue(int(new_issue))
        last = run_block()
        assert last.returncode == 0, last.stderr[-3000:]
        truth = jira.live_issues()
    assert live_rows(pg_db) == truth, f"issue {new_issue} was deleted in Jira\n{last.stderr}"
    assert new_issue in (tmp_path / "state.json").read_text()  # the committed state named it
