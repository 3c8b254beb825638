"""Each tap's config validation names a bad secret setting without printing its value."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from safe_singer_testing.cli import script

SECRET = "Zq7-s3cr3t-never-logged"


@pytest.mark.parametrize(
    ("plugin", "config"),
    [
        ("tap-jira-safe", {"domain": "127.0.0.1:9", "api_token": [SECRET]}),
        ("tap-jira-safe", {"domain": "127.0.0.1:9", "access_token": {"t": SECRET}}),
        ("tap-dynamodb-streams", {"tables": ["t"], "aws_secret_access_key": [SECRET]}),
        ("tap-dynamodb-streams", {"tables": ["t"], "aws_session_token": 7310558913}),
    ],
)
def test_taps_do_not_print_a_secret_of_the_wrong_type(plugin, config, tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    result = subprocess.run(
        [script(plugin), "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "Config validation failed" in result.stderr, result.stderr
    assert SECRET not in result.stderr + result.stdout
    assert "7310558913" not in result.stderr + result.stdout
