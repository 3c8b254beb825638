"""A Meltano state backend on the state-service tables, with the same leases and fencing.

`state_backend.uri: statesvc://<SQLAlchemy URL>` (or bare `statesvc://` plus the
`state_backend.statesvc.database_url` setting, else STATE_SERVICE_DATABASE_URL).

Only Meltano's public StateStoreManager API is used: the backend cannot tell `meltano run` from
`meltano state set`, and does not need to. The first write of a state ID in a process takes that
pipeline's lease for the rest of the process (refused, naming the holder, while a live run has
it), heartbeats it on its own thread, and finishes it at exit. Reads take no lease, but a read
is remembered: if another run replaced the bookmark between this process's read and its first
write, the write is refused (it would move the bookmark backwards). Under `state-service run
STATE_ID -- meltano run ...` it writes with the wrapper's lease instead.
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import sys
import typing as t
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from meltano.core.setting_definition import SettingDefinition, SettingKind
from meltano.core.state_store.base import MeltanoState, StateStoreManager

from state_service import lease as leases
from state_service.errors import StateServiceError
from state_service.heartbeat import Heartbeat
from state_service.lease import record_target_mark
from state_service.report import pipelines_with_bookmarks, read_bookmark_and_token
from state_service.store import Store, database_url
from state_service.target_state import (
    Stored,
    TargetStateTable,
    TargetStateUnreadable,
    describe,
    newer_committed,
    pipeline_streams,
    previous_mark,
)

SCHEME = "statesvc"
# What a wrapper (`state-service run STATE_ID -- meltano ...`) passes, and what the target reads.
PIPELINE_ENV, RUN_ID_ENV, TOKEN_ENV = (
    "STATE_SERVICE_PIPELINE",
    "STATE_SERVICE_RUN_ID",
    "STATE_SERVICE_TOKEN",
)
EXIT_REFUSED = 3
CONNECT_TIMEOUT = 10.0  # reading the target's committed state
NO_RUN_YET = 2**62  # previous_mark(): every run of the pipeline is earlier than this process's

DATABASE_URL = SettingDefinition(
    name="state_backend.statesvc.database_url",
    label="State database URL",
    kind=SettingKind.STRING,
    sensitive=True,
    env_specific=True,
    description="SQLAlchemy URL of the state-service database, if the URI does not carry it.",
)
LEASE_SECONDS = SettingDefinition(
    name="state_backend.statesvc.lease_seconds",
    label="Lease seconds",
    kind=SettingKind.INTEGER,
    value=60,
    env_specific=True,
    description="A run's lease expires this long after its last heartbeat (database clock).",
)
TARGET_CONFIG = SettingDefinition(
    name="state_backend.statesvc.target_config",
    label="Target config file",
    kind=SettingKind.STRING,
    env_specific=True,
    description="target-postgres-atomic's config file (JSON): a run resumes from the target's "
    "committed state (_sdc_target_state) when that is newer than the stored state.",
)
HEARTBEAT_SECONDS = SettingDefinition(
    name="state_backend.statesvc.heartbeat_seconds",
    label="Heartbeat seconds",
    kind=SettingKind.INTEGER,
    value=10,
    env_specific=True,
    description="Heartbeat interval of a run's lease.",
)


@dataclass
class HeldRun:
    store: Store
    lease: leases.Lease
    beat: Heartbeat | None


# Leases this process holds, by state ID: shared by every manager Meltano creates in the run.
_held: dict[str, HeldRun] = {}
# Token of the bookmark this process first read, by state ID (None: there was none).
_read_tokens: dict[str, int | None] = {}
# The target state table's mark seen at this process's first read, by state ID: recorded in the
# run row when the lease is taken (before that, no target of this process has committed).
_target_marks: dict[str, str] = {}
# The target's committed state this process resumes from, by state ID (until it writes).
_adopted: dict[str, MeltanoState] = {}
# The token this process told its target it will hold, by state ID (0: a live run held the
# lease); its first write takes the lease only with that token.
_claims: dict[str, int] = {}


def _wrapper_lease(state_id: str) -> leases.Lease | None:
    """The lease of `state-service run STATE_ID -- meltano ...`, passed in the environment."""
    env = os.environ
    if env.get(PIPELINE_ENV) != state_id or RUN_ID_ENV not in env or TOKEN_ENV not in env:
        return None  # (a token this process claimed comes without a run id)
    return leases.Lease(
        pipeline=state_id,
        run_id=int(env[RUN_ID_ENV]),
        token=int(env[TOKEN_ENV]),
        lease_seconds=float(env["STATE_SERVICE_LEASE_SECONDS"]),
        started_at=datetime.now(timezone.utc),  # informational only, never used for expiry
    )


def _meltano_exit_code() -> int | None:
    """Meltano's exit code, which its `main()` leaves in `meltano.cli.exit_code` (4.x)."""
    from meltano import cli

    code = getattr(cli, "exit_code", None)
    return code if isinstance(code, int) else None


def _finish_held_runs() -> None:
    """At exit: finish every lease this process took, with Meltano's own exit code."""
    code = _meltano_exit_code()
    error = None if code == 0 else f"meltano exited with {code if code is not None else '?'}"
    for state_id, held in list(_held.items()):
        if held.beat is not None:
            held.beat.stop()
        try:
            exit_code = 1 if code is None else code
            leases.finish(held.store, held.lease, exit_code=exit_code, error=error)
        except StateServiceError as exc:
            print(f"state-service: finish refused for {state_id}: {exc}", file=sys.stderr)
        del _held[state_id]


class StateServiceStoreManager(StateStoreManager):
    """Meltano state in the state-service tables, every write fenced by a lease's token."""

    label = "state-service"

    def __init__(
        self,
        uri: str = f"{SCHEME}://",
        database_url: str | None = None,
        lease_seconds: int | None = None,
        heartbeat_seconds: int | None = None,
        target_config: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.url = _url_from(uri, database_url)
        self.target_config = Path(target_config) if target_config else None
        self.lease_seconds = float(lease_seconds or 60)
        self.heartbeat_seconds = float(heartbeat_seconds or 10)
        try:
            self.store = Store(self.url)
        except StateServiceError as exc:  # e.g. an unreachable database: one line, exit 3
            _refuse(exc)

    def close(self) -> None:
        self.store.dispose()

    def _run_lease(self, state_id: str) -> leases.Lease:
        """The lease this process writes state_id under, taken at its first write."""
        if (wrapped := _wrapper_lease(state_id)) is not None:
            return wrapped
        if state_id in _held:
            return _held[state_id].lease
        store = Store(self.url)
        # `meltano state set/clear` writes without reading first; `meltano run` always reads.
        # An edit is recorded as one, so it stands over the target's committed state whether
        # or not the target's state table could be read for a mark just now.
        kind = "meltano" if state_id in _read_tokens else "edit"
        try:
            held = leases.start(
                store,
                state_id,
                lease_seconds=self.lease_seconds,
                kind=kind,
                read_token=_read_tokens.get(state_id, leases.NOT_READ),
                claim=_claims.get(state_id),
            )
        except StateServiceError as exc:
            store.dispose()
            _refuse(exc)
        if (mark := _target_marks.get(state_id)) is not None:  # seen at this process's read
            try:
                record_target_mark(store, held, mark)
            except StateServiceError as exc:
                store.dispose()
                _refuse(exc)
        beat = Heartbeat(store, held, self.heartbeat_seconds, _stop_this_process)
        if not _held:
            atexit.register(_finish_held_runs)
        _held[state_id] = HeldRun(store, held, beat)
        beat.start()
        return held

    def get(self, state_id: str) -> MeltanoState | None:
        try:
            stored, token = read_bookmark_and_token(self.store, state_id)
        except StateServiceError as exc:
            _refuse(exc)
        first_read = state_id not in _read_tokens
        _read_tokens.setdefault(state_id, token)
        state = None if stored is None else MeltanoState.from_json(state_id, stored)
        resumable = self.target_config is not None and _wrapper_lease(state_id) is None
        if first_read and resumable:
            self._claim(state_id)
            if newer := self._newer_in_target(state_id, state, token):
                _adopted[state_id] = newer
        if token == _read_tokens[state_id] and state_id in _adopted:
            return _adopted[state_id]  # Meltano reads again before the tap starts
        return state

    def _claim(self, state_id: str) -> None:
        """Tell the target (Meltano starts it after this read, with this environment) which
        pipeline it loads and the token this process will hold, so its rows are fenced like
        those of `state-service run`. Not under a wrapper, whose variables the target keeps."""
        if RUN_ID_ENV in os.environ:
            return
        try:
            token = leases.next_token(self.store, state_id)
        except StateServiceError as exc:
            _refuse(exc)
        _claims[state_id] = token
        os.environ[PIPELINE_ENV], os.environ[TOKEN_ENV] = state_id, str(token)
        if token == 0:
            print(
                f"state-service: {state_id}: a live run holds the lease: a run started now is "
                "refused at its first state write, and its target (told token 0) commits "
                "nothing once the holder's target has committed",
                file=sys.stderr,
                flush=True,
            )

    def _newer_in_target(
        self, state_id: str, state: MeltanoState | None, token: int | None
    ) -> MeltanoState | None:
        """The target's committed state when it is newer than ``state`` (else None).

        Not stored here (reads take no lease): the run's first write stores its successor, and a
        run that dies before writing leaves the same choice to the next one."""
        assert self.target_config is not None
        singer = None if state is None else _singer_state(state)
        try:
            table = TargetStateTable.from_config(self.target_config, CONNECT_TIMEOUT)
            snapshot = table.read()
            previous = previous_mark(self.store, state_id, NO_RUN_YET)
            streams = pipeline_streams(self.store, state_id, singer)
        except TargetStateUnreadable as exc:
            print(
                f"state-service: the target's committed state was not read ({exc}); "
                "starting from the stored state",
                file=sys.stderr,
                flush=True,
            )
            return None
        except StateServiceError as exc:
            _refuse(exc)
        _target_marks[state_id] = snapshot.mark
        newer = None
        if previous is not None:
            stored = Stored(singer, token)
            newer = newer_committed(snapshot, previous, state_id, streams, stored)
        if newer is None:
            return None
        print(f"state-service: {state_id}: resuming from {describe(newer, table)}", file=sys.stderr)
        completed = {"singer_state": json.loads(newer.state)}
        return MeltanoState(state_id, partial_state={}, completed_state=completed)

    def set(self, state: MeltanoState) -> None:
        self._write(state.state_id, state.json())

    def delete(self, state_id: str) -> None:
        self._write(state_id, None)

    def _write(self, state_id: str, value: str | None) -> None:
        run_lease = self._run_lease(state_id)
        try:
            leases.write_bookmark(self.store, run_lease, value)
        except StateServiceError as exc:
            _refuse(exc)

    def get_state_ids(self, pattern: str | None = None) -> Iterator[str]:
        like = pattern.replace("*", "%") if pattern else None
        try:
            return iter(pipelines_with_bookmarks(self.store, like))
        except StateServiceError as exc:
            _refuse(exc)

    @contextmanager
    def acquire_lock(self, state_id: str, *, retry_seconds: float) -> Iterator[None]:
        """No separate lock: every write is one transaction, fenced by the lease's token."""
        yield


def _singer_state(state: MeltanoState) -> str:
    """The Singer state Meltano hands the tap: the partial state over the completed one."""
    merged = dict((state.completed_state or {}).get("singer_state") or {})
    for key, value in ((state.partial_state or {}).get("singer_state") or {}).items():
        if isinstance(merged.get(key), dict) and isinstance(value, dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return json.dumps(merged)


def _url_from(uri: str, setting: str | None) -> str:
    rest = uri.split("://", 1)[1] if "://" in uri else ""
    return rest or database_url(setting)


def _refuse(exc: StateServiceError) -> t.NoReturn:
    """End Meltano with the one line that says why. Meltano wraps any exception a backend
    raises in its own error and prints a traceback; SystemExit is the one way past that (inside
    `meltano run` Meltano still stops its plugins on the way out)."""
    print(f"state-service: {exc}", file=sys.stderr, flush=True)
    sys.unraisablehook = _quiet_closed_loop
    raise SystemExit(EXIT_REFUSED)


def _quiet_closed_loop(unraisable: t.Any) -> None:
    """After a refusal, asyncio subprocess transports that Meltano's run left to the garbage
    collector complain that their event loop is closed; that is noise, anything else is not."""
    if not (
        isinstance(unraisable.exc_value, RuntimeError)
        and str(unraisable.exc_value) == "Event loop is closed"
    ):
        sys.__unraisablehook__(unraisable)


def _stop_this_process(message: str) -> None:
    """A run that lost its lease stops: Meltano turns SIGTERM into a failed, stopped run."""
    print(f"state-service: {message}", file=sys.stderr, flush=True)
    os.kill(os.getpid(), signal.SIGTERM)
