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

import json
import os
import shlex
import signal
import subprocess
import sys
from typing import IO

TAP_COMMAND_ENV = "REFRESH_SEAL_TAP"
PASS_THROUGH = {"--discover", "--about", "--help", "--version", "--test"}


def _tap_command(argv: list[str]) -> list[str]:
    """`refresh-seal TAP ARGS...`, or the tap from the environment when only options came."""
    if argv and not argv[0].startswith("-"):
        return argv
    return shlex.split(os.environ.get(TAP_COMMAND_ENV, "")) + argv


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
    if not command:
        print(f"usage: refresh-seal TAP [TAP ARGS...] (or set {TAP_COMMAND_ENV})", file=sys.stderr)
        return 2
    if PASS_THROUGH.intersection(command):
        os.execvp(command[0], command)  # not a sync: nothing to seal
    tap = subprocess.Popen(command, stdout=subprocess.PIPE)
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
