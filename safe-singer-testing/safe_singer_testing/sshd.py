"""A real OpenSSH server on 127.0.0.1 for the target's `ssh_tunnel` tests (a bastion).

It takes public keys only (from its own authorized_keys file) for the user running the tests,
allows TCP forwarding, and logs at DEBUG to a file the tests read (to see the forwarding).
`make servers` installs openssh-server; without it the test fails saying so.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

SSHD = Path("/usr/sbin/sshd")
START_SECONDS = 30.0


@dataclass(frozen=True)
class Bastion:
    port: int
    username: str
    authorized_keys: Path
    log: Path

    def authorize(self, public_key: str) -> None:
        with self.authorized_keys.open("a") as keys:
            keys.write(public_key.strip() + "\n")


def new_key(folder: Path, name: str, passphrase: str = "") -> tuple[str, str]:
    """A new Ed25519 key pair (OpenSSH format): private text, public line."""
    path = folder / name
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", passphrase, "-f", str(path)],
        check=True,
        capture_output=True,
    )
    return path.read_text(), path.with_suffix(".pub").read_text()


@contextmanager
def sshd() -> Iterator[Bastion]:
    if not SSHD.exists():
        pytest.fail(
            f"{SSHD} is missing: run `make servers` (as root), or "
            "`sudo apt-get install -y openssh-server`",
            pytrace=False,
        )
    folder = Path(tempfile.mkdtemp(prefix="sshd-"))
    new_key(folder, "host_key")
    keys = folder / "authorized_keys"
    keys.touch(mode=0o600)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    config = folder / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {folder / 'host_key'}\n"
        f"AuthorizedKeysFile {keys}\nPidFile {folder / 'sshd.pid'}\n"
        "PubkeyAuthentication yes\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
        "PermitRootLogin prohibit-password\nAllowTcpForwarding yes\nLogLevel DEBUG1\n"
    )
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # its privilege separation folder
    log = folder / "sshd.log"
    process = subprocess.Popen(
        [str(SSHD), "-D", "-f", str(config), "-E", str(log)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_for(port, process, log)
        yield Bastion(port, getpass.getuser(), keys, log)
    finally:
        process.terminate()
        process.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


def _wait_for(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    print(f"waiting up to {START_SECONDS:.0f}s for sshd on 127.0.0.1:{port}", file=sys.stderr)
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(
                f"sshd exited ({process.returncode}): "
                f"{log.read_text()[-1500:] if log.exists() else ''}",
                pytrace=False,
            )
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"sshd did not listen on 127.0.0.1:{port} within {START_SECONDS:.0f}s")
