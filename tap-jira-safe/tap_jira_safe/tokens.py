"""Cloud's token paging, one rule for every token-paged read: a token handed out before would
send the read round for ever, and a read whose token was refused or repeated starts again from
its first page, at most ``TRIES`` times (whole reads: nothing of a failed try went out)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from tap_jira_safe.errors import JiraCursorExpired, RepeatedPageToken

TRIES = 3
RESTARTED = (RepeatedPageToken, JiraCursorExpired)
T = TypeVar("T")


class PageTokens:
    """The page tokens one read was handed: one handed out twice is refused."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._seen: set[str] = set()

    def next(self, value: Any) -> str:
        """The next page's token (``value`` as the answer gave it)."""
        token = str(value)
        if token in self._seen:
            raise RepeatedPageToken(f"{self.what}: page token repeated: {token[:12]}...")
        self._seen.add(token)
        return token


def read_whole(read: Callable[[], T], logger: logging.Logger, stream: str, what: str) -> T:
    """``read()``, started again after a spent or repeated page token; the last try's error
    stops the run."""
    attempt = 1
    while True:
        try:
            return read()
        except RESTARTED as exc:
            if attempt == TRIES:
                raise
            logger.warning("%s: %s; restarting %s (try %d)", stream, exc, what, attempt)
            attempt += 1
