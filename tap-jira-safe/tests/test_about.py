"""`tap-jira-safe --about` works and lists the settings users configure."""

import subprocess

from safe_singer_testing.cli import about, script

EXPECTED_SETTINGS = {
    "domain",
    "api_token",
    "access_token",
    "start_date",
    "projects",
    "lookback_minutes",
    "reconcile_deletes",
}


def test_about_json_lists_settings() -> None:
    data = about("tap-jira-safe")
    assert data["name"] == "tap-jira-safe"
    assert set(data["settings"]["properties"]) >= EXPECTED_SETTINGS


def test_help_exits_zero() -> None:
    result = subprocess.run([script("tap-jira-safe"), "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    assert "--config" in result.stdout


def test_secrets_are_marked_secret() -> None:
    props = about("tap-jira-safe")["settings"]["properties"]
    assert props["api_token"].get("secret") is True
    assert props["access_token"].get("secret") is True
