"""The soak's sources and its pipelines: each source under `state-service run` and under
`meltano run`, each pipeline into its own schema of one PostgreSQL database.

Jira: the emulator, other users editing, moving, creating and deleting issues while a sync
pages (`churn_every_searches`) and between runs. Boards: the same Jira's boards and their
issues, full-table streams loaded with `load_method: overwrite` (a killed tap's partial table
must never replace the whole one). DynamoDB: moto + our Streams endpoint, random puts, updates
and deletes between runs and from a writer thread during them, shard splits; loaded with
`hard_delete` into a table whose key is case-insensitive, the tap's stream map spelling each
event's key in upper or lower case, so deletes and their replays meet in other spellings.
"""

from __future__ import annotations

import json
import os
import random
import shlex
import threading
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from psycopg import sql

from safe_singer_testing.cli import BIN, script
from safe_singer_testing.composition import write_json
from safe_singer_testing.dynamodb import random_writes, running_stack, scan_items
from safe_singer_testing.emulators.dynamodb_streams import Faults, Stack
from safe_singer_testing.emulators.jira import JiraEmulator
from safe_singer_testing.emulators.jira.harness import catalog_selecting, issues_only_catalog
from safe_singer_testing.postgres import PgServer
from safe_singer_testing.soak import HEARTBEAT_SECONDS, LEASE_SECONDS, Pipeline

TAPS = {"jira": "tap-jira-safe", "dynamodb": "tap-dynamodb-streams", "boards": "tap-jira-safe"}
# Meltano plugin names: the boards pipeline is tap-jira-safe again, as a plugin of its own.
PLUGINS = {"jira": "tap-jira-safe", "dynamodb": "tap-dynamodb-streams", "boards": "tap-jira-boards"}
TARGET = "target-postgres-atomic"
TABLE = "soak_orders"
DDB_KEYS = 80
CI_COLLATION = "soak_ci"
# Each event's key in upper case when its sequence number is odd: a replay of an event, or an
# older event of the key, is often spelled otherwise than the delete that must keep it out.
DDB_KEY_SPELLING = {TABLE: {"pk": "pk.upper() if int(_sdc_sequence_number[-1]) % 2 else pk"}}
_KINDS = {bool: "boolean", int: "integer"}


@dataclass
class Sources:
    jira: JiraEmulator
    stack: Stack
    rng: random.Random
    writer_on: threading.Event
    seeded_issues: set[int]
    delete_new_issues: bool

    def change(self, source: str) -> None:
        """What other users do between two runs."""
        if source in ("jira", "boards"):
            self.jira.dataset.churn(edits=4, deletes=0, moves=1, creates=2)
            live = set(self.jira.dataset.issues)
            pool = live if self.delete_new_issues else live & self.seeded_issues
            if len(pool) > 1:
                self.jira.dataset.delete_issue(self.rng.choice(sorted(pool)))
        else:
            random_writes(self.stack.dynamodb(), TABLE, 40, keys=DDB_KEYS, rng=self.rng)
            if self.rng.random() < 0.2:
                self.stack.streams.split(TABLE)

    def quiesce(self) -> None:
        """Stop changing the sources, so a last clean run can catch up with them."""
        self.jira.settings.churn_every_searches = 0
        self.writer_on.clear()

    def tap_config(self, source: str) -> dict[str, Any]:
        if source in ("jira", "boards"):
            # The soak deletes far more than a real site between runs (killed runs pile the
            # deletes up); the mass-delete rail has its own tests
            # (tests/integration/test_jira_real.py).
            return self.jira.tap_config(
                search_lag_seconds=0,
                lookback_minutes=1,
                # Boards: pages of 2, so a run pages for seconds and kills land mid-table.
                page_size=2 if source == "boards" else 10,
                reconcile_deletes=True,
                max_delete_fraction=0.5,
            )
        # The default idle (3 s, about 13 paced calls), not the tests' 1 s: the soak injects
        # empty pages and throttles on top of the endpoint's 3-page empty stretches, so 1 s
        # often ends an open shard inside a stretch and the last clean run stops short of it.
        config = self.stack.tap_config(
            [TABLE], max_records_per_request=50, open_shard_idle_seconds=3
        )
        return {**config, "stream_maps": DDB_KEY_SPELLING}

    def truth(self, source: str) -> dict[str, Any]:
        if source == "jira":
            return dict(self.jira.live_issues())
        if source == "boards":
            return board_issues(self.jira)
        return dynamodb_rows(self.stack, TABLE)


def board_issues(jira: JiraEmulator) -> dict[str, int]:
    """``{"<board id>/<issue id>": updated ms}``: a board lists every live issue of its project."""
    projects = {board.project: board.id for board in jira.dataset.boards}
    return {
        f"{projects[issue.project]}/{issue.id}": issue.updated_ms
        for issue in list(jira.dataset.issues.values())
        if issue.archived_ms is None and issue.project in projects
    }


def dynamodb_rows(stack: Stack, table: str) -> dict[str, tuple[Any, ...]]:
    """``{pk: (n, i, s)}`` of a DynamoDB table, read with a consistent scan (keys in lower
    case, as the case-insensitive key column compares them)."""
    return {
        item["pk"]["S"].lower(): tuple(_ddb_value(item.get(name)) for name in ("n", "i", "s"))
        for item in scan_items(stack.dynamodb(), table)
    }


def _ddb_value(attribute: dict[str, str] | None) -> Any:
    if attribute is None:
        return None
    if "N" in attribute:
        return Decimal(attribute["N"])
    return attribute["S"]


def loaded(db: PgServer, source: str, schema: str) -> dict[str, Any]:
    """What a pipeline's table holds, in the shape of ``Sources.truth``."""
    if source == "jira":
        query = sql.SQL("SELECT id, updated FROM {}.issues WHERE _sdc_deleted_at IS NULL")
    elif source == "boards":
        query = sql.SQL(
            "SELECT board_id || '/' || issue_id, updated FROM {}.board_issues"
            " WHERE _sdc_deleted_at IS NULL"
        )
    else:
        query = sql.SQL("SELECT pk, n, i, s FROM {}." + TABLE)
    with db.connect() as conn:
        rows = conn.execute(query.format(sql.Identifier(schema))).fetchall()
    if source in ("jira", "boards"):
        return {str(i): round(u.timestamp() * 1000) for i, u in rows}
    loaded_rows = {r[0].lower(): tuple(r[1:]) for r in rows}
    assert len(loaded_rows) == len(rows), f"{schema}.{TABLE} holds a key in two spellings"
    return loaded_rows


def resurrected(db: PgServer, schema: str) -> list[str]:
    """Rows of the DynamoDB table older than a delete of their key in any spelling (its
    tombstone, kept by ``hard_delete``): an older replay that came back over a newer delete.
    A replay's own later delete would hide it by the end, so this is checked after every run."""
    query = sql.SQL(
        "SELECT r.pk, r._sdc_sequence_number, d.key[1], d.version FROM {}.{} r"
        " JOIN {}._sdc_target_tombstones d ON d.table_name = {}"
        " AND d.key[1] COLLATE {} = r.pk AND d.version::numeric > r._sdc_sequence_number"
    ).format(
        sql.Identifier(schema),
        sql.Identifier(TABLE),
        sql.Identifier(schema),
        sql.Literal(TABLE),
        sql.Identifier(CI_COLLATION),
    )
    with db.connect() as conn:
        rows = conn.execute(query).fetchall()
    return [
        f"{schema}.{TABLE}: {pk} of version {v} live after {key}'s delete at {d}"
        for pk, v, key, d in rows
    ]


def case_insensitive_tables(db: PgServer, schemas: list[str]) -> None:
    """The DynamoDB tables, made before the first run with their key in a case-insensitive
    (nondeterministic ICU) collation; the target adds the other columns."""
    with db.connect() as conn:
        conn.execute(
            sql.SQL(
                "CREATE COLLATION IF NOT EXISTS {} (provider = icu, "
                "locale = 'und-u-ks-level2', deterministic = false)"
            ).format(sql.Identifier(CI_COLLATION))
        )
        for schema in schemas:
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
            conn.execute(
                sql.SQL("CREATE TABLE {}.{} (pk text COLLATE {} PRIMARY KEY)").format(
                    sql.Identifier(schema), sql.Identifier(TABLE), sql.Identifier(CI_COLLATION)
                )
            )
        conn.commit()


def _writer(stack: Stack, rng: random.Random, on: threading.Event, stop: threading.Event) -> None:
    client = stack.dynamodb()
    while not stop.wait(0.3):
        stack.streams.advance(0.3)  # event times move as on AWS: a run stops at its start
        if on.is_set():
            random_writes(client, TABLE, 3, keys=DDB_KEYS, rng=rng)


@contextmanager
def running_sources(seed: int, jira_issues: int, delete_new_issues: bool) -> Iterator[Sources]:
    """The sources, changing; ``delete_new_issues`` lets Jira users delete issues created
    during the soak too (a run killed after loading one must still see it go:
    tests/integration/test_crash_findings.py)."""
    with ExitStack() as stack_of:
        jira = stack_of.enter_context(
            JiraEmulator(
                issue_count=jira_issues,
                seed=seed,
                latency_ms=20,
                churn_every_searches=3,
                churn_edits=1,
                churn_deletes=1 if delete_new_issues else 0,
                churn_creates=1,
            )
        )
        stack = stack_of.enter_context(
            running_stack(Faults(empty_page_rate=0.1, throttle_rate=0.02, seed=seed))
        )
        stack.create_table(TABLE)
        rng = random.Random(seed)
        random_writes(stack.dynamodb(), TABLE, 150, keys=DDB_KEYS, rng=rng)
        writer_on, stop = threading.Event(), threading.Event()
        writer_on.set()
        thread = threading.Thread(
            target=_writer, args=(stack, random.Random(seed + 1), writer_on, stop), daemon=True
        )
        thread.start()
        try:
            seeded = set(jira.dataset.issues)
            yield Sources(jira, stack, rng, writer_on, seeded, delete_new_issues)
        finally:
            stop.set()
            thread.join()


def _target_config(db: PgServer, source: str, schema: str) -> dict[str, Any]:
    # Small batches: several commits (and STATE lines) per run, so kills land between them.
    return {
        **db.target_config(),
        "default_target_schema": schema,
        "batch_size_rows": 25,
        "hard_delete": source == "dynamodb",
        "load_method": "overwrite" if source == "boards" else "upsert",
    }


def _catalog(sources: Sources, source: str) -> dict[str, Any] | None:
    if source == "jira":
        return issues_only_catalog()
    if source == "boards":
        return catalog_selecting(sources.tap_config(source), {"boards", "board_issues"})
    return None


def state_service_pipeline(
    sources: Sources, source: str, db: PgServer, state_url: str, workdir: Path
) -> Pipeline:
    schema = f"{source}_statesvc"
    tap = [
        script(TAPS[source]),
        "--config",
        write_json(workdir / f"{schema}-tap.json", sources.tap_config(source)),
    ]
    if (catalog := _catalog(sources, source)) is not None:
        tap += ["--catalog", write_json(workdir / f"{schema}-catalog.json", catalog)]
    target = [
        script(TARGET),
        "--config",
        write_json(workdir / f"{schema}-target.json", _target_config(db, source, schema)),
    ]
    argv = [
        script("state-service"),
        "--db",
        state_url,
        "run",
        schema,
        "--lease-seconds",
        str(LEASE_SECONDS),
        "--heartbeat-seconds",
        str(HEARTBEAT_SECONDS),
        "--tap",
        shlex.join(tap),
        "--target",
        shlex.join(target),
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("STATE_SERVICE_")}
    return Pipeline(
        source, "state-service", argv, env, workdir, schema, schema, TAPS[source], TARGET
    )


def meltano_pipelines(
    sources: Sources, names: tuple[str, ...], db: PgServer, state_url: str, workdir: Path
) -> list[Pipeline]:
    """The ``names``d sources as plugins of one throwaway Meltano project, state in
    state-service."""
    project = workdir / "meltano-project"
    project.mkdir()
    extractors = []
    for source in names:
        plugin: dict[str, Any] = {
            "name": PLUGINS[source],
            "namespace": PLUGINS[source].replace("-", "_"),
            "executable": script(TAPS[source]),
            "capabilities": ["catalog", "discover", "state", "about"],
            "config": sources.tap_config(source),
        }
        if (catalog := _catalog(sources, source)) is not None:
            plugin["catalog"] = write_json(project / f"{source}-catalog.json", catalog)
        extractors.append(plugin)
    meltano_yml = {
        "default_environment": "dev",
        "project_id": str(uuid.uuid4()),
        "send_anonymous_usage_stats": False,
        "environments": [{"name": "dev"}],
        "state_backend": {
            "uri": "statesvc://",
            "statesvc": {"lease_seconds": LEASE_SECONDS, "heartbeat_seconds": HEARTBEAT_SECONDS},
        },
        "plugins": {
            "extractors": extractors,
            "loaders": [
                {
                    "name": TARGET,
                    "namespace": "target_postgres_atomic",
                    "executable": script(TARGET),
                    "settings": [
                        {"name": key, "kind": _KINDS.get(type(value), "string")}
                        for key, value in _target_config(db, "jira", "x").items()
                    ],
                }
            ],
        },
    }
    (project / "meltano.yml").write_text(json.dumps(meltano_yml, indent=1))  # JSON is YAML
    base = {k: v for k, v in os.environ.items() if not k.startswith(("STATE_SERVICE_", "MELTANO_"))}
    base["PATH"] = f"{BIN}{os.pathsep}{base.get('PATH', '')}"
    base["MELTANO_STATE_BACKEND_STATESVC_DATABASE_URL"] = state_url
    pipelines = []
    for source in names:
        tap = PLUGINS[source]
        schema = f"{source}_meltano"
        env = dict(base)
        for key, value in _target_config(db, source, schema).items():
            env[f"TARGET_POSTGRES_ATOMIC_{key.upper()}"] = (
                str(value).lower() if isinstance(value, bool) else str(value)
            )
        # --force skips Meltano's own check of its local system database, which holds a
        # killed `meltano run` as running for 5 minutes; the state-service lease still refuses
        # a second live run (and lets one in as soon as a dead run's lease expires).
        argv = [script("meltano"), "run", "--force", tap, TARGET]
        state_id = f"dev:{tap}-to-{TARGET}"
        pipelines.append(
            Pipeline(
                source,
                "meltano",
                argv,
                env,
                project,
                state_id,
                schema,
                TAPS[source],
                TARGET,
                expected_seconds=10.0,
            )
        )
    return pipelines
