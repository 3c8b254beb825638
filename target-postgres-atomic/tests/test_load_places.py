"""Where the target loads: said once at start, never a guessed database, never a system schema,
never the target's own tables."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest

from safe_singer_testing.cli import error_line, script
from safe_singer_testing.postgres import PgServer
from safe_singer_testing.target_messages import record, schema

PROPS = {"id": {"type": "integer"}}
PASSWORD = "Pw-never-in-the-log-4471"


def _start(
    config: dict[str, Any], tmp_path: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    lines = [schema("t", PROPS), record("t", {"id": 1})]
    return subprocess.run(
        [script("target-postgres-atomic"), "--config", str(path)],
        input="".join(json.dumps(m) + "\n" for m in lines),
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def _clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The test's environment without libpq's variables (and a HOME with no service file)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    return {**env, "HOME": str(tmp_path), **extra}


def test_the_start_names_user_host_port_database_and_schema(
    pg_db: PgServer, tmp_path: Path
) -> None:
    config = {**pg_db.target_config(), "password": PASSWORD, "default_target_schema": "raw"}
    done = _start(config, tmp_path, _clean_env(tmp_path))
    assert done.returncode == 0, done.stderr
    where = f"{pg_db.user}@{pg_db.host}:{pg_db.port}/{pg_db.dbname}, schema raw"
    assert done.stderr.count(where) == 1, done.stderr
    assert PASSWORD not in done.stderr


def test_no_database_in_config_or_environment_is_refused(pg_db: PgServer, tmp_path: Path) -> None:
    config = {k: v for k, v in pg_db.target_config().items() if k != "database"}
    done = _start(config, tmp_path, _clean_env(tmp_path))
    assert done.returncode != 0
    assert "no database is named: set database" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("source", ["PGDATABASE", "PGSERVICE"])
def test_a_database_named_by_the_libpq_environment_is_used(
    source: str, pg_db: PgServer, tmp_path: Path
) -> None:
    config = {k: v for k, v in pg_db.target_config().items() if k != "database"}
    if source == "PGDATABASE":
        env = _clean_env(tmp_path, PGDATABASE=pg_db.dbname)
    else:
        (tmp_path / ".pg_service.conf").write_text(f"[load]\ndbname={pg_db.dbname}\n")
        env = _clean_env(tmp_path, PGSERVICE="load")
    done = _start(config, tmp_path, env)
    assert done.returncode == 0, done.stderr
    with pg_db.connect() as conn:
        assert conn.execute("SELECT id FROM t").fetchall() == [(1,)]


@pytest.mark.parametrize(
    ("settings", "switch"),
    [
        ({"ssl_certificate_authority": "ca.crt"}, "ssl_enable"),
        (
            {"ssl_enable": True, "ssl_mode": "disable", "ssl_client_certificate": "c.crt"},
            "ssl_client_certificate_enable",
        ),
        ({"ssl_client_private_key": "c.key"}, "ssl_client_certificate_enable"),
        ({"ssl_enable": True, "ssl_certificate_authority": "ca.crt"}, "sqlalchemy_url"),
    ],
    ids=["ca-without-ssl_enable", "cert-without-its-switch", "key-without-its-switch", "url"],
)
def test_ssl_files_set_but_switched_off_are_named_in_a_warning(
    settings: dict[str, Any], switch: str, pg_db: PgServer, tmp_path: Path
) -> None:
    """As in MeltanoLabs, a certificate setting only counts with its switch on; a user who set
    one believes it is used (a CA: that the server is checked), so the start says it is not."""
    for name in ("ca.crt", "c.crt", "c.key"):
        (tmp_path / name).write_text("not read\n")
    config = {**pg_db.target_config(), **settings}
    if switch == "sqlalchemy_url":
        config = {"sqlalchemy_url": pg_db.url(), **settings}
    done = _start(config, tmp_path, {**os.environ, "HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    [setting] = [
        k for k in settings if k.startswith("ssl_") and k not in ("ssl_enable", "ssl_mode")
    ]
    warnings = [line for line in done.stderr.splitlines() if "WARNING" in line and setting in line]
    assert len(warnings) == 1, done.stderr
    said = "sqlalchemy_url overrides" if switch == "sqlalchemy_url" else f"{switch} is false"
    assert said in warnings[0], warnings[0]
    assert "not read" not in done.stderr


def test_a_server_that_does_not_answer_is_refused_in_one_line(
    pg_db: PgServer, tmp_path: Path
) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = {**pg_db.target_config(), "host": "127.0.0.1", "port": port, "password": PASSWORD}
    done = _start(config, tmp_path, _clean_env(tmp_path))
    assert done.returncode == 1
    last = error_line(done)
    assert last.startswith("target-postgres-atomic: error: "), done.stderr
    assert f'"127.0.0.1", port {port} failed' in last, done.stderr
    assert "Is the server running" in last, done.stderr  # libpq's hint, on the same line
    assert PASSWORD not in done.stderr
