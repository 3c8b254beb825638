"""Run the target as users do (its console script) against the test's own database."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import script
from tests.support.postgres import PgServer


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str

    @property
    def states(self) -> list[Any]:
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]


RunTarget = Callable[..., Run]


@pytest.fixture
def run_target(pg_db: PgServer, tmp_path: Path) -> RunTarget:
    """Feed messages (dicts or raw lines) to `target-postgres-atomic` and collect its output."""

    def run(messages: Iterable[dict[str, Any] | str], **settings: Any) -> Run:
        config = {**pg_db.target_config(), **settings}
        config_path = tmp_path / "config.json"
        config_path.write_text(json.dumps(config))
        lines = [m if isinstance(m, str) else json.dumps(m) for m in messages]
        done = subprocess.run(
            [script("target-postgres-atomic"), "--config", str(config_path)],
            input="\n".join(lines) + "\n",
            capture_output=True,
            text=True,
            timeout=120,
        )
        return Run(done.returncode, done.stdout, done.stderr)

    return run


@pytest.fixture
def rows(pg_db: PgServer) -> Callable[..., list[tuple[Any, ...]]]:
    """Rows of a query against the test database."""

    def query(statement: str, *params: Any) -> list[tuple[Any, ...]]:
        with pg_db.connect() as conn:
            return conn.execute(statement, params or None).fetchall()  # type: ignore[arg-type]

    return query
