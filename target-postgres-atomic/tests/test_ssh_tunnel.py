"""`ssh_tunnel` through a real sshd on 127.0.0.1: rows land, the key never reaches a log."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paramiko
import pytest

from safe_singer_testing import meltanolabs
from safe_singer_testing.cli import error_line, script
from safe_singer_testing.postgres import PgServer
from safe_singer_testing.sshd import Bastion, new_key, sshd
from safe_singer_testing.target_messages import record, schema, state

REFUSAL = "target-postgres-atomic: error: "  # the target's one error line

MESSAGES = [schema("t", {"id": {"type": "integer"}}), record("t", {"id": 1})]
PASSPHRASE = "bastion-Passphrase-8812"


@pytest.fixture(scope="module")
def bastion() -> Iterator[Bastion]:
    with sshd() as found:
        yield found


def _load(
    config: dict[str, Any], tmp_path: Path, level: str = "debug", home: Path | None = None
) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    env = {**os.environ, "LOGLEVEL": level}
    if home is not None:
        env["HOME"] = str(home)  # its .ssh/known_hosts is the one read
    return subprocess.run(
        [script("target-postgres-atomic"), "--config", str(path)],
        input="".join(json.dumps(m) + "\n" for m in MESSAGES),
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def _secret_parts(key: str) -> list[str]:
    """Every line of the key's body: none may appear in any output."""
    return [line for line in key.splitlines() if line and not line.startswith("-----")]


def _through(config: dict[str, Any], pg_db: PgServer, bastion: Bastion) -> dict[str, Any]:
    """The config reaching the test's database (as the bastion sees it) through `bastion`."""
    tunnel = {**config.get("ssh_tunnel", {}), "enable": True, "host": "127.0.0.1"}
    tunnel.update(port=bastion.port, username=bastion.username)
    return {**config, **pg_db.target_config(), "ssh_tunnel": tunnel}


def test_meltanolabs_ssh_tunnel_test_config_loads_through_sshd(
    bastion: Bastion, pg_db: PgServer, tmp_path: Path
) -> None:
    """Their config and key (from the installed package); only the addresses are ours."""
    config = meltanolabs.test_config("postgres_config_ssh_tunnel")
    key = config["ssh_tunnel"]["private_key"]
    public = paramiko.RSAKey.from_private_key(io.StringIO(key))
    bastion.authorize(f"{public.get_name()} {public.get_base64()}")
    done = _load(_through(config, pg_db, bastion), tmp_path)
    assert done.returncode == 0, done.stderr
    with pg_db.connect() as conn:
        assert conn.execute("SELECT id FROM t").fetchall() == [(1,)]
    assert "direct-tcpip" in bastion.log.read_text()  # the rows came through the bastion
    assert "paramiko.transport" in done.stderr  # paramiko's own debug log was on
    for part in _secret_parts(key):
        assert part not in done.stderr + done.stdout


def test_an_encrypted_key_opens_with_its_password(
    bastion: Bastion, pg_db: PgServer, tmp_path: Path
) -> None:
    key, public = new_key(tmp_path, "encrypted", PASSPHRASE)
    bastion.authorize(public)
    tunnel = {"private_key": key, "private_key_password": PASSPHRASE}
    done = _load(_through({"ssh_tunnel": tunnel}, pg_db, bastion), tmp_path)
    assert done.returncode == 0, done.stderr
    with pg_db.connect() as conn:
        assert conn.execute("SELECT id FROM t").fetchall() == [(1,)]
    assert "SSH tunnel to" in done.stderr
    for secret in [PASSPHRASE, *_secret_parts(key)]:
        assert secret not in done.stderr + done.stdout


@pytest.mark.parametrize(
    ("case", "words"),
    [
        ("not authorized", "refused the private key"),
        ("no password", "is encrypted; set ssh_tunnel.private_key_password"),
        ("closed port", "could not be reached"),
    ],
)
def test_a_tunnel_that_cannot_open_stops_the_run_in_one_line(
    case: str, words: str, bastion: Bastion, pg_db: PgServer, tmp_path: Path
) -> None:
    key, public = new_key(tmp_path, "key", PASSPHRASE if case == "no password" else "")
    if case == "no password":
        bastion.authorize(public)
    config = _through({"ssh_tunnel": {"private_key": key}}, pg_db, bastion)
    if case == "closed port":
        config["ssh_tunnel"]["port"] = 1
    done = _load(config, tmp_path, level="info")
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith(REFUSAL)]
    assert len(errors) == 1 and words in errors[0], done.stderr
    assert "Traceback" not in done.stderr
    debug = _load(config, tmp_path)  # with the traceback (and paramiko's debug log)
    assert debug.returncode == 1 and "Traceback" in debug.stderr
    for part in _secret_parts(key):
        assert part not in debug.stderr + debug.stdout


@pytest.mark.parametrize(
    "tunnel",
    [
        "-----BEGIN OPENSSH PRIVATE KEY-----b3BlbnNzaC1rZXktdjEAAAAA-pasted-in-place",
        {
            "enable": True,
            "host": "h",
            "username": "u",
            "private_key": "x" * 20,
            "private_key_password": 98765432,
        },
    ],
    ids=["key-instead-of-object", "numeric-password"],
)
def test_a_malformed_ssh_tunnel_is_refused_without_its_secrets(
    tunnel: Any, pg_db: PgServer, tmp_path: Path
) -> None:
    done = _load({**pg_db.target_config(), "ssh_tunnel": tunnel}, tmp_path, level="info")
    assert done.returncode != 0
    assert "config['ssh_tunnel']" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    secrets = [tunnel] if isinstance(tunnel, str) else ["98765432", "x" * 20]
    for secret in secrets:
        assert secret not in done.stderr + done.stdout


def test_a_database_the_bastion_cannot_reach_stops_the_run_in_one_line(
    bastion: Bastion, pg_db: PgServer, tmp_path: Path
) -> None:
    """The bastion lets us in but cannot open a connection to host:port: one error line
    naming the tunnel and the database address, not libpq's words for a dropped connection."""
    key, public = new_key(tmp_path, "key")
    bastion.authorize(public)
    config = {**_through({"ssh_tunnel": {"private_key": key}}, pg_db, bastion), "port": 1}
    done = _load(config, tmp_path, level="info")
    assert done.returncode == 1
    logged = [line for line in done.stderr.splitlines() if "| ERROR" in line]
    assert logged == [], done.stderr  # (paramiko's and the tunnel thread's said it apart)
    last = error_line(done)
    assert last.startswith(REFUSAL), done.stderr
    assert "ssh_tunnel" in last and f"{pg_db.host}:1" in last, done.stderr


def test_an_unknown_bastion_key_is_logged_with_its_fingerprint(
    bastion: Bastion, pg_db: PgServer, tmp_path: Path
) -> None:
    key, public = new_key(tmp_path, "key")
    bastion.authorize(public)
    home = tmp_path / "home"
    home.mkdir()
    done = _load(
        _through({"ssh_tunnel": {"private_key": key}}, pg_db, bastion), tmp_path, "info", home
    )
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if "WARNING" in line]
    assert any(
        re.search(
            r"bastion \S+ is not in known_hosts; accepting its ssh-\S+ key SHA256:[\w+/]{43} ", w
        )
        for w in warnings
    ), done.stderr


def test_a_bastion_key_that_differs_from_known_hosts_stops_the_run_in_one_line(
    bastion: Bastion, pg_db: PgServer, tmp_path: Path
) -> None:
    key, public = new_key(tmp_path, "key")
    bastion.authorize(public)
    _, impostor = new_key(tmp_path, "impostor")
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "known_hosts").write_text(
        f"[127.0.0.1]:{bastion.port} {' '.join(impostor.split()[:2])}\n"
    )
    done = _load(
        _through({"ssh_tunnel": {"private_key": key}}, pg_db, bastion), tmp_path, "info", home
    )
    assert done.returncode == 1
    last = error_line(done)
    assert last.startswith(REFUSAL), done.stderr
    assert "differs from the one in known_hosts" in last, done.stderr
    with pg_db.connect() as conn:
        assert conn.execute("SELECT to_regclass('t')").fetchone() == (None,)


def _sshd_processes(bastion: Bastion) -> list[int]:
    """The bastion's sshd and every process it forked (the sessions carrying the tunnel)."""
    master = int((bastion.log.parent / "sshd.pid").read_text())
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                parents[int(entry.name)] = int(fields[1])
    found = [master]
    for pid in found:
        found += [child for child, parent in parents.items() if parent == pid]
    return found


def test_a_bastion_that_stops_answering_fails_the_run_within_keepalive_timeout(
    pg_db: PgServer, start_target: Any, tmp_path: Path
) -> None:
    """The bastion freezes (SIGSTOP: its TCP stays open, nothing answers) after the first
    batch committed (two rows: batch_size_rows 2). The run ends non-zero with one line naming
    the tunnel and the bound, instead of waiting for ever; the second batch is not written and
    no STATE passes the first."""
    with sshd() as frozen:
        key, public = new_key(tmp_path, "key")
        frozen.authorize(public)
        tunnel = {"private_key": key, "keepalive_timeout": 2}
        config = _through({"ssh_tunnel": tunnel, "batch_size_rows": 2}, pg_db, frozen)
        target = start_target(**config)
        assert target.stdin is not None and target.stdout is not None
        for message in (*MESSAGES, state({"n": 1}), record("t", {"id": 2})):  # a full batch
            target.stdin.write(json.dumps(message) + "\n")
        target.stdin.flush()
        assert json.loads(target.stdout.readline()) == {"n": 1}  # committed
        sessions = _sshd_processes(frozen)
        for pid in sessions:
            os.kill(pid, signal.SIGSTOP)
        try:
            for message in (record("t", {"id": 3}), state({"n": 2}), record("t", {"id": 4})):
                target.stdin.write(json.dumps(message) + "\n")
            target.stdin.flush()
            try:
                out, err = target.communicate(timeout=90)
            except subprocess.TimeoutExpired:
                pytest.fail("the target still waits on a bastion that stopped answering")
            with pg_db.connect() as conn:
                assert conn.execute("SELECT id FROM t ORDER BY id").fetchall() == [(1,), (2,)]
                stored = conn.execute("SELECT state FROM _sdc_target_state").fetchall()
        finally:
            for pid in sessions:
                os.kill(pid, signal.SIGCONT)
    assert target.returncode == 1, err
    assert out == "", "a STATE past the committed batch was printed"
    assert stored == [({"n": 1},)]
    last = err.strip().splitlines()[-1]
    assert last.startswith(REFUSAL) and "keepalive_timeout" in last, err
    assert "Traceback" not in err
