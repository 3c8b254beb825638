"""`/metrics` of `state-service serve`: the state database in the Prometheus text format.

Read from the database on every scrape (a custom collector, as prometheus_client's docs show for
proxies of another system), ages measured with the database clock like the leases themselves.
Per-stream figures are those of each pipeline's latest finished run; replication lag is what
the tap last reported in that run, so it exists only for runs of `state-service run` whose tap
logs the `replication_lag_seconds` gauge (a Meltano backend sees only state).
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from state_service.report import (
    counts_disagree,
    last_successes,
    latest_finished_runs,
    pipelines,
)
from state_service.store import Store

PREFIX = "state_service_"
# What generate_latest writes: the classic text format every Prometheus server reads.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class StateCollector(Collector):
    def __init__(self, store: Store) -> None:
        self.store = store

    def collect(self) -> Iterator[Metric]:
        now, views = pipelines(self.store)

        def gauge(name: str, doc: str, labels: list[str]) -> GaugeMetricFamily:
            return GaugeMetricFamily(PREFIX + name, doc, labels=labels)

        lease_age = gauge(
            "lease_age_seconds", "Age of the run holding the lease (absent: free).", ["pipeline"]
        )
        heartbeat_age = gauge(
            "heartbeat_age_seconds", "Since the holder's last heartbeat.", ["pipeline"]
        )
        stale = gauge("lease_stale", "1 when the holder's lease has expired.", ["pipeline"])
        for v in views:
            if v.holder is not None:
                lease_age.add_metric([v.pipeline], (now - v.started).total_seconds())
                heartbeat_age.add_metric([v.pipeline], v.heartbeat_age)
                stale.add_metric([v.pipeline], 1.0 if v.stale else 0.0)
        stale_total = gauge("stale_leases", "Leases held by a run whose lease expired.", [])
        stale_total.add_metric([], float(sum(v.stale for v in views)))
        yield from (lease_age, heartbeat_age, stale, stale_total)

        success_age = gauge(
            "last_success_age_seconds", "Since the latest successful run ended.", ["pipeline"]
        )
        success_at = gauge(
            "last_success_timestamp_seconds",
            "Unix time the latest successful run ended.",
            ["pipeline"],
        )
        for pipeline, ended in sorted(last_successes(self.store).items()):
            success_age.add_metric([pipeline], (now - ended).total_seconds())
            success_at.add_metric([pipeline], ended.timestamp())
        yield from (success_age, success_at)
        yield from self._latest_runs()

    def _latest_runs(self) -> Iterator[Metric]:
        duration = GaugeMetricFamily(
            PREFIX + "last_run_duration_seconds",
            "Duration of the latest finished run.",
            labels=["pipeline", "status"],
        )
        records = GaugeMetricFamily(
            PREFIX + "last_run_records",
            "Records per stream in the latest finished run, as the tap and the target reported.",
            labels=["pipeline", "stream", "side"],
        )
        mismatches = GaugeMetricFamily(
            PREFIX + "last_run_count_mismatches",
            "Streams of the latest finished run whose tap and target counts differ.",
            labels=["pipeline"],
        )
        lag = GaugeMetricFamily(
            PREFIX + "replication_lag_seconds",
            "The tap's last reported replication lag per stream (state-service run only).",
            labels=["pipeline", "stream"],
        )
        for run in latest_finished_runs(self.store):
            if run.ended is not None:
                seconds = (run.ended - run.started).total_seconds()
                duration.add_metric([run.pipeline, run.status], seconds)
            for stream, tap, target, lag_seconds in run.counts:
                for side, value in (("tap", tap), ("target", target)):
                    if value is not None:
                        records.add_metric([run.pipeline, stream, side], float(value))
                if lag_seconds is not None:
                    lag.add_metric([run.pipeline, stream], float(lag_seconds))
            disagreeing = [c for c in run.counts if counts_disagree([c])]
            mismatches.add_metric([run.pipeline], float(len(disagreeing)))
        yield from (duration, records, mismatches, lag)


def metrics_page(store: Store) -> bytes:
    """The Prometheus text exposition of the state database now."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StateCollector(store))
    return generate_latest(registry)
