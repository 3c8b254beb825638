"""The shared pieces on their own: unknown settings, config files, the one error line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from singer_sdk import Stream, Tap
from singer_sdk import typing as th
from typing_extensions import override

from safe_singer_common.cli import debug_wanted, one_line
from safe_singer_common.plugin import (
    ConfigRefused,
    config_file_problem,
    refuse_bad_config,
    unknown_settings,
)
from safe_singer_common.redact import HIDDEN, redacted

SCHEMA = {
    "properties": {
        "api_token": {"type": "string", "secret": True},
        "domain": {"type": "string"},
    }
}


def test_an_unknown_setting_names_the_nearest_known_one() -> None:
    errors = unknown_settings({"domian": "x", "zzz": 1}, SCHEMA, "tap-x")
    assert errors == [
        "setting 'domian' would be ignored, so it is refused: not a setting of tap-x; "
        "did you mean 'domain'? (see --about)",
        "setting 'zzz' would be ignored, so it is refused: not a setting of tap-x (see --about)",
    ]


def test_a_peers_setting_gets_what_to_use_instead() -> None:
    errors = unknown_settings({"dbname": "x"}, SCHEMA, "target-x", {"dbname": "use database"})
    assert errors == ["setting 'dbname' would be ignored, so it is refused: use database"]


def test_a_secret_of_the_wrong_type_is_hidden_in_every_spelling() -> None:
    config = {"api_token": ["s3cr3t-value"]}
    errors = redacted([f"{config['api_token']!r} is not of type 'string'"], config, SCHEMA)
    assert errors == [f"{HIDDEN} is not of type 'string'"]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "cannot be read: No such file or directory"),
        ("{", "is not valid JSON: Expecting property name enclosed in double quotes"),
        ("[]", "holds a JSON list: a JSON object of settings is expected"),
        ('{"domain": "x"}', None),
    ],
)
def test_config_file_problems(tmp_path: Path, content: str | None, problem: str | None) -> None:
    path = tmp_path / "config.json"
    if content is not None:
        path.write_text(content)
    for argv in (["--config", str(path)], [f"--config={path}"]):
        found = config_file_problem(["--discover", *argv])
        if problem is None:
            assert found is None
        else:
            assert found is not None and found.startswith(f"config file '{path}' {problem}")


def test_env_config_is_not_a_file() -> None:
    assert config_file_problem(["--config", "ENV"]) is None


def test_one_line_keeps_an_error_on_one_line_and_escapes_control_characters() -> None:
    assert one_line("first\n  second\x1b[31m red") == "first second\\x1b[31m red"


@pytest.mark.parametrize(
    ("env", "wanted"),
    [
        ({}, False),
        ({"TAP_X_DEBUG": "1"}, True),
        ({"TAP_X_DEBUG": "0"}, False),
        ({"TAP_X_LOGLEVEL": "debug"}, True),
        ({"LOGLEVEL": "DEBUG"}, True),
        ({"LOGLEVEL": "INFO"}, False),
    ],
)
def test_debug_is_asked_for_per_tool_or_by_log_level(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], wanted: bool
) -> None:
    for name in ("TAP_X_DEBUG", "TAP_X_LOGLEVEL", "LOGLEVEL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert debug_wanted("tap-x") is wanted


def test_a_refusal_is_one_line_and_its_exit_code() -> None:
    program = (
        "from safe_singer_common.cli import refusing\n"
        "with refusing('tool-x', (ValueError,), code=3):\n"
        "    raise ValueError('bad input\\non two lines')\n"
    )
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True)
    assert result.returncode == 3
    assert result.stderr == "tool-x: error: bad input on two lines\n"
    assert result.stdout == ""


class NumberTap(Tap):
    """A plugin with the shared config validation and a number setting."""

    name = "tap-numbers"
    config_jsonschema = th.PropertiesList(
        th.Property("lookback_minutes", th.NumberType),
        th.Property("label", th.StringType),
    ).to_dict()

    @override
    def discover_streams(self) -> list[Stream]:
        return []

    @override
    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        return refuse_bad_config(self, super()._validate_config)


@pytest.mark.parametrize(("text", "number"), [("2.5", 2.5), ("7", 7)])
def test_a_number_setting_from_its_environment_variable_is_a_number(
    monkeypatch: pytest.MonkeyPatch, text: str, number: float
) -> None:
    """singer-sdk passes a number's variable on as text, which its validation refused."""
    monkeypatch.setenv("TAP_NUMBERS_LOOKBACK_MINUTES", text)
    monkeypatch.setenv("TAP_NUMBERS_LABEL", "5")
    tap = NumberTap(config={}, parse_env_config=True)
    assert tap.config["lookback_minutes"] == number
    assert tap.config["label"] == "5"  # a text setting keeps its text


def test_a_number_setting_given_as_text_in_a_config_file_is_still_refused() -> None:
    with pytest.raises(ConfigRefused, match="lookback_minutes"):
        NumberTap(config={"lookback_minutes": "2.5"})
