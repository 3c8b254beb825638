"""Run a tap into a target, or any command, under a held lease."""

from __future__ import annotations

import ctypes
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import IO

from state_service.errors import DatabaseUnavailable, describe_error
from state_service.heartbeat import Heartbeat
from state_service.history import Retention, prune
from state_service.lease import Lease, LeaseLost, StreamCounts, finish, write_bookmark
from state_service.progress import Progress
from state_service.report import read_bookmark
from state_service.store import Store

EXIT_DATABASE = 3
# A grandchild that keeps a plugin's stderr open must not hold the run's end up for long.
RELAY_DRAIN_SECONDS = 5.0
EXIT_LEASE_LOST = 4
# Told to the target: its input ends only after the tap exited 0 (target-postgres-atomic then
# swaps in full refreshes that got no closing ACTIVATE_VERSION, as singer-sdk taps send none).
END_OF_INPUT_PROOF = "SINGER_END_OF_INPUT_MEANS_TAP_SUCCEEDED"


@dataclass
class Outcome:
    exit_code: int
    error: str | None = None
    tap_exit_code: int | None = None
    target_exit_code: int | None = None
    counts: StreamCounts | None = None


def lease_env(lease: Lease, url: str) -> dict[str, str]:
    """What a wrapped command learns about the lease it runs under."""
    env = dict(os.environ)
    env.update(
        STATE_SERVICE_PIPELINE=lease.pipeline,
        STATE_SERVICE_RUN_ID=str(lease.run_id),
        STATE_SERVICE_TOKEN=str(lease.token),
        STATE_SERVICE_LEASE_SECONDS=str(lease.lease_seconds),
        STATE_SERVICE_DATABASE_URL=url,
    )
    return env


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


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
    """The processes of one run, each in its own session so a stop reaches their children too."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        self.stopped = False
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
        self.stopped = True
        for proc in self.procs:
            if proc.poll() is None:
                with suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)


@contextmanager
def _supervision(
    store: Store, lease: Lease, heartbeat_seconds: float
) -> Iterator[tuple[Children, Heartbeat]]:
    """Heartbeat and signal forwarding around a run; a lost lease stops the children."""
    children = Children()
    beat = Heartbeat(store, lease, heartbeat_seconds, lambda _msg: children.stop())
    beat.start()
    previous = _forward_signals(children)
    try:
        yield children, beat
    finally:
        children.stop()
        beat.stop()
        _restore_signals(previous)


def run_command(
    store: Store,
    lease: Lease,
    url: str,
    command: list[str],
    heartbeat_seconds: float,
    retention: Retention,
) -> int:
    """Hold the lease around any command; its exit code is the run's."""
    with _supervision(store, lease, heartbeat_seconds) as (children, beat):
        outcome = Outcome(children.spawn(command, lease_env(lease, url)).wait())
    return _finish(store, lease, beat, outcome, retention)


def run_singer(
    store: Store,
    lease: Lease,
    url: str,
    pipe: tuple[str, str],
    heartbeat_seconds: float,
    retention: Retention,
) -> int:
    """Tap | target with the stored bookmark as --state; each emitted STATE stored, fenced."""
    progress = Progress(sys.stderr, live=sys.stderr.isatty())
    with (
        _supervision(store, lease, heartbeat_seconds) as (children, beat),
        tempfile.TemporaryDirectory(prefix="state-service-") as tmp,
    ):
        try:
            outcome = _pipe(store, lease, url, pipe, Path(tmp), children, progress)
        except Exception as exc:  # any failure while piping is the run's outcome, recorded
            children.stop()
            outcome = Outcome(1, f"state-service failed while piping: {describe_error(exc)}")
    progress.close()
    outcome.counts = progress.counts()
    return _finish(store, lease, beat, outcome, retention)


def _pipe(
    store: Store,
    lease: Lease,
    url: str,
    pipe: tuple[str, str],
    tmp: Path,
    children: Children,
    progress: Progress,
) -> Outcome:
    env = lease_env(lease, url)
    tap_args = shlex.split(pipe[0])
    if (state := read_bookmark(store, lease.pipeline)) is not None:
        state_file = tmp / "state.json"
        state_file.write_text(state)
        tap_args += ["--state", str(state_file)]
    read_end, write_end = os.pipe()
    tap_proc = children.spawn(tap_args, env, stdout=write_end, stderr=subprocess.PIPE)
    target_proc = children.spawn(
        shlex.split(pipe[1]),
        {**env, END_OF_INPUT_PROOF: "1"},
        stdin=read_end,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    os.close(read_end)  # the target owns the pipe's read end: a dead target stops the tap
    ender = threading.Thread(target=_end_input, args=(tap_proc, target_proc, write_end, children))
    ender.start()
    assert target_proc.stdout is not None
    assert tap_proc.stderr is not None and target_proc.stderr is not None
    relays = [progress.relay(tap_proc.stderr, "tap"), progress.relay(target_proc.stderr, "target")]
    error = _store_states(store, lease, target_proc.stdout, children, progress)
    ender.join()
    tap_code, target_code = tap_proc.wait(), target_proc.wait()
    for relay in relays:
        relay.join(RELAY_DRAIN_SECONDS)
    if error is None and (tap_code or target_code):
        error = f"tap exited with {tap_code}, target exited with {target_code}"
    return Outcome(target_code or tap_code or (1 if error else 0), error, tap_code, target_code)


def _end_input(
    tap: subprocess.Popen[bytes],
    target: subprocess.Popen[bytes],
    write_end: int,
    children: Children,
) -> None:
    """End the target's input only once the tap has exited; a failed tap's target is stopped
    first, so it never takes a dead tap's output for a complete one (a full refresh that
    stops early would otherwise replace the table). Our copy of the pipe's write end is what
    holds the input open until then. A tap we stopped failed too (singer-sdk taps exit 0 on
    SIGTERM)."""
    if (tap.wait() != 0 or children.stopped) and target.poll() is None:
        with suppress(ProcessLookupError):
            os.killpg(target.pid, signal.SIGTERM)
        target.wait()
    os.close(write_end)


def _store_states(
    store: Store, lease: Lease, lines: IO[bytes], children: Children, progress: Progress
) -> str | None:
    """Store each STATE line the target emits, fenced. The first refusal stops the run."""
    for number, raw in enumerate(lines, 1):
        try:
            state = _state_of(raw)
        except ValueError as exc:
            children.stop()
            # The line itself is not kept: it may carry record values.
            return f"target stdout line {number}: {exc}"
        if state is None:
            continue
        try:
            write_bookmark(store, lease, state)
        except (LeaseLost, DatabaseUnavailable) as exc:
            children.stop()
            print(f"state-service: bookmark refused: {exc}", file=sys.stderr)
            return str(exc)
        progress.stored_state(state)
    return None


SINGER_MESSAGES = {"RECORD", "SCHEMA", "ACTIVATE_VERSION", "BATCH"}


def _state_of(raw: bytes) -> str | None:
    """The bookmark a target's stdout line carries (None for a blank line), as exact JSON text.

    Only a JSON object, or a Singer STATE message whose value is an object, is a state: anything
    else raises ValueError. Numbers keep every digit (the line's own text, or Decimals).
    """
    try:
        line = raw.decode().strip()
    except UnicodeDecodeError:
        raise ValueError("not UTF-8") from None
    if not line:
        return None
    try:
        state = json.loads(line, parse_float=Decimal)
    except ValueError:
        raise ValueError("not JSON state") from None
    if not isinstance(state, dict):
        raise ValueError("JSON state must be an object")
    if state.get("type") == "STATE":
        if not isinstance(state.get("value"), dict):
            raise ValueError("a STATE message's value must be an object")
        return _exact_json(state["value"])  # a full STATE message: keep what taps read back
    if state.get("type") in SINGER_MESSAGES:
        raise ValueError(f"a {state['type']} message is not state")
    return line


def _exact_json(value: object) -> str:
    """JSON text of a value parsed with Decimal floats, every digit kept."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)}: {_exact_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_exact_json(v) for v in value) + "]"
    if isinstance(value, Decimal):
        return str(value)
    return json.dumps(value)


def _finish(
    store: Store, lease: Lease, beat: Heartbeat, outcome: Outcome, retention: Retention
) -> int:
    if beat.lost is not None:
        print(f"state-service: heartbeat refused: {beat.lost}", file=sys.stderr)
        outcome.exit_code, outcome.error = EXIT_LEASE_LOST, beat.lost
    try:
        finish(
            store,
            lease,
            exit_code=outcome.exit_code,
            error=outcome.error,
            tap_exit_code=outcome.tap_exit_code,
            target_exit_code=outcome.target_exit_code,
            counts=outcome.counts,
        )
    except LeaseLost as exc:
        print(f"state-service: finish refused: {exc}", file=sys.stderr)
        return EXIT_LEASE_LOST
    except DatabaseUnavailable as exc:
        print(f"state-service: run {lease.run_id} not recorded: {exc}", file=sys.stderr)
        return EXIT_DATABASE
    if outcome.error:
        print(f"state-service: run {lease.run_id} failed: {outcome.error}", file=sys.stderr)
    try:
        prune(store, retention, lease.pipeline)
    except DatabaseUnavailable as exc:  # the run is recorded; the history waits for the next
        print(f"state-service: bookmark history not pruned: {exc}", file=sys.stderr)
    return outcome.exit_code


def _forward_signals(children: Children) -> dict[int, object]:
    """SIGTERM/SIGINT stop the children; the run then finishes as FAILED instead of vanishing."""
    previous: dict[int, object] = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
        previous[sig] = signal.signal(sig, lambda *_: children.stop())
    return previous


def _restore_signals(previous: dict[int, object]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)  # type: ignore[arg-type]
