"""The proof from outside: a fresh Meltano project, in a directory outside this repository,
with a Meltano that has never seen it, adds our plugins from hub/, installs them from the wheels
in dist/, configures them with `meltano config set` and runs the Jira pipeline into PostgreSQL
with its state in state-service: the README's block, as written."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from psycopg import sql
from state_service.report import run_history
from state_service.store import Store

from safe_singer_testing import dist, readme
from safe_singer_testing.cli import BIN
from safe_singer_testing.emulators.jira import JiraEmulator
from safe_singer_testing.postgres import REPO_ROOT, PgServer

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group(dist.XDIST_GROUP)]

TOKEN = "outside-token-5f1c9a"  # the emulator's; must never appear in the log
STATE_ID = "dev:tap-jira-safe-to-target-postgres-atomic"


def outside_env(tmp_path: Path) -> dict[str, str]:
    """A user's shell: none of our settings, no find-links of this machine, `uv` on PATH (in a
    folder of its own: the repository's .venv/bin also holds a meltano), and uv's tools
    installed under `tmp_path`."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(
            ("MELTANO_", "TAP_", "TARGET_", "STATE_SERVICE_", "PG", "VIRTUAL_ENV", "UV_", "PIP_")
        )
    }
    uv_only = tmp_path / "uv-bin"
    uv_only.mkdir()
    (uv_only / "uv").symlink_to(BIN / "uv")
    tools_bin = tmp_path / "uv-tools-bin"
    env.update(
        PATH=os.pathsep.join([str(tools_bin), str(uv_only), "/usr/local/bin", "/usr/bin", "/bin"]),
        UV_TOOL_DIR=str(tmp_path / "uv-tools"),
        UV_TOOL_BIN_DIR=str(tools_bin),
        SAFE_SINGER=str(REPO_ROOT),
    )
    return env


def run_block(name: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", readme.block(name)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
    )


@pytest.mark.timeout(600)
def test_a_fresh_meltano_project_adds_installs_and_runs_our_plugins(
    pg_db: PgServer, tmp_path: Path
) -> None:
    workdir = tmp_path / "outside"
    workdir.mkdir()
    assert not workdir.resolve().is_relative_to(REPO_ROOT)
    env = outside_env(tmp_path)
    env["JIRA_TOKEN"] = TOKEN
    dist.build()
    installed = run_block("meltano-install", workdir, env)
    assert installed.returncode == 0, installed.stderr[-3000:]
    assert (Path(env["UV_TOOL_BIN_DIR"]) / "meltano").exists()
    if pg_db.password:
        env["PGPASSWORD"] = pg_db.password
    with JiraEmulator(issue_count=25, email="you@example.com", api_token=TOKEN) as jira:
        placeholders = {
            "yourcompany.atlassian.net": jira.url,
            "host db.example.com": f"host {pg_db.host}",
            "port 5432": f"port {pg_db.port}",
            "user loader": f"user {pg_db.user}",
            "database warehouse": f"database {pg_db.dbname}",
        }
        script = readme.block("outside-meltano")
        for placeholder, value in placeholders.items():
            assert placeholder in script, placeholder
            script = script.replace(placeholder, value)
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=540,
        )
        log = done.stdout + done.stderr
        assert done.returncode == 0, log[-5000:]
        truth = jira.live_issues()
    assert TOKEN not in log
    project = workdir / "my-project"
    assert TOKEN not in (project / "meltano.yml").read_text()
    assert f"TAP_JIRA_SAFE_API_TOKEN='{TOKEN}'" in (project / ".env").read_text()
    # `meltano config list`: what each setting means and its real default
    assert re.search(r"^lookback_minutes .*current value: 10 \(default\)", done.stdout, re.M)
    assert "Each incremental query starts this many minutes before the bookmark" in done.stdout
    # `meltano state list`: the pipeline's state, kept by state-service
    assert re.search(rf"^{re.escape(STATE_ID)}$", done.stdout, re.M), done.stdout[-3000:]
    assert (project / ".state-service" / "state.db").exists()
    # the plugins ran from the wheels, not from this repository
    plugin_venv = project / ".meltano" / "extractors" / "tap-jira-safe" / "venv"
    assert list(plugin_venv.glob("lib/python*/site-packages/tap_jira_safe/tap.py"))
    query = sql.SQL("SELECT id, updated FROM jira.issues WHERE _sdc_deleted_at IS NULL")
    with pg_db.connect() as conn:
        landed = {str(i): round(u.timestamp() * 1000) for i, u in conn.execute(query)}
    assert landed == truth
    # the run record of a `meltano run`: a success, with no counts and no lag (the state
    # backend sees state only; state-service/README.md, Limitations)
    store = Store(f"sqlite:///{project / '.state-service' / 'state.db'}")
    (run,) = run_history(store, STATE_ID, 10)
    assert (run["kind"], run["status"], run["lag"]) == ("meltano", "SUCCESS", "-"), run
    # step 8: a job of the same pipeline and its schedule
    scheduled = run_block("meltano-schedule", project, env)
    assert scheduled.returncode == 0, scheduled.stderr[-3000:]
    listed = r"^\[@hourly\] job jira-hourly: jira → \['tap-jira-safe target-postgres-atomic'\]$"
    assert re.search(listed, scheduled.stdout, re.M), scheduled.stdout
    project_file = yaml.safe_load((project / "meltano.yml").read_text())
    assert project_file["jobs"] == [
        {"name": "jira", "tasks": ["tap-jira-safe target-postgres-atomic"]}
    ]
    assert project_file["schedules"] == [
        {"name": "jira-hourly", "interval": "@hourly", "job": "jira"}
    ]


HUB_FILES = {
    "tap-jira-safe": "extractors",
    "tap-dynamodb-streams": "extractors",
    "target-postgres-atomic": "loaders",
}


@pytest.mark.timeout(600)
def test_every_hub_definition_installs_from_the_wheels_or_a_clone_and_runs(
    tmp_path: Path,
) -> None:
    """Each file of hub/ as a user adds it to a project outside this repository: installed by
    name from the wheels of dist/ (the definitions' own `pip_url`), or from this clone with
    the README's `-e ${SAFE_SINGER}/...` `pip_url`; then each plugin answers --about."""
    workdir = tmp_path / "outside"
    workdir.mkdir()
    env = outside_env(tmp_path)
    dist.build()
    installed = run_block("meltano-install", workdir, env)
    assert installed.returncode == 0, installed.stderr[-3000:]
    env.update(UV_FIND_LINKS=str(dist.DIST), PIP_FIND_LINKS=str(dist.DIST))

    def meltano(*args: str, cwd: Path) -> str:
        done = subprocess.run(
            ["meltano", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=540
        )
        assert done.returncode == 0, f"meltano {' '.join(args)}:\n{done.stderr[-4000:]}"
        return done.stdout

    meltano("init", "project", cwd=workdir)
    project = workdir / "project"
    for name, kind in HUB_FILES.items():
        definition = REPO_ROOT / "hub" / kind / f"{name}.yml"
        assert "pip_url: " + name in definition.read_text()
        meltano("add", "--no-install", "--plugin-type", kind[:-1], name, "--from-ref",
                str(definition), cwd=project)  # fmt: skip
    from_clone = "-e ${SAFE_SINGER}/safe-singer-common -e ${SAFE_SINGER}/tap-dynamodb-streams"
    text = (project / "meltano.yml").read_text()
    assert text.count("pip_url: tap-dynamodb-streams\n") == 1
    (project / "meltano.yml").write_text(
        text.replace("pip_url: tap-dynamodb-streams\n", f"pip_url: {from_clone}\n")
    )
    meltano("install", cwd=project)
    for name in HUB_FILES:
        about = json.loads(meltano("invoke", name, "--about", "--format=json", cwd=project))
        assert about["name"] == name
    clone_venv = project / ".meltano" / "extractors" / "tap-dynamodb-streams" / "venv"
    editable = list(clone_venv.glob("lib/python*/site-packages/*tap_dynamodb_streams*.pth"))
    assert editable, "tap-dynamodb-streams was not installed from the clone"
    wheel_venv = project / ".meltano" / "loaders" / "target-postgres-atomic" / "venv"
    assert list(wheel_venv.glob("lib/python*/site-packages/target_postgres_atomic/target.py"))
