"""`tap-dynamodb-streams --about` works and lists the settings users configure."""

import json
import subprocess
from pathlib import Path

import pytest

from safe_singer_testing.cli import about, script

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


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("not_found_retries", -1),  # would report every shard vanished without asking AWS
        ("max_parallel_shards", 0),  # no shard would ever be read
        ("max_records_per_request", 1001),  # GetRecords' Limit is 1 to 1000
        ("describe_stream_per_second", 0),
        ("open_shard_idle_seconds", -1),
    ],
)
def test_a_setting_out_of_its_range_is_refused_naming_it(
    tmp_path: Path, setting: str, value: int
) -> None:
    """Never silently replaced by a default: refused before any AWS call."""
    path = tmp_path / "config.json"
    config = {"tables": ["t"], "endpoint_url": "http://127.0.0.1:9", setting: value}
    path.write_text(json.dumps(config))
    result = subprocess.run(
        [script("tap-dynamodb-streams"), "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "Config validation failed" in result.stderr and setting in result.stderr
