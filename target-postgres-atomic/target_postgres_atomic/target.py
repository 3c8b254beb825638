"""The Singer adapter of target-postgres-atomic: routes each message to the load engine."""

from __future__ import annotations

import os
import signal
import typing as t
from types import FrameType

import msgspec
import psycopg
from safe_singer_common.plugin import refuse_bad_config
from singer_sdk.exceptions import SingerSDKError
from singer_sdk.helpers.capabilities import PluginCapabilities, TargetCapabilities
from typing_extensions import override

from target_postgres_atomic import connector, merge, owners, sdk_compat, tls
from target_postgres_atomic.batch_files import batch_records
from target_postgres_atomic.columns import LossyTypeChange
from target_postgres_atomic.committed import CommittedStateTarget
from target_postgres_atomic.engine import LoadEngine
from target_postgres_atomic.errors import (
    SEQ_SHIFT,
    InvalidInputLine,
    RecordsWithoutSchemaException,
    SchemaError,
)
from target_postgres_atomic.fast import FastRecords
from target_postgres_atomic.mapping import StreamMaps
from target_postgres_atomic.reader import LineReader
from target_postgres_atomic.settings import CONFIG_SCHEMA, INSTEAD, refused_values
from target_postgres_atomic.sinks import PostgresSink, SinkSettings
from target_postgres_atomic.spec import TableSpec, build_spec
from target_postgres_atomic.target_settings import TargetSettings

# Errors that mean "this input or setting cannot be loaded as it is", as opposed to bugs.
REFUSALS = (SingerSDKError, InvalidInputLine, psycopg.OperationalError)
# Set to 1 by a runner that ends the target's input only after the tap exited 0 (and stops
# the target otherwise), as `state-service run` does: the end of input then proves every open
# full refresh complete.
END_OF_INPUT_PROOF = "SINGER_END_OF_INPUT_MEANS_TAP_SUCCEEDED"
BATCH_SIZE_BYTES = 256 * 1024 * 1024


class TargetPostgresAtomic(CommittedStateTarget):
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
        self._maps = StreamMaps(self.mapper, self.config)
        self._unguarded: set[str] = set()
        """Streams whose bookmark cannot be compared, warned about once."""
        self._tables: dict[tuple[str, str], str] = {}
        """The stream that loads each (schema, table) in this run."""
        self._early_openings: dict[str, int] = {}
        """ACTIVATE_VERSION that came before its stream's SCHEMA."""
        self._tap_openings: dict[str, set[int]] = {}
        """overwrite: table versions whose opening ACTIVATE_VERSION the tap sent, by stream."""
        self._sealed: set[str] = set()
        """overwrite: streams whose refresh the tap (or refresh-seal) closed after its last
        record: proof that the stream's input is complete."""
        self._settings = settings = TargetSettings.from_config(self.config)
        self._engine = LoadEngine(
            self.config,
            state_schema=settings.state_schema,
            lock_timeout=settings.lock_timeout,
            sink_settings=SinkSettings(
                batch_size_rows=settings.batch_size_rows,
                batch_size_bytes=BATCH_SIZE_BYTES,
                hard_delete=settings.hard_delete,
                validate_records=settings.validate_records,
                upsert=settings.upsert,
                sanitize_null_text_characters=settings.sanitize_null_text_characters,
            ),
            logger=self.logger,
        )
        self.logger.info(
            "Database %s, schema %s.",
            connector.location(self.config),
            settings.default_target_schema or "from each stream name, else public",
        )
        for warning in tls.unused_settings(self.config):
            self.logger.warning("%s.", warning)
        self._sinks = self._engine.sinks
        self._fast = FastRecords(self._engine)
        if isinstance(self.message_reader, LineReader):
            self.message_reader.on_error = self._engine.close_after_error
            self.message_reader.on_idle = self._engine.end_copy
            self.message_reader.fast_lines = self._fast.take

    @override
    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        """A bad setting, one the target does not implement (peers' names get what to use
        instead) or a peer's value it does not honour is refused without quoting a secret."""
        return refuse_bad_config(
            self, super()._validate_config, INSTEAD, refused_values(self.config)
        )

    @override
    def _process_schema_message(self, message_dict: dict) -> None:
        sdk_compat.assert_line_requires(self, message_dict, requires={"stream", "schema"})
        self._fast.forget()
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
            default_schema=self._settings.default_target_schema,
            add_record_metadata=self._settings.add_record_metadata,
            version_columns=self._settings.version_columns,
            interpret_content_encoding=self._settings.interpret_content_encoding,
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
        engine = self._engine
        engine.commit()
        engine.wait()
        try:
            self._evolve_table(spec, message_dict["line"])
        except psycopg.errors.InsufficientPrivilege as exc:
            raise SchemaError(
                stream,
                message_dict["line"],
                f"{exc.diag.message_primary} (as user {engine.conn.info.user}); connect as "
                "the table's owner, or have its owner (or a superuser) grant what is missing",
            ) from None

    def _evolve_table(self, spec: TableSpec, line: int) -> None:
        """The stream's table created or evolved, its sink ready (after earlier rows landed)."""
        stream, engine = spec.stream, self._engine
        conn = engine.conn
        with engine.transaction(conn, spec.qualified_text()):
            connector.lock_table(conn, spec.schema, spec.table)
            existed = bool(connector.existing_columns(conn, spec.schema, spec.table))
            if not engine.sink_settings.upsert and (
                key := connector.primary_key(conn, spec.schema, spec.table)
            ):
                raise SchemaError(
                    stream,
                    line,
                    f"load_method append-only cannot load into {spec.qualified_text()}: it has "
                    f"a primary key ({', '.join(key)}), which a repeated key would violate. "
                    "Use load_method upsert, load into another table (a stream map), or drop "
                    "the table's primary key",
                )
            try:
                connector.ensure_table(conn, spec, unique_keys=engine.sink_settings.upsert)
            except (LossyTypeChange, connector.KeyChangeRefused) as exc:
                raise SchemaError(stream, line, str(exc)) from None
            # (A refusal rolls the DDL above back with the transaction.)
            self._claim_stored_table(conn, spec, line, adopted=existed)
            spec = spec.with_types(connector.existing_columns(conn, spec.schema, spec.table))
            spec, warning = spec.with_comparable_version(line)
            tombstones = merge.tombstone_table(spec) if engine.sink_settings.hard_delete else None
            if tombstones is not None:
                connector.lock_table(conn, spec.schema, merge.TOMBSTONES)
                connector.ensure_tombstone_table(conn, tombstones)
                days = self._settings.tombstone_retention_days
                if pruned := connector.prune_tombstones(conn, tombstones, spec.table, days):
                    self.logger.warning(
                        "Stream '%s': pruned %d tombstones of deletes older than %g days "
                        "(tombstone_retention_days); a replay older than that of a deleted row "
                        "would load it again.",
                        stream,
                        pruned,
                        days,
                    )
        if warning and stream not in self._unguarded:
            self._unguarded.add(stream)
            self.logger.warning(warning)
        if stream in self._sinks:
            self._sinks[stream].update_spec(spec)
            return
        sink = engine.open_sink(spec)
        with engine.transaction(conn, spec.qualified_text()):
            connector.lock_table(conn, spec.schema, spec.table)
            if self._settings.overwrite:
                # overwrite: this run's rows are one new table version, swapped in at the end.
                engine.hold_shadow(sink)
                sink.drop_orphan_shadow(conn)
                sink.start_version(conn, connector.next_table_version(conn, spec))
            elif sink.shadow_exists(conn):
                engine.hold_shadow(sink)
                sink.drop_orphan_shadow(conn)
                self.logger.warning(
                    "Stream '%s': dropped shadow table %s, left by a run that did not finish; "
                    "its rows were never acknowledged by a STATE, so the tap sends them again.",
                    stream,
                    sink.shadow.as_string(None),
                )
        if (version := self._early_openings.pop(stream, None)) is not None:
            # `stream` is already the mapped name (stream maps applied before this point).
            self._activate_version({"stream": stream, "version": version, "line": line})

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

    def _claim_stored_table(
        self, conn: psycopg.Connection, spec: TableSpec, line: int, *, adopted: bool
    ) -> None:
        """...and not across runs either: the table's owning stream is kept in the database."""
        try:
            claimed = owners.claim(conn, spec.schema, spec.table, spec.stream)
        except owners.TableOwnedByAnotherStream as exc:
            raise SchemaError(spec.stream, line, str(exc)) from None
        if claimed and adopted:
            self.logger.info(
                "Stream '%s' now owns the existing table %s: another stream naming it will "
                "be refused.",
                spec.stream,
                spec.qualified_text(),
            )

    @override
    def _process_record_message(self, message_dict: dict) -> None:
        if self._maps.maps_stream(message_dict["stream"]):
            for mapped in self._maps.route_record(message_dict):
                self._add_record(mapped)
        else:
            self._add_record(message_dict)
            stream = message_dict["stream"]
            self._fast.remember(stream, self._sinks[stream])

    def _add_record(self, message_dict: dict) -> None:
        sink = self._sinks.get(message_dict["stream"])
        if sink is None:
            raise RecordsWithoutSchemaException(
                f"input line {message_dict['line']}: a RECORD for stream "
                f"'{message_dict['stream']}' came before its SCHEMA message"
            )
        self._sealed.discard(sink.spec.stream)  # a record after the closing: not complete
        self._engine.add(
            sink,
            message_dict.get("seq", message_dict["line"] << SEQ_SHIFT),
            message_dict["record"],
            sink.shadow_version if self._settings.overwrite else message_dict["version"],
            message_dict["time_extracted"],
        )

    @override
    def _process_state_message(self, message_dict: dict) -> None:
        sdk_compat.assert_line_requires(self, message_dict, requires={"value"})
        value = bytes(message_dict["value"])
        line = message_dict["line"]
        if not value:
            raise InvalidInputLine(f"input line {line}: STATE needs a 'value'")
        try:
            decoded = msgspec.json.decode(value)
            text = value.decode()
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:
            raise InvalidInputLine(
                f"input line {line}: STATE value is not valid JSON in UTF-8 ({exc}); fix the "
                "tap's bookmark values"
            ) from None
        if not isinstance(decoded, dict):
            raise InvalidInputLine(
                f"input line {line}: STATE value must be a JSON object (Singer state is "
                f"{{...}}), got {value[:40].decode(errors='replace')}"
            )
        if b"\\u0000" in value:
            raise InvalidInputLine(
                f"input line {line}: STATE contains a NUL character (\\u0000), which "
                "PostgreSQL cannot store; fix the tap's bookmark values"
            )
        self._engine.state(text.strip())

    def _sink_for(self, message_dict: dict) -> PostgresSink:
        sink = self._sinks.get(message_dict["stream"])
        if sink is None:
            raise RecordsWithoutSchemaException(
                f"input line {message_dict['line']}: a {message_dict['type']} message for stream "
                f"'{message_dict['stream']}' came before its SCHEMA message"
            )
        return sink

    @override
    def _process_activate_version_message(self, message_dict: dict) -> None:
        sdk_compat.assert_line_requires(self, message_dict, requires={"stream", "version"})
        if self._maps.maps_stream(message_dict["stream"]):
            for alias in self._maps.aliases(message_dict["stream"]):
                self._activate_version({**message_dict, "stream": alias})
        else:
            self._activate_version(message_dict)

    def _activate_version(self, message_dict: dict) -> None:
        stream, version = message_dict["stream"], int(message_dict["version"])
        if self._settings.overwrite and self._settings.activate_version:
            self._note_overwrite_proof(stream, version)
            return
        if not self._settings.activate_version:
            self.logger.info("Ignoring ACTIVATE_VERSION for '%s' (setting).", stream)
            return
        sink = self._sinks.get(stream)
        if sink is None:
            # Some taps announce every stream's refresh before the first SCHEMA: it opens
            # when the stream's SCHEMA arrives (no record of it can come before).
            self._early_openings[stream] = version
            return
        engine = self._engine
        engine.commit()
        engine.wait()
        if sink.closes(version):
            # The full refresh of `version` is complete: swap it in, in one transaction.
            engine.commit(activate=[(sink, version)])
            return
        # The start of a full refresh: nothing is deleted; rows load into the shadow table.
        engine.hold_shadow(sink)
        conn = engine.conn
        with engine.transaction(conn, sink.spec.qualified_text()):
            connector.lock_table(conn, sink.spec.schema, sink.spec.table)
            sink.start_version(conn, version)

    def _note_overwrite_proof(self, stream: str, version: int) -> None:
        """overwrite replaces the table with this run's rows, whatever versions the tap sends;
        a tap's ACTIVATE_VERSION only serves as proof: a repeat of an opening this run saw
        (a pipelinewise tap's closing one, or refresh-seal's once the tap exited 0) proves
        that the stream's input is complete."""
        openings = self._tap_openings.setdefault(stream, set())
        if version in openings:
            self._sealed.add(stream)
        openings.add(version)

    @override
    def _process_batch_message(self, message_dict: dict) -> None:
        """Records from singer-sdk BATCH files (jsonl, optionally gzip) load like RECORDs."""
        sdk_compat.assert_line_requires(
            self, message_dict, requires={"stream", "encoding", "manifest"}
        )
        for record in batch_records(message_dict):
            self._process_record_message(record)

    @override
    def process_endofpipe(self) -> None:
        """At a clean end of input, every open refresh ends: swapped in if proven complete.

        singer-sdk taps (Stream.sync) send ACTIVATE_VERSION once, before the records, and a
        tap that dies mid-refresh ends the input too: without a closing ACTIVATE_VERSION the
        end of input proves nothing, unless the runner vouches for the tap's success (see
        END_OF_INPUT_PROOF). Unproven, the refresh's rows are merged and the refresh deletes
        nothing (records carrying _sdc_deleted_at still delete theirs, with hard_delete).
        """
        vouched = os.environ.get(END_OF_INPUT_PROOF) == "1"
        ended: list[tuple[PostgresSink, int | None]] = []
        unproven: list[tuple[PostgresSink, int]] = []
        for sink in self._sinks.values():
            if sink.shadow_version is None:
                continue
            if vouched or sink.spec.stream in self._sealed:
                ended.append((sink, sink.shadow_version))
                continue
            ended.append((sink, None))
            unproven.append((sink, sink.shadow_version))
        # Warned after the last commit: only then is it known what the records' deletes did.
        self._engine.close(ended)
        for sink, version in unproven:
            self._warn_unproven(sink, version)

    def _warn_unproven(self, sink: PostgresSink, version: int) -> None:
        """What happened to the rows of a refresh (or overwrite) whose end was not proven."""
        deleted = sink.lander.hard_deleted
        # Only records carrying _sdc_deleted_at delete here, never the refresh (issue 22 item 6).
        deletes = (
            f"{deleted} {'row was' if deleted == 1 else 'rows were'} deleted by "
            "_sdc_deleted_at records in this run (hard_delete)"
            if deleted
            else "no row was deleted"
        )
        if self._settings.overwrite:
            self.logger.warning(
                "Stream '%s': load_method overwrite, but the input ended without proof that "
                "the tap sent all of it (a failed tap ends the input too): its rows were merged "
                "as upserts and rows absent from the input were kept; %s. To have the table "
                "replaced, run the pipeline with `state-service run`, or wrap a tap that sends "
                "ACTIVATE_VERSION in `refresh-seal` (meltano run, shell pipes).",
                sink.spec.stream,
                deletes,
            )
            return
        self.logger.warning(
            "Stream '%s': the input ended without proof that the full refresh of version %s "
            "is complete (no closing ACTIVATE_VERSION: singer-sdk taps send none, and a failed "
            "tap ends the input too). Its rows were merged as upserts and rows absent from the "
            "refresh were kept; %s. To have rows the source no longer has removed, run the "
            "pipeline with `state-service run`, or wrap the tap in `refresh-seal` (meltano run, "
            "shell pipes).",
            sink.spec.stream,
            version,
            deletes,
        )

    @override
    def _handle_termination(self, signum: int, frame: FrameType | None) -> None:
        """SIGTERM/SIGINT: stop now, exit non-zero; nothing not yet committing commits.

        (singer-sdk's handler exits 0, which a runner would read as success.)
        """
        self._engine.cancel()
        name = signal.Signals(signum).name
        self.logger.error(
            "Stopped by %s: nothing after the last emitted STATE was committed.", name
        )
        raise SystemExit(128 + signum)


if __name__ == "__main__":
    TargetPostgresAtomic.cli()
