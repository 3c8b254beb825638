"""SSL settings as MeltanoLabs target-postgres names them, turned into libpq parameters.

`ssl_enable` checks the server (sslmode, sslrootcert); `ssl_client_certificate_enable` sends a
client certificate (sslcert, sslkey). Each certificate or key is a file path or the PEM text
itself: libpq reads files only, so PEM text is written into `ssl_storage_directory` first.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from singer_sdk.exceptions import ConfigurationError

PEM_START = "-----BEGIN"
DEFAULT_STORAGE = ".secrets"


def ssl_params(config: Mapping[str, Any]) -> dict[str, str]:
    """libpq's SSL parameters for the settings (none when both switches are off)."""
    params: dict[str, str] = {}
    if config.get("ssl_enable"):
        params["sslmode"] = config.get("ssl_mode") or "verify-full"
        if config.get("ssl_certificate_authority"):
            params["sslrootcert"] = _file_for(config, "ssl_certificate_authority", "root.crt")
    if config.get("ssl_client_certificate_enable"):
        if config.get("ssl_client_certificate"):
            params["sslcert"] = _file_for(config, "ssl_client_certificate", "cert.crt")
        if config.get("ssl_client_private_key"):
            params["sslkey"] = _file_for(config, "ssl_client_private_key", "pkey.key")
    return params


SWITCHES = {
    "ssl_certificate_authority": "ssl_enable",
    "ssl_client_certificate": "ssl_client_certificate_enable",
    "ssl_client_private_key": "ssl_client_certificate_enable",
}
"""Each certificate setting and the switch without which libpq is not given it."""


def unused_settings(config: Mapping[str, Any]) -> list[str]:
    """A warning per certificate setting that is set but not used (never its value)."""
    unused = []
    for setting, switch in SWITCHES.items():
        if not config.get(setting):
            continue
        if config.get("sqlalchemy_url"):
            unused.append(
                f"{setting} is set but not used: sqlalchemy_url overrides the SSL settings "
                "(put sslmode, sslrootcert, sslcert and sslkey in the URL)"
            )
        elif not config.get(switch):
            unused.append(f"{setting} is set but not used: {switch} is false")
    return unused


def _file_for(config: Mapping[str, Any], setting: str, file_name: str) -> str:
    """The path libpq reads the setting's certificate or key from."""
    value = str(config[setting])
    if PEM_START not in value:
        path = Path(value).expanduser()
        if path.is_file():
            return str(path)
        shown = "its file" if setting == "ssl_client_private_key" else f"'{value}'"
        raise ConfigurationError(
            f"{setting}: {shown} does not exist and the value is not PEM text "
            f"({PEM_START} ...); give the path of an existing file or the PEM text itself"
        )
    folder = Path(config.get("ssl_storage_directory") or DEFAULT_STORAGE).expanduser()
    text = value if value.endswith("\n") else value + "\n"
    # Named by content: runs sharing the folder (a Meltano project's) never replace each
    # other's file, and a file libpq may be reading is never rewritten in place.
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    path = folder / f"{Path(file_name).stem}-{digest}{Path(file_name).suffix}"
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Created 0600 before the key is written (libpq refuses a key others can read),
        # then renamed into place whole.
        descriptor, partial = tempfile.mkstemp(dir=folder, prefix=".partial-")
        try:
            with os.fdopen(descriptor, "w") as handle:
                handle.write(text)
            os.replace(partial, path)
        except OSError:
            Path(partial).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise ConfigurationError(
            f"{setting}: could not write it to ssl_storage_directory '{folder}' "
            f"({exc.strerror}); point ssl_storage_directory at a writable folder"
        ) from None
    return str(path.resolve())
