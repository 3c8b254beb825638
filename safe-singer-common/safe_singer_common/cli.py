"""One error policy for every console tool of the project.

A deliberate refusal or a bad input ends the tool with one line on stderr,
``<tool>: error: <what failed, where, what to do>``, and a non-zero exit code. The traceback
is printed before that line only at debug level: ``<TOOL>_DEBUG=1`` (``TAP_JIRA_SAFE_DEBUG=1``,
``STATE_SERVICE_DEBUG=1``, ``REFRESH_SEAL_DEBUG=1``...), or singer-sdk's log level switch
``<TOOL>_LOGLEVEL=DEBUG`` / ``LOGLEVEL=DEBUG``.
"""

from __future__ import annotations

import os
import re
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import NoReturn

from safe_singer_common.redact import masked

OFF = {"", "0", "false", "no", "off"}


def env_prefix(tool: str) -> str:
    """The prefix of a tool's environment variables, as singer-sdk spells it."""
    return tool.upper().replace("-", "_")


def debug_wanted(tool: str) -> bool:
    """Whether the operator asked this tool for tracebacks."""
    prefix = env_prefix(tool)
    if os.environ.get(f"{prefix}_DEBUG", "").strip().lower() not in OFF:
        return True
    level = os.environ.get(f"{prefix}_LOGLEVEL") or os.environ.get("LOGLEVEL") or ""
    return level.strip().upper() == "DEBUG"


def one_line(text: str) -> str:
    """The text on one line: whitespace runs become one space, other control characters
    (escape sequences from a server's answer, NUL) are shown escaped."""
    text = " ".join(text.split())
    return re.sub(r"[\x00-\x1f\x7f]", lambda m: f"\\x{ord(m[0]):02x}", text)


def fail(
    tool: str,
    message: str,
    code: int = 1,
    *,
    exc: BaseException | None = None,
    debug: bool | None = None,
) -> NoReturn:
    """End the tool with its one error line (credentials masked) and ``code``."""
    if exc is not None and (debug_wanted(tool) if debug is None else debug):
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    print(error_line(tool, message), file=sys.stderr, flush=True)
    sys.exit(code)


def error_line(tool: str, message: str) -> str:
    """The tool's one error line for ``message`` (credentials masked): what ``fail`` prints,
    for a thread that must end the process itself."""
    return f"{tool}: error: {masked(one_line(message))}"


@contextmanager
def refusing(
    tool: str,
    refusals: tuple[type[BaseException], ...],
    *,
    describe: Callable[[BaseException], str] = str,
    code: int = 1,
    debug: bool | None = None,
) -> Iterator[None]:
    """Turn the errors in ``refusals`` raised inside the block into the tool's error line."""
    try:
        yield
    except refusals as exc:
        fail(tool, describe(exc) or type(exc).__name__, code, exc=exc, debug=debug)
