"""load_method overwrite replaces a table only with proof that the tap sent all of its input
(issue 23 item 1): a tap that dies midway, in a shell pipe or under `meltano run`, leaves
every stored row live; the runner's word or a closing ACTIVATE_VERSION lets it replace."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from safe_singer_testing.cli import script
from safe_singer_testing.postgres import PgServer
from safe_singer_testing.target_messages import activate, record, schema, state

PROPS = {"id": {"type": "integer"}, "v": {"type": "string"}}
HEAD = schema("items", PROPS)
LIVE = "SELECT id, v FROM items WHERE _sdc_deleted_at IS NULL ORDER BY id"
OLD = [(i, "old") for i in range(100)]
# A tap that sends the first N of its 100 rows (with the opening ACTIVATE_VERSION a full-table
# tap sends), then exits with the given code.
TAP = """\
import json, sys
sent, code = int(sys.argv[1]), int(sys.argv[2])
if "--discover" in sys.argv or "--about" in sys.argv:
    sys.exit(0)
def out(message):
    print(json.dumps(message), flush=True)
props = {"id": {"type": "integer"}, "v": {"type": "string"}}
out({"type": "SCHEMA", "stream": "items", "schema": {"type": "object", "properties": props},
     "key_properties": ["id"]})
out({"type": "ACTIVATE_VERSION", "stream": "items", "version": 7})
for i in range(sent):
    out({"type": "RECORD", "stream": "items", "record": {"id": i, "v": "new"}, "version": 7})
out({"type": "STATE", "value": {"sent": sent}})
sys.exit(code)
"""
MELTANO_YML = """\
default_environment: dev
project_id: {project_id}
send_anonymous_usage_stats: false
environments:
- name: dev
plugins:
  extractors:
  - name: tap-items
    namespace: tap_items
    executable: {tap}
  loaders:
  - name: target-postgres-atomic
    namespace: target_postgres_atomic
    executable: {target}
    settings:
    - {{name: sqlalchemy_url, kind: string, sensitive: true}}
    - {{name: load_method}}
    - {{name: hard_delete, kind: boolean}}
    - {{name: batch_size_rows, kind: integer}}
"""


def seed_old_rows(run_target) -> None:
    old = [HEAD, *(record("items", {"id": i, "v": "old"}) for i in range(100))]
    assert run_target(old).returncode == 0


def overwrite_settings() -> dict[str, object]:
    return {"load_method": "overwrite", "hard_delete": True, "batch_size_rows": 3}


def test_overwrite_without_proof_merges_and_deletes_nothing(run_target, rows) -> None:
    seed_old_rows(run_target)
    partial = [HEAD, *(record("items", {"id": i, "v": "new"}) for i in range(10)), state({"s": 1})]
    run = run_target(partial, **overwrite_settings())
    assert run.returncode == 0, run.stderr
    assert rows(LIVE) == [(i, "new") for i in range(10)] + OLD[10:]
    assert run.stderr.count("no row was deleted") == 1, run.stderr
    assert run.states == [{"s": 1}]


def test_overwrite_replaces_with_the_runners_word(run_target, rows, monkeypatch) -> None:
    seed_old_rows(run_target)
    monkeypatch.setenv("SINGER_END_OF_INPUT_MEANS_TAP_SUCCEEDED", "1")
    whole = [HEAD, *(record("items", {"id": i, "v": "new"}) for i in range(10))]
    run = run_target(whole, **overwrite_settings())
    assert run.returncode == 0, run.stderr
    assert rows(LIVE) == [(i, "new") for i in range(10)]


def test_overwrite_replaces_after_a_closing_activate_version(run_target, rows) -> None:
    seed_old_rows(run_target)
    body = [record("items", {"id": i, "v": "new"}, version=7) for i in range(10)]
    # A repeated opening with records after it is no closing.
    reopened = [HEAD, activate("items", 7), activate("items", 7), *body]
    assert run_target(reopened, **overwrite_settings()).returncode == 0
    assert rows(LIVE) == [(i, "new") for i in range(10)] + OLD[10:]
    closed = [HEAD, activate("items", 7), *body[:5], activate("items", 7)]
    run = run_target(closed, **overwrite_settings())
    assert run.returncode == 0, run.stderr
    assert rows(LIVE) == [(i, "new") for i in range(5)]


def write_tap(tmp_path: Path, sent: int, code: int) -> Path:
    body = tmp_path / "tap_items.py"
    body.write_text(TAP)
    tap = tmp_path / f"tap-items-{sent}-{code}"
    tap.write_text(f'#!/bin/sh\nexec {sys.executable} {body} {sent} {code} "$@"\n')
    tap.chmod(0o755)
    return tap


def test_a_tap_dying_midway_in_a_shell_pipe_deletes_nothing(
    run_target, rows, pg_db: PgServer, tmp_path: Path
) -> None:
    seed_old_rows(run_target)
    config = tmp_path / "target.json"
    config.write_text(json.dumps({**pg_db.target_config(), **overwrite_settings()}))
    target = f"{script('target-postgres-atomic')} --config {config}"
    env = {k: v for k, v in os.environ.items() if k != "SINGER_END_OF_INPUT_MEANS_TAP_SUCCEEDED"}
    died = subprocess.run(
        ["sh", "-c", f"{write_tap(tmp_path, 10, 1)} | {target}"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert died.returncode == 0, died.stderr  # a shell pipe's status is the target's
    assert rows(LIVE) == [(i, "new") for i in range(10)] + OLD[10:]
    # Wrapped in refresh-seal, a dead tap stops the target; a finished one replaces the table.
    seal = script("refresh-seal")
    sealed_dead = subprocess.run(
        ["sh", "-c", f"{seal} {write_tap(tmp_path, 20, 1)} | {target}"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert sealed_dead.returncode != 0
    assert rows(LIVE) == [(i, "new") for i in range(10)] + OLD[10:]
    finished = subprocess.run(
        ["sh", "-c", f"{seal} {write_tap(tmp_path, 30, 0)} | {target}"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert finished.returncode == 0, finished.stderr
    assert rows(LIVE) == [(i, "new") for i in range(30)]


def meltano_run(project: Path, pg_db: PgServer, tap: Path) -> subprocess.CompletedProcess[str]:
    (project / "meltano.yml").write_text(
        MELTANO_YML.format(
            project_id=uuid.uuid5(uuid.NAMESPACE_URL, str(project)),
            tap=tap,
            target=script("target-postgres-atomic"),
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MELTANO_")}
    env.pop("SINGER_END_OF_INPUT_MEANS_TAP_SUCCEEDED", None)
    settings = {"sqlalchemy_url": pg_db.url("postgresql+psycopg"), **overwrite_settings()}
    for name, value in settings.items():
        env[f"TARGET_POSTGRES_ATOMIC_{name.upper()}"] = (
            value if isinstance(value, str) else json.dumps(value)
        )
    return subprocess.run(
        [script("meltano"), "run", "tap-items", "target-postgres-atomic"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_a_tap_dying_midway_under_meltano_run_deletes_nothing(
    run_target, rows, pg_db: PgServer, tmp_path: Path
) -> None:
    seed_old_rows(run_target)
    project = tmp_path / "meltano"
    project.mkdir()
    died = meltano_run(project, pg_db, write_tap(tmp_path, 10, 1))
    output = died.stdout + died.stderr
    assert died.returncode != 0, output[-3000:]
    assert rows(LIVE) == [(i, "new") for i in range(10)] + OLD[10:], output[-3000:]
    # refresh-seal in front of the same tap, finished: its closing ACTIVATE_VERSION proves it.
    sealed = tmp_path / "sealed-tap"
    sealed.write_text(
        f'#!/bin/sh\nexec {script("refresh-seal")} {write_tap(tmp_path, 30, 0)} "$@"\n'
    )
    sealed.chmod(0o755)
    done = meltano_run(project, pg_db, sealed)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert rows(LIVE) == [(i, "new") for i in range(30)]
