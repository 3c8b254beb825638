"""The README's quick start is exactly `make demo` and `make test`, and `make demo` runs as
written: it exits 0 and prints what landed. (`make test` is what `.ci/run` runs.)"""

from __future__ import annotations

import os
import re
import subprocess
import uuid

import psycopg
import pytest
from psycopg import sql

from safe_singer_testing.postgres import REPO_ROOT, PgServer

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("repo-meltano-project")]


def quick_start_commands() -> list[str]:
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme[readme.index("## Quick start") :].split("\n## ")[0]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block, "the quick start has no sh block"
    return [line.split("#")[0].strip() for line in block.group(1).splitlines() if line.strip()]


def test_quick_start_is_make_demo_then_make_test() -> None:
    assert quick_start_commands() == ["make demo", "make test"]
    assert "make test" in (REPO_ROOT / ".ci" / "run").read_text()


def test_make_demo_runs_as_written(pg_admin: PgServer) -> None:
    name = f"t_demo_{uuid.uuid4().hex[:12]}"
    env = {**os.environ, "DEMO_DATABASE": name}
    try:
        done = subprocess.run(
            ["make", "demo"],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        with psycopg.connect(pg_admin.conninfo(), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"demo database: {name}" in done.stdout
    assert "every pipeline above exited 0" in done.stdout, done.stdout[-3000:]
