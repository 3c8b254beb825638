"""Third-party Singer plugins from PyPI, each in its own venv under `.peers/` (git-ignored).

A venv is built once with the repo's `.venv/bin/uv` and reused by later runs; the end of the
test output says, per peer, whether it was installed (and how long that took) or reused. A
failed install fails the test with the command to run by hand, never a skip. Parallel test
workers take a lock per peer, so one builds the venv while the others wait for it.
"""

from __future__ import annotations

import fcntl
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest

from safe_singer_testing.postgres import REPO_ROOT

PEERS_DIR = REPO_ROOT / ".peers"
UV = REPO_ROOT / ".venv" / "bin" / "uv"
# What this session did per peer, printed at the end of the run (plugin.py).
REPORT: dict[str, str] = {}
LOCK_WAIT_SECONDS = 900.0  # longer than one install (two bounded uv commands) takes


@dataclass(frozen=True)
class Peer:
    """A PyPI distribution pinned to one version, and the console script we run from it."""

    requirement: str
    script: str
    # Dependencies pinned too where what a test proves depends on them, not only on the peer.
    pinned_dependencies: tuple[str, ...] = ()

    @property
    def venv(self) -> Path:
        pins = (self.requirement, *self.pinned_dependencies)
        return PEERS_DIR / "+".join(pin.replace("==", "-") for pin in pins)


# Pinned, so a new release on PyPI cannot change what the suite proves.
TARGET_JSONL = Peer("target-jsonl==0.1.4", "target-jsonl")
MELTANOLABS_TARGET_POSTGRES = Peer("meltanolabs-target-postgres==0.8.1", "target-postgres")
MELTANOLABS_TAP_POSTGRES = Peer("meltanolabs-tap-postgres==0.10.0", "tap-postgres")
SINGER_TOOLS = Peer("singer-tools==0.4.1", "singer-check-tap")
# Which first rows target-duckdb 0.8.0 loses is decided by DuckDB's CSV sniffer (issue 22 point 7).
TARGET_DUCKDB = Peer("target-duckdb==0.8.0", "target-duckdb", ("duckdb==2.0.1",))


def peer_script(peer: Peer, *, python: str = sys.executable) -> str:
    """Path of ``peer``'s console script, installing the peer first if its venv is missing."""
    PEERS_DIR.mkdir(exist_ok=True)
    with (PEERS_DIR / f"{peer.venv.name}.lock").open("w") as lock:
        _wait_for_lock(lock, peer)
        return _installed(peer, python)


def _wait_for_lock(lock: IO[str], peer: Peer) -> None:
    """Take ``peer``'s lock; while another test worker holds it, that worker is installing."""
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return
    except BlockingIOError:
        print(f"waiting for another test worker to install {peer.requirement}", file=sys.stderr)
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    while time.monotonic() < deadline:
        time.sleep(1)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            continue
    pytest.fail(
        f"gave up after {LOCK_WAIT_SECONDS:.0f}s waiting for another test worker to install "
        f"{peer.requirement} (it holds {lock.name})",
        pytrace=False,
    )


def _installed(peer: Peer, python: str) -> str:
    script = peer.venv / "bin" / peer.script
    stamp = peer.venv / ".installed"
    if stamp.exists() and script.exists():
        REPORT.setdefault(peer.requirement, "cached venv reused")
        return str(script)
    if not UV.exists():
        pytest.fail(f"{UV} is missing: run `make install` first.", pytrace=False)
    shutil.rmtree(peer.venv, ignore_errors=True)
    began = time.monotonic()
    commands = [
        [str(UV), "venv", "-q", "--python", python, str(peer.venv)],
        [
            str(UV),
            "pip",
            "install",
            "-q",
            "--python",
            str(peer.venv / "bin" / "python"),
            peer.requirement,
            *peer.pinned_dependencies,
        ],
    ]
    for command in commands:
        done = subprocess.run(command, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            pytest.fail(
                f"could not install {peer.requirement} from PyPI into {peer.venv} "
                f"(exit {done.returncode}):\n{done.stderr[-2000:]}\n"
                f"Check that PyPI is reachable, then retry or run: {' '.join(command)}",
                pytrace=False,
            )
    if not script.exists():
        pytest.fail(f"{peer.requirement} installed no `{peer.script}` script", pytrace=False)
    stamp.touch()
    REPORT[peer.requirement] = (
        f"installed from PyPI in {time.monotonic() - began:.1f}s (first run; cached in {peer.venv})"
    )
    return str(script)
