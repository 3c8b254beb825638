"""What the docs say agrees with what the code does: the env-var form of a plugin run alone, the
emulators' by-hand commands, the settings' defaults, and no reference outside the repository."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import pytest

from safe_singer_testing import readme
from safe_singer_testing.cli import about
from safe_singer_testing.emulators.jira import JiraEmulator
from safe_singer_testing.postgres import REPO_ROOT

PLUGIN_READMES = {
    "tap-jira-safe": "tap-jira-safe/README.md",
    "tap-dynamodb-streams": "tap-dynamodb-streams/README.md",
    "target-postgres-atomic": "target-postgres-atomic/README.md",
}
DOCS = ["README.md", "docs/design.md", *PLUGIN_READMES.values(), "state-service/README.md"]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TAP_", "TARGET_"))}
    env.update(extra)
    return env


def messages(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


@contextmanager
def started(script: str, workdir: Path) -> Iterator[dict[str, Any]]:
    """A README's long-running block, started as written in `workdir` (the repository root,
    as the README says); the JSON of its first line."""
    proc = subprocess.Popen(
        ["bash", "-c", script],
        cwd=workdir,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line, "the emulator printed nothing"
        yield json.loads(line)
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_env_var_config_block_runs_as_written(tmp_path: Path) -> None:
    """A plugin run alone takes env-var settings with `--config ENV` (the README's block)."""
    script = readme.block("env-config")
    workdir = readme.linked_venv(tmp_path)
    with JiraEmulator(issue_count=5, email="you@example.com", api_token="env-token") as jira:
        script = script.replace("yourcompany.atlassian.net", jira.url)
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=workdir,
            env=clean_env(JIRA_TOKEN="env-token"),
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 0, done.stderr[-3000:]
    catalog = json.loads((workdir / "catalog.json").read_text())
    assert "issues" in {s["tap_stream_id"] for s in catalog["streams"]}


def test_jira_emulator_by_hand(tmp_path: Path) -> None:
    workdir = readme.linked_venv(tmp_path)
    with started(readme.block("jira-emulator"), REPO_ROOT) as printed:
        assert printed["ca_bundle"] is None
        (workdir / "tap.json").write_text(json.dumps(printed["tap_config"]))
        done = subprocess.run(
            [str(workdir / ".venv/bin/tap-jira-safe"), "--config", "tap.json"],
            cwd=workdir,
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=180,
        )
    assert done.returncode == 0, done.stderr[-3000:]
    records = [m for m in messages(done.stdout) if m["type"] == "RECORD"]
    issues = {m["record"]["id"] for m in records if m["stream"] == "issues"}
    assert len(issues) == 50


def test_dynamodb_emulator_by_hand(tmp_path: Path) -> None:
    workdir = readme.linked_venv(tmp_path)
    with started(readme.block("dynamodb-emulator"), REPO_ROOT) as printed:
        assert set(printed) == {"dynamodb", "streams", "stream_arn"}
        config_text = readme.block("dynamodb-emulator-config", lang="json")
        config = json.loads(
            config_text.replace("DYNAMODB_URL", printed["dynamodb"]).replace(
                "STREAMS_URL", printed["streams"]
            )
        )
        client = boto3.client(
            "dynamodb",
            endpoint_url=config["endpoint_url"],
            region_name=config["region_name"],
            aws_access_key_id=config["aws_access_key_id"],
            aws_secret_access_key=config["aws_secret_access_key"],
        )
        assert client.scan(TableName="demo")["Items"] == []  # it starts empty
        for key in "abc":
            client.put_item(TableName="demo", Item={"pk": {"S": key}, "v": {"N": "1"}})
        (workdir / "tap.json").write_text(json.dumps(config))
        done = subprocess.run(
            [str(workdir / ".venv/bin/tap-dynamodb-streams"), "--config", "tap.json"],
            cwd=workdir,
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=180,
        )
    assert done.returncode == 0, done.stderr[-3000:]
    keys = sorted(m["record"]["pk"] for m in messages(done.stdout) if m["type"] == "RECORD")
    assert keys == ["a", "b", "c"]


def settings_table_defaults(doc: str) -> dict[str, str]:
    """`| \\`setting\\` | default | ...` rows of a README's settings table."""
    found: dict[str, str] = {}
    for line in (REPO_ROOT / doc).read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and re.fullmatch(r"`[a-z_]+`", cells[0]):
            found[cells[0].strip("`")] = cells[1].strip("`").strip()
    return found


@pytest.mark.parametrize("plugin", sorted(PLUGIN_READMES))
def test_readme_settings_defaults_are_the_real_ones(plugin: str) -> None:
    reported = about(plugin)["settings"]["properties"]
    for name, documented in settings_table_defaults(PLUGIN_READMES[plugin]).items():
        default = reported.get(name, {}).get("default")
        if name not in reported or default is None or isinstance(default, bool):
            continue
        assert re.match(rf"{re.escape(str(default))}\b", documented), (name, documented, default)


def test_not_found_retries_prose_names_the_default() -> None:
    """The Streams README's retry count for a transient ResourceNotFound is the setting's."""
    text = (REPO_ROOT / "tap-dynamodb-streams/README.md").read_text()
    bullet = text[text.index("- **Transient `ResourceNotFoundException`**") :].split("\n- ")[0]
    default = about("tap-dynamodb-streams")["settings"]["properties"]["not_found_retries"]
    counts = re.findall(r"(\d+) times", bullet)
    assert "not_found_retries" in bullet
    assert counts == [str(default["default"])], bullet


def test_snapshot_version_is_described_as_s_everywhere() -> None:
    """Snapshot records carry the version `S` (tap-dynamodb-streams/tests/test_snapshot.py
    checks it), never `0`."""
    text = (REPO_ROOT / "tap-dynamodb-streams/README.md").read_text()
    assert not re.search(r"[Ss]napshot rows carry version `0`", text)
    assert re.search(r"[Ss]napshot rows carry the version `S`", text)


def test_docs_reference_nothing_outside_the_repository() -> None:
    for doc in DOCS:
        text = (REPO_ROOT / doc).read_text()
        assert "../" not in text and "shared/DESIGN" not in text, doc
        for target in re.findall(r"\]\(([^)#]+)", text):
            if "://" not in target:
                assert (REPO_ROOT / doc).parent.joinpath(target).resolve().exists(), (doc, target)


def test_top_readme_quotes_no_test_count() -> None:
    """The suite grows with every change: a count or a time in the README would be stale."""
    text = (REPO_ROOT / "README.md").read_text()
    assert not re.search(r"\d+ tests in \d+", text)


def test_jira_permissions_table_names_every_stream(tmp_path: Path) -> None:
    """Each stream the tap discovers has its permission and scopes in the README's table."""
    text = (REPO_ROOT / "tap-jira-safe/README.md").read_text()
    table = text[text.index("## Permissions") :].split("\n## ")[0]
    documented = set(re.findall(r"`([a-z_]+)`", table))
    with JiraEmulator(issue_count=3) as jira:
        (tmp_path / "tap.json").write_text(json.dumps(jira.tap_config()))
        done = subprocess.run(
            [str(REPO_ROOT / ".venv/bin/tap-jira-safe"), "--config", "tap.json", "--discover"],
            cwd=tmp_path,
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 0, done.stderr[-3000:]
    streams = {s["tap_stream_id"] for s in json.loads(done.stdout)["streams"]}
    assert streams - documented == set(), "streams without their permissions in the README"
