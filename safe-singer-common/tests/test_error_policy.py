"""One error policy for every console tool: a refusal is one line, `<tool>: error: ...`, and
a non-zero exit code; the traceback comes before that line only when debug is asked for."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from safe_singer_testing.cli import error_line, run

CONFIG = "{config}"  # replaced by a config file with a setting no plugin has
# Each tool, a command line it refuses, its exit code and its debug switch.
REFUSALS = [
    ("tap-jira-safe", ["--config", CONFIG], 1, "TAP_JIRA_SAFE_DEBUG"),
    ("tap-dynamodb-streams", ["--discover", "--config", CONFIG], 1, "TAP_DYNAMODB_STREAMS_DEBUG"),
    ("target-postgres-atomic", ["--config", CONFIG], 1, "TARGET_POSTGRES_ATOMIC_DEBUG"),
    ("refresh-seal", ["/nonexistent/tap"], 127, "REFRESH_SEAL_DEBUG"),
    (
        "state-service",
        ["--connect-timeout", "2", "--db", "postgresql://u@127.0.0.1:9/x", "status"],
        3,
        "STATE_SERVICE_DEBUG",
    ),
]
QUIET = {name: "" for *_, name in REFUSALS} | {"LOGLEVEL": "INFO"}


@pytest.mark.parametrize(("tool", "args", "code", "debug"), REFUSALS, ids=[r[0] for r in REFUSALS])
def test_a_refusal_is_one_line_and_a_traceback_only_at_debug_level(
    tool: str, args: list[str], code: int, debug: str, tmp_path: Path
) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"no_such_setting": 1}))
    args = [str(config) if arg == CONFIG else arg for arg in args]
    quiet = run(tool, *args, env=QUIET)
    assert quiet.returncode == code, quiet.stderr
    line = error_line(quiet)
    assert line.startswith(f"{tool}: error: "), line
    loud = run(tool, *args, env={**QUIET, debug: "1"})
    assert loud.returncode == code
    assert "Traceback (most recent call last)" in loud.stderr
    assert loud.stderr.strip().splitlines()[-1] == line


# `--config ENV`: an environment variable its setting cannot take (singer-sdk raised a bare
# ValueError for an integer, an array or an object: a traceback, naming no variable).
BAD_ENV = [
    ("tap-jira-safe", ["--discover"], "TAP_JIRA_SAFE_MAX_RETRIES", "abc", "a whole number"),
    ("tap-jira-safe", ["--discover"], "TAP_JIRA_SAFE_STREAM_MAPS", "{nope", "a JSON object"),
    ("tap-jira-safe", ["--discover"], "TAP_JIRA_SAFE_RECONCILE_DELETES", "ture", "true or false"),
    ("tap-dynamodb-streams", ["--discover"], "TAP_DYNAMODB_STREAMS_TABLES", '["a"', "JSON array"),
    ("target-postgres-atomic", [], "TARGET_POSTGRES_ATOMIC_PORT", "54x", "a whole number"),
]


@pytest.mark.parametrize(
    ("tool", "args", "variable", "value", "expects"), BAD_ENV, ids=[r[2] for r in BAD_ENV]
)
def test_a_malformed_environment_variable_is_one_line_naming_it(
    tool: str, args: list[str], variable: str, value: str, expects: str
) -> None:
    quiet = run(tool, "--config", "ENV", *args, env={**QUIET, variable: value})
    assert quiet.returncode == 1, quiet.stderr
    line = error_line(quiet)
    assert line.startswith(f"{tool}: error: environment variable {variable}: "), line
    assert expects in line, line


def test_a_secret_setting_from_the_environment_is_not_shown() -> None:
    secret = '{"host": "bastion", "private_key": "-----BEGIN s3cr3t'
    env = {**QUIET, "TARGET_POSTGRES_ATOMIC_SSH_TUNNEL": secret}
    done = run("target-postgres-atomic", "--config", "ENV", env=env)
    line = error_line(done)
    assert "TARGET_POSTGRES_ATOMIC_SSH_TUNNEL" in line and "JSON object" in line, line
    assert "s3cr3t" not in done.stderr
