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
