"""`target-postgres-atomic --about` works and lists the settings users configure."""

import subprocess

from safe_singer_testing.cli import about, script

EXPECTED_SETTINGS = {
    "sqlalchemy_url",
    "host",
    "port",
    "user",
    "password",
    "database",
    "default_target_schema",
    "hard_delete",
    "load_method",
    "batch_size_rows",
}


def test_about_json_lists_settings() -> None:
    data = about("target-postgres-atomic")
    assert data["name"] == "target-postgres-atomic"
    assert set(data["settings"]["properties"]) >= EXPECTED_SETTINGS


def test_help_exits_zero() -> None:
    result = subprocess.run(
        [script("target-postgres-atomic"), "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0
    assert "--config" in result.stdout
