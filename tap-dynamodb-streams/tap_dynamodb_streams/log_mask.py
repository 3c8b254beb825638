"""No credential in any log line, at any level, from any library (botocore and urllib3 print
request headers and signing steps at debug level).

A log-record factory rewrites every record as it is created, before any handler or formatter
(the SDK's, or one from ``SINGER_SDK_LOG_CONFIG``) sees it.
"""

from __future__ import annotations

import logging
import re
import traceback
from collections.abc import Iterable
from typing import Any

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
_secrets: set[str] = set()


def redact(text: str) -> str:
    for secret in _secrets:
        text = text.replace(secret, MASK)
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + MASK, text)
    return text


def forget_in_logs(values: Iterable[Any]) -> None:
    """Also mask these exact values (the configured credentials) wherever they appear."""
    _secrets.update(str(v) for v in values if v and len(str(v)) >= 4)


def install() -> None:
    """Rewrite every log record from now on (idempotent)."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, "redacting", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[0] is not None:
            record.exc_text = redact("".join(traceback.format_exception(*record.exc_info)))
            record.exc_text = record.exc_text.rstrip("\n")
        return record

    factory.redacting = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)
