"""An operator's `meltano state set` stands over the target's committed state, even when the
backend could not read the target's state table at the time of the edit (a relative
`target_config` seen from another directory, the target database down for a moment)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from psycopg import sql

from safe_singer_testing.postgres import PgServer

SCHEMA = "edit_stands"
# One Meltano process: the backend as Meltano drives it (module state is per process).
PROCESS = """
import json, sys
from meltano.core.state_store.base import MeltanoState
from state_service.meltano_backend import StateServiceStoreManager

url, action, value = sys.argv[1:4]
COMMIT = (
    "INSERT INTO {schema}._sdc_target_state VALUES ('issues', %s, now()) ON CONFLICT (stream) "
    "DO UPDATE SET state = EXCLUDED.state, committed_at = EXCLUDED.committed_at"
)
manager = StateServiceStoreManager(uri="statesvc://" + url, target_config="target.json")
if action == "run":  # `meltano run`: reads the state, its target commits, the state is stored
    manager.get("p")
    import psycopg
    with psycopg.connect(sys.argv[4], autocommit=True) as conn:
        conn.execute(COMMIT, [value])
    manager.set(MeltanoState("p", completed_state={"singer_state": json.loads(value)}))
elif action == "edit":  # `meltano state set`: writes without reading
    manager.set(MeltanoState("p", completed_state={"singer_state": json.loads(value)}))
else:  # what the next `meltano run` hands the tap
    got = manager.get("p")
    print(json.dumps(got.completed_state["singer_state"] if got else None))
"""


def meltano_process(cwd: Path, url: str, action: str, value: object = None, dsn: str = "") -> str:
    done = subprocess.run(
        [sys.executable, "-c", PROCESS.replace("{schema}", SCHEMA), url, action,
         json.dumps(value), dsn],
        cwd=cwd, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def commit_target_state(db: PgServer, state: object) -> None:
    """What target-postgres-atomic writes beside the rows a STATE covers."""
    table = sql.Identifier(SCHEMA, "_sdc_target_state")
    with db.connect(autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(SCHEMA)))
        conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (stream text PRIMARY KEY, state jsonb NOT NULL, "
                "committed_at timestamptz NOT NULL)"
            ).format(table)
        )
        conn.execute(
            sql.SQL(
                "INSERT INTO {} VALUES ('issues', %s, now()) ON CONFLICT (stream) DO UPDATE "
                "SET state = EXCLUDED.state, committed_at = EXCLUDED.committed_at"
            ).format(table),
            [json.dumps(state)],
        )


def test_a_meltano_state_set_stands_when_the_target_was_unreadable_then(
    pg_db: PgServer, tmp_path: Path
) -> None:
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    project.mkdir()
    elsewhere.mkdir()
    config = {**pg_db.target_config(), "default_target_schema": SCHEMA}
    (project / "target.json").write_text(json.dumps(config))
    url = f"sqlite:///{tmp_path / 'state.db'}"
    loaded = {"bookmarks": {"issues": {"replication_key_value": "2026-01-02T00:00:00+00:00"}}}
    edited = {"bookmarks": {"issues": {"replication_key_value": "2025-01-01T00:00:00+00:00"}}}

    # a first run, then one whose target committed (and the backend stored) `loaded`
    commit_target_state(pg_db, {})
    meltano_process(project, url, "run", {}, pg_db.conninfo())
    meltano_process(project, url, "run", loaded, pg_db.conninfo())
    # the operator rewinds, from a directory where `target.json` is not found
    meltano_process(elsewhere, url, "edit", edited)

    assert json.loads(meltano_process(project, url, "read")) == edited
