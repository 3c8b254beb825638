"""Secrets stay out of every message: config-validation errors, error lines and log lines.

singer-sdk's config validation quotes bad values; botocore and urllib3 print request headers
and signing steps at debug level. Both are cleaned by ``hidden``: the values of the settings
the config schema marks secret, longest first, then (in logs) credentials found by pattern.
"""

from __future__ import annotations

import json
import logging
import re
import traceback
from collections.abc import Iterable, Mapping
from typing import Any

HIDDEN = "(secret value hidden)"
MASK = "***"
# Header values and signing material as botocore and urllib3 print them, in every quoting.
_PATTERNS = [
    re.compile(
        r"((?:X-Amz-Security-Token|Authorization|aws_secret_access_key|aws_session_token|"
        r"SecretAccessKey|SessionToken)['\"]?\s*[:=]\s*b?['\"]?)[^'\"\s,}]+",
        re.IGNORECASE,
    ),
    re.compile(r"(Signature=)[0-9a-fA-F]+"),
    re.compile(r"(Credential=)[^/\s,'\"]+"),
    # botocore's canonical request and string-to-sign list the token on a line of its own.
    re.compile(r"(x-amz-security-token:)\S+", re.IGNORECASE),
]
_logged_secrets: set[str] = set()


def secret_settings(config: Mapping[str, Any], schema: Mapping[str, Any]) -> list[Any]:
    """The configured values of the settings the schema marks ``secret``, also inside an
    object setting (the target's ``ssh_tunnel`` holds a private key)."""
    found: list[Any] = []
    for name, prop in schema.get("properties", {}).items():
        value = config.get(name)
        if not isinstance(prop, dict) or value is None or value == "":
            continue
        if prop.get("secret"):
            found.append(value)
        if isinstance(value, dict):
            found += secret_settings(value, prop)
    return found


def hidden(text: str, secrets: Iterable[str], mask: str) -> str:
    """``text`` with each secret replaced; a longer secret goes first, so one that contains a
    shorter one is not left half shown."""
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, mask)
    return text


def redacted(errors: list[str], config: Mapping[str, Any], schema: Mapping[str, Any]) -> list[str]:
    """The validation errors with secret values replaced, in every way a message may spell
    them (the value may be of the wrong type: that is what failed)."""
    values = secret_settings(config, schema)
    spellings = {spell(value) for value in values for spell in (repr, json.dumps, str)}
    return [hidden(error, spellings, HIDDEN) for error in errors]


def masked(text: str) -> str:
    """A text without the configured credentials or any credential botocore prints."""
    text = hidden(text, _logged_secrets, MASK)
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + MASK, text)
    return text


def forget_in_logs(values: Iterable[Any]) -> None:
    """Also mask these exact values (the configured credentials) wherever they appear."""
    _logged_secrets.update(str(v) for v in values if v and len(str(v)) >= 4)


def install() -> None:
    """Rewrite every log record from now on (idempotent): a log-record factory runs as each
    record is created, before any handler or formatter (the SDK's, or one from
    ``SINGER_SDK_LOG_CONFIG``) sees it."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, "redacting", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        message = record.getMessage()
        clean = masked(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[0] is not None:
            record.exc_text = masked("".join(traceback.format_exception(*record.exc_info)))
            record.exc_text = record.exc_text.rstrip("\n")
        return record

    factory.redacting = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)
