"""A bad config is refused in every mode with one line naming what is wrong (issue 19 items
14 and 15): a missing required setting, a misspelled one, a missing config file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from safe_singer_testing.cli import error_line, run

TOOL = "tap-dynamodb-streams"
MISSING_TABLES = f"{TOOL}: error: Config validation failed: 'tables' is a required property"
# Nothing listens there: a refusal must come before any AWS call.
UNREACHABLE = {"endpoint_url": "http://127.0.0.1:9", "region_name": "us-east-1"}


def config_file(tmp_path: Path, settings: object) -> str:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(settings))
    return str(path)


@pytest.mark.parametrize("mode", [[], ["--discover"], ["--test"]], ids=["sync", "discover", "test"])
def test_a_missing_required_setting_is_refused_in_every_mode(
    tmp_path: Path, mode: list[str]
) -> None:
    result = run(TOOL, *mode, "--config", config_file(tmp_path, UNREACHABLE))
    assert result.returncode == 1
    assert error_line(result) == MISSING_TABLES


@pytest.mark.parametrize("mode", [[], ["--discover"]], ids=["sync", "discover"])
def test_a_misspelled_setting_is_refused_naming_the_right_one(
    tmp_path: Path, mode: list[str]
) -> None:
    settings = {**UNREACHABLE, "tables": ["t"], "max_run_secs": 30}
    result = run(TOOL, *mode, "--config", config_file(tmp_path, settings))
    assert result.returncode == 1
    assert error_line(result) == (
        f"{TOOL}: error: Config validation failed: setting 'max_run_secs' would be ignored, so "
        f"it is refused: not a setting of {TOOL}; did you mean 'max_run_seconds'? (see --about)"
    )


def test_a_missing_config_file_is_one_line(tmp_path: Path) -> None:
    result = run(TOOL, "--config", str(tmp_path / "nowhere.json"))
    assert result.returncode == 1
    assert error_line(result) == (
        f"{TOOL}: error: config file '{tmp_path / 'nowhere.json'}' cannot be read: "
        "No such file or directory"
    )


def test_about_needs_no_config() -> None:
    result = run(TOOL, "--about", "--format=json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["name"] == TOOL


def test_the_traceback_comes_only_at_debug_level(tmp_path: Path) -> None:
    path = config_file(tmp_path, UNREACHABLE)
    result = run(TOOL, "--discover", "--config", path, env={"TAP_DYNAMODB_STREAMS_DEBUG": "1"})
    assert result.returncode == 1
    assert "Traceback" in result.stderr
    assert result.stderr.strip().splitlines()[-1] == MISSING_TABLES
