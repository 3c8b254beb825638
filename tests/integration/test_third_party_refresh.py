"""MeltanoLabs tap-postgres (a singer-sdk tap: one ACTIVATE_VERSION, before the records) into
target-postgres-atomic, under `meltano run` (tap wrapped in refresh-seal) and `state-service
run`: a tap killed mid-refresh leaves the table as it was; a completed refresh swaps in,
deletes included (issue 9, point 6).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from safe_singer_testing.cli import script
from safe_singer_testing.postgres import REPO_ROOT, PgServer

# It uses the repository's .meltano/, which `meltano install` rewrites: one xdist worker runs
# every test that does (tests/integration/test_meltano_project.py).
pytestmark = pytest.mark.xdist_group("repo-meltano-project")
TAP = REPO_ROOT / ".meltano" / "extractors" / "tap-postgres" / "venv" / "bin" / "tap-postgres"
LIVE = "SELECT id, name FROM dst.items WHERE _sdc_deleted_at IS NULL ORDER BY id"
# Passes the first N lines of the tap's output on, then kills the tap and itself (SIGKILL):
# a tap that dies mid-refresh, at a known point.
DIE_AFTER = """\
import os, signal, subprocess, sys
limit = int(sys.argv[1])
if "--discover" in sys.argv:
    os.execv(sys.argv[2], sys.argv[2:])
tap = subprocess.Popen(sys.argv[2:], stdout=subprocess.PIPE)
for number, line in enumerate(tap.stdout, 1):
    sys.stdout.buffer.write(line)
    if number == limit:
        sys.stdout.buffer.flush()
        tap.kill()
        os.kill(os.getpid(), signal.SIGKILL)
sys.exit(tap.wait())
"""
MELTANO_YML = """\
default_environment: dev
project_id: {project_id}
send_anonymous_usage_stats: false
environments:
- name: dev
plugins:
  extractors:
  - name: tap-postgres
    namespace: tap_postgres
    executable: {seal}
    capabilities: [catalog, discover, state, about, activate-version]
    settings:
    - {{name: host}}
    - {{name: port, kind: integer}}
    - {{name: user}}
    - {{name: password, kind: string, sensitive: true}}
    - {{name: database}}
    - {{name: filter_schemas, kind: array}}
    - {{name: default_replication_method}}
    - {{name: emit_activate_version_messages, kind: boolean}}
  loaders:
  - name: target-postgres-atomic
    namespace: target_postgres_atomic
    executable: {target}
    settings:
    - {{name: sqlalchemy_url, kind: string, sensitive: true}}
    - {{name: default_target_schema}}
    - {{name: hard_delete, kind: boolean}}
    - {{name: batch_size_rows, kind: integer}}
"""


@pytest.fixture(scope="module")
def tap_postgres() -> Path:
    """MeltanoLabs tap-postgres as meltano.yml installs it (`meltano install` builds it)."""
    if not TAP.exists():
        subprocess.run(
            [script("meltano"), "install", "extractor", "tap-postgres"],
            cwd=REPO_ROOT,
            check=False,
            capture_output=True,
        )
    assert TAP.exists(), "tap-postgres is missing: run `meltano install` in the repository"
    return TAP


def tap_config(db: PgServer) -> dict[str, object]:
    return {
        "host": db.host,
        "port": db.port,
        "user": db.user,
        # tap-postgres insists on a password even where the server trusts the user.
        "password": db.password or "trust-auth-ignores-this",
        "database": db.dbname,
        "filter_schemas": ["src"],
        "default_replication_method": "FULL_TABLE",
        "emit_activate_version_messages": True,
    }


def target_config(db: PgServer) -> dict[str, object]:
    return {
        "sqlalchemy_url": db.url("postgresql+psycopg"),
        "default_target_schema": "dst",
        "hard_delete": True,
        "batch_size_rows": 10,
    }


def source(db: PgServer, statement: str) -> None:
    with db.connect() as conn:
        conn.execute(statement)


def live(db: PgServer) -> list[tuple[int, str]]:
    with db.connect() as conn:
        return conn.execute(LIVE).fetchall()  # type: ignore[return-value]


def shadows(db: PgServer) -> int:
    with db.connect() as conn:
        found = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE tablename LIKE '\\_sdc\\_shadow%'"
        ).fetchone()
    return found[0] if found else -1


def die_after(tmp_path: Path, lines: int, tap: Path) -> str:
    shim = tmp_path / "die_after.py"
    shim.write_text(DIE_AFTER)
    return f"{sys.executable} {shim} {lines} {tap}"


def selected_catalog(tap: Path, tap_file: Path, path: Path) -> Path:
    """The tap's discovered catalog with every stream and column selected (as Meltano does)."""
    if not path.exists():
        found = subprocess.run(
            [str(tap), "--config", str(tap_file), "--discover"],
            capture_output=True,
            check=True,
            timeout=120,
        )
        catalog = json.loads(found.stdout)
        for stream in catalog["streams"]:
            for entry in stream["metadata"]:
                entry["metadata"]["selected"] = True
        path.write_text(json.dumps(catalog))
    return path


def state_service_run(
    db: PgServer, tmp_path: Path, tap: str, tap_postgres: Path
) -> subprocess.CompletedProcess[str]:
    tap_file, target_file = tmp_path / "tap.json", tmp_path / "target.json"
    tap_file.write_text(json.dumps(tap_config(db)))
    target_file.write_text(json.dumps(target_config(db)))
    catalog = selected_catalog(tap_postgres, tap_file, tmp_path / "catalog.json")
    return subprocess.run(
        [
            script("state-service"),
            "--db",
            f"sqlite:///{tmp_path / 'state.db'}",
            "run",
            "pg-to-pg",
            "--tap",
            f"{tap} --config {tap_file} --catalog {catalog}",
            "--target",
            f"{script('target-postgres-atomic')} --config {target_file}",
            "--heartbeat-seconds",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )


def meltano_run(db: PgServer, project: Path, tap: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MELTANO_")}
    for name, value in tap_config(db).items():
        env[f"TAP_POSTGRES_{name.upper()}"] = (
            json.dumps(value) if not isinstance(value, str) else value
        )
    for name, value in target_config(db).items():
        env[f"TARGET_POSTGRES_ATOMIC_{name.upper()}"] = (
            json.dumps(value) if not isinstance(value, str) else value
        )
    env["REFRESH_SEAL_TAP"] = tap
    return subprocess.run(
        [script("meltano"), "run", "tap-postgres", "target-postgres-atomic"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


@pytest.mark.slow
def test_tap_killed_mid_refresh_changes_nothing_and_a_completed_refresh_swaps_in(
    tap_postgres: Path, pg_db: PgServer, tmp_path: Path
) -> None:
    source(
        pg_db,
        "CREATE SCHEMA src; CREATE TABLE src.items (id int PRIMARY KEY, name text);"
        "INSERT INTO src.items SELECT g, 'v1-' || g FROM generate_series(1, 60) g",
    )
    first = state_service_run(pg_db, tmp_path, str(tap_postgres), tap_postgres)
    assert first.returncode == 0, first.stderr[-3000:]
    loaded = [(i, f"v1-{i}") for i in range(1, 61)]
    assert live(pg_db) == loaded
    source(
        pg_db,
        "DELETE FROM src.items WHERE id > 40; UPDATE src.items SET name = 'v2-' || id",
    )
    # Killed after the SCHEMA, the ACTIVATE_VERSION and ~30 records (3 batches committed
    # to the shadow table), under each runner: the table stays as it was.
    killed = state_service_run(pg_db, tmp_path, die_after(tmp_path, 32, tap_postgres), tap_postgres)
    assert killed.returncode != 0
    assert live(pg_db) == loaded
    project = tmp_path / "meltano"
    project.mkdir()
    (project / "meltano.yml").write_text(
        MELTANO_YML.format(
            project_id=uuid.uuid4(),
            seal=script("refresh-seal"),
            target=script("target-postgres-atomic"),
        )
    )
    killed = meltano_run(pg_db, project, die_after(tmp_path, 32, tap_postgres))
    output = killed.stdout + killed.stderr
    assert killed.returncode != 0, output[-3000:]
    assert "the tap failed" in output, output[-3000:]
    assert live(pg_db) == loaded
    assert shadows(pg_db) == 0
    # A completed refresh swaps in under meltano run: rows gone from the source go.
    done = meltano_run(pg_db, project, str(tap_postgres))
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert live(pg_db) == [(i, f"v2-{i}") for i in range(1, 41)]
    # ...and under state-service run, which vouches for the tap's exit code.
    source(pg_db, "DELETE FROM src.items WHERE id > 20")
    done = state_service_run(pg_db, tmp_path, str(tap_postgres), tap_postgres)
    assert done.returncode == 0, done.stderr[-3000:]
    assert live(pg_db) == [(i, f"v2-{i}") for i in range(1, 21)]
    assert shadows(pg_db) == 0
