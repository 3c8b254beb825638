"""Run the target as users do (its console script) against the test's own database."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from target_postgres_atomic.cli import main

from safe_singer_testing.cli import script
from safe_singer_testing.postgres import PgServer


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str

    @property
    def states(self) -> list[Any]:
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]


RunTarget = Callable[..., Run]


def _cli_in_child(args: list[str], stdin: str, stdout: str, stderr: str) -> None:
    """The console script's code path in a forked process: same CLI, no interpreter start-up."""
    for fd, path, flags in (
        (0, stdin, os.O_RDONLY),
        (1, stdout, os.O_WRONLY | os.O_CREAT),
        (2, stderr, os.O_WRONLY | os.O_CREAT),
    ):
        os.dup2(os.open(path, flags), fd)
    sys.stdin = open(0, closefd=False)  # noqa: SIM115
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
    sys.argv = ["target-postgres-atomic", *args]
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    except BaseException:
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _line(message: dict[str, Any] | str | bytes) -> bytes:
    if isinstance(message, bytes):
        return message
    return (message if isinstance(message, str) else json.dumps(message)).encode()


def fork_cli(args: list[str], stdin: Path, workdir: Path, timeout: float = 120) -> Run:
    """`target-postgres-atomic ARGS < stdin` through the console script's code path, forked
    (`_cli_in_child`); its exit code and output."""
    out, err = workdir / "run.out", workdir / "run.err"
    for path in (out, err):
        path.write_text("")
    child = multiprocessing.get_context("fork").Process(
        target=_cli_in_child, args=(args, str(stdin), str(out), str(err))
    )
    child.start()
    child.join(timeout)
    if child.is_alive():
        child.kill()
        child.join()
        pytest.fail(f"target did not finish in {timeout:.0f} s:\n{err.read_text()[-3000:]}")
    assert child.exitcode is not None
    return Run(child.exitcode, out.read_text(), err.read_text())


@pytest.fixture
def run_target(pg_db: PgServer, tmp_path: Path) -> RunTarget:
    """Feed messages (dicts or raw lines) to `target-postgres-atomic` and collect its output."""

    def run(messages: Iterable[dict[str, Any] | str | bytes], **settings: Any) -> Run:
        config = {**pg_db.target_config(), **settings}
        paths = {name: tmp_path / f"run.{name}" for name in ("config", "in")}
        paths["config"].write_text(json.dumps(config))
        lines = [_line(m) for m in messages]
        paths["in"].write_bytes(b"\n".join(lines) + b"\n")
        return fork_cli(["--config", str(paths["config"])], paths["in"], tmp_path)

    return run


@pytest.fixture
def target_cli(tmp_path: Path) -> Callable[[list[str], Path], Run]:
    """`target-postgres-atomic ARGS < FILE` (the forked console-script path of `run_target`),
    for a test that brings its own config and input file."""
    return lambda args, stdin: fork_cli(args, stdin, tmp_path, timeout=300)


@pytest.fixture
def rows(pg_db: PgServer) -> Callable[..., list[tuple[Any, ...]]]:
    """Rows of a query against the test database."""

    def query(statement: str, *params: Any) -> list[tuple[Any, ...]]:
        with pg_db.connect() as conn:
            return conn.execute(statement, params or None).fetchall()  # type: ignore[arg-type]

    return query


@pytest.fixture
def ci_collation(pg_db: PgServer) -> str:
    """A case-insensitive (nondeterministic) ICU collation `ci` in the test database: 'A'
    and 'a' are equal in it, though not byte-wise."""
    with pg_db.connect() as conn:
        try:
            conn.execute(
                "CREATE COLLATION ci (provider = icu, locale = 'und-u-ks-level2', "
                "deterministic = false)"
            )
        except psycopg.Error as exc:
            pytest.fail(f"this PostgreSQL server cannot create an ICU collation: {exc}")
        conn.commit()
    return "ci"


@pytest.fixture
def start_target(pg_db: PgServer, tmp_path: Path) -> Iterator[Any]:
    """Start the target's console script as a shell pipeline would: on an input file of
    `messages`, or with a pipe for stdin that the test feeds; `settings` join the config.
    Processes still running when the test ends are killed."""
    procs: list[subprocess.Popen[str]] = []

    def start(
        messages: list[dict[str, Any]] | None = None, **settings: Any
    ) -> subprocess.Popen[str]:
        name = f"load{len(procs)}"
        config = tmp_path / f"{name}.json"
        config.write_text(json.dumps({**pg_db.target_config(), **settings}))
        stdin: Any = subprocess.PIPE
        if messages is not None:
            (tmp_path / f"{name}.in").write_text("".join(json.dumps(m) + "\n" for m in messages))
            stdin = (tmp_path / f"{name}.in").open()
        proc = subprocess.Popen(
            [script("target-postgres-atomic"), "--config", str(config)],
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
