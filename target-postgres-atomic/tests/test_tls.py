"""SSL settings against a PostgreSQL with `ssl = on` that takes SSL connections only."""

from __future__ import annotations

import json
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from target_postgres_atomic import connector

from safe_singer_testing import meltanolabs
from safe_singer_testing.cli import script
from safe_singer_testing.target_messages import record, schema
from safe_singer_testing.tls_postgres import SslServer, issue, pem, ssl_server

MESSAGES = [schema("t", {"id": {"type": "integer"}}), record("t", {"id": 1})]


@pytest.fixture(scope="module")
def server() -> Iterator[SslServer]:
    with ssl_server() as found:
        yield found


def _load(config: dict[str, Any], cwd: Path) -> subprocess.CompletedProcess[str]:
    (cwd / "config.json").write_text(json.dumps(config))
    return subprocess.run(
        [script("target-postgres-atomic"), "--config", "config.json"],
        input="".join(json.dumps(m) + "\n" for m in MESSAGES),
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


def _ids(server: SslServer, table: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(server.admin()) as conn:
        found = conn.execute(f"SELECT id FROM {table}").fetchall()
        conn.execute(f"DROP TABLE {table}")
        conn.commit()
        return found


def test_meltanolabs_ssl_test_config_loads_with_only_its_port_changed(
    server: SslServer, tmp_path: Path
) -> None:
    """Their config names ./ssl/root.crt, ./ssl/cert.crt, ./ssl/pkey.key: we put ours there."""
    config = meltanolabs.test_config("postgres_config")
    assert config["ssl_enable"] and config["ssl_client_certificate_enable"]
    (tmp_path / "ssl").mkdir()
    for name, text in (
        ("root.crt", server.ca.certificate),
        ("cert.crt", server.client.certificate),
        ("pkey.key", server.client.key),
    ):
        (tmp_path / "ssl" / name).write_text(text)
        (tmp_path / "ssl" / name).chmod(0o600)
    done = _load({**config, "port": server.port}, tmp_path)
    assert done.returncode == 0, done.stderr
    assert _ids(server, "melty.t") == [(1,)]


def test_inline_certificates_are_written_to_the_storage_directory(
    server: SslServer, tmp_path: Path
) -> None:
    config = {
        "host": "localhost",
        "port": server.port,
        "user": "postgres",
        "database": "postgres",
        "ssl_enable": True,
        "ssl_mode": "verify-full",
        "ssl_certificate_authority": server.ca.certificate,
        "ssl_client_certificate_enable": True,
        "ssl_client_certificate": server.client.certificate,
        "ssl_client_private_key": server.client.key,
        "ssl_storage_directory": str(tmp_path / "store"),
    }
    done = _load(config, tmp_path)
    assert done.returncode == 0, done.stderr
    assert _ids(server, "t") == [(1,)]
    [key] = (tmp_path / "store").glob("pkey-*.key")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert key.read_text().strip() == server.client.key.strip()
    body = server.client.key.splitlines()[1]
    assert body not in done.stderr + done.stdout


def test_a_server_certificate_from_another_ca_is_refused(server: SslServer, tmp_path: Path) -> None:
    config = {
        "host": "localhost",
        "port": server.port,
        "user": "plain",
        "database": "postgres",
        "ssl_enable": True,
        "ssl_mode": "verify-full",
        "ssl_certificate_authority": pem(issue("other CA", None)).certificate,
        "ssl_storage_directory": str(tmp_path / "store"),
    }
    done = _load(config, tmp_path)
    assert done.returncode == 1
    assert "certificate verify failed" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_a_missing_certificate_file_is_refused_naming_the_setting(
    server: SslServer, tmp_path: Path
) -> None:
    config = {
        "host": "localhost",
        "port": server.port,
        "user": "plain",
        "database": "postgres",
        "ssl_enable": True,
        "ssl_certificate_authority": "ssl/nowhere.crt",
    }
    done = _load(config, tmp_path)
    assert done.returncode == 1
    assert "ssl_certificate_authority: 'ssl/nowhere.crt' does not exist" in done.stderr
    assert "Traceback" not in done.stderr


def test_two_configs_with_inline_certificates_in_one_folder_keep_their_own(
    server: SslServer, tmp_path: Path
) -> None:
    """Targets started in one folder (a Meltano project's) share the default storage
    directory: another config's CA written there must not replace the one this run uses."""
    base = {
        "host": "localhost",
        "port": server.port,
        "user": "plain",
        "database": "postgres",
        "ssl_enable": True,
        "ssl_mode": "verify-full",
        "ssl_storage_directory": str(tmp_path / "store"),
    }
    ours = connector.conninfo({**base, "ssl_certificate_authority": server.ca.certificate})
    other_ca = pem(issue("other CA", None)).certificate
    connector.conninfo({**base, "ssl_certificate_authority": other_ca})
    with psycopg.connect(ours) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
