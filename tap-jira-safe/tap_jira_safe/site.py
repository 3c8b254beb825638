"""What the tap learns about the Jira site once per run (deployment, clock, user's zone),
and the run-wide pause every request honours: one object, owned by the tap, handed to
every stream."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from tap_jira_safe.errors import JiraBadAnswer
from tap_jira_safe.timeutil import parse_jira_time


@dataclass(frozen=True)
class SiteFacts:
    deployment: str  # "Cloud", "Server" or "DataCenter"
    server_time: datetime  # the sync's start, on Jira's clock
    time_zone: str  # the API user's zone (Jira reads JQL text literals in it)

    @property
    def cloud(self) -> bool:
        return self.deployment == "Cloud"


class Caller(Protocol):
    """What the site needs to ask Jira: one GET, with the tap's auth and retry policy."""

    def call(self, method: str, path: str) -> Any: ...


class Site:
    """Learns the facts on first use (``/serverInfo`` and ``/myself``), then keeps them.

    Also holds the pause a rate limit imposes: when any request of any stream is told to
    wait, every request of the run waits with it (they share one quota).
    """

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger
        self._facts: SiteFacts | None = None
        self._lock = threading.Lock()
        self._paused_until = 0.0

    def facts(self, caller: Caller) -> SiteFacts:
        if self._facts is None:
            info = caller.call("GET", "/rest/api/2/serverInfo")
            me = caller.call("GET", "/rest/api/2/myself")
            if not isinstance(info, dict) or not isinstance(me, dict):
                raise JiraBadAnswer(
                    "GET /rest/api/2/serverInfo or /myself answered without a JSON object; "
                    "check that `domain` is the Jira site."
                )
            try:
                server_time = parse_jira_time(str(info["serverTime"]))
            except (KeyError, ValueError):
                raise JiraBadAnswer(
                    "GET /rest/api/2/serverInfo answered without a readable `serverTime`; "
                    "check that `domain` is the Jira site."
                ) from None
            self._facts = SiteFacts(
                deployment=str(info.get("deploymentType", "Cloud")),
                server_time=server_time,
                time_zone=str(me.get("timeZone") or "UTC"),
            )
            self.logger.info(
                "Jira %s, server time %s, API user's time zone %s (JQL uses epoch ms, not text)",
                self._facts.deployment,
                self._facts.server_time.isoformat(),
                self._facts.time_zone,
            )
        return self._facts

    def pause(self, seconds: float) -> None:
        """Hold every request of the run for ``seconds`` from now (never shortens a pause)."""
        with self._lock:
            self._paused_until = max(self._paused_until, time.monotonic() + seconds)

    def wait_out_pause(self) -> None:
        """Before a request: sleep while a rate limit's pause runs."""
        while True:  # another 429 may extend the pause while this thread sleeps
            with self._lock:
                left = self._paused_until - time.monotonic()
            if left <= 0:
                return
            self.logger.info("waiting %.2f s: Jira's rate limit paused this run", left)
            time.sleep(left)
