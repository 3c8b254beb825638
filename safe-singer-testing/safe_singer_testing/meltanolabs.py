"""MeltanoLabs target-postgres's own test inputs, read from the installed peer package.

meltanolabs-target-postgres ships its tests inside the wheel (`target_postgres/tests/`): the
Singer files under `data_files/` and the configs of `core.py`. We read them from the peer's
venv (peers.py) and never copy them into this repository.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from safe_singer_testing.peers import MELTANOLABS_TARGET_POSTGRES, peer_script

# The settings of a peer test config that say where the database is; a test points them at
# its own database and keeps every other setting as the peer wrote it.
CONNECTION = ("host", "port", "user", "password", "database")


def _python() -> str:
    return str(Path(peer_script(MELTANOLABS_TARGET_POSTGRES)).parent / "python")


def package_dir() -> Path:
    """The installed `target_postgres` package folder of the peer."""
    found = subprocess.run(
        [_python(), "-c", "import os, target_postgres as p; print(os.path.dirname(p.__file__))"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if found.returncode != 0:
        pytest.fail(f"the peer's target_postgres package cannot be imported:\n{found.stderr}")
    return Path(found.stdout.strip())


def data_files() -> list[Path]:
    folder = package_dir() / "tests" / "data_files"
    files = sorted(folder.glob("*.singer"))
    if not files:
        pytest.fail(f"{MELTANOLABS_TARGET_POSTGRES.requirement} ships no data files in {folder}")
    return files


def test_config(function: str) -> dict[str, Any]:
    """The config one of the peer's `target_postgres.tests.core` functions returns."""
    found = subprocess.run(
        [
            _python(),
            "-c",
            "import json, sys; from target_postgres.tests import core; "
            f"json.dump(core.{function}(), sys.stdout)",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if found.returncode != 0:
        pytest.fail(f"target_postgres.tests.core.{function}() failed:\n{found.stderr[-2000:]}")
    config: dict[str, Any] = json.loads(found.stdout)
    return config


def about_settings() -> dict[str, Any]:
    """The peer's settings schema, from its `--about`."""
    out = subprocess.run(
        [peer_script(MELTANOLABS_TARGET_POSTGRES), "--about", "--format=json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    settings: dict[str, Any] = json.loads(out)["settings"]
    return settings
