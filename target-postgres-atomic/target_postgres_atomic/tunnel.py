"""`ssh_tunnel`: reach PostgreSQL through an SSH bastion, as MeltanoLabs target-postgres does.

A local port on 127.0.0.1 forwards each connection over one SSH session (paramiko, the library
MeltanoLabs uses) to the database host and port as the bastion sees them. The private key and
its passphrase are never logged or quoted in an error. A bastion host key found in the user's
known_hosts must match (else the run stops); an unknown one is logged with its fingerprint.

A bastion that dies silently (frozen, or its network gone without a reset) leaves every
database connection through it waiting for ever: TCP does not notice. So the tunnel asks the
bastion for a reply every third of ``keepalive_timeout`` (an SSH keepalive that wants one);
when none comes within ``keepalive_timeout`` the run stops at once with one error line, from
the watching thread, wherever the target waits. Nothing is half-written: each batch's
transaction is committed only by its COMMIT, and a STATE is printed only after that commit
answered, so no STATE passes what PostgreSQL committed (a COMMIT in flight may still land
when the bastion wakes, with its STATE in ``_sdc_target_state``).
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import faulthandler
import hashlib
import io
import logging
import os
import select
import socket
import sys
import threading
from collections.abc import Mapping
from typing import Any

import paramiko
from safe_singer_common.cli import debug_wanted, error_line
from singer_sdk.exceptions import ConfigurationError
from typing_extensions import override

TOOL = "target-postgres-atomic"
LOGGER = logging.getLogger(TOOL)
KEY_TYPES: tuple[type[paramiko.PKey], ...] = (
    paramiko.RSAKey,
    paramiko.ECDSAKey,
    paramiko.Ed25519Key,
)
KEEPALIVE_TIMEOUT = 60.0  # ssh_tunnel.keepalive_timeout's default
POLL_SECONDS = 0.5
CHUNK = 65536


class Tunnel:
    """A local listening port whose connections go through the bastion to `remote`."""

    def __init__(
        self,
        client: paramiko.SSHClient,
        remote: tuple[str, int],
        timeout: float,
        alive: tuple[str, float],
    ):
        """``alive``: the bastion as named in errors, and its ``keepalive_timeout``."""
        self._client = client
        self._remote = remote
        self._timeout = timeout
        self._bastion, self._alive_timeout = alive
        self._closed = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(POLL_SECONDS)
        self.local: tuple[str, int] = self._listener.getsockname()[:2]
        threading.Thread(target=self._accept, name="ssh-tunnel", daemon=True).start()
        threading.Thread(target=self._watch, name="ssh-tunnel-alive", daemon=True).start()

    def close(self) -> None:
        self._closed.set()
        self._listener.close()
        self._client.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                local, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # closed
            threading.Thread(target=self._forward, args=(local,), daemon=True).start()

    def _watch(self) -> None:
        """Every third of keepalive_timeout, ask the bastion for a reply; none within
        keepalive_timeout ends the run (nothing else would: a frozen peer's TCP stays up)."""
        while not self._closed.wait(self._alive_timeout / 3):
            answered = threading.Event()
            ping = threading.Thread(
                target=self._ping, args=(answered,), name="ssh-tunnel-ping", daemon=True
            )
            ping.start()
            if not answered.wait(self._alive_timeout) and not self._closed.is_set():
                self._stop_run()

    def _ping(self, answered: threading.Event) -> None:
        """One keepalive that wants a reply (OpenSSH answers an unknown request with a
        failure, which is an answer too); blocks until it comes or the session ends."""
        transport = self._client.get_transport()
        if transport is None or not transport.is_active():
            return  # an ended session answers nothing: the watch stops the run
        with contextlib.suppress(paramiko.SSHException, OSError, EOFError):
            transport.global_request("keepalive@openssh.com", wait=True)
            if transport.is_active():
                answered.set()

    def _stop_run(self) -> None:
        """End the process with the target's one error line (every thread's stack first,
        at debug level: where it waited)."""
        if debug_wanted(TOOL):
            faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
        message = (
            f"ssh_tunnel: {self._bastion} answered no SSH keepalive for "
            f"{self._alive_timeout:g} s (ssh_tunnel.keepalive_timeout), so the tunnel to "
            f"{self._remote[0]}:{self._remote[1]} is taken as dead and the run stops; no "
            "STATE past the last committed batch was printed; check the bastion, then run again"
        )
        print(error_line(TOOL, message), file=sys.stderr, flush=True)
        os._exit(1)

    def _forward(self, local: socket.socket) -> None:
        """One database connection: bytes both ways until either side closes."""
        transport = self._client.get_transport()
        try:
            if transport is None or not transport.is_active():
                raise paramiko.SSHException("the SSH session to the bastion has ended")
            channel = transport.open_channel(
                "direct-tcpip", self._remote, local.getpeername(), timeout=self._timeout
            )
        except (paramiko.SSHException, OSError) as exc:
            # Recorded before the local end closes: the connect that fails on it reports this.
            _failures.append(
                "ssh_tunnel: the bastion could not open a connection to "
                f"{self._remote[0]}:{self._remote[1]} ({exc}); check host and port as the "
                "bastion sees the database"
            )
            LOGGER.debug("%s", _failures[-1])
            local.close()
            return
        with contextlib.closing(local), contextlib.closing(channel):
            while not self._closed.is_set():
                ready, _, _ = select.select([local, channel], [], [], POLL_SECONDS)
                if local in ready and not _copy(local.recv, channel.sendall):
                    return
                if channel in ready and not _copy(channel.recv, local.sendall):
                    return


def _copy(receive: Any, send: Any) -> bool:
    """Move one chunk; False when the sending side has closed."""
    try:
        data = receive(CHUNK)
        if not data:
            return False
        send(data)
    except OSError:
        return False
    return True


_OPEN: dict[tuple[Any, ...], Tunnel] = {}
_failures: list[str] = []
"""Why the tunnel closed a database connection it could not forward, latest last."""


def take_failure() -> str | None:
    """Why the tunnel last failed to forward a connection (once), if it did."""
    return _failures.pop() if _failures else None


def local_endpoint(settings: Mapping[str, Any], remote: tuple[str, int], timeout: float) -> Tunnel:
    """The process's tunnel to `remote` through the bastion `settings` name (opened once)."""
    bastion = (str(settings["host"]), int(settings.get("port") or 22))
    user = str(settings["username"])
    identity = (*bastion, user, *remote)
    if identity not in _OPEN:
        if not LOGGER.isEnabledFor(logging.DEBUG):
            # paramiko logs a refused channel as an ERROR of its own; the run's error says it.
            logging.getLogger("paramiko").setLevel(logging.CRITICAL)
        client = _connect(settings, bastion, user, timeout)
        alive = float(settings.get("keepalive_timeout") or KEEPALIVE_TIMEOUT)
        named = f"bastion {user}@{bastion[0]}:{bastion[1]}"
        _OPEN[identity] = Tunnel(client, remote, timeout, (named, alive))
        atexit.register(_OPEN[identity].close)
        LOGGER.info(
            "SSH tunnel to %s:%s through %s@%s:%s listens on %s:%s.",
            *remote,
            user,
            *bastion,
            *_OPEN[identity].local,
        )
    return _OPEN[identity]


class LogUnknownHostKey(paramiko.MissingHostKeyPolicy):
    """A bastion missing from known_hosts is accepted (MeltanoLabs checks none) and its key
    logged as `ssh-keygen -l` shows it, so it can be checked and pinned in known_hosts."""

    @override
    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> None:
        digest = base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode().rstrip("=")
        LOGGER.warning(
            "ssh_tunnel: bastion %s is not in known_hosts; accepting its %s key SHA256:%s "
            "(add it to ~/.ssh/known_hosts to have it checked)",
            hostname,
            key.get_name(),
            digest,
        )


def _connect(
    settings: Mapping[str, Any], bastion: tuple[str, int], user: str, timeout: float
) -> paramiko.SSHClient:
    where = f"ssh_tunnel: bastion {user}@{bastion[0]}:{bastion[1]}"
    key = private_key(str(settings["private_key"]), settings.get("private_key_password"))
    client = paramiko.SSHClient()
    with contextlib.suppress(OSError):
        client.load_system_host_keys()
    client.set_missing_host_key_policy(LogUnknownHostKey())
    try:
        client.connect(
            bastion[0],
            port=bastion[1],
            username=user,
            pkey=key,
            timeout=timeout,
            banner_timeout=timeout,
            auth_timeout=timeout,
            allow_agent=False,
            look_for_keys=False,
        )
    except paramiko.BadHostKeyException:
        raise ConfigurationError(
            f"{where} presented a host key that differs from the one in known_hosts; "
            "if the bastion's key really changed, update known_hosts"
        ) from None
    except paramiko.AuthenticationException:
        raise ConfigurationError(
            f"{where} refused the private key; check username and that the key's public "
            "half is in the bastion's authorized_keys"
        ) from None
    except (paramiko.SSHException, OSError) as exc:
        raise ConfigurationError(
            f"{where} could not be reached ({type(exc).__name__}: {exc}); check host and port"
        ) from None
    return client


def private_key(text: str, passphrase: str | None) -> paramiko.PKey:
    """The key from its text: RSA, ECDSA or Ed25519 (DSS is gone from paramiko 4)."""
    for key_type in KEY_TYPES:
        try:
            return key_type.from_private_key(io.StringIO(text), password=passphrase)
        except paramiko.PasswordRequiredException:
            raise ConfigurationError(
                "ssh_tunnel.private_key is encrypted; set ssh_tunnel.private_key_password"
            ) from None
        except (paramiko.SSHException, ValueError):
            continue
    raise ConfigurationError(
        "ssh_tunnel.private_key could not be read as an RSA, ECDSA or Ed25519 private key "
        "(or private_key_password is wrong); give the key's full text, PEM or OpenSSH format"
    )
