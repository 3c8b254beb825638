"""Crash soak machinery: run a pipeline under a wrapper and SIGKILL one of its processes.

A wrapper is `state-service run` or `meltano run`; the victim is the tap, the target or the
wrapper itself, chosen by a seeded generator, at a random moment while the victim is alive.
The checks are the promises of DESIGN.md on the whole system: no bookmark ever moves backwards,
no run stays RUNNING without a live holder, and (after a clean run) the tables equal the source.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
from sqlalchemy import text
from state_service.store import Store

VICTIMS = ("tap", "target", "wrapper")
LEASE_SECONDS = 6  # short, so a killed wrapper's lease is reclaimable soon; 6x the heartbeat
HEARTBEAT_SECONDS = 1
ORPHAN_GRACE_SECONDS = 30.0


@dataclass
class Figures:
    """What a soak did, printed at its end."""

    seed: int
    kills: Counter[str] = field(default_factory=Counter)
    runs: int = 0
    failed_runs: int = 0
    refused_starts: int = 0
    bookmarks_checked: int = 0
    rows_compared: int = 0
    mismatches: int = 0

    def report(self) -> str:
        per_victim = ", ".join(f"{k} {v}" for k, v in sorted(self.kills.items()))
        return (
            f"soak seed {self.seed}: kills {sum(self.kills.values())} ({per_victim}), "
            f"runs {self.runs} (failed {self.failed_runs}, refused starts "
            f"{self.refused_starts}), bookmarks checked {self.bookmarks_checked}, "
            f"rows compared {self.rows_compared}, mismatches {self.mismatches}"
        )


@dataclass
class Pipeline:
    """One pipeline under one wrapper: how to start it and where its state and rows go."""

    source: str
    wrapper: str  # "state-service" or "meltano"
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    state_id: str
    schema: str
    tap: str  # console script names, to find the processes to kill
    target: str
    expected_seconds: float = 5.0  # learnt from runs that ended by themselves

    @property
    def name(self) -> str:
        return f"{self.source} under {self.wrapper}"


@dataclass
class Attempt:
    returncode: int
    killed: str | None
    refused: bool
    log: str


def _named(root: psutil.Process, script: str) -> psutil.Process | None:
    """The descendant of ``root`` running console script ``script``."""
    with suppress(psutil.Error):
        for proc in root.children(recursive=True):
            with suppress(psutil.Error):
                if any(Path(arg).name == script for arg in proc.cmdline()[:2]):
                    return proc
    return None


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _reap_orphans(pids: list[int], group: int) -> None:
    """Processes a killed wrapper left behind may finish their work; then they must go."""
    deadline = time.monotonic() + ORPHAN_GRACE_SECONDS
    while time.monotonic() < deadline and not all(_gone(p) for p in pids):
        time.sleep(0.1)
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signal.SIGKILL)


def run_once(
    pipeline: Pipeline,
    log_path: Path,
    kill: tuple[str, float] | None,
    timeout: float = 300,
) -> Attempt:
    """Run the pipeline; with ``kill=(victim, delay)`` SIGKILL the victim once it is alive
    after ``delay`` seconds (unless the run ends first)."""
    scripts = {"tap": pipeline.tap, "target": pipeline.target}
    started = time.monotonic()
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            pipeline.argv,
            cwd=pipeline.cwd,
            env=pipeline.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # the group of a killed wrapper can still be cleaned up
        )
    root = psutil.Process(proc.pid)
    killed: str | None = None
    orphans: list[int] = []
    try:
        while kill is not None and killed is None and proc.poll() is None:
            victim, delay = kill
            if time.monotonic() - started >= delay:
                target = root if victim == "wrapper" else _named(root, scripts[victim])
                if target is not None:
                    with suppress(psutil.Error):
                        orphans = [p.pid for p in root.children(recursive=True)]
                        target.send_signal(signal.SIGKILL)
                        killed = victim
            time.sleep(0.05)
        returncode = proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    if killed == "wrapper":
        _reap_orphans(orphans, proc.pid)
    elif killed is None and returncode == 0:
        pipeline.expected_seconds = time.monotonic() - started
    output = log_path.read_text(errors="replace")
    refused = returncode != 0 and killed is None and "is held by run" in output
    return Attempt(returncode, killed, refused, output)


def run_until_clean(pipeline: Pipeline, log_path: Path, figures: Figures, tries: int = 6) -> None:
    """A run nobody kills; a start refused by a dead run's lease waits for the lease to go."""
    for _ in range(tries):
        attempt = run_once(pipeline, log_path, kill=None)
        figures.runs += 1
        if attempt.returncode == 0:
            return
        figures.failed_runs += 1
        if not attempt.refused:
            raise AssertionError(
                f"clean run of {pipeline.name} exited {attempt.returncode}:\n{attempt.log[-4000:]}"
            )
        figures.refused_starts += 1
        time.sleep(LEASE_SECONDS)
    raise AssertionError(f"{pipeline.name}: still refused after {tries} tries")


def run_with_kill(
    pipeline: Pipeline, log_path: Path, victim: str, rng: random.Random, figures: Figures
) -> bool:
    """One run with a SIGKILL at a random moment; True when the kill landed."""
    delay = rng.uniform(0.1, 1.0) * pipeline.expected_seconds
    attempt = run_once(pipeline, log_path, kill=(victim, delay))
    figures.runs += 1
    if attempt.returncode != 0:
        figures.failed_runs += 1
    if attempt.refused:
        figures.refused_starts += 1
        time.sleep(LEASE_SECONDS)
    if attempt.killed:
        figures.kills[f"{pipeline.wrapper}/{attempt.killed}"] += 1
    elif attempt.returncode != 0 and not attempt.refused:
        raise AssertionError(
            f"{pipeline.name} failed without a kill ({attempt.returncode}):\n{attempt.log[-4000:]}"
        )
    return attempt.killed is not None


# -- checks -------------------------------------------------------------------------------


def singer_state(stored: str | None) -> dict[str, Any]:
    """The Singer state a stored bookmark hands the next run (Meltano's: partial over completed)."""
    if stored is None:
        return {}
    value: dict[str, Any] = json.loads(stored)
    if "completed" not in value and "partial" not in value:
        return value
    merged = dict(value.get("completed", {}).get("singer_state") or {})
    return _deep_merge(merged, value.get("partial", {}).get("singer_state") or {})


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    for key, item in over.items():
        held = base.get(key)
        base[key] = (
            _deep_merge(dict(held), item)
            if isinstance(held, dict) and isinstance(item, dict)
            else item
        )
    return base


def positions(state: dict[str, Any], path: tuple[str, ...] = ()) -> Iterator[tuple[str, Any]]:
    """Every position in a Singer state: `replication_key_value`s, shards' sequence numbers."""
    for key, value in state.items():
        here = (*path, key)
        if isinstance(value, dict):
            yield from positions(value, here)
        elif key == "replication_key_value" and "progress_markers" not in path:
            yield "/".join(here), datetime.fromisoformat(str(value))
        elif key == "sequence_number" and value is not None:
            yield "/".join(here), int(value)
        elif key == "ended":
            yield "/".join(here), bool(value)


def bookmark_history(store: Store, state_id: str) -> list[str | None]:
    with store.reading() as conn:
        rows = conn.execute(
            text(
                "SELECT state FROM state_service_bookmark_history WHERE pipeline = :p ORDER BY id"
            ),
            {"p": state_id},
        )
        return [row[0] for row in rows]


def backwards_moves(history: list[str | None]) -> list[str]:
    """Every position that some stored bookmark put before an earlier one."""
    found: list[str] = []
    high: dict[str, Any] = {}
    for number, stored in enumerate(history):
        for where, value in positions(singer_state(stored)):
            if where in high and value < high[where]:
                found.append(f"bookmark #{number}: {where} {value} < {high[where]}")
            high[where] = max(value, high.get(where, value))
    return found


def dead_running_runs(store: Store) -> list[str]:
    """Runs still RUNNING whose holder process is gone (a lease nobody will ever give back)."""
    with store.reading() as conn:
        rows = conn.execute(
            text(
                "SELECT run_id, pipeline, host, pid FROM state_service_runs"
                " WHERE status = 'RUNNING'"
            )
        ).all()
    here = socket.gethostname()
    return [
        f"run {run_id} of {pipeline} ({host}:{pid})"
        for run_id, pipeline, host, pid in rows
        if host != here or not psutil.pid_exists(pid) or _gone(pid)
    ]


def compare_rows(
    name: str, truth: dict[str, Any], loaded: dict[str, Any], figures: Figures
) -> list[str]:
    """Row-by-row differences between a source and its table, counted into ``figures``."""
    keys = set(truth) | set(loaded)
    figures.rows_compared += len(keys)
    wrong = sorted(k for k in keys if truth.get(k) != loaded.get(k))
    figures.mismatches += len(wrong)
    return [f"{name}: {k} source={truth.get(k)!r} table={loaded.get(k)!r}" for k in wrong[:10]]


def soak_rounds(
    pipelines: list[Pipeline],
    kills: int,
    rng: random.Random,
    figures: Figures,
    workdir: Path,
    change: Callable[[str], None],
    after_run: Callable[[Pipeline], None],
) -> None:
    """Killed runs over the pipelines in a seeded order until ``kills`` kills landed.

    Victims come round in shuffled turns, so every kind is killed under every wrapper."""
    turns: list[tuple[Pipeline, str]] = []
    landed = 0
    while landed < kills:
        if not turns:
            turns = [(p, v) for p in pipelines for v in VICTIMS]
            rng.shuffle(turns)
        pipeline, victim = turns.pop()
        change(pipeline.source)
        log = workdir / f"run-{figures.runs:04d}.log"
        if run_with_kill(pipeline, log, victim, rng, figures):
            landed += 1
        after_run(pipeline)
