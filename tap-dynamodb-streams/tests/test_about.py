"""`tap-dynamodb-streams --about` works and lists the settings users configure."""

import json
import subprocess
from pathlib import Path

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


def test_a_negative_not_found_retries_is_refused_naming_the_setting(tmp_path: Path) -> None:
    """-1 would report every shard vanished without asking AWS once."""
    path = tmp_path / "config.json"
    config = {"tables": ["t"], "endpoint_url": "http://127.0.0.1:9", "not_found_retries": -1}
    path.write_text(json.dumps(config))
    result = subprocess.run(
        [script("tap-dynamodb-streams"), "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "Config validation failed" in result.stderr and "not_found_retries" in result.stderr
