"""Run the project's console scripts the way a user does: as separate processes."""

from __future__ import annotations

import json
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
