"""A bad config is refused in every mode with one line naming what is wrong (issue 19 items
14 and 15): a missing required setting, a misspelled one, a missing or broken config file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from safe_singer_testing.cli import error_line, run

TOOL = "tap-jira-safe"
MISSING_DOMAIN = f"{TOOL}: error: Config validation failed: 'domain' is a required property"


def config_file(tmp_path: Path, settings: object) -> str:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(settings))
    return str(path)


@pytest.mark.parametrize("mode", [[], ["--discover"], ["--test"]], ids=["sync", "discover", "test"])
def test_a_missing_required_setting_is_refused_in_every_mode(
    tmp_path: Path, mode: list[str]
) -> None:
    result = run(TOOL, *mode, "--config", config_file(tmp_path, {"email": "a@example.com"}))
    assert result.returncode == 1
    assert error_line(result) == MISSING_DOMAIN


@pytest.mark.parametrize("mode", [[], ["--discover"]], ids=["sync", "discover"])
def test_a_misspelled_setting_is_refused_naming_the_right_one(
    tmp_path: Path, mode: list[str]
) -> None:
    # An unreachable Jira, tried once: the refusal comes before any request.
    settings = {"domain": "http://127.0.0.1:9", "api_tokn": "t0ken-value", "max_retries": 1}
    result = run(TOOL, *mode, "--config", config_file(tmp_path, settings))
    assert result.returncode == 1
    assert error_line(result) == (
        f"{TOOL}: error: Config validation failed: setting 'api_tokn' would be ignored, so it "
        f"is refused: not a setting of {TOOL}; did you mean 'api_token'? (see --about)"
    )


def test_a_missing_config_file_is_one_line(tmp_path: Path) -> None:
    result = run(TOOL, "--discover", "--config", str(tmp_path / "nowhere.json"))
    assert result.returncode == 1
    assert error_line(result) == (
        f"{TOOL}: error: config file '{tmp_path / 'nowhere.json'}' cannot be read: "
        "No such file or directory"
    )


def test_a_config_file_that_is_not_json_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text('{"domain": ')
    result = run(TOOL, f"--config={path}")
    assert result.returncode == 1
    assert error_line(result) == (
        f"{TOOL}: error: config file '{path}' is not valid JSON: "
        "Expecting value: line 1 column 12 (char 11)"
    )


def test_a_config_file_that_is_not_an_object_is_one_line(tmp_path: Path) -> None:
    path = config_file(tmp_path, ["domain"])
    result = run(TOOL, "--config", path)
    assert result.returncode == 1
    assert error_line(result) == (
        f"{TOOL}: error: config file '{path}' holds a JSON list: "
        "a JSON object of settings is expected"
    )


def test_about_needs_no_config() -> None:
    result = run(TOOL, "--about", "--format=json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["name"] == TOOL


def test_the_traceback_comes_only_at_debug_level(tmp_path: Path) -> None:
    path = config_file(tmp_path, {})
    result = run(TOOL, "--discover", "--config", path, env={"TAP_JIRA_SAFE_DEBUG": "1"})
    assert result.returncode == 1
    assert "Traceback" in result.stderr
    assert result.stderr.strip().splitlines()[-1] == MISSING_DOMAIN
