"""SSL settings against a PostgreSQL with `ssl = on` that takes SSL connections only."""

from __future__ import annotations

import json
import os
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


def _load(
    config: dict[str, Any], cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    (cwd / "config.json").write_text(json.dumps(config))
    return subprocess.run(
        [script("target-postgres-atomic"), "--config", "config.json"],
        input="".join(json.dumps(m) + "\n" for m in MESSAGES),
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
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


def _without_home_certificates(tmp_path: Path) -> dict[str, str]:
    """An environment whose HOME has no `.postgresql/root.crt`: libpq would verify the server
    against that file, even in modes that do not ask for it (require)."""
    (tmp_path / "home").mkdir(exist_ok=True)
    return {**os.environ, "HOME": str(tmp_path / "home")}


def _plain(server: SslServer, tmp_path: Path, **ssl: Any) -> dict[str, Any]:
    """User `plain`, whom the server admits over SSL only, without a client certificate."""
    return {
        "host": "localhost",
        "port": server.port,
        "user": "plain",
        "database": "postgres",
        "ssl_storage_directory": str(tmp_path / "store"),
        **ssl,
    }


@pytest.mark.parametrize("mode", ["require", "prefer"])
def test_require_and_prefer_use_ssl_without_checking_the_certificate(
    mode: str, server: SslServer, tmp_path: Path
) -> None:
    """No CA is given, so the server's certificate cannot be checked: these modes load anyway,
    over SSL (the server refuses any other connection), where verify-full is refused."""
    env = _without_home_certificates(tmp_path)
    done = _load(_plain(server, tmp_path, ssl_enable=True, ssl_mode=mode), tmp_path, env)
    assert done.returncode == 0, done.stderr
    assert _ids(server, "t") == [(1,)]
    checked = _load(
        _plain(server, tmp_path, ssl_enable=True, ssl_mode="verify-full"), tmp_path, env
    )
    assert checked.returncode == 1
    assert "root certificate file" in checked.stderr, checked.stderr
    assert "Traceback" not in checked.stderr


def test_disable_connects_without_ssl_which_this_server_refuses(
    server: SslServer, tmp_path: Path
) -> None:
    done = _load(_plain(server, tmp_path, ssl_enable=True, ssl_mode="disable"), tmp_path)
    assert done.returncode == 1
    assert "no encryption" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_verify_ca_checks_the_ca_but_not_the_host_name(server: SslServer, tmp_path: Path) -> None:
    """The host name is one the server's certificate does not carry (it names localhost and
    127.0.0.1); libpq connects to PGHOSTADDR and checks the certificate against the host
    name, as it does with `hostaddr`: verify-ca loads, verify-full is refused. verify-ca with a
    CA that did not sign the server's certificate is refused too."""
    env = {**os.environ, "PGHOSTADDR": "127.0.0.1"}
    ca = {"ssl_enable": True, "ssl_certificate_authority": server.ca.certificate}
    elsewhere = {"host": "db.example.invalid"}
    done = _load(
        {**_plain(server, tmp_path, ssl_mode="verify-ca", **ca), **elsewhere}, tmp_path, env
    )
    assert done.returncode == 0, done.stderr
    assert _ids(server, "t") == [(1,)]
    full = _load(
        {**_plain(server, tmp_path, ssl_mode="verify-full", **ca), **elsewhere}, tmp_path, env
    )
    assert full.returncode == 1
    assert 'does not match host name "db.example.invalid"' in full.stderr, full.stderr
    assert "Traceback" not in full.stderr
    other = pem(issue("other CA", None)).certificate
    wrong = _plain(
        server, tmp_path, ssl_enable=True, ssl_mode="verify-ca", ssl_certificate_authority=other
    )
    refused = _load(wrong, tmp_path)
    assert refused.returncode == 1
    assert "certificate verify failed" in refused.stderr, refused.stderr
