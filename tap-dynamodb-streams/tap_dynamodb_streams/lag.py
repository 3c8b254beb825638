"""How far behind each shard is: the ``replication_lag_seconds`` gauge and the lag warning."""

from __future__ import annotations

import json
import logging
import time

from tap_dynamodb_streams.client import AwsClients

LOG = logging.getLogger("tap-dynamodb-streams.reader")
METRICS = logging.getLogger("singer_sdk.metrics")  # where singer-sdk logs its own METRIC lines
LOG_EVERY_SECONDS = 5.0


class LagGauge:
    """Per shard: now (on the service's clock) minus the creation time of the newest event
    read. Logged as METRIC lines every few seconds for the shards that read events since, and
    at the end of a table's run for every shard that read any."""

    def __init__(self, aws: AwsClients, table: str, warning_hours: float) -> None:
        self.aws = aws
        self.table = table
        self.warning_hours = warning_hours
        self._newest: dict[str, float] = {}
        self._changed: set[str] = set()
        self._warned: set[str] = set()
        self._logged_at = time.monotonic()

    def newest(self, shard_id: str, created_at: float) -> None:
        """``shard_id`` handed over an event created at ``created_at`` (epoch seconds)."""
        self._newest[shard_id] = created_at
        self._changed.add(shard_id)
        lag = max(0.0, self.aws.server_time() - created_at)
        if lag >= self.warning_hours * 3600 and shard_id not in self._warned:
            self._warned.add(shard_id)
            LOG.warning(
                "Table %r: shard %s is %.1f hours behind (warning at %.1f h); events older "
                "than 24 hours are trimmed and lost: run more often or raise "
                "max_parallel_shards / max_run_seconds.",
                self.table,
                shard_id,
                lag / 3600,
                self.warning_hours,
            )

    def log(self, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self._logged_at < LOG_EVERY_SECONDS:
            return
        self._logged_at = now
        server_now = self.aws.server_time()
        for shard_id in sorted(self._newest if final else self._changed):
            point = {
                "type": "gauge",
                "metric": "replication_lag_seconds",
                "value": round(max(0.0, server_now - self._newest[shard_id]), 3),
                "tags": {"stream": self.table, "table": self.table, "shard": shard_id},
            }
            METRICS.info("METRIC: %s", json.dumps(point, separators=(",", ":")))
        self._changed.clear()
