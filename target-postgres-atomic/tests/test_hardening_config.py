"""The target and refresh-seal refuse bad settings and bad command lines with one line and a
non-zero exit, the traceback only at debug level (issue 19 items 14, 15 and 18)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from safe_singer_testing.cli import error_line, run

TOOL = "target-postgres-atomic"
# Nothing listens there: a refusal must come before any connection.
UNREACHABLE = {"host": "127.0.0.1", "port": 9, "user": "postgres", "database": "postgres"}


def config_file(tmp_path: Path, settings: object) -> str:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(settings))
    return str(path)


def test_a_misspelled_setting_is_refused_naming_the_right_one(tmp_path: Path) -> None:
    result = run(TOOL, "--config", config_file(tmp_path, {**UNREACHABLE, "lock_timout": 5}))
    assert result.returncode == 1
    assert error_line(result) == (
        f"{TOOL}: error: Config validation failed: setting 'lock_timout' would be ignored, so "
        f"it is refused: not a setting of {TOOL}; did you mean 'lock_timeout'? (see --about)"
    )


def test_a_peers_setting_is_refused_naming_ours(tmp_path: Path) -> None:
    result = run(TOOL, "--config", config_file(tmp_path, {**UNREACHABLE, "dbname": "x"}))
    assert result.returncode == 1
    assert error_line(result) == (
        f"{TOOL}: error: Config validation failed: setting 'dbname' would be ignored, so it "
        "is refused: use database"
    )


def test_a_missing_config_file_is_one_line(tmp_path: Path) -> None:
    result = run(TOOL, "--config", str(tmp_path / "nowhere.json"))
    assert result.returncode == 1
    assert error_line(result) == (
        f"{TOOL}: error: config file '{tmp_path / 'nowhere.json'}' cannot be read: "
        "No such file or directory"
    )


def test_an_unreachable_database_is_one_line(tmp_path: Path) -> None:
    schema = {"type": "SCHEMA", "stream": "s", "schema": {"properties": {}}, "key_properties": []}
    path = config_file(tmp_path, {**UNREACHABLE, "connect_timeout": 2})
    result = run(TOOL, "--config", path, stdin=json.dumps(schema) + "\n")
    assert result.returncode == 1
    line = error_line(result)
    assert line.startswith(f"{TOOL}: error: ") and "127.0.0.1" in line, line


def test_the_traceback_comes_only_at_debug_level(tmp_path: Path) -> None:
    path = config_file(tmp_path, {**UNREACHABLE, "dbname": "x"})
    result = run(TOOL, "--config", path, env={"TARGET_POSTGRES_ATOMIC_LOGLEVEL": "DEBUG"})
    assert result.returncode == 1
    assert "Traceback" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(f"{TOOL}: error: Config validation")


def test_refresh_seal_help_prints_its_usage() -> None:
    result = run("refresh-seal", "--help", env={"REFRESH_SEAL_TAP": ""})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: refresh-seal TAP [TAP ARGS...]")


@pytest.mark.parametrize(
    ("tap", "code", "reason"),
    [("/nonexistent/tap", 127, "No such file or directory"), ("/etc", 126, "Permission denied")],
)
def test_refresh_seal_with_a_tap_that_cannot_start_is_one_line(
    tap: str, code: int, reason: str
) -> None:
    result = run("refresh-seal", tap, "--config", "tap.json")
    assert result.returncode == code
    assert error_line(result) == f"refresh-seal: error: cannot start the tap '{tap}': {reason}"
    # A target downstream stops too, rather than taking the empty input as a finished run.
    assert json.loads(result.stdout) == {"type": "TAP_FAILED", "exit_code": code}


def test_refresh_seal_without_a_tap_is_one_line() -> None:
    result = run("refresh-seal", "--config", "tap.json", env={"REFRESH_SEAL_TAP": ""})
    assert result.returncode == 2
    assert error_line(result) == (
        "refresh-seal: error: no tap to run: name it first (refresh-seal TAP ...) or set "
        "REFRESH_SEAL_TAP"
    )
