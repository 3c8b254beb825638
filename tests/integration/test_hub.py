"""The Hub definitions under hub/ are generated from each plugin's `--about`, and the repo's
`meltano.yml` carries the same definitions, so `meltano config` tells a user what each
setting means, its real default, and a value set with `meltano config set` is the one used."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
import yaml

from safe_singer_testing.cli import BIN, about, script
from safe_singer_testing.emulators.jira import JiraEmulator
from safe_singer_testing.emulators.jira.harness import issues_only_catalog, run_tap
from safe_singer_testing.postgres import REPO_ROOT

OURS = {
    "tap-jira-safe": "extractors",
    "tap-dynamodb-streams": "extractors",
    "target-postgres-atomic": "loaders",
}


# What each plugin accepts as one complete way in, beside its required settings (the auth
# test below runs tap-jira-safe with each).
AUTH_GROUPS = {"tap-jira-safe": [["email", "api_token"], ["access_token"]]}
# JSON-schema type -> Meltano setting kind (Meltano's own kinds; secrets are `string` with
# `sensitive: true`, not the deprecated `password`).
KIND_OF_TYPE = {
    "string": "string",
    "integer": "integer",
    "number": "decimal",
    "boolean": "boolean",
    "array": "array",
    "object": "object",
}


def expected_kind(prop: dict) -> str:
    """The kind a JSON-schema property's setting must have in Meltano."""
    if "enum" in prop:
        return "options"
    types = prop["type"] if isinstance(prop["type"], list) else [prop["type"]]
    (json_type,) = [t for t in types if t != "null"]
    if json_type == "string" and prop.get("format") == "date-time":
        return "date_iso8601"
    return KIND_OF_TYPE[json_type]


def hub_definition(name: str) -> dict:
    return yaml.safe_load((REPO_ROOT / "hub" / OURS[name] / f"{name}.yml").read_text())


def project_copy(tmp_path: Path) -> Path:
    """The repo's meltano.yml in a temporary project whose plugins run the installed
    executables (no `meltano install`: `pip_url` dropped)."""
    own_pip_url = r"\n    pip_url: -e \./[a-z-]+( -e \./[a-z-]+)*"
    text = re.sub(own_pip_url, "", (REPO_ROOT / "meltano.yml").read_text())
    (tmp_path / "meltano.yml").write_text(text)
    return tmp_path


def meltano(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MELTANO_", "TAP_", "TARGET_"))}
    env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"
    done = subprocess.run(
        [script("meltano"), *args], cwd=project, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, f"meltano {' '.join(args)}:\n{done.stderr[-3000:]}"
    return done


def test_hub_files_are_what_about_reports() -> None:
    """Regenerate from `--about` and compare: hub/*.yml and meltano.yml are up to date."""
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "hub" / "generate.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("name", sorted(OURS))
def test_hub_definition_describes_every_setting(name: str) -> None:
    plugin = hub_definition(name)
    reported = about(name)
    schema = reported["settings"]["properties"]
    assert plugin["pip_url"] == name
    assert plugin["executable"] == name
    assert plugin["namespace"] == name.replace("-", "_")
    # links only where the package declares them: none made up (no page behind them)
    urls = tomllib.loads((REPO_ROOT / name / "pyproject.toml").read_text())["project"]
    declared = urls.get("urls", {})
    links = {"docs": declared.get("Documentation"), "repo": declared.get("Repository")}
    assert {k: plugin.get(k) for k in links} == links
    assert sorted(plugin["capabilities"]) == sorted(reported["capabilities"])
    settings = {s["name"]: s for s in plugin["settings"]}
    assert list(settings) == list(schema)
    for setting_name, prop in schema.items():
        setting = settings[setting_name]
        assert setting["description"] and setting["label"], setting_name
        assert setting.get("value") == prop.get("default"), setting_name
        assert bool(setting.get("sensitive")) == bool(prop.get("secret")), setting_name
        assert setting["kind"] == expected_kind(prop), setting_name
    required = reported["settings"].get("required") or []
    groups = plugin.get("settings_group_validation")
    if name in AUTH_GROUPS:
        assert groups == [[*required, *group] for group in AUTH_GROUPS[name]]
    else:
        assert groups == ([required] if required else None)
    for group in groups or []:
        assert set(group) <= set(schema), group


@pytest.mark.parametrize("name", sorted(OURS))
def test_meltano_yml_uses_the_hub_definition(name: str) -> None:
    """One definition: the project's entry is the Hub file's, installed from the tree."""
    project = yaml.safe_load((REPO_ROOT / "meltano.yml").read_text())
    entry = next(p for p in project["plugins"][OURS[name]] if p["name"] == name)
    editable = entry.pop("pip_url").split()
    assert editable[-2:] == ["-e", f"./{name}"], editable
    assert all((REPO_ROOT / path).is_dir() for path in editable[1::2]), editable
    entry.pop("config", None)
    definition = hub_definition(name)
    for hub_only in ("pip_url", "maintenance_status", "keywords"):
        definition.pop(hub_only)
    assert entry == definition


@pytest.mark.parametrize("auth", ["none", *map(",".join, AUTH_GROUPS["tap-jira-safe"])])
def test_tap_jira_safe_reads_jira_with_each_settings_group_and_not_without(
    auth: str, tmp_path: Path
) -> None:
    """Each group of the Hub definition's `settings_group_validation` is a config the tap
    authenticates with; none of them: Jira answers 401 and the tap fails."""
    with JiraEmulator(issue_count=3) as jira:
        full = jira.tap_config(access_token=jira.settings.access_token)
        groups = hub_definition("tap-jira-safe")["settings_group_validation"]
        group = next((g for g in groups if set(g) - {"domain"} == set(auth.split(","))), ["domain"])
        config = {k: v for k, v in full.items() if k in group or k == "start_date"}
        done = run_tap(config, catalog=issues_only_catalog())
        truth = jira.live_issues()
    records = {m["record"]["id"] for m in done.messages if m["type"] == "RECORD"}
    if auth == "none":
        assert done.returncode != 0 and not records, done.stderr[-2000:]
        assert "401" in done.stderr, done.stderr[-2000:]
    else:
        assert done.returncode == 0, done.stderr[-2000:]
        assert records == set(truth)


def test_meltano_config_list_shows_descriptions_and_defaults(tmp_path: Path) -> None:
    out = meltano(project_copy(tmp_path), "config", "list", "tap-jira-safe", "--all").stdout
    assert "Group 1: api_token, domain, email\n  Group 2: access_token, domain\n" in out, out
    assert re.search(r"^lookback_minutes .*current value: 10 \(default\)", out, re.M), out
    assert re.search(r"^max_retries .*current value: 8 \(default\)", out, re.M), out
    assert "Each incremental query starts this many minutes before the bookmark" in out
    assert "None (default)" not in out.split("\nlookback_minutes")[1].split("\n")[0]


def test_config_set_target_connection_takes_effect_under_the_default_environment(
    tmp_path: Path,
) -> None:
    """`meltano config set` of the target's connection is what the target gets when run
    under the project's default environment (no environment pins it)."""
    project = project_copy(tmp_path)
    for key, value in (("host", "db.example.com"), ("database", "warehouse"), ("port", "6543")):
        meltano(project, "config", "set", "target-postgres-atomic", key, value)
    dumped = meltano(project, "invoke", "--dump=config", "target-postgres-atomic").stdout
    config = json.loads(dumped[dumped.index("{") :])
    connection = (config["host"], config["database"], config["port"])
    assert connection == ("db.example.com", "warehouse", 6543)
