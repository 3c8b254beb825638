"""The pytest plugin every suite of the repository loads (the `pytest11` entry point): a real
PostgreSQL, never a silent skip; the soak and slow markers; the third-party peers' report.

Installing safe-singer-testing is all a package's tests need to get these, whichever folder
pytest starts in (the repository root or a package's own).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from safe_singer_testing import peers
from safe_singer_testing.postgres import PgServer, find_server, fresh_database

MARKERS = (
    "soak: long-running soak tests, only with `make soak`",
    "slow: takes tens of seconds; starts first so parallel workers finish together",
)


def pytest_configure(config: pytest.Config) -> None:
    """The markers this plugin gives a meaning to are declared with it, not in each pyproject."""
    for marker in MARKERS:
        config.addinivalue_line("markers", marker)
    # The programs the tests start may write .pyc files. With PYTHONDONTWRITEBYTECODE set (this
    # machine's shell sets it), every start of a program from a venv installed without bytecode
    # (the peers' in .peers/, Meltano's plugin venvs, `uv tool install`'s) compiled its imports
    # again: MeltanoLabs target-postgres --about took 3.5 s instead of 1.3 s.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Tests marked slow start first, so parallel workers (`make test`) do not end on one.
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
    if os.environ.get("RUN_SOAK"):
        return
    skip = pytest.mark.skip(reason="soak test: run with `make soak`")
    for item in items:
        if item.get_closest_marker("soak"):  # not `keywords`: tests/integration/soak/ is one
            item.add_marker(skip)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Under pytest-xdist, a worker hands what it did with the peers to the controller."""
    if hasattr(session.config, "workeroutput"):
        session.config.workeroutput["peers"] = dict(peers.REPORT)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    for requirement, what in getattr(node, "workeroutput", {}).get("peers", {}).items():
        if requirement not in peers.REPORT or what.startswith("installed"):
            peers.REPORT[requirement] = what


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The first run pays for the peers' venvs: say so, so the time is not a mystery."""
    if peers.REPORT:
        terminalreporter.write_sep("-", "third-party peers (.peers/)")
        for requirement, what in sorted(peers.REPORT.items()):
            terminalreporter.write_line(f"{requirement}: {what}")


@pytest.fixture(scope="session")
def pg_admin() -> PgServer:
    """The provisioned server (DATABASE_URL, PG*, 127.0.0.1:5432, or embedded pgserver)."""
    try:
        return find_server()
    except Exception as exc:
        pytest.fail(
            f"No PostgreSQL for the tests: {exc}\n"
            "Start one (e.g. `pg_ctlcluster 15 main start`), set DATABASE_URL, "
            "or `make install` so the embedded pgserver can start.",
            pytrace=False,
        )


@pytest.fixture
def pg_db(pg_admin: PgServer) -> Iterator[PgServer]:
    """A fresh, empty database for one test, dropped afterwards."""
    with fresh_database(pg_admin) as db:
        yield db
