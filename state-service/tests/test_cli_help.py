"""`state-service --help` works and names its database setting."""

import subprocess

from safe_singer_testing.cli import script


def test_help_names_database_option() -> None:
    result = subprocess.run([script("state-service"), "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    assert "--db" in result.stdout
