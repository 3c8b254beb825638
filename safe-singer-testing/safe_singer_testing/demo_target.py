"""`make demo` part for target-postgres-atomic: upserts, a delete, a full refresh, the state."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from psycopg import sql

from safe_singer_testing.cli import script
from safe_singer_testing.postgres import PgServer
from safe_singer_testing.target_messages import activate, record, schema, state

SCHEMA_NAME = "demo_target"
PROPS = {
    "id": {"type": "string"},
    "updated": {"type": "string", "format": "date-time"},
    "summary": {"type": ["string", "null"]},
    "fields": {"type": ["object", "null"]},
    "_sdc_deleted_at": {"type": ["string", "null"], "format": "date-time"},
}


def _issue(key: str, day: int, summary: str, **extra: object) -> dict:
    row = {
        "id": key,
        "updated": f"2024-01-{day:02d}T00:00:00Z",
        "summary": summary,
        "fields": {"labels": ["demo"]},
        **extra,
    }
    return record("issues", row)


def _messages() -> list[dict]:
    head = schema("issues", PROPS, bookmark="updated")
    projects = schema(
        "projects", {"key": {"type": "string"}, "name": {"type": "string"}}, keys=("key",)
    )
    return [
        head,
        projects,
        _issue("DEMO-1", 1, "first"),
        _issue("DEMO-2", 1, "second"),
        _issue("DEMO-3", 2, "third"),
        state({"bookmarks": {"issues": {"updated": "2024-01-02T00:00:00Z"}}}),
        _issue("DEMO-1", 3, "first, edited"),
        _issue("DEMO-1", 2, "stale replay (older: ignored)"),
        _issue("DEMO-2", 4, "deleted", _sdc_deleted_at="2024-01-04T00:00:00Z"),
        activate("projects", 1),
        record("projects", {"key": "DEMO", "name": "Demo"}, version=1),
        record("projects", {"key": "OPS", "name": "Ops"}, version=1),
        activate("projects", 1),
        state({"bookmarks": {"issues": {"updated": "2024-01-04T00:00:00Z"}}}),
    ]


def run(server: PgServer, workdir: Path) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "target_config.json"
    config.write_text(
        json.dumps(
            {**server.target_config(), "default_target_schema": SCHEMA_NAME, "hard_delete": False}
        )
    )
    lines = "".join(json.dumps(m) + "\n" for m in _messages())
    done = subprocess.run(
        [script("target-postgres-atomic"), "--config", str(config)],
        input=lines,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if done.returncode != 0:
        raise RuntimeError(f"target-postgres-atomic failed:\n{done.stderr[-3000:]}")
    print(
        f"target-postgres-atomic: {len(lines.splitlines())} messages in, "
        f"{len(done.stdout.splitlines())} STATE lines out (each after its commit)"
    )
    with server.connect() as conn:
        issues = conn.execute(
            sql.SQL(
                "SELECT id, updated::text, summary, _sdc_deleted_at IS NOT NULL FROM {} ORDER BY id"
            ).format(sql.Identifier(SCHEMA_NAME, "issues"))
        ).fetchall()
        print(f"  {SCHEMA_NAME}.issues: {len(issues)} rows")
        for key, updated, summary, deleted in issues:
            print(
                f"    {key}  updated {updated}  {summary!r}{'  (soft-deleted)' if deleted else ''}"
            )
        projects = conn.execute(
            sql.SQL("SELECT key, name, _sdc_table_version FROM {} ORDER BY key").format(
                sql.Identifier(SCHEMA_NAME, "projects")
            )
        ).fetchall()
        print(f"  {SCHEMA_NAME}.projects (full refresh, table version 1): {projects}")
        stored = conn.execute(
            sql.SQL("SELECT state FROM {} WHERE stream = 'issues'").format(
                sql.Identifier(SCHEMA_NAME, "_sdc_target_state")
            )
        ).fetchone()
        last = stored[0] if stored else None
        print(f"  last committed state ({SCHEMA_NAME}._sdc_target_state): {last}")
