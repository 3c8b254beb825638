"""The Meltano project: it installs from the repo, declares what each plugin reports, and the
README's Meltano commands work as written on the pinned Meltano."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from psycopg import sql

from safe_singer_testing import readme
from safe_singer_testing.cli import BIN, script
from safe_singer_testing.emulators.jira import JiraEmulator
from safe_singer_testing.peers import MELTANOLABS_TAP_POSTGRES, peer_script
from safe_singer_testing.postgres import REPO_ROOT, PgServer

OURS = ("tap-jira-safe", "tap-dynamodb-streams", "target-postgres-atomic")
# `meltano install` rewrites the repository's .meltano/ (plugin venvs, system database): under
# pytest-xdist, every test that uses it runs on one worker (test_third_party_refresh.py too).
REPO_MELTANO = pytest.mark.xdist_group("repo-meltano-project")


@REPO_MELTANO
def test_meltano_install_succeeds() -> None:
    result = subprocess.run(
        [script("meltano"), "install"], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Installed 4/4 plugins" in result.stdout + result.stderr


@REPO_MELTANO
def test_meltano_lists_plugin_settings() -> None:
    result = subprocess.run(
        [script("meltano"), "config", "list", "tap-jira-safe", "--all"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    for setting in ("domain", "api_token", "lookback_minutes", "reconcile_deletes"):
        assert setting in result.stdout


def declared_plugins() -> dict[str, dict[str, Any]]:
    project = yaml.safe_load((REPO_ROOT / "meltano.yml").read_text())
    return {p["name"]: p for kind in project["plugins"].values() for p in kind}


def meltano_kind(prop: dict[str, Any]) -> str:
    """The Meltano setting kind for a JSON-schema property of `--about --format=json`."""
    types = prop.get("type") or []
    types = [types] if isinstance(types, str) else types
    if "enum" in prop:
        return "options"
    for json_type, kind in (
        ("boolean", "boolean"),
        ("integer", "integer"),
        ("number", "decimal"),
        ("array", "array"),
        ("object", "object"),
    ):
        if json_type in types:
            return kind
    return "date_iso8601" if prop.get("format") == "date-time" else "string"


@pytest.mark.parametrize("plugin", [*OURS, "tap-postgres"])
def test_meltano_yml_declares_what_about_reports(plugin: str) -> None:
    declared = declared_plugins()[plugin]
    if plugin == "tap-postgres":
        assert declared["pip_url"] == MELTANOLABS_TAP_POSTGRES.requirement
        executable = peer_script(MELTANOLABS_TAP_POSTGRES)
    else:
        executable = script(plugin)
    about = json.loads(
        subprocess.run(
            [executable, "--about", "--format=json"], capture_output=True, text=True, check=True
        ).stdout
    )
    assert sorted(declared["capabilities"]) == sorted(about["capabilities"])
    reported = about["settings"]["properties"]
    kinds = {s["name"]: s.get("kind", "string") for s in declared["settings"]}
    assert kinds == {name: meltano_kind(prop) for name, prop in reported.items()}
    sensitive = {s["name"] for s in declared["settings"] if s.get("sensitive")}
    secrets = {name for name, prop in reported.items() if prop.get("secret")}
    assert secrets <= sensitive, f"secrets not marked sensitive: {sorted(secrets - sensitive)}"
    for setting in declared["settings"]:
        if setting.get("kind") == "options":
            values = [o["value"] for o in setting["options"]]
            assert values == reported[setting["name"]]["enum"], setting["name"]


def test_readme_meltano_commands_work_as_written(pg_db: PgServer, tmp_path: Path) -> None:
    """The README's block for this repository's project, run as written by bash in a copy of
    the project whose own plugins run the installed executables (`meltano install` itself is
    tested above), with nothing of the venv on PATH: a user after `make install`."""
    commands = readme.block("repo-meltano")
    assert "meltano config set tap-jira-safe domain " in commands, commands
    own_pip_url = r"\n    pip_url: -e \./[a-z-]+( -e \./[a-z-]+)*"
    project = re.sub(own_pip_url, "", (REPO_ROOT / "meltano.yml").read_text())
    for name in OURS:  # Meltano takes an absolute executable as it is
        project = project.replace(f"executable: {name}\n", f"executable: {BIN / name}\n")
    (tmp_path / "meltano.yml").write_text(project)
    readme.linked_venv(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MELTANO_", "TAP_", "TARGET_"))}
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if Path(p) != BIN)
    env.pop("VIRTUAL_ENV", None)
    env["JIRA_TOKEN"] = "readme-token"
    with JiraEmulator(issue_count=30, email="you@example.com", api_token="readme-token") as jira:
        # The README's domain is a placeholder: aim the run at the emulator and the test's
        # database, the way a user would override settings with env vars.
        env.update(
            TAP_JIRA_SAFE_DOMAIN=jira.url,
            TAP_JIRA_SAFE__SELECT='["issues.*"]',
            TARGET_POSTGRES_ATOMIC_HOST=pg_db.host,
            TARGET_POSTGRES_ATOMIC_PORT=str(pg_db.port),
            TARGET_POSTGRES_ATOMIC_USER=pg_db.user,
            TARGET_POSTGRES_ATOMIC_DATABASE=pg_db.dbname,
        )
        if pg_db.password:
            env["TARGET_POSTGRES_ATOMIC_PASSWORD"] = pg_db.password
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", commands],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
        )
        assert done.returncode == 0, f"the README's block failed:\n{done.stderr[-3000:]}"
        truth = jira.live_issues()
    assert "readme-token" not in (tmp_path / "meltano.yml").read_text()
    assert "TAP_JIRA_SAFE_API_TOKEN='readme-token'" in (tmp_path / ".env").read_text()
    settings = yaml.safe_load((tmp_path / "meltano.yml").read_text())
    assert "yourcompany.atlassian.net" in json.dumps(settings)
    query = sql.SQL("SELECT id, updated FROM meltano_dev.issues WHERE _sdc_deleted_at IS NULL")
    with pg_db.connect() as conn:
        landed = {str(i): round(u.timestamp() * 1000) for i, u in conn.execute(query)}
    assert landed == truth
