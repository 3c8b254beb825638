"""Reading target-postgres-atomic's committed state at a run's start is a bounded wait: a state
table locked by someone else (a migration, a `LOCK TABLE`) does not hold the run forever."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from psycopg import sql
from state_service.target_state import TargetStateTable, TargetStateUnreadable, config_paths

from safe_singer_testing.postgres import PgServer

SCHEMA = "locked_state"


def test_a_locked_state_table_is_given_up_after_the_timeout(
    pg_db: PgServer, tmp_path: Path
) -> None:
    config = tmp_path / "target.json"
    config.write_text(json.dumps({**pg_db.target_config(), "default_target_schema": SCHEMA}))
    table = sql.Identifier(SCHEMA, "_sdc_target_state")
    with pg_db.connect() as holder:
        holder.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(SCHEMA)))
        holder.execute(
            sql.SQL("CREATE TABLE {} (stream text, state jsonb, committed_at timestamptz)").format(
                table
            )
        )
        holder.commit()
        holder.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(table))
        outcome: list[BaseException | object] = []

        def read() -> None:
            try:
                outcome.append(TargetStateTable.from_config(config, 2).read())
            except BaseException as exc:
                outcome.append(exc)

        began = time.monotonic()
        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(30)
        waited = time.monotonic() - began
        holder.rollback()
    assert not reader.is_alive(), "the read waited on the lock for 30 s and more"
    assert isinstance(outcome[0], TargetStateUnreadable), outcome
    assert "timeout" in str(outcome[0]) and waited < 15


def test_split_config_files_are_merged_as_the_target_merges_them(
    pg_db: PgServer, tmp_path: Path
) -> None:
    """`target-postgres-atomic --config base.json --config secrets.json`: singer-sdk merges the
    files, later ones winning. Reading only the first one looked in another database."""
    base, secrets = tmp_path / "base.json", tmp_path / "secrets.json"
    base.write_text(json.dumps({**pg_db.target_config(), "port": 1, "default_target_schema": "s"}))
    secrets.write_text(json.dumps({"port": pg_db.port}))
    with pg_db.connect() as conn:
        conn.execute("CREATE SCHEMA s")
        conn.execute(
            "CREATE TABLE s._sdc_target_state (stream text, state jsonb, committed_at timestamptz)"
        )
        conn.execute("""INSERT INTO s._sdc_target_state VALUES ('issues', '{"a": 1}', now())""")
    args = ["target-postgres-atomic", "--config", str(base), "--config", str(secrets)]
    paths = config_paths(args)
    assert paths is not None
    rows = TargetStateTable.from_config(paths, 5).read().rows
    assert [(r.stream, json.loads(r.state)) for r in rows] == [("issues", {"a": 1})]
    assert config_paths([*args, "--config", "ENV"]) is None  # the environment adds settings


def test_a_schema_named_in_capitals_is_found(pg_db: PgServer, tmp_path: Path) -> None:
    """`default_target_schema: "Jira"` is a quoted name, not jira: the table is looked up as
    the target created it (an unquoted lookup folded it to lower case and found nothing)."""
    config = tmp_path / "target.json"
    config.write_text(json.dumps({**pg_db.target_config(), "default_target_schema": "Jira"}))
    table = sql.Identifier("Jira", "_sdc_target_state")
    with pg_db.connect() as conn:
        conn.execute('CREATE SCHEMA "Jira"')
        conn.execute(
            sql.SQL("CREATE TABLE {} (stream text, state jsonb, committed_at timestamptz)").format(
                table
            )
        )
        conn.execute(
            sql.SQL("""INSERT INTO {} VALUES ('issues', '{{"a": 1}}', now())""").format(table)
        )
    rows = TargetStateTable.from_config(config, 5).read().rows
    assert [(r.stream, json.loads(r.state)) for r in rows] == [("issues", {"a": 1})]
