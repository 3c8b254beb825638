"""Per-stream counts of a run and its progress display.

The tap's and the target's singer-sdk `record_count` METRIC lines are summed per stream and
stored with the run; `runs` shows them and flags a run whose tap and target disagree. On a
terminal the run draws one live line per stream; elsewhere it logs plain lines.
"""

from __future__ import annotations

import os
import pty
import subprocess
import sys

import pytest

pytestmark = pytest.mark.parametrize("svc", ["sqlite"], indirect=True)  # display, not storage


def sdk_pipeline(svc, target: str = "sdk_target.py") -> list[str]:
    return [
        "--tap",
        f"{sys.executable} {svc.fixture('sdk_tap.py')}",
        "--target",
        f"{sys.executable} {svc.fixture(target)}",
    ]


def test_counts_from_singer_sdk_metrics_are_stored_and_logged_plainly(svc) -> None:
    first = svc.cli("run", "p", *svc.FAST, *sdk_pipeline(svc))
    assert first.returncode == 0, first.stderr
    assert "state-service: done: items: 5 records" in first.stderr
    assert "target 5, bookmark 5" in first.stderr
    assert "METRIC: " in first.stderr  # not a terminal: the plugins' lines pass through as-is
    assert "\x1b[" not in first.stderr
    second = svc.cli("run", "p", *svc.FAST, *sdk_pipeline(svc), SDK_TAP_COUNT="3")
    assert second.returncode == 0, second.stderr
    assert "items: 3 records" in second.stderr and "bookmark 8" in second.stderr
    runs = svc.cli("runs", "p")
    assert runs.returncode == 0, runs.stderr
    assert [r["records tap/target"] for r in svc.runs("p")] == ["items 5/5", "items 3/3"]
    assert "items 3/3" in runs.stdout and "MISMATCH" not in runs.stdout


def test_a_run_whose_target_reports_fewer_rows_is_flagged(svc) -> None:
    proc = svc.cli(
        "run", "p", *svc.FAST, *sdk_pipeline(svc, "echo_target.py"), ECHO_TARGET_REPORT_SHORT="2"
    )
    assert proc.returncode == 0, proc.stderr
    runs = svc.cli("runs", "p")
    assert "items 5/3 MISMATCH" in runs.stdout, runs.stdout
    assert [r["records tap/target"] for r in svc.runs("p")] == ["items 5/3 MISMATCH"]


def test_on_a_terminal_each_stream_has_one_live_line(svc) -> None:
    """stderr is a pseudo-terminal: METRIC lines become the live line, redrawn in place."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        svc.argv("run", "p", *svc.FAST, *sdk_pipeline(svc)),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=follower,
        env=svc.env(),
        cwd=svc.workdir,
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the terminal's other end closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert proc.wait(timeout=60) == 0
    screen = b"".join(chunks).decode(errors="replace")
    assert "\x1b[2K  items: 5 records" in screen, screen[-2000:]
    assert "target 5, bookmark 5" in screen
    assert "METRIC: " not in screen  # summed into the live line instead
    assert "state-service: done:" not in screen  # the plain form is for logs only
