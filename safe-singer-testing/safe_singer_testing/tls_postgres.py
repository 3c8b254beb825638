"""A private PostgreSQL with `ssl = on` and a self-signed CA, for the SSL settings' tests.

The shared server on 127.0.0.1:5432 stays as it is: this one is a new cluster made with the
system's PostgreSQL binaries (the `pgserver` package's build has no SSL), listening on a free
port of 127.0.0.1, and stopped at the end. As root it runs as the system user `pgserver`
(created the way the pgserver package creates it), since PostgreSQL refuses to run as root.

Its pg_hba accepts only SSL connections over TCP: user `postgres` must show a client
certificate signed by the CA (`cert` auth, CN postgres), user `plain` needs none.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

SERVER_USER = "pgserver"  # the system user pgserver itself runs PostgreSQL as under root
START_SECONDS = 60


@dataclass(frozen=True)
class Pem:
    certificate: str
    key: str


@dataclass(frozen=True)
class SslServer:
    port: int
    socket_dir: Path
    ca: Pem
    client: Pem
    """Certificate of user `postgres`, signed by `ca`."""

    def admin(self) -> str:
        return f"host={self.socket_dir} port={self.port} user=postgres dbname=postgres"


def issue(
    name: str, issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A certificate for `name` (with localhost/127.0.0.1 names), self-signed without issuer."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer[0].subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    )
    return builder.sign(issuer[1] if issuer else key, hashes.SHA256()), key


def pem(pair: tuple[x509.Certificate, ec.EllipticCurvePrivateKey]) -> Pem:
    certificate, key = pair
    return Pem(
        certificate.public_bytes(serialization.Encoding.PEM).decode(),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode(),
    )


def _binaries() -> Path:
    """A PostgreSQL server build with SSL: the system's (pgserver's wheels have no SSL)."""
    for initdb in sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), reverse=True):
        return initdb.parent
    if (pg_config := shutil.which("pg_config")) is not None:
        found = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        if (Path(found.stdout.strip()) / "initdb").exists():
            return Path(found.stdout.strip())
    pytest.fail(
        "no PostgreSQL server binaries with SSL (initdb) are installed: run `make servers` "
        "(as root), or `sudo apt-get install -y postgresql`",
        pytrace=False,
    )


def _ensure_user(name: str) -> None:
    """The system user the server runs as (PostgreSQL refuses root), made as pgserver does."""
    try:
        pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "-s", "/bin/bash", name], check=True, capture_output=True)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def ssl_server() -> Iterator[SslServer]:
    binaries = _binaries()
    as_user = SERVER_USER if os.geteuid() == 0 else None
    if as_user is not None:
        _ensure_user(as_user)
    # A short path: the Unix socket's name must fit in 107 bytes.
    folder = Path(tempfile.mkdtemp(prefix="pgssl-"))
    data = folder / "data"
    log = folder / "log"
    ca_pair = issue("test CA", None)
    server, client = pem(issue("localhost", ca_pair)), pem(issue("postgres", ca_pair))
    ca = pem(ca_pair)
    try:
        if as_user is not None:
            shutil.chown(folder, as_user)
        _run([binaries / "initdb", "-D", data, "-U", "postgres", "--auth=trust"], as_user)
        for name, text in (("server.crt", server.certificate), ("server.key", server.key)):
            (data / name).write_text(text)
            (data / name).chmod(0o600)
        (data / "ca.crt").write_text(ca.certificate)
        port = _free_port()
        with (data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"listen_addresses = '127.0.0.1'\nport = {port}\n"
                f"unix_socket_directories = '{folder}'\nssl = on\n"
                "ssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n"
                "ssl_ca_file = 'ca.crt'\n"
            )
        (data / "pg_hba.conf").write_text(
            "local all all trust\n"
            "hostssl all postgres 127.0.0.1/32 cert\n"
            "hostssl all plain 127.0.0.1/32 trust\n"
            "host all all 0.0.0.0/0 reject\n"
        )
        if as_user is not None:
            for path in data.iterdir():
                shutil.chown(path, as_user)
        _run([binaries / "pg_ctl", "-D", data, "-l", folder / "log", "-w", "start"], as_user, log)
        found = SslServer(port, folder, ca, client)
        subprocess.run(
            [binaries / "psql", found.admin(), "-qc", "CREATE ROLE plain LOGIN SUPERUSER"],
            check=True,
            capture_output=True,
            timeout=START_SECONDS,
        )
        yield found
    finally:
        if (data / "postmaster.pid").exists():
            _run([binaries / "pg_ctl", "-D", data, "-m", "immediate", "stop"], as_user)
        shutil.rmtree(folder, ignore_errors=True)


def _run(command: list[object], as_user: str | None, log: Path | None = None) -> None:
    done = subprocess.run(
        [str(part) for part in command],
        capture_output=True,
        text=True,
        user=as_user,
        cwd="/",
        timeout=START_SECONDS,
    )
    if done.returncode != 0:
        pytest.fail(
            f"could not run {command[0]} for the SSL test server (exit {done.returncode}): "
            f"{done.stderr[-1500:]}{log.read_text()[-1500:] if log and log.exists() else ''}",
            pytrace=False,
        )
