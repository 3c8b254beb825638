"""Run a tap into a target, or any command, under a held lease."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import IO

from state_service.errors import DatabaseUnavailable, StateServiceError, describe_error
from state_service.faults import fault_point
from state_service.heartbeat import Heartbeat
from state_service.history import Retention, prune
from state_service.lease import (
    Lease,
    LeaseLost,
    StreamCounts,
    StreamLags,
    finish,
    write_bookmark,
)
from state_service.processes import (
    DEFAULT_STOP_GRACE,
    Children,
    forward_signals,
    restore_signals,
    shell_code,
    spawn_failure,
)
from state_service.progress import Progress
from state_service.store import URL_ENV, Store
from state_service.target_state import config_paths, starting_state

EXIT_FAILED = 1  # state-service's own failure while piping (a bad target line, a refused write)
EXIT_DATABASE = 3
EXIT_TIMED_OUT = 124  # the target did not exit in time after its input ended (as timeout(1))
DEFAULT_TARGET_FINISH = 3600.0
TARGET_QUIET_SECONDS = 10.0  # a target still busy this long after its input ended is logged
# A grandchild that keeps a plugin's stderr open must not hold the run's end up for long.
RELAY_DRAIN_SECONDS = 5.0
EXIT_LEASE_LOST = 4
# Told to the target: its input ends only after the tap exited 0 (target-postgres-atomic then
# swaps in full refreshes that got no closing ACTIVATE_VERSION, as singer-sdk taps send none).
END_OF_INPUT_PROOF = "SINGER_END_OF_INPUT_MEANS_TAP_SUCCEEDED"
# What piping can meet without a bug: the database or the lease refusing, the system refusing
# a file, a pipe or a process. Anything else is a bug in state-service, said so.
EXPECTED_FAILURES = (StateServiceError, OSError, subprocess.SubprocessError)


@dataclass
class Outcome:
    exit_code: int
    error: str | None = None
    tap_exit_code: int | None = None
    target_exit_code: int | None = None
    counts: StreamCounts | None = None
    lags: StreamLags | None = None


def lease_env(lease: Lease, url: str | None) -> dict[str, str]:
    """What a wrapped command learns about the lease it runs under. The database URL (it may
    hold a password) goes only to a wrapped command that joins the lease (`-- meltano run`);
    a tap and a target never need it, and may be anyone's code."""
    env = dict(os.environ)
    env.pop(URL_ENV, None)
    env.update(
        STATE_SERVICE_PIPELINE=lease.pipeline,
        STATE_SERVICE_RUN_ID=str(lease.run_id),
        STATE_SERVICE_TOKEN=str(lease.token),
        STATE_SERVICE_LEASE_SECONDS=str(lease.lease_seconds),
    )
    if url is not None:
        env[URL_ENV] = url
    return env


@dataclass(frozen=True)
class Limits:
    """How long a run waits: for its children, and for the target's database."""

    heartbeat_seconds: float = 10.0
    stop_grace: float = DEFAULT_STOP_GRACE  # SIGTERM, then SIGKILL this much later
    target_finish: float = DEFAULT_TARGET_FINISH  # the target's time to exit after its input
    connect_timeout: float = 10.0  # reading the target's committed state


class FirstFailure:
    """The run's exit code: the first failure's (a side's code, or state-service's own)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.code = 0
        self.reason: str | None = None

    def note(self, code: int, reason: str | None = None) -> None:
        with self._lock:
            if self.code == 0 and code != 0:
                self.code, self.reason = code, reason


@contextmanager
def _supervision(
    store: Store, lease: Lease, limits: Limits
) -> Iterator[tuple[Children, Heartbeat]]:
    """Heartbeat and signal forwarding around a run; a lost lease stops the children."""
    children = Children(limits.stop_grace)
    beat = Heartbeat(store, lease, limits.heartbeat_seconds, lambda _msg: children.stop())
    beat.start()
    previous = forward_signals(children)
    try:
        yield children, beat
    finally:
        children.stop()
        beat.stop()
        restore_signals(previous)


def run_command(
    store: Store, lease: Lease, url: str, command: list[str], limits: Limits, retention: Retention
) -> int:
    """Hold the lease around any command; its exit code is the run's."""
    with _supervision(store, lease, limits) as (children, beat):
        try:
            outcome = Outcome(shell_code(children.spawn(command, lease_env(lease, url)).wait()))
        except OSError as exc:  # not found, not executable: recorded FAILED, lease freed
            outcome = Outcome(*spawn_failure(command, exc))
    return _finish(store, lease, beat, outcome, retention)


def run_singer(
    store: Store,
    lease: Lease,
    pipe: tuple[list[str], list[str]],
    limits: Limits,
    retention: Retention,
    target_config: Path | None = None,
    debug: bool = False,
) -> int:
    """Tap | target with the stored bookmark as --state; each emitted STATE stored, fenced.

    ``target_config``: target-postgres-atomic's config file, to resume from its committed state
    when that is newer (default: the ``--config`` of a target-postgres-atomic command line).
    ``debug``: a bug's traceback goes to stderr before the run's one failure line."""
    config = (target_config,) if target_config else config_paths(pipe[1])
    progress = Progress(sys.stderr, live=sys.stderr.isatty())
    with (
        _supervision(store, lease, limits) as (children, beat),
        tempfile.TemporaryDirectory(prefix="state-service-") as tmp,
    ):
        try:
            state = starting_state(store, lease, config, limits.connect_timeout)
            outcome = _pipe(store, lease, pipe, state, Path(tmp), children, progress, limits)
        except Exception as exc:  # any failure while piping is the run's outcome, recorded
            children.stop()
            outcome = Outcome(1, _piping_failure(exc, debug))
    progress.close()
    outcome.counts = progress.counts()
    outcome.lags = progress.lags()
    return _finish(store, lease, beat, outcome, retention)


def _piping_failure(exc: Exception, debug: bool) -> str:
    """The run's error for a failure while piping: an expected one as it is; anything else
    named a bug (with its traceback at debug level), so the two never read alike."""
    if isinstance(exc, EXPECTED_FAILURES):
        return f"state-service failed while piping: {describe_error(exc)}"
    if debug:
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    return (
        f"a bug in state-service while piping: {describe_error(exc)}; the run is recorded "
        "FAILED and its lease released (STATE_SERVICE_DEBUG=1 or --debug prints the "
        "traceback: please report it)"
    )


def _pipe(
    store: Store,
    lease: Lease,
    pipe: tuple[list[str], list[str]],
    state: str | None,
    tmp: Path,
    children: Children,
    progress: Progress,
    limits: Limits,
) -> Outcome:
    env = lease_env(lease, None)
    tap_args, target_args = list(pipe[0]), list(pipe[1])
    if state is not None:
        state_file = tmp / "state.json"
        state_file.write_text(state)
        tap_args += ["--state", str(state_file)]
    read_end, write_end = os.pipe()
    try:
        tap_proc = children.spawn(tap_args, env, stdout=write_end, stderr=subprocess.PIPE)
    except OSError as exc:
        os.close(read_end)
        os.close(write_end)
        code, line = spawn_failure(tap_args, exc)
        return Outcome(code, f"tap: {line}", tap_exit_code=code)
    try:
        target_proc = children.spawn(
            target_args,
            {**env, END_OF_INPUT_PROOF: "1"},
            stdin=read_end,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    except OSError as exc:
        os.close(read_end)
        os.close(write_end)
        children.stop()
        code, line = spawn_failure(target_args, exc)
        return Outcome(code, f"target: {line}", shell_code(tap_proc.wait()), code)
    os.close(read_end)  # the target owns the pipe's read end: a dead target stops the tap
    first = FirstFailure()
    watchers = [
        threading.Thread(
            target=_watch_tap, args=(tap_proc, target_proc, write_end, children, limits, first)
        ),
        threading.Thread(target=_watch_target, args=(target_proc, tap_proc, children, first)),
    ]
    for watcher in watchers:
        watcher.start()
    assert target_proc.stdout is not None
    assert tap_proc.stderr is not None and target_proc.stderr is not None
    relays = [progress.relay(tap_proc.stderr, "tap"), progress.relay(target_proc.stderr, "target")]
    _store_states(store, lease, target_proc.stdout, children, progress, first)
    for watcher in watchers:
        watcher.join()
    tap_code, target_code = shell_code(tap_proc.wait()), shell_code(target_proc.wait())
    for relay in relays:
        relay.join(RELAY_DRAIN_SECONDS)
    error = None
    if first.code:
        codes = f"tap exited with {tap_code}, target exited with {target_code}"
        error = codes if first.reason is None else f"{first.reason} ({codes})"
    return Outcome(first.code, error, tap_code, target_code)


def _watch_tap(
    tap: subprocess.Popen[bytes],
    target: subprocess.Popen[bytes],
    write_end: int,
    children: Children,
    limits: Limits,
    first: FirstFailure,
) -> None:
    """End the target's input only once the tap has exited; a failed tap's target is stopped
    first, so it never takes a dead tap's output for a complete one (a full refresh that
    stops early would otherwise replace the table). Our copy of the pipe's write end is what
    holds the input open until then. A tap we stopped failed too (singer-sdk taps exit 0 on
    SIGTERM). After a clean end of input the target has ``target_finish`` seconds to exit."""
    tap_code = shell_code(tap.wait())
    first.note(tap_code)
    if tap_code != 0 or children.stopped:
        children.terminate(target)
        target.wait()
        os.close(write_end)
        return
    os.close(write_end)
    try:
        target.wait(min(TARGET_QUIET_SECONDS, limits.target_finish))
        return
    except subprocess.TimeoutExpired:
        print(
            f"state-service: the tap ended; waiting for the target to commit and exit "
            f"(stopped after {limits.target_finish:g}s, --target-finish-seconds)",
            file=sys.stderr,
            flush=True,
        )
    try:
        target.wait(max(limits.target_finish - TARGET_QUIET_SECONDS, 0))
    except subprocess.TimeoutExpired:
        reason = (
            f"the target was still running {limits.target_finish:g}s after its input ended "
            "(--target-finish-seconds): stopped"
        )
        print(f"state-service: {reason}", file=sys.stderr, flush=True)
        first.note(EXIT_TIMED_OUT, reason)
        children.terminate(target)


def _watch_target(
    target: subprocess.Popen[bytes],
    tap: subprocess.Popen[bytes],
    children: Children,
    first: FirstFailure,
) -> None:
    """A target that ends while the tap still runs stops the tap, even one that sends nothing
    (it would never meet the broken pipe)."""
    target_code = shell_code(target.wait())
    if tap.poll() is None:
        first.note(target_code or EXIT_FAILED, None if target_code else "the target exited early")
        children.terminate(tap)
    first.note(target_code)


def _store_states(
    store: Store,
    lease: Lease,
    lines: IO[bytes],
    children: Children,
    progress: Progress,
    first: FirstFailure,
) -> None:
    """Store each STATE line the target emits, fenced. The first refusal stops the run."""
    for number, raw in enumerate(lines, 1):
        try:
            state = _state_of(raw)
        except ValueError as exc:
            # The line itself is not kept: it may carry record values.
            first.note(EXIT_FAILED, f"target stdout line {number}: {exc}")
            children.stop()
            return
        if state is None:
            continue
        fault_point("bookmark:before-write")  # the target committed this state; not stored yet
        try:
            write_bookmark(store, lease, state)
        except (LeaseLost, DatabaseUnavailable) as exc:  # either way the lease may be gone
            first.note(EXIT_LEASE_LOST, str(exc))
            children.stop()
            print(f"state-service: bookmark refused: {exc}", file=sys.stderr)
            return
        progress.stored_state(state)


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
            lags=outcome.lags,
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
