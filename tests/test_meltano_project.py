"""The Meltano project installs from the repo and knows all three plugins."""

import subprocess

from tests.support.cli import script
from tests.support.postgres import REPO_ROOT


def test_meltano_install_succeeds() -> None:
    result = subprocess.run(
        [script("meltano"), "install"], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Installed 4/4 plugins" in result.stdout + result.stderr


def test_meltano_lists_plugin_settings() -> None:
    result = subprocess.run(
        [script("meltano"), "config", "list", "tap-jira-safe", "--all"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    for setting in ("domain", "api_token", "lookback_minutes", "reconcile_deletes"):
        assert setting in result.stdout
