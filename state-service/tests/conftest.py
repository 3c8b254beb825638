"""Every state-service test runs on SQLite and on PostgreSQL, through the real CLI."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from sqlalchemy import select
from state_service.report import read_bookmark, run_history, status
from state_service.schema import runs
from state_service.store import Store

from safe_singer_testing.cli import script

FIXTURES = Path(__file__).parent / "fixtures"
PY = sys.executable
# Short leases keep the suite quick; heartbeats still land several times per lease.
FAST = ["--lease-seconds", "2", "--heartbeat-seconds", "0.4"]
DEADLINE = 60.0  # a guard against hanging, never an assertion about speed


class Service:
    """One state database plus helpers to drive the CLI against it and to read it back."""

    FAST = FAST

    def __init__(self, url: str, workdir: Path) -> None:
        self.url, self.workdir = url, workdir
        self.procs: list[subprocess.Popen[str]] = []
        self._store: Store | None = None

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = Store(self.url)
        return self._store

    def argv(self, *args: str, launcher: list[str] | None = None) -> list[str]:
        head = [PY, *launcher] if launcher else [script("state-service")]
        return [*head, "--db", self.url, *args]

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("STATE_SERVICE_")}
        env.update(extra)
        return env

    def cli(
        self, *args: str, launcher: list[str] | None = None, stdin: str = "", **env: str
    ) -> Any:
        return subprocess.run(
            self.argv(*args, launcher=launcher),
            input=stdin,
            env=self.env(**env),
            capture_output=True,
            text=True,
            timeout=DEADLINE,
            cwd=self.workdir,
        )

    def spawn(self, *args: str, launcher: list[str] | None = None, **env: str) -> Any:
        proc = subprocess.Popen(
            self.argv(*args, launcher=launcher),
            env=self.env(**env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=self.workdir,
            start_new_session=True,
        )
        self.procs.append(proc)
        return proc

    @staticmethod
    def fixture(name: str) -> str:
        return str(FIXTURES / name)

    def singer(self) -> list[str]:
        return [
            "--tap",
            f"{PY} {FIXTURES / 'counter_tap.py'}",
            "--target",
            f"{PY} {FIXTURES / 'echo_target.py'}",
        ]

    def hold(self, release: Path) -> list[str]:
        """A command that holds the lease until ``release`` exists."""
        return ["--", PY, str(FIXTURES / "wait_for_file.py"), str(release)]

    def runs(self, pipeline: str) -> list[dict[str, Any]]:
        return list(reversed(run_history(self.store, pipeline, 100)))

    def store_row(self, pipeline: str, run_id: int) -> Any:
        """The raw run row, timestamps as stored."""
        with self.store.transaction() as conn:
            return conn.execute(select(runs).where(runs.c.run_id == run_id)).one()

    def bookmark(self, pipeline: str) -> Any:
        state = read_bookmark(self.store, pipeline)
        return None if state is None else json.loads(state)

    def holder(self, pipeline: str) -> str:
        rows = [r for r in status(self.store) if r["pipeline"] == pipeline]
        return rows[0]["holder"] if rows else "-"

    def wait_until(self, what: str, check: Any) -> None:
        deadline = time.monotonic() + DEADLINE
        while not check():
            if time.monotonic() > deadline:
                pytest.fail(f"gave up waiting for {what}")
            time.sleep(0.1)

    def wait_expired(self, pipeline: str) -> None:
        """Until the database clock says the holder's lease has run out."""
        self.wait_until(
            f"{pipeline} lease expiry", lambda: self.holder(pipeline).endswith("(expired)")
        )

    def close(self) -> None:
        """Kill every process a test started, with the children they started in turn."""
        for proc in self.procs:
            if proc.poll() is None:
                tree = psutil.Process(proc.pid).children(recursive=True)
                for child in [psutil.Process(proc.pid), *tree]:
                    with contextlib.suppress(psutil.NoSuchProcess):
                        child.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.communicate(timeout=10)
        if self._store is not None:
            self._store.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def svc(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Service]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'state.db'}"
    else:
        url = request.getfixturevalue("pg_db").url("postgresql+psycopg")
    service = Service(url, tmp_path)
    try:
        yield service
    finally:
        service.close()
