"""The replication-lag gauge: now minus the stream's bookmark, logged through singer-sdk's
metrics logger (beside its record_count lines) at most every few seconds and once at the end.
state-service reads these lines from the tap's stderr into the run record."""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime, timezone

INTERVAL_S = 5.0


class LagGauge:
    """Tracks the bookmark a run is moving to: the newest ``updated`` emitted, never past the
    bookmark's ceiling (the signpost) and never below the bookmark the run started from."""

    def __init__(self, logger: logging.Logger, stream: str) -> None:
        self.logger = logger
        self.stream = stream
        self._bookmark: datetime | None = None
        self._ceiling: datetime | None = None
        self._logged_at = 0.0

    def start(self, bookmark: str | None, ceiling: str) -> None:
        self._bookmark = datetime.fromisoformat(bookmark) if bookmark else None
        self._ceiling = datetime.fromisoformat(ceiling)
        self._logged_at = time.monotonic()

    def observe(self, updated: datetime | None) -> None:
        if updated is None:
            return
        if self._ceiling is not None:
            updated = min(updated, self._ceiling)
        if self._bookmark is None or updated > self._bookmark:
            self._bookmark = updated
        if time.monotonic() - self._logged_at >= INTERVAL_S:
            self.log()

    def finish(self) -> None:
        self.log()

    def log(self) -> None:
        self._logged_at = time.monotonic()
        if self._bookmark is None:
            return  # nothing synced yet: no bookmark to be behind
        point = {
            "type": "gauge",
            "metric": "replication_lag_seconds",
            "value": round((datetime.now(timezone.utc) - self._bookmark).total_seconds(), 3),
            "tags": {"stream": self.stream},
        }
        self.logger.info("METRIC: %s", json.dumps(point, separators=(",", ":")))
