"""The child processes of a run: started in their own sessions, stopped with SIGTERM and, after a
grace period, SIGKILL; exit codes as a shell reports them."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from contextlib import suppress

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
DEFAULT_STOP_GRACE = 10.0
EXIT_NOT_EXECUTABLE = 126  # as a shell reports a command it found but could not run
EXIT_NOT_FOUND = 127  # as a shell reports a command it could not find
SIGNAL_BASE = 128  # a process ended by signal N exits 128 + N, as a shell reports it


def shell_code(returncode: int) -> int:
    """Popen's returncode as a shell reports it: -N (killed by signal N) becomes 128 + N."""
    return SIGNAL_BASE - returncode if returncode < 0 else returncode


def spawn_failure(args: list[str], exc: OSError) -> tuple[int, str]:
    """The exit code and one line for a command that could not be started."""
    code = EXIT_NOT_FOUND if isinstance(exc, FileNotFoundError) else EXIT_NOT_EXECUTABLE
    return code, f"cannot start {args[0]!r}: {exc.strerror or type(exc).__name__}"


def _die_with_parent() -> Callable[[], None] | None:
    """Linux: a preexec_fn that has the kernel SIGKILL the child when this process dies.

    A killed state-service (kill -9) cannot stop its children itself; with this, the tap and
    the target die with it instead of running on (a target that could still commit). Only the
    direct children are covered: processes they start are not. The function only calls a libc
    function looked up beforehand, so it is safe in the forked child despite our threads.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # we died before the prctl took effect
            os._exit(1)

    return preexec


class Children:
    """The processes of one run, each in its own session so a stop reaches their children too.

    A stop sends SIGTERM to a process group and, if the process is still alive ``grace``
    seconds later, SIGKILL: a child that ignores SIGTERM cannot keep the run alive.
    """

    def __init__(self, grace: float = DEFAULT_STOP_GRACE) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        self.stopped = False
        self.grace = grace
        self.preexec = _die_with_parent()

    def spawn(
        self,
        args: list[str],
        env: dict[str, str],
        stdin: int | None = None,
        stdout: int | None = None,
        stderr: int | None = None,
    ) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            args,
            env=env,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
            preexec_fn=self.preexec,
        )
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        """Stop every child (safe from a signal handler: it never blocks)."""
        self.stopped = True
        for proc in self.procs:
            self.terminate(proc)

    def terminate(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGTERM to ``proc``'s group now, SIGKILL after the grace period if it still runs."""
        if proc.poll() is not None:
            return
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        timer = threading.Timer(self.grace, self._kill_if_alive, args=(proc,))
        timer.daemon = True
        timer.start()

    def _kill_if_alive(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            name = os.path.basename(str(proc.args[0] if isinstance(proc.args, list) else proc.args))
            print(
                f"state-service: {name} (pid {proc.pid}) still running {self.grace:g}s after "
                "SIGTERM: sending SIGKILL",
                file=sys.stderr,
                flush=True,
            )
            with suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)


def forward_signals(children: Children) -> dict[int, object]:
    """SIGTERM/SIGINT stop the children; the run then finishes as FAILED instead of vanishing."""
    previous: dict[int, object] = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
        previous[sig] = signal.signal(sig, lambda *_: children.stop())
    return previous


def restore_signals(previous: dict[int, object]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)  # type: ignore[arg-type]
