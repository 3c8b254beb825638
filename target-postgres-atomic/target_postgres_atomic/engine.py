"""The load engine: two database sessions, the commit thread, and STATE only after commit.

Records stream into one session's stages while the other session's batch merges on the
commit thread. Every buffered record and the latest STATE land in ONE transaction; the STATE
is written to stdout only after that transaction has committed, and never after a failed one.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from singer_sdk import metrics
from singer_sdk.exceptions import FatalSyncError

from target_postgres_atomic import connector, shadows, state_table
from target_postgres_atomic.rows import StagedRows
from target_postgres_atomic.sinks import PostgresSink, SinkSettings
from target_postgres_atomic.spec import TableSpec
from target_postgres_atomic.staging import Stager
from target_postgres_atomic.waits import LockWatcher

SESSIONS = 2
MAX_BUFFER_SECONDS = 60.0
DIRECT_HOLD_SECONDS = 5.0
"""A batch writing its table straight (holding other writers off it) commits this soon."""

Activation = tuple[PostgresSink, int | None]
"""A sink and the table version its commit makes the table's content (None: merge only)."""


@dataclass
class Session:
    """One database session with its private stages, and the commit it may be running."""

    conn: psycopg.Connection
    stager: Stager
    job: Future[None] | None = None


class LoadEngine:
    """Sessions, batches and commits of one run; the sinks of its streams by stream name."""

    def __init__(
        self,
        config: Mapping[str, Any],
        *,
        state_schema: str,
        lock_timeout: float,
        sink_settings: SinkSettings,
        logger: logging.Logger,
    ) -> None:
        self._config = config
        self.state_schema = state_schema
        self._lock_timeout = lock_timeout
        self.sink_settings = sink_settings
        self._logger = logger
        self.sinks: dict[str, PostgresSink] = {}
        self._sessions: list[Session] = []
        self._current = 0
        # Commits run in order on one worker thread: while one session merges a batch, the
        # next batch streams into the other session's stages.
        self._committer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="commit")
        self._failed = False
        self._held_shadows: dict[str, sql.Identifier] = {}
        """Shadow tables this run fills (their locks held by the first session)."""
        self._pending_state: str | None = None
        self._emitted_state: str | None = None
        self._buffered_rows = 0
        self._buffered_since = 0.0
        self._direct_sink: StagedRows | None = None
        """The stream whose rows the current session's transaction writes straight into its
        table (`direct.py`), if any: that transaction holds the table's lock until commit."""
        self._direct_off = False
        """Batches of several streams came: rows go by the stage until a batch of one."""
        self._direct_since = 0.0
        # The lease this run loads under, if a runner says so (its rows carry it; fenced).
        self._fence = state_table.RunFence.from_environment()
        # A bad URL is refused before any input is read.
        self._locks = LockWatcher(connector.conninfo(config), lock_timeout, logger)

    @property
    def session(self) -> Session:
        """The session records stream into now; opened at the first use."""
        if not self._sessions:
            for _ in range(SESSIONS):
                conn = connector.connect(self._config)
                self._sessions.append(Session(conn, Stager(conn)))
            conn = self._sessions[0].conn
            with self.transaction(conn, f"{self.state_schema}.{state_table.STATE_TABLE}"):
                connector.lock_table(conn, self.state_schema, state_table.STATE_TABLE)
                state_table.ensure(conn, self.state_schema, self._fence)
        return self._sessions[self._current]

    @property
    def conn(self) -> psycopg.Connection:
        """The current session, for DDL: only call after `wait`."""
        return self.session.conn

    @contextmanager
    def transaction(self, conn: psycopg.Connection, tables: str) -> Iterator[None]:
        """A transaction whose lock waits are logged and bounded (lock_timeout)."""
        with self._locks.watch(conn, tables), conn.transaction():
            yield

    def open_sink(self, spec: TableSpec) -> PostgresSink:
        """A new stream's sink, with a stage in every session, staging into the current one."""
        current = self.session
        sink = PostgresSink(
            spec,
            f"_sdc_stage_{len(self.sinks)}",
            self.sink_settings,
            [s.stager for s in self._sessions],
        )
        sink.stager = current.stager
        sink.open_direct = self._open_direct
        self.sinks[spec.stream] = sink
        return sink

    def _open_direct(self, sink: StagedRows) -> bool:
        """Open this batch's transaction on the current session to write `sink`'s table
        straight (`direct.py`). False (the rows go by the stage) if it may not.

        After every commit before it (their keys count); under our lock of the table (as
        every merge) and a SHARE ROW EXCLUSIVE lock, which waits for other writers' open
        transactions and keeps new ones waiting until this batch commits (at most
        DIRECT_HOLD_SECONDS after it opened): the largest key read then stays the largest.
        Only for a batch of this one stream: a second table's lock, taken at the commit after
        this one, could deadlock with a loader taking them the other way round.
        """
        plan = sink.direct_plan
        if plan is None or self._direct_off or self._direct_sink is not None:
            return False
        if any(other.pending for other in self.sinks.values() if other is not sink):
            return False
        session = self.session
        self.wait()
        stager, conn, spec = session.stager, session.conn, sink.spec
        stager.open_direct(plan)
        try:
            with self._locks.watch(conn, f"{spec.schema}.{spec.table}"):
                connector.lock_table(conn, spec.schema, spec.table)
                conn.execute(
                    sql.SQL("LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE").format(spec.qualified())
                )
            fits, highest = plan.table_fits(conn)
        except psycopg.errors.InsufficientPrivilege:
            fits, highest = False, None  # (LOCK needs UPDATE, DELETE or TRUNCATE)
        except BaseException:
            with suppress(psycopg.Error):
                stager.end_direct(commit=False)
            raise
        if not fits:
            stager.end_direct(commit=False)
            sink.direct_plan = None  # until its next SCHEMA
            return False
        stager.direct = (plan, highest)
        self._direct_sink = sink
        self._direct_since = time.monotonic()
        return True

    def before_rows(self, sink: PostgresSink) -> None:
        """Rows of `sink` come next: a batch writing another stream's table straight commits
        first (one such table per transaction), and rows go by the stage until a batch of
        one stream commits (interleaved streams would end every batch early)."""
        if self._direct_sink is not None and self._direct_sink is not sink:
            self._direct_off = True
            self.commit()

    def add(
        self,
        sink: PostgresSink,
        seq: int,
        raw: bytes,
        version: int | None,
        time_extracted: str | None,
    ) -> None:
        """One record (raw JSON) into its sink; a full batch commits."""
        self.before_rows(sink)
        sink.add(seq, raw, version, time_extracted)
        self.added(sink)

    def added(self, sink: PostgresSink, count: int = 1) -> None:
        """Records went into `sink`: a full batch (or one buffered too long) commits."""
        if self._buffered_rows == 0:
            self._buffered_since = time.monotonic()
        self._buffered_rows += count
        if (
            sink.full
            or self._buffered_rows >= self.sink_settings.batch_size_rows
            or self._buffered_too_long()
            or (
                self._direct_sink is not None
                and time.monotonic() - self._direct_since > DIRECT_HOLD_SECONDS
            )
        ):
            self.commit()

    def room(self, sink: PostgresSink) -> int:
        """How many records `sink` may take before the batch is full (at least one)."""
        return max(1, self.sink_settings.batch_size_rows - max(self._buffered_rows, sink.pending))

    def state(self, value: str) -> None:
        """The latest STATE: written out once every record before it has committed."""
        self._pending_state = value
        if self._buffered_rows == 0 or self._buffered_too_long():
            self.commit()

    def _buffered_too_long(self) -> bool:
        return time.monotonic() - self._buffered_since > MAX_BUFFER_SECONDS

    def wait(self) -> None:
        """Every queued commit is done (its error, if any, is raised here)."""
        for session in self._sessions:
            if session.job is not None:
                job, session.job = session.job, None
                job.result()

    def hold_shadow(self, sink: PostgresSink) -> None:
        """This run fills the sink's shadow: its first session holds the shadow's lock."""
        if sink.spec.stream not in self._held_shadows:
            shadows.hold(self._sessions[0].conn, sink.shadow, self._logger, self._lock_timeout)
            self._held_shadows[sink.spec.stream] = sink.shadow

    def commit(self, activate: list[Activation] | None = None) -> None:
        """Land every buffered record, and the latest STATE with them, in ONE transaction.

        The transaction runs on the commit thread (or here, with `activate`, which makes those
        table versions the tables' content in the same transaction); only after it commits is
        the STATE written to stdout.
        """
        dirty = sorted(
            (s for s in self.sinks.values() if s.pending),
            key=lambda s: (s.spec.schema, s.spec.table),
        )
        state = self._pending_state
        # STATE waits while records of this run sit in a shadow table that is not swapped in.
        swapped = {id(s) for s, _ in activate or []}
        held = any(s.refreshing for s in self.sinks.values() if id(s) not in swapped)
        new_state = state is not None and state != self._emitted_state and not held
        if not dirty and not new_state and not activate:
            return
        session = self.session
        for sink in dirty:
            sink.send_chunk()
        direct, self._direct_sink = self._direct_sink is not None, None
        if len(dirty) == 1 and not direct:
            self._direct_off = False  # a batch of one stream: the next may go straight in
        tables = {(s.spec.schema, s.spec.table) for s in dirty}
        tables |= {(s.spec.schema, s.spec.table) for s, _ in activate or []}
        batches = [(sink.spec.stream, sink.batch_lines, sink.take_batch()) for sink in dirty]
        state_out = state if new_state else None
        if new_state:
            self._emitted_state = state
        self._buffered_rows = 0
        streams = sorted(self.sinks)

        busy = next((s for s in self._sessions if s.job is not None and not s.job.done()), None)
        if not dirty and not activate and busy is not None:
            # A STATE alone, right after a batch: it commits after that batch, on that batch's
            # session, so records keep streaming into this one (no wait for the merge). Only
            # after every batch before it: the one commit thread runs jobs in submission order.
            self._queue_commit(
                busy, lambda conn: self._commit_batches(conn, [], [], streams, state_out, None)
            )
            return

        def commit() -> None:
            # The COPY ends here, on the commit thread: the reader goes on into the other
            # session without waiting for PostgreSQL to finish parsing this batch's rows.
            self._commit_batches(
                session.conn, sorted(tables), batches, streams, state_out, activate, session.stager
            )

        if activate:
            self.wait()
            commit()
            return
        session.job = self._committer.submit(commit)
        self._switch_session()

    def _queue_commit(self, session: Session, commit: Callable[[psycopg.Connection], None]) -> None:
        """Run `commit` on `session` after its queued one, whose error it passes on."""
        previous = session.job

        def after_previous() -> None:
            if previous is not None:
                previous.result()  # done already: the commit thread runs jobs in order
            commit(session.conn)

        session.job = self._committer.submit(after_previous)

    def _switch_session(self) -> None:
        """Stream the next batch into the other session once its last commit is done."""
        self._current = (self._current + 1) % len(self._sessions)
        session = self._sessions[self._current]
        if session.job is not None:
            job, session.job = session.job, None
            job.result()
        for sink in self.sinks.values():
            sink.stager = session.stager

    def _commit_batches(
        self,
        conn: psycopg.Connection,
        tables: list[tuple[str, str]],
        batches: list[tuple[str, tuple[int, int], Callable[[psycopg.Connection], int]]],
        streams: list[str],
        state: str | None,
        activate: list[Activation] | None,
        copy: Stager | None = None,
    ) -> None:
        if self._failed:
            return  # an earlier commit failed: nothing after it may land or be reported
        merging: tuple[str, tuple[int, int]] | None = None
        # Rows that went straight into a table (direct.py) are in this session's open
        # transaction: the merges below run inside it (psycopg: a savepoint), then it commits.
        direct = copy.direct if copy is not None else None
        if direct is not None:
            merging = next(
                ((s, lines) for s, lines, _ in batches if s == direct[0].spec.stream), None
            )
        try:
            if copy is not None:
                copy.close()  # the batch's rows are in the session's stages (or tables)
            merging = None
            with self.transaction(conn, ", ".join(f"{s}.{t}" for s, t in tables)):
                # One lock order for every process, so two targets never deadlock.
                for table in tables:
                    connector.lock_table(conn, *table)
                if self._fence is not None:
                    state_table.hold_fence(conn, self.state_schema, self._fence)
                landed = {}
                for stream, lines, merge_batch in batches:
                    merging = (stream, lines)
                    landed[stream] = merge_batch(conn)
                merging = None
                for sink, version in activate or []:
                    stream = sink.spec.stream
                    landed[stream] = landed.get(stream, 0) + sink.activate_version(conn, version)
                if state is not None:
                    state_table.save(conn, self.state_schema, streams, state, self._fence)
            if direct is not None and copy is not None:
                copy.end_direct(commit=True)
        except psycopg.errors.QueryCanceled as exc:
            # (The lock watcher turns the cancels it makes into its own error.)
            self._failed = True
            self._roll_back(copy)
            raise _canceled(exc, merging) from None
        except BaseException:
            self._failed = True
            self._roll_back(copy)
            raise
        # singer-sdk's record_count METRIC lines (tagged as its sinks tag them), only now that
        # the records are committed in their tables, so a runner can compare what the tap
        # emitted with what landed (state-service's per-run counts read them).
        for stream, count in landed.items():
            if not count:
                continue  # an ACTIVATE_VERSION with nothing swapped in landed no record
            with metrics.record_counter(stream) as counter:
                counter.increment(count)
        if state is not None:
            sys.stdout.write(state + "\n")
            sys.stdout.flush()

    @staticmethod
    def _roll_back(copy: Stager | None) -> None:
        """A failed commit's transaction that wrote straight into a table ends (the run
        stops: nothing of it may land)."""
        if copy is not None:
            with suppress(psycopg.Error):
                copy.end_direct(commit=False)

    def end_copy(self) -> None:
        """No statement stays open while the tap is idle (statement or idle timeouts), and a
        commit that failed meanwhile ends the run now, not at the next input line (a run fenced
        off while its tap waits must not linger holding its sessions). A batch writing a
        table straight commits: its transaction holds that table's lock."""
        if self._sessions:
            if self._direct_sink is not None:
                self.commit()
            self.session.stager.close()
            self.wait()

    def close(self, ended: list[Activation]) -> None:
        """The clean end of input: `ended` refreshes end, everything commits, sessions close."""
        try:
            if ended:
                self.commit(activate=ended)
            self.commit()
            self.wait()
        except BaseException:
            self.close_after_error()
            raise
        self._committer.shutdown()
        self._locks.close()
        for session in self._sessions:
            session.conn.close()
        self._sessions = []
        self._held_shadows = {}

    def cancel(self) -> None:
        """Stop now: a merge still running rolls back, and nothing later commits."""
        self._failed = True
        for session in self._sessions:
            if session.job is not None and not session.job.done():
                session.conn.cancel_safe()

    def close_after_error(self) -> None:
        """Batches taken before a bad line still commit (and report their STATE).

        The shadow tables of open refreshes go: nothing in them was acknowledged.
        """
        for session in self._sessions:
            if session.job is not None:
                session.job.exception()
        self._committer.shutdown()
        self._locks.close()
        self._drop_held_shadows()

    def _drop_held_shadows(self) -> None:
        """A failed run's shadow tables go: nothing in them was acknowledged by a STATE."""
        if self._held_shadows:
            connector.drop_tables(self._config, list(self._held_shadows.values()), self._logger)


class MergeCanceled(FatalSyncError):
    """PostgreSQL canceled a commit (statement_timeout, or an operator's cancel)."""


def _canceled(
    exc: psycopg.errors.QueryCanceled, merging: tuple[str, tuple[int, int]] | None
) -> MergeCanceled:
    what = "the commit"
    if merging is not None:
        stream, (first, last) = merging
        what = f"stream '{stream}', input lines {first}-{last}: the merge of its batch"
    return MergeCanceled(
        f"{what} was canceled ({exc.diag.message_primary}); nothing of it was committed. "
        "Raise statement_timeout (or the role's), or lower batch_size_rows"
    )
