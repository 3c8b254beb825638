"""Run the project's console scripts the way a user does: as separate processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent


def script(name: str) -> str:
    """Path of a console script installed in the running venv."""
    path = BIN / name
    if not path.exists():
        raise FileNotFoundError(f"{name} is not installed in {BIN}: run `make install`.")
    return str(path)


def about(name: str) -> dict[str, Any]:
    """The parsed `--about --format=json` of a Singer plugin."""
    out = subprocess.run(
        [script(name), "--about", "--format=json"], check=True, capture_output=True, text=True
    ).stdout
    data: dict[str, Any] = json.loads(out)
    return data


def run(
    name: str,
    *args: str,
    env: dict[str, str] | None = None,
    stdin: str = "",
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """A console script run to its end on ``stdin``, with ``env`` added to the environment."""
    return subprocess.run(
        [script(name), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The one error line a refusal ends with, after checking that no traceback came before
    it (tracebacks are for debug level only)."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines, "nothing on stderr"
    return lines[-1]
