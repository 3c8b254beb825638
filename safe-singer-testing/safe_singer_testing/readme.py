"""Commands the docs show, read from the docs themselves so tests and docs cannot drift.

A block is marked in the Markdown as
`<!-- NAME:begin -->`, a fenced block (```sh, ```json), `<!-- NAME:end -->`.
"""

from __future__ import annotations

import re
from pathlib import Path

from safe_singer_testing.postgres import REPO_ROOT


def block(name: str, doc: str = "README.md", lang: str = "sh") -> str:
    """The fenced block `name` of `doc` (a path relative to the repository)."""
    text = (REPO_ROOT / doc).read_text()
    pattern = rf"<!-- {name}:begin -->\n```{lang}\n(.*?)```\n<!-- {name}:end -->"
    found = re.search(pattern, text, re.S)
    assert found, f"{doc} has no `{name}` block"
    return found.group(1)


def linked_venv(workdir: Path) -> Path:
    """`workdir` with `.venv` pointing at the repository's: `.venv/bin/...` runs as written."""
    (workdir / ".venv").symlink_to(REPO_ROOT / ".venv")
    return workdir
