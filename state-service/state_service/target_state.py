"""Resume from the target's committed state when it is newer than the stored bookmark.

target-postgres-atomic writes each STATE into `<schema>._sdc_target_state` in the same
transaction as the rows it covers, and only then prints it. A wrapper killed between that commit
and storing the printed STATE leaves a stored bookmark older than the data: rows the target
committed are unknown to the tap's next run (a new Jira issue then deleted stays live). So at
each start the wrapper reads that table (its location comes from the target's config file) and:

- records a *mark* in the run row: the newest `committed_at` it saw, a timestamp of the target
  database's own clock (never compared with any other clock);
- takes the newest row committed after the previous run's mark, among this pipeline's rows
  (tagged with its name by the target, or untagged rows of its streams: the stored bookmark's
  and those its runs counted), as the target's committed state; if it differs from the stored
  bookmark, it is stored (fenced, under this run's lease) and the tap starts from it.

The target stores each row with the pipeline and fencing token of the run that wrote it (from
STATE_SERVICE_PIPELINE/TOKEN). A row of a token that has since been fenced off is never taken
(see `newer_committed`): a run that lost its lease while its target kept committing must not
move the bookmark back.

An edit (`state set` / `state clear`) after the previous run wins: the operator's state stands.
Untagged rows (an older target) of a pipeline that never stored a bookmark nor counted a
stream have no streams to match, so a crash inside its very first run is recovered only from
rows that name the pipeline.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy import select

from state_service.errors import describe_error
from state_service.lease import Lease, record_target_mark, write_bookmark
from state_service.report import read_bookmark_and_token
from state_service.schema import run_streams, runs
from state_service.store import Store
from state_service.urls import display_url, scrub

STATE_TABLE = "_sdc_target_state"
TARGET_PROGRAM = "target-postgres-atomic"
DEFAULT_SCHEMA = "public"
SSL_FILES = {
    "ssl_certificate_authority": "sslrootcert",
    "ssl_client_certificate": "sslcert",
    "ssl_client_private_key": "sslkey",
}


class TargetStateUnreadable(Exception):
    """The target's state table could not be located or read (one line, no secret)."""


@dataclass(frozen=True)
class Committed:
    stream: str
    state: str
    committed_at: datetime
    pipeline: str | None = None  # the run's, as the target was told (None: no runner said)
    token: int | None = None  # that run's fencing token

    def of(self, pipeline: str, streams: set[str]) -> bool:
        """Written for this pipeline: tagged with it, or untagged and one of its streams."""
        return self.pipeline == pipeline if self.pipeline is not None else self.stream in streams


@dataclass(frozen=True)
class Snapshot:
    rows: list[Committed]

    @property
    def mark(self) -> str:
        """The newest commit seen ("" when the table is empty or absent)."""
        newest = max((r.committed_at for r in self.rows), default=None)
        return "" if newest is None else newest.isoformat()


def config_paths(target_args: Sequence[str]) -> tuple[Path, ...] | None:
    """The ``--config FILE`` files of a target-postgres-atomic command line, in order (singer-sdk
    merges them, later ones winning); None for other targets, none given, or ``--config ENV``
    (settings from the environment are not followed)."""
    if not target_args or Path(target_args[0]).name != TARGET_PROGRAM:
        return None
    paths: list[Path] = []
    for number, arg in enumerate(target_args):
        if arg == "--config" and number + 1 < len(target_args):
            value = target_args[number + 1]
        elif arg.startswith("--config="):
            value = arg.removeprefix("--config=")
        else:
            continue
        if value == "ENV":
            return None
        paths.append(Path(value))
    return tuple(paths) or None


@dataclass(frozen=True)
class TargetStateTable:
    """Where target-postgres-atomic keeps its committed state, as its config says."""

    connect: dict[str, Any]  # psycopg.connect() arguments (may hold a password: never printed)
    schema: str
    where: str  # the same, safe to print

    @property
    def timeout_ms(self) -> int:
        """The read's statement timeout: as long as the connection may take."""
        return int(self.connect["connect_timeout"]) * 1000

    @classmethod
    def from_config(cls, paths: Path | Sequence[Path], connect_timeout: float) -> TargetStateTable:
        """From the target's config file(s), merged as singer-sdk merges them."""
        sources = (paths,) if isinstance(paths, Path) else tuple(paths)
        path = ", ".join(str(p) for p in sources)
        config: dict[str, Any] = {}
        for file in sources:
            try:
                part = json.loads(file.read_text())
            except (OSError, ValueError) as exc:
                raise TargetStateUnreadable(
                    f"target config {file}: {describe_error(exc)}"
                ) from None
            if not isinstance(part, dict):
                raise TargetStateUnreadable(f"target config {file}: not a JSON object")
            config.update(part)
        tunnel = config.get("ssh_tunnel")
        if isinstance(tunnel, dict) and tunnel.get("enable"):
            raise TargetStateUnreadable(f"target config {path}: reached through ssh_tunnel")
        schema = str(config.get("default_target_schema") or DEFAULT_SCHEMA)
        args: dict[str, Any] = {
            "connect_timeout": max(1, round(connect_timeout)),
            # a server that stops answering mid-read (libpq's own setting, not sent to the server)
            "tcp_user_timeout": max(1000, round(connect_timeout * 1000)),
        }
        if url := config.get("sqlalchemy_url"):
            args["conninfo"] = re.sub(r"^postgresql\+\w+://", "postgresql://", str(url))
            where = display_url(args["conninfo"])
        else:
            keys = {"host": "host", "port": "port", "user": "user", "password": "password"}
            args.update({libpq: config[key] for key, libpq in keys.items() if key in config})
            if "database" in config:
                args["dbname"] = config["database"]
            user, host = config.get("user", ""), config.get("host", "")
            where = f"{user}@{host}:{config.get('port', 5432)}/{config.get('database', '')}"
        if config.get("ssl_enable"):
            args["sslmode"] = config.get("ssl_mode", "verify-full")
            files = {libpq: config[key] for key, libpq in SSL_FILES.items() if key in config}
            if any("-----BEGIN" in str(value) for value in files.values()):
                raise TargetStateUnreadable(f"target config {path}: inline SSL certificates")
            args.update(files)
        return cls(args, schema, f"{where} {schema}.{STATE_TABLE}")

    def read(self) -> Snapshot:
        table = sql.Identifier(self.schema, STATE_TABLE)
        try:
            with psycopg.connect(**self.connect) as conn:
                # A locked table (a migration, LOCK TABLE) must not hold the run's start: a
                # local setting, so a pooler in transaction mode passes nothing on.
                conn.execute(
                    "SELECT set_config('statement_timeout', %s, true)", [str(self.timeout_ms)]
                )
                # Quoted: to_regclass folds an unquoted name to lower case ("Jira" is not jira).
                exists = conn.execute("SELECT to_regclass(%s)", [table.as_string(conn)]).fetchone()
                if exists is None or exists[0] is None:
                    return Snapshot([])
                # to_jsonb(row): a table of an older target has no pipeline/token columns.
                query = sql.SQL(
                    "SELECT stream, state::text, committed_at, to_jsonb(t)->>'pipeline', "
                    "(to_jsonb(t)->>'fencing_token')::bigint FROM {} AS t"
                ).format(table)
                return Snapshot([Committed(*row) for row in conn.execute(query)])
        except psycopg.Error as exc:
            secret = str(self.connect.get("password") or self.connect.get("conninfo") or "")
            reason = describe_error(exc)
            raise TargetStateUnreadable(
                f"{self.where}: {scrub(reason, secret) if secret else reason}"
            ) from None


def pipeline_streams(store: Store, pipeline: str, stored: str | None) -> set[str]:
    """Streams of this pipeline: in its stored bookmark and in the counts of its runs."""
    streams: set[str] = set()
    if stored is not None:
        marks = json.loads(stored).get("bookmarks")
        streams.update(marks if isinstance(marks, dict) else ())
    query = (
        select(run_streams.c.stream)
        .join(runs, runs.c.run_id == run_streams.c.run_id)
        .where(runs.c.pipeline == pipeline)
        .distinct()
    )
    with store.reading() as conn:
        streams.update(str(s) for s in conn.execute(query).scalars())
    return streams


@dataclass(frozen=True)
class Previous:
    """The latest earlier run that recorded a mark: the mark, and that run's token."""

    mark: str
    token: int


def previous_mark(store: Store, pipeline: str, run_id: int) -> Previous | None:
    """The latest earlier run that recorded a mark; None when there is none, or when an edit
    came after it (the operator's state stands)."""
    query = (
        select(runs.c.kind, runs.c.target_state_mark, runs.c.token)
        .where(runs.c.pipeline == pipeline, runs.c.run_id < run_id)
        .where((runs.c.kind == "edit") | runs.c.target_state_mark.is_not(None))
        .order_by(runs.c.run_id.desc())
        .limit(1)
    )
    with store.reading() as conn:
        row = conn.execute(query).one_or_none()
    if row is None or row.kind == "edit":
        return None
    return Previous(str(row.target_state_mark), int(row.token))


@dataclass(frozen=True)
class Stored:
    """The pipeline's stored bookmark and the token of the run that wrote it (None: none)."""

    state: str | None
    token: int | None


def newer_committed(
    snapshot: Snapshot, previous: Previous, pipeline: str, streams: set[str], stored: Stored
) -> Committed | None:
    """The state to resume from: the newest of this pipeline's rows committed after the
    previous run's mark, if it is not the stored bookmark.

    A row that carries a token is taken only if no row of a higher token is there, and only
    if its token is at least both the previous run's (every row here was committed after that
    run took the lease, so a lower token's is a fenced-off run's late write) and the stored
    bookmark's writer's (a run that took the lease after it stored state since). Rows without
    a token (a target not told one) are taken by the mark alone.
    """
    after = datetime.fromisoformat(previous.mark) if previous.mark else None
    candidates = [
        r
        for r in snapshot.rows
        if r.of(pipeline, streams) and (after is None or r.committed_at > after)
    ]
    tokens = [r.token for r in candidates if r.token is not None]
    floor = max(previous.token, stored.token or 0, *tokens)
    candidates = [r for r in candidates if r.token is None or r.token >= floor]
    if not candidates:
        return None
    newest = max(candidates, key=lambda r: r.committed_at)
    if stored.state is not None and json.loads(stored.state) == json.loads(newest.state):
        return None
    return newest


def describe(committed: Committed, table: TargetStateTable) -> str:
    token = "" if committed.token is None else f", token {committed.token}"
    return (
        f"the target's committed state ({table.where}, stream {committed.stream!r}{token}, "
        f"committed {committed.committed_at.isoformat()})"
    )


def starting_state(
    store: Store, lease: Lease, config: Sequence[Path] | None, connect_timeout: float
) -> str | None:
    """The state the tap starts from: the stored bookmark, or the target's committed state when
    that is newer (then stored first). ``config``: the target's config file(s), if known."""
    stored = Stored(*read_bookmark_and_token(store, lease.pipeline))
    if config is None:
        return stored.state
    try:
        table = TargetStateTable.from_config(config, connect_timeout)
        snapshot = table.read()
    except TargetStateUnreadable as exc:
        print(
            f"state-service: the target's committed state was not read ({exc}); "
            "starting from the stored bookmark",
            file=sys.stderr,
            flush=True,
        )
        return stored.state
    previous = previous_mark(store, lease.pipeline, lease.run_id)
    record_target_mark(store, lease, snapshot.mark)
    if previous is None:
        return stored.state
    streams = pipeline_streams(store, lease.pipeline, stored.state)
    newer = newer_committed(snapshot, previous, lease.pipeline, streams, stored)
    if newer is None:
        return stored.state
    write_bookmark(store, lease, newer.state)
    print(
        f"state-service: resuming from {describe(newer, table)}: the stored bookmark is older "
        "(the previous run ended before storing it)",
        file=sys.stderr,
        flush=True,
    )
    return newer.state
