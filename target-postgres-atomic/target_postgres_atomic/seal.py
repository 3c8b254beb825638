"""refresh-seal: run a Singer tap and turn its exit code into Singer messages.

A target cannot tell a finished tap from a dead one by the end of its input (`meltano run`
closes the target's stdin after the tap exits, whatever its exit code), and singer-sdk taps
send ACTIVATE_VERSION only before a full refresh. This wrapper passes the tap's output through
and, when the tap has exited:
- with 0: sends the closing ACTIVATE_VERSION of every refresh the tap opened (a repeat of one
  the tap sent itself changes nothing), so the target swaps each refresh in;
- otherwise, or when it was stopped by SIGTERM/SIGINT (singer-sdk taps then exit 0): sends a
  `TAP_FAILED` line, which every Singer target refuses, so the target stops without publishing
  a partial refresh; the wrapper exits with the tap's code (128 + signal when stopped).

    refresh-seal tap-postgres --config tap.json | target-postgres-atomic --config target.json
    REFRESH_SEAL_TAP=/path/to/tap-postgres refresh-seal --config tap.json ...   # meltano
"""

from __future__ import annotations

import errno
import json
import os
import shlex
import signal
import subprocess
import sys
from typing import IO, NoReturn

from safe_singer_common.cli import fail

TOOL = "refresh-seal"
TAP_COMMAND_ENV = "REFRESH_SEAL_TAP"
PASS_THROUGH = {"--discover", "--about", "--help", "--version", "--test"}
HELP = {"--help", "-h"}
USAGE = f"""usage: refresh-seal TAP [TAP ARGS...]
       {TAP_COMMAND_ENV}="TAP" refresh-seal [TAP ARGS...]

Runs a Singer tap and passes its output through. When the tap exits 0, sends the closing
ACTIVATE_VERSION of every full refresh the tap opened; when it fails or is stopped, sends a
TAP_FAILED line, which every Singer target refuses, and exits with the tap's code (126/127
when the tap cannot be started). These options go straight to the tap, nothing to seal:
{" ".join(sorted(PASS_THROUGH))}. Tracebacks with REFRESH_SEAL_DEBUG=1."""
# As a shell reports a command it cannot run: not found, or found but not executable.
EXIT_NOT_FOUND, EXIT_NOT_RUNNABLE = 127, 126


def _tap_command(argv: list[str]) -> list[str]:
    """`refresh-seal TAP ARGS...`, or the tap from the environment when only options came."""
    if argv and not argv[0].startswith("-"):
        return argv
    try:
        return shlex.split(os.environ.get(TAP_COMMAND_ENV, "")) + argv
    except ValueError as exc:
        fail(TOOL, f"{TAP_COMMAND_ENV} is not a command line ({exc}): quote it as a shell would", 2)


def _cannot_start(command: list[str], exc: OSError, *, sync: bool) -> NoReturn:
    """The tap did not start: one line; for a sync also a TAP_FAILED line, so that a target
    downstream stops too (in a shell pipe without pipefail, a target that saw no input would
    exit 0)."""
    code = EXIT_NOT_FOUND if exc.errno == errno.ENOENT else EXIT_NOT_RUNNABLE
    if sync:
        sys.stdout.write(json.dumps({"type": "TAP_FAILED", "exit_code": code}) + "\n")
        sys.stdout.flush()
    fail(TOOL, f"cannot start the tap '{command[0]}': {exc.strerror or exc}", code, exc=exc)


def _pass_through(lines: IO[bytes], out: IO[bytes]) -> tuple[dict[str, int], bool]:
    """Copy the tap's lines; the latest ACTIVATE_VERSION per stream, and if output ended torn."""
    opened: dict[str, int] = {}
    line = b"\n"
    for line in lines:
        out.write(line)
        if b"ACTIVATE_VERSION" in line:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if isinstance(message, dict) and message.get("type") == "ACTIVATE_VERSION":
                version = message.get("version")
                if isinstance(version, int):
                    opened[str(message.get("stream"))] = version
    return opened, not line.endswith(b"\n")


def main(argv: list[str] | None = None) -> int:
    command = _tap_command(sys.argv[1:] if argv is None else argv)
    if command and command[0] in HELP:  # no tap named: the help is ours
        print(USAGE)
        return 0
    if not command or command[0].startswith("-"):
        fail(
            TOOL, f"no tap to run: name it first (refresh-seal TAP ...) or set {TAP_COMMAND_ENV}", 2
        )
    sync = not PASS_THROUGH.intersection(command)
    try:
        if not sync:
            os.execvp(command[0], command)  # nothing to seal
        tap = subprocess.Popen(command, stdout=subprocess.PIPE)
    except OSError as exc:
        _cannot_start(command, exc, sync=sync)
    stopped: list[int] = []

    def stop(signum: int, _frame: object) -> None:
        stopped.append(signum)
        tap.send_signal(signum)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stop)
    out = sys.stdout.buffer
    assert tap.stdout is not None
    with tap.stdout:
        opened, torn = _pass_through(tap.stdout, out)
    code = tap.wait()
    if stopped and code == 0:
        # singer-sdk taps exit 0 on SIGTERM/SIGINT ("gracefully shutting down"): a stopped
        # tap did not finish its refreshes.
        code = -stopped[0]
    if torn:
        out.write(b"\n")
    if code == 0:
        for stream, version in opened.items():
            message = {"type": "ACTIVATE_VERSION", "stream": stream, "version": version}
            out.write(json.dumps(message).encode() + b"\n")
    else:
        print(f"refresh-seal: the tap exited with {code}", file=sys.stderr)
        out.write(json.dumps({"type": "TAP_FAILED", "exit_code": code}).encode() + b"\n")
    out.flush()
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main())
