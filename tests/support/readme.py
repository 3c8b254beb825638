"""Commands the docs show, read from the docs themselves so tests and docs cannot drift.

A block is marked in the Markdown as
`<!-- NAME:begin -->`, a ```sh fenced block, `<!-- NAME:end -->`.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.support.postgres import REPO_ROOT


def block(name: str, doc: str = "README.md") -> str:
    """The shell block `name` of `doc` (a path relative to the repository)."""
    text = (REPO_ROOT / doc).read_text()
    found = re.search(rf"<!-- {name}:begin -->\n```sh\n(.*?)```\n<!-- {name}:end -->", text, re.S)
    assert found, f"{doc} has no `{name}` block"
    return found.group(1)


def linked_venv(workdir: Path) -> Path:
    """`workdir` with `.venv` pointing at the repository's: `.venv/bin/...` runs as written."""
    (workdir / ".venv").symlink_to(REPO_ROOT / ".venv")
    return workdir
