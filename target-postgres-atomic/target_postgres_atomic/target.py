"""The target-postgres-atomic Target: settings, message handling, commits and STATE output."""

from __future__ import annotations

import os
import signal
import sys
import time
import typing as t
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType

import msgspec
import psycopg
from psycopg import sql
from singer_sdk import Target, metrics
from singer_sdk.exceptions import ConfigValidationError, SingerSDKError
from singer_sdk.helpers.capabilities import PluginCapabilities, TargetCapabilities
from singer_sdk.io_base import SingerMessageType

from target_postgres_atomic import connector, merge, shadows
from target_postgres_atomic.batch_files import read_batch_file
from target_postgres_atomic.columns import LossyTypeChange
from target_postgres_atomic.errors import (
    SEQ_SHIFT,
    InvalidInputLine,
    RecordsWithoutSchemaException,
    SchemaError,
)
from target_postgres_atomic.mapping import StreamMaps
from target_postgres_atomic.reader import LineReader, stream_name
from target_postgres_atomic.redact import redacted, redacted_error
from target_postgres_atomic.settings import (
    CONFIG_SCHEMA,
    DEFAULT_BATCH_SIZE_ROWS,
    activate_version_enabled,
    unsupported_settings,
)
from target_postgres_atomic.sinks import NUL_ESCAPE, PostgresSink, SinkSettings
from target_postgres_atomic.spec import TableSpec, build_spec
from target_postgres_atomic.staging import Stager
from target_postgres_atomic.waits import LockWatcher

# Errors that mean "this input or setting cannot be loaded as it is", as opposed to bugs.
REFUSALS = (SingerSDKError, InvalidInputLine, psycopg.OperationalError)
# Set to 1 by a runner that ends the target's input only after the tap exited 0 (and stops
# the target otherwise), as `state-service run` does: the end of input then proves every open
# full refresh complete.
END_OF_INPUT_PROOF = "SINGER_END_OF_INPUT_MEANS_TAP_SUCCEEDED"
SESSIONS = 2
BATCH_SIZE_BYTES = 256 * 1024 * 1024
MAX_BUFFER_SECONDS = 60.0


@dataclass
class Session:
    """One database session with its private stages, and the commit it may be running."""

    conn: psycopg.Connection
    stager: Stager
    job: Future[None] | None = None


class TargetPostgresAtomic(Target):
    """Singer target that stages each batch with COPY and merges it in one transaction."""

    name = "target-postgres-atomic"
    # Our reader keeps records as raw JSON and numbers every line for error messages.
    message_reader_class = LineReader
    capabilities: t.ClassVar[list[t.Any]] = [
        PluginCapabilities.ABOUT,
        PluginCapabilities.ACTIVATE_VERSION,
        PluginCapabilities.STREAM_MAPS,
        PluginCapabilities.FLATTENING,
        TargetCapabilities.HARD_DELETE,
        TargetCapabilities.SOFT_DELETE,
        TargetCapabilities.TARGET_SCHEMA,
        TargetCapabilities.VALIDATE_RECORDS,
    ]

    config_jsonschema = CONFIG_SCHEMA

    def __init__(self, **kwargs: t.Any) -> None:
        super().__init__(**kwargs)
        self._sessions: list[Session] = []
        self._current = 0
        # Commits run in order on one worker thread: while one session merges a batch, the
        # next batch streams into the other session's stages.
        self._committer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="commit")
        self._failed = False
        self._maps = StreamMaps(self.mapper, self.config)
        if isinstance(self.message_reader, LineReader):
            self.message_reader.on_error = self._finish_commits_after_error
            self.message_reader.on_idle = self._end_copy
            self.message_reader.fast_record = self._fast_record
        self._sinks: dict[str, PostgresSink] = {}
        self._fast_sinks: dict[bytes, PostgresSink] = {}
        """Sinks of unmapped streams with a RECORD since the last SCHEMA, by stream name
        (UTF-8): `_fast_record` decodes their lines in one pass."""
        self._fast_last: tuple[bytes, PostgresSink] | None = None
        """The start of the last fast line, up to its stream name, and that stream's sink."""
        self._unguarded: set[str] = set()
        self._tables: dict[tuple[str, str], str] = {}
        """The stream that loads each (schema, table) in this run."""
        self._early_openings: dict[str, int] = {}
        self._held_shadows: dict[str, sql.Identifier] = {}
        """Shadow tables this run fills (their locks held by the first session)."""
        """ACTIVATE_VERSION that came before its stream's SCHEMA."""
        """Streams whose bookmark cannot be compared, warned about once."""
        self._pending_state: str | None = None
        self._emitted_state: str | None = None
        self._buffered_rows = 0
        self._buffered_since = 0.0
        self._overwrite = self.config.get("load_method") == "overwrite"
        # A bad URL is refused before any input is read.
        self._locks = LockWatcher(
            connector.conninfo(self.config), self.config.get("lock_timeout", 300), self.logger
        )
        self.logger.info(
            "Loading into %s, schema %s.",
            connector.location(self.config),
            self.config.get("default_target_schema") or "from each stream name, else public",
        )
        self._sink_settings = SinkSettings(
            batch_size_rows=self.config.get("batch_size_rows") or DEFAULT_BATCH_SIZE_ROWS,
            batch_size_bytes=BATCH_SIZE_BYTES,
            hard_delete=bool(self.config.get("hard_delete")),
            validate_records=self.config.get("validate_records", True),
            upsert=self.config.get("load_method", "upsert") != "append-only",
            sanitize_null_text_characters=bool(self.config.get("sanitize_null_text_characters")),
        )

    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        """singer-sdk's messages quote the bad value, which may be a secret: redact them."""
        schema = self.config_jsonschema
        self.append_builtin_config(schema)
        unsupported = unsupported_settings(self._config, schema)
        try:
            errors = super()._validate_config(raise_errors=raise_errors)
        except ConfigValidationError as exc:
            exc.errors += unsupported
            raise redacted_error(exc, self._config) from None
        if unsupported and raise_errors:
            raise ConfigValidationError(
                "Config validation failed", errors=unsupported, schema=self.config_jsonschema
            )
        return redacted(errors, self._config, self.config_jsonschema) + unsupported

    @property
    def state_schema(self) -> str:
        return self.config.get("default_target_schema") or "public"

    @property
    def session(self) -> Session:
        """The session records stream into now; opened at the first SCHEMA."""
        if not self._sessions:
            for _ in range(SESSIONS):
                conn = connector.connect(self.config)
                self._sessions.append(Session(conn, Stager(conn)))
            conn = self._sessions[0].conn
            with self._transaction(conn, f"{self.state_schema}.{connector.STATE_TABLE}"):
                connector.lock_table(conn, self.state_schema, connector.STATE_TABLE)
                connector.ensure_state_table(conn, self.state_schema)
        return self._sessions[self._current]

    @contextmanager
    def _transaction(self, conn: psycopg.Connection, tables: str) -> Iterator[None]:
        """A transaction whose lock waits are logged and bounded (lock_timeout)."""
        with self._locks.watch(conn, tables), conn.transaction():
            yield

    @property
    def conn(self) -> psycopg.Connection:
        """The current session, for DDL: only call after `_wait_for_commits`."""
        return self.session.conn

    def _wait_for_commits(self) -> None:
        """Every queued commit is done (its error, if any, is raised here)."""
        for session in self._sessions:
            if session.job is not None:
                job, session.job = session.job, None
                job.result()

    def _process_schema_message(self, message_dict: dict) -> None:
        self._assert_line_requires(message_dict, requires={"stream", "schema"})
        # A SCHEMA may change a stream's layout or maps.
        self._fast_sinks, self._fast_last = {}, None
        routes = self._maps.route_schema(message_dict)
        if routes is None:
            self._load_schema(message_dict)
            return
        stream = message_dict["stream"]
        for mapped in routes:
            if stream in self._early_openings:
                self._early_openings[mapped["stream"]] = self._early_openings[stream]
            self._load_schema(mapped)
        self._early_openings.pop(stream, None)

    def _load_schema(self, message_dict: dict) -> None:
        """One SCHEMA (after stream maps): its table created or evolved, its sink ready."""
        spec = build_spec(
            message_dict,
            message_dict["line"],
            default_schema=self.config.get("default_target_schema"),
            add_record_metadata=bool(self.config.get("add_record_metadata")),
            version_columns=self.config.get("version_columns") or {},
            interpret_content_encoding=bool(self.config.get("interpret_content_encoding")),
        )
        stream = spec.stream
        self._claim_table(spec, message_dict["line"])
        if (
            stream in self._sinks
            and self._sinks[stream].spec.properties == spec.properties
            and self._sinks[stream].spec.keys == spec.keys
            and self._sinks[stream].spec.declared_version == spec.declared_version
        ):
            return
        # Rows buffered under the old schema land first, so arrival order is kept.
        self._commit()
        self._wait_for_commits()
        conn = self.conn
        with self._transaction(conn, spec.qualified_text()):
            connector.lock_table(conn, spec.schema, spec.table)
            try:
                connector.ensure_table(conn, spec, unique_keys=self._sink_settings.upsert)
            except (LossyTypeChange, connector.KeyChangeRefused) as exc:
                raise SchemaError(stream, message_dict["line"], str(exc)) from None
            spec = spec.with_types(connector.existing_columns(conn, spec.schema, spec.table))
            spec, warning = spec.with_comparable_version(message_dict["line"])
            tombstones = merge.tombstone_table(spec) if self._sink_settings.hard_delete else None
            if tombstones is not None:
                connector.lock_table(conn, spec.schema, merge.TOMBSTONES)
                connector.ensure_tombstone_table(conn, tombstones)
        if warning and stream not in self._unguarded:
            self._unguarded.add(stream)
            self.logger.warning(warning)
        if stream in self._sinks:
            self._sinks[stream].update_spec(spec)
            return
        sink = PostgresSink(
            spec,
            f"_sdc_stage_{len(self._sinks)}",
            self._sink_settings,
            [s.stager for s in self._sessions],
        )
        sink.stager = self.session.stager
        self._sinks[stream] = sink
        with self._transaction(conn, spec.qualified_text()):
            connector.lock_table(conn, spec.schema, spec.table)
            if self._overwrite:
                # overwrite: this run's rows are one new table version, swapped in at the end.
                self._hold_shadow(sink)
                sink.drop_orphan_shadow(conn)
                sink.start_version(conn, connector.next_table_version(conn, spec))
            elif sink.shadow_exists(conn):
                self._hold_shadow(sink)
                sink.drop_orphan_shadow(conn)
                self.logger.warning(
                    "Stream '%s': dropped shadow table %s, left by a run that did not finish; "
                    "its rows were never acknowledged by a STATE, so the tap sends them again.",
                    stream,
                    sink.shadow.as_string(None),
                )
        if (version := self._early_openings.pop(stream, None)) is not None:
            # `stream` is already the mapped name (stream maps applied before this point).
            self._activate_version(
                {"stream": stream, "version": version, "line": message_dict["line"]}
            )

    def _claim_table(self, spec: TableSpec, line: int) -> None:
        """Two streams must not silently share one table (their keys and refreshes collide)."""
        owner = self._tables.setdefault((spec.schema, spec.table), spec.stream)
        if owner != spec.stream:
            raise SchemaError(
                spec.stream,
                line,
                f"streams '{owner}' and '{spec.stream}' would both load into table "
                f"{spec.qualified_text()}; give one of them another name with a stream map "
                "(or load them with separate runs and schemas)",
            )

    def _process_record_message(self, message_dict: dict) -> None:
        if self._maps.maps_stream(message_dict["stream"]):
            for mapped in self._maps.route_record(message_dict):
                self._add_record(mapped)
        else:
            self._add_record(message_dict)
            stream = message_dict["stream"]
            self._fast_sinks[stream.encode()] = self._sinks[stream]

    def _fast_sink_named(self, line: bytes) -> PostgresSink | None:
        """The sink of the stream the line names (a guess the decode checks), remembered
        with the line's start up to that name."""
        found = stream_name(line)
        if found is None:
            return None
        sink = self._fast_sinks.get(found[0])
        if sink is not None:
            self._fast_last = (line[: found[1]], sink)
        return sink

    def _fast_record(self, line: bytes, number: int) -> bool:
        """A RECORD line of a stream seen before, decoded in one pass straight into its
        typed stage values (with the struct of the stream the line names, so interleaved
        streams decode once too); False (nothing done) for any other line, which the
        reader then decodes and checks the usual way."""
        if not isinstance(line, bytes):
            return False  # (a text stream, as singer-sdk's test suites feed, goes the usual way)
        # A line that starts as the last one did, up to its stream name, needs no search:
        # most inputs are runs of one stream.
        last = self._fast_last
        if last is not None and line.startswith(last[0]):
            sink: PostgresSink | None = last[1]
        else:
            sink = self._fast_sink_named(line)
        if sink is None or sink.layout is None or sink.shadow_version is not None:
            return False
        if b"\\" in line and NUL_ESCAPE in line:  # memchr first: most lines have no escape
            return False
        decoded = sink.layout.line(line)
        if decoded is None:
            return False
        message, values = decoded
        if message.type != SingerMessageType.RECORD or message.stream != sink.spec.stream:
            return False
        sink.add_values(
            number << SEQ_SHIFT, values, message.version, message.time_extracted, len(line)
        )
        self._after_add(sink)
        return True

    def _add_record(self, message_dict: dict) -> None:
        sink = self._sinks.get(message_dict["stream"])
        if sink is None:
            raise RecordsWithoutSchemaException(
                f"input line {message_dict['line']}: a RECORD for stream "
                f"'{message_dict['stream']}' came before its SCHEMA message"
            )
        sink.add(
            message_dict["line"] << SEQ_SHIFT,
            message_dict["record"],
            sink.shadow_version if self._overwrite else message_dict["version"],
            message_dict["time_extracted"],
        )
        self._after_add(sink)

    def _after_add(self, sink: PostgresSink) -> None:
        if self._buffered_rows == 0:
            self._buffered_since = time.monotonic()
        self._buffered_rows += 1
        if (
            sink.full
            or self._buffered_rows >= self._sink_settings.batch_size_rows
            or self._buffered_too_long()
        ):
            self._commit()

    def _process_state_message(self, message_dict: dict) -> None:
        self._assert_line_requires(message_dict, requires={"value"})
        value = bytes(message_dict["value"])
        line = message_dict["line"]
        if not value:
            raise InvalidInputLine(f"input line {line}: STATE needs a 'value'")
        if not isinstance(msgspec.json.decode(value), dict):
            raise InvalidInputLine(
                f"input line {line}: STATE value must be a JSON object (Singer state is "
                f"{{...}}), got {value[:40].decode(errors='replace')}"
            )
        if b"\\u0000" in value:
            raise InvalidInputLine(
                f"input line {line}: STATE contains a NUL character (\\u0000), which "
                "PostgreSQL cannot store; fix the tap's bookmark values"
            )
        self._pending_state = value.decode().strip()
        if self._buffered_rows == 0 or self._buffered_too_long():
            self._commit()

    def _buffered_too_long(self) -> bool:
        return time.monotonic() - self._buffered_since > MAX_BUFFER_SECONDS

    def _sink_for(self, message_dict: dict) -> PostgresSink:
        sink = self._sinks.get(message_dict["stream"])
        if sink is None:
            raise RecordsWithoutSchemaException(
                f"input line {message_dict['line']}: a {message_dict['type']} message for stream "
                f"'{message_dict['stream']}' came before its SCHEMA message"
            )
        return sink

    def _process_activate_version_message(self, message_dict: dict) -> None:
        self._assert_line_requires(message_dict, requires={"stream", "version"})
        if self._maps.maps_stream(message_dict["stream"]):
            for alias in self._maps.aliases(message_dict["stream"]):
                self._activate_version({**message_dict, "stream": alias})
        else:
            self._activate_version(message_dict)

    def _activate_version(self, message_dict: dict) -> None:
        stream, version = message_dict["stream"], int(message_dict["version"])
        if not activate_version_enabled(self.config) or self._overwrite:
            self.logger.info("Ignoring ACTIVATE_VERSION for '%s' (setting).", stream)
            return
        sink = self._sinks.get(stream)
        if sink is None:
            # Some taps announce every stream's refresh before the first SCHEMA: it opens
            # when the stream's SCHEMA arrives (no record of it can come before).
            self._early_openings[stream] = version
            return
        self._commit()
        self._wait_for_commits()
        if sink.closes(version):
            # The full refresh of `version` is complete: swap it in, in one transaction.
            self._commit(activate=[(sink, version)])
            return
        # The start of a full refresh: nothing is deleted; rows load into the shadow table.
        self._hold_shadow(sink)
        with self._transaction(self.conn, sink.spec.qualified_text()):
            connector.lock_table(self.conn, sink.spec.schema, sink.spec.table)
            sink.start_version(self.conn, version)

    def _process_batch_message(self, message_dict: dict) -> None:
        """Records from singer-sdk BATCH files (jsonl, optionally gzip) load like RECORDs."""
        self._assert_line_requires(message_dict, requires={"stream", "encoding", "manifest"})
        if self._maps.maps_stream(message_dict["stream"]):
            raise InvalidInputLine(
                f"input line {message_dict['line']}: BATCH messages of stream "
                f"'{message_dict['stream']}' cannot go through stream maps or flattening "
                "(not supported); send RECORD messages or drop the map for this stream"
            )
        sink = self._sink_for(message_dict)
        line = message_dict["line"]
        encoding = message_dict["encoding"] or {}
        if encoding.get("format") != "jsonl":
            raise InvalidInputLine(
                f"input line {line}: BATCH format '{encoding.get('format')}' is not supported "
                "(jsonl only)"
            )
        version = sink.shadow_version if self._overwrite else None
        row = 0
        for url in message_dict["manifest"]:
            for raw in read_batch_file(url, encoding.get("compression"), line):
                row += 1
                sink.add((line << SEQ_SHIFT) | row, raw, version, None)
                self._after_add(sink)

    @classmethod
    def invoke(cls, **kwargs: t.Any) -> None:
        """A refusal is one clear line and exit code 1; its traceback only at debug level."""
        try:
            super().invoke(**kwargs)
        except ConfigValidationError:
            raise  # singer-sdk's CLI lists each error itself
        except REFUSALS as exc:
            cls.logger.debug("Traceback of the refusal below", exc_info=True)
            cls.logger.error("%s", exc)
            sys.exit(1)

    def _hold_shadow(self, sink: PostgresSink) -> None:
        """This run fills the sink's shadow: its first session holds the shadow's lock."""
        if sink.spec.stream not in self._held_shadows:
            wait = float(self.config.get("lock_timeout", 300))
            shadows.hold(self._sessions[0].conn, sink.shadow, self.logger, wait)
            self._held_shadows[sink.spec.stream] = sink.shadow

    def process_endofpipe(self) -> None:
        """At a clean end of input, every open refresh ends: swapped in if proven complete.

        singer-sdk taps (Stream.sync) send ACTIVATE_VERSION once, before the records, and a
        tap that dies mid-refresh ends the input too: without a closing ACTIVATE_VERSION the
        end of input proves nothing, unless the runner vouches for the tap's success (see
        END_OF_INPUT_PROOF). Unproven, the refresh's rows are merged and nothing is deleted.
        """
        vouched = os.environ.get(END_OF_INPUT_PROOF) == "1"
        ended: list[tuple[PostgresSink, int | None]] = []
        for sink in self._sinks.values():
            if sink.shadow_version is None:
                continue
            if self._overwrite or vouched:
                ended.append((sink, sink.shadow_version))
                continue
            ended.append((sink, None))
            self.logger.warning(
                "Stream '%s': the input ended without proof that the full refresh of version "
                "%s is complete (no closing ACTIVATE_VERSION: singer-sdk taps send none, and a "
                "failed tap ends the input too). Its rows were merged as upserts; rows absent "
                "from the refresh were kept%s. To have rows the source no longer has removed, "
                "run the pipeline with `state-service run`, or wrap the tap in `refresh-seal` "
                "(meltano run, shell pipes).",
                sink.spec.stream,
                sink.shadow_version,
                # Those deletes are the records' own, not the refresh's (issue 22 item 6).
                ", and records carrying _sdc_deleted_at deleted their rows (hard_delete)"
                if self._sink_settings.hard_delete
                else "",
            )
        try:
            if ended:
                self._commit(activate=ended)
            self._commit()
            self._wait_for_commits()
        except BaseException:
            self._drop_held_shadows()
            raise
        self._committer.shutdown()
        self._locks.close()
        for session in self._sessions:
            session.conn.close()
        self._sessions = []
        self._held_shadows = {}

    def _commit(self, activate: list[tuple[PostgresSink, int | None]] | None = None) -> None:
        """Land every buffered record, and the latest STATE with them, in ONE transaction.

        The transaction runs on the commit thread (or here, with `activate`, which makes those
        table versions the tables' content in the same transaction); only after it commits is
        the STATE written to stdout.
        """
        dirty = sorted(
            (s for s in self._sinks.values() if s.pending),
            key=lambda s: (s.spec.schema, s.spec.table),
        )
        state = self._pending_state
        # STATE waits while records of this run sit in a shadow table that is not swapped in.
        swapped = {id(s) for s, _ in activate or []}
        held = any(s.refreshing for s in self._sinks.values() if id(s) not in swapped)
        new_state = state is not None and state != self._emitted_state and not held
        if not dirty and not new_state and not activate:
            return
        session = self.session
        for sink in dirty:
            sink.send_chunk()
        session.stager.close()
        tables = {(s.spec.schema, s.spec.table) for s in dirty}
        tables |= {(s.spec.schema, s.spec.table) for s, _ in activate or []}
        batches = [(sink.spec.stream, sink.take_batch()) for sink in dirty]
        state_out = state if new_state else None
        if new_state:
            self._emitted_state = state
        self._buffered_rows = 0
        streams = sorted(self._sinks)

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
            self._commit_batches(
                session.conn, sorted(tables), batches, streams, state_out, activate
            )

        if activate:
            self._wait_for_commits()
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

    def _end_copy(self) -> None:
        """No statement stays open while the tap is idle (statement or idle timeouts)."""
        if self._sessions:
            self.session.stager.close()

    def _handle_termination(self, signum: int, frame: FrameType | None) -> None:
        """SIGTERM/SIGINT: stop now, exit non-zero; nothing not yet committing commits.

        (singer-sdk's handler exits 0, which a runner would read as success.)
        """
        self._failed = True
        for session in self._sessions:
            if session.job is not None and not session.job.done():
                session.conn.cancel_safe()  # a merge still running rolls back
        name = signal.Signals(signum).name
        self.logger.error(
            "Stopped by %s: nothing after the last emitted STATE was committed.", name
        )
        raise SystemExit(128 + signum)

    def _finish_commits_after_error(self) -> None:
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
            connector.drop_tables(self.config, list(self._held_shadows.values()), self.logger)

    def _switch_session(self) -> None:
        """Stream the next batch into the other session once its last commit is done."""
        self._current = (self._current + 1) % len(self._sessions)
        session = self._sessions[self._current]
        if session.job is not None:
            job, session.job = session.job, None
            job.result()
        for sink in self._sinks.values():
            sink.stager = session.stager

    def _commit_batches(
        self,
        conn: psycopg.Connection,
        tables: list[tuple[str, str]],
        batches: list[tuple[str, Callable[[psycopg.Connection], int]]],
        streams: list[str],
        state: str | None,
        activate: list[tuple[PostgresSink, int | None]] | None,
    ) -> None:
        if self._failed:
            return  # an earlier commit failed: nothing after it may land or be reported
        try:
            with self._transaction(conn, ", ".join(f"{s}.{t}" for s, t in tables)):
                # One lock order for every process, so two targets never deadlock.
                for table in tables:
                    connector.lock_table(conn, *table)
                landed = {stream: merge_batch(conn) for stream, merge_batch in batches}
                for sink, version in activate or []:
                    stream = sink.spec.stream
                    landed[stream] = landed.get(stream, 0) + sink.activate_version(conn, version)
                if state is not None:
                    connector.save_state(conn, self.state_schema, streams, state)
        except BaseException:
            self._failed = True
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


if __name__ == "__main__":
    TargetPostgresAtomic.cli()
