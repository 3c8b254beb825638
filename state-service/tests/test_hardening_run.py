"""Issue 19 items 10, 11, 12 and 19: `state-service run` and its arguments under bad input.

Either side ending stops the other (SIGTERM, then SIGKILL); the run's code is the first
failure's, as a shell reports it; bad arguments are refused before any lease is taken; a
command that cannot start is recorded FAILED and frees the lease; echoed text is printable.
"""

from __future__ import annotations

import re
import shlex
import sys
import time
from pathlib import Path

import pytest
from state_service import lease as leases
from state_service.schema import runs

PY = sys.executable
SILENT_TAP = f"{PY} -c 'import time; time.sleep(600)'"
# Ignores SIGTERM: only the SIGKILL after the grace period ends it.
STUBBORN = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"
QUICK_STOP = ["--stop-grace-seconds", "1"]
ESCAPES = "\x1b]0;owned\x07\x1b[2J\r\n"  # retitle the terminal, clear it, break the line
SHOWN = "]0;owned[2J"  # what is left of ESCAPES once its control characters are gone
# Control characters a printed table may not hold (its own line ends aside).
CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]")


def py(code: str) -> str:
    return f"{PY} -c {shlex.quote(code)}"


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "holds token" not in line]


@pytest.mark.parametrize("svc", ["sqlite"], indirect=True)
def test_a_dead_target_stops_a_silent_tap(svc, tmp_path: Path) -> None:
    # The target dies only once the tap ignores SIGTERM, so only SIGKILL can end the tap.
    ready = tmp_path / "tap-ignores-sigterm"
    tap = STUBBORN.replace("time.sleep(600)", f"open({str(ready)!r}, 'w'); time.sleep(600)")
    target = (
        "import os, sys, time; t = time.monotonic()\n"
        f"while not os.path.exists({str(ready)!r}) and time.monotonic() - t < 20:\n"
        "    time.sleep(0.05)\n"
        "sys.exit(5)"
    )
    started = time.monotonic()
    proc = svc.cli(
        "run", "p", *svc.FAST, *QUICK_STOP, "--tap", py(tap), "--target", py(target),
    )  # fmt: skip
    assert proc.returncode == 5, proc.stderr  # the first failure: the target's
    assert time.monotonic() - started < 30
    [run] = svc.runs("p")
    assert (run["status"], run["tap/target"]) == ("FAILED", "137/5"), run
    assert "still running 1s after SIGTERM: sending SIGKILL" in proc.stderr
    assert svc.holder("p") == "-"


@pytest.mark.parametrize("svc", ["sqlite"], indirect=True)
def test_a_target_that_never_exits_is_stopped_after_its_input_ended(svc) -> None:
    proc = svc.cli(
        "run", "p", *svc.FAST, *QUICK_STOP, "--target-finish-seconds", "1",
        "--tap", f"{PY} {svc.fixture('counter_tap.py')}", "--target", py(STUBBORN),
    )  # fmt: skip
    assert proc.returncode == 124, proc.stderr
    [run] = svc.runs("p")
    assert (run["status"], run["tap/target"]) == ("FAILED", "0/137"), run
    assert "still running 1s after its input ended" in run["error"]


@pytest.mark.parametrize("svc", ["sqlite"], indirect=True)
def test_a_failed_tap_gives_its_own_code_not_the_stopped_target(svc) -> None:
    proc = svc.cli(
        "run", "p", *svc.FAST, "--tap", py("import sys; sys.exit(7)"),
        "--target", f"{PY} {svc.fixture('echo_target.py')}",
    )  # fmt: skip
    assert proc.returncode == 7, proc.stderr
    assert svc.runs("p")[0]["tap/target"] == "7/143"  # stopped before its input could end


@pytest.mark.parametrize("svc", ["sqlite"], indirect=True)
def test_a_target_stopped_by_sigterm_reports_143(svc) -> None:
    suicide = "import os, signal, sys; sys.stdin.read(); os.kill(os.getpid(), signal.SIGTERM)"
    proc = svc.cli(
        "run", "p", *svc.FAST, "--tap", f"{PY} {svc.fixture('counter_tap.py')}",
        "--target", py(suicide),
    )  # fmt: skip
    assert proc.returncode == 143, proc.stderr  # 128 + SIGTERM, as a shell reports it
    [run] = svc.runs("p")
    assert (run["exit"], run["tap/target"]) == ("143", "0/143"), run


@pytest.mark.parametrize("option", ["--lease-seconds", "--heartbeat-seconds"])
@pytest.mark.parametrize("value", ["-5", "0", "nan", "inf", "-inf", "soon"])
@pytest.mark.parametrize("svc", ["sqlite"], indirect=True)
def test_durations_must_be_finite_and_positive(svc, option: str, value: str) -> None:
    others = {"--lease-seconds": "60", "--heartbeat-seconds": "1"}
    others[option] = value
    args = [arg for pair in others.items() for arg in pair]
    proc = svc.cli("run", "p", *args, "--", "true")
    assert proc.returncode == 2, proc.stderr
    assert f"Invalid value for '{option}'" in proc.stderr, proc.stderr
    assert svc.runs("p") == []


@pytest.mark.parametrize("svc", ["sqlite", "postgresql"], indirect=True)
def test_a_command_that_cannot_start_is_recorded_and_frees_the_lease(svc, tmp_path: Path) -> None:
    not_executable = tmp_path / "script.sh"
    not_executable.write_text("#!/bin/sh\n")
    for args, code, reason in (
        (["--", "/nonexistent/tool"], 127, "No such file or directory"),
        (["--", str(not_executable)], 126, "Permission denied"),
        (["--tap", "/nonexistent/tap", "--target", "true"], 127, "No such file or directory"),
        (["--tap", "true", "--target", "/nonexistent/target"], 127, "No such file"),
    ):
        proc = svc.cli("run", "p", *svc.FAST, *args)
        assert proc.returncode == code, proc.stderr
        [line] = error_lines(proc.stderr)
        assert line.startswith("state-service: run ") and reason in line, line
        assert "Traceback" not in proc.stderr
        assert svc.runs("p")[-1]["status"] == "FAILED"
        assert svc.holder("p") == "-"  # freed, not left to expire


@pytest.mark.parametrize("svc", ["sqlite"], indirect=True)
def test_bad_arguments_are_refused_before_any_lease(svc) -> None:
    mysql = svc.cli("--db", "mysql://u:s3cret@db/x", "run", "p", "--", "true")
    assert mysql.returncode == 2 and "driver is not installed" in mysql.stderr, mysql.stderr
    assert "s3cret" not in mysql.stderr and "Traceback" not in mysql.stderr
    bad_port = svc.cli("--db", "postgresql://u:s3cret@h:notaport/x", "run", "p", "--", "true")
    assert bad_port.returncode == 2 and "does not parse" in bad_port.stderr, bad_port.stderr
    assert "s3cret" not in bad_port.stderr and "Traceback" not in bad_port.stderr
    unknown = svc.cli("run", "p", "--db", "nosuchdb://x/y", "--", "true")
    assert unknown.returncode == 2 and "unknown database type" in unknown.stderr
    limit = svc.cli("runs", "p", "--limit", "-1")
    assert limit.returncode == 2 and "Invalid value for '--limit'" in limit.stderr
    quote = svc.cli("run", "p", *svc.FAST, "--tap", 'tap-x --config "c.json', "--target", "true")
    assert quote.returncode == 2 and "Invalid value for --tap" in quote.stderr, quote.stderr
    assert "No closing quotation" in quote.stderr
    assert svc.runs("p") == []  # no lease was taken, no run recorded


@pytest.mark.parametrize("svc", ["sqlite", "postgresql"], indirect=True)
def test_tap_lag_is_stored_and_stream_names_are_printable(svc) -> None:
    proc = svc.cli(
        "run", "p", *svc.FAST, "--tap", f"{PY} {svc.fixture('lag_tap.py')}",
        "--target", f"{PY} {svc.fixture('echo_target.py')}",
        LAG_TAP_STREAM="evil\x1b]0;owned\x07\x1b[2Jname",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "\x1b" not in proc.stderr and "\x07" not in proc.stderr
    assert "evil]0;owned[2Jname: 2 records" in proc.stderr, proc.stderr
    assert "lag 30s" in proc.stderr  # the largest of each shard's latest value
    [run] = svc.runs("p")
    assert run["lag"] == "evil]0;owned[2Jname 30s", run
    listing = svc.cli("runs", "p")
    assert "\x1b" not in listing.stdout and "30s" in listing.stdout


@pytest.mark.parametrize("svc", ["sqlite"], indirect=True)
def test_a_tap_and_target_never_see_the_state_database_url(svc, tmp_path: Path) -> None:
    """The URL may hold a password, and a tap or target may be anyone's code."""
    seen = tmp_path / "seen"
    leak = (
        "import os, sys; "
        "open(sys.argv[1], 'a').write(os.environ.get('STATE_SERVICE_DATABASE_URL', '') + '|')"
    )
    proc = svc.cli(
        "run", "p", *svc.FAST,
        "--tap", f"{py(leak)} {seen}", "--target", f"{py(leak + '; sys.stdin.read()')} {seen}",
        STATE_SERVICE_DATABASE_URL=svc.url,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert seen.read_text() == "||"


@pytest.mark.parametrize("svc", ["sqlite", "postgresql"], indirect=True)
def test_runs_and_status_print_every_cell_without_control_characters(svc) -> None:
    """A pipeline name comes from the command line, an error from a child, a row may be
    tampered with: `runs` and `status` print none of their escape bytes."""
    pipeline = f"p{ESCAPES}x"
    held = leases.start(svc.store, pipeline, lease_seconds=60)
    leases.finish(svc.store, held, exit_code=1, error=f"bad{ESCAPES}news")
    with svc.store.transaction() as conn:
        conn.execute(runs.update().where(runs.c.run_id == held.run_id).values(kind=f"k{ESCAPES}"))
    listing, status = svc.cli("runs", pipeline), svc.cli("status")
    for printed in (listing, status):
        assert printed.returncode == 0, printed.stderr
        assert not CONTROL.search(printed.stdout), repr(printed.stdout)
        assert len(printed.stdout.splitlines()) == 2, printed.stdout  # a header and one row
    assert f"p{SHOWN}x" in status.stdout
    assert f"bad{SHOWN}news" in listing.stdout and f"k{SHOWN}" in listing.stdout
