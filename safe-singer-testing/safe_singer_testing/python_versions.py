"""`make lint`'s check that each package runs on the lowest Python its pyproject declares:
vermin reads every module (annotations evaluated: msgspec and dataclasses evaluate them) and
names any construct newer than that.

Usage: `.venv/bin/python -m safe_singer_testing.python_versions`
"""

from __future__ import annotations

import subprocess
import sys

from safe_singer_testing import dist
from safe_singer_testing.cli import BIN
from safe_singer_testing.postgres import REPO_ROOT


def modules(folder: str) -> list[str]:
    """The import packages a package folder ships (its wheel's `packages`)."""
    toml = dist.project_file(folder)
    shipped: list[str] = toml["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    return [str(REPO_ROOT / folder / name) for name in shipped]


def violations(folder: str) -> str:
    """vermin's report of what in `folder` needs a newer Python than declared ('' if none)."""
    minimum = dist.minimum_python(folder)
    done = subprocess.run(
        [str(BIN / "vermin"), "--no-tips", "--violations", "--eval-annotations",
         f"--target={minimum}-", *modules(folder)],
        capture_output=True,
        text=True,
    )  # fmt: skip
    if done.returncode == 0:
        return ""
    return f"{folder} declares requires-python >={minimum} but needs more:\n{done.stdout}"


def main() -> int:
    failures = [report for folder in dist.packages() if (report := violations(folder))]
    for report in failures:
        print(report, file=sys.stderr)
    if not failures:
        print(f"vermin: {len(dist.packages())} packages run on the Python they declare")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
