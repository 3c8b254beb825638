"""`tap-dynamodb-streams --about` works and lists the settings users configure."""

import subprocess

from tests.support.cli import about, script

EXPECTED_SETTINGS = {
    "tables",
    "region_name",
    "endpoint_url",
    "streams_endpoint_url",
    "start_position",
    "max_run_seconds",
}


def test_about_json_lists_settings() -> None:
    data = about("tap-dynamodb-streams")
    assert data["name"] == "tap-dynamodb-streams"
    assert set(data["settings"]["properties"]) >= EXPECTED_SETTINGS


def test_help_exits_zero() -> None:
    result = subprocess.run(
        [script("tap-dynamodb-streams"), "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0
    assert "--config" in result.stdout
