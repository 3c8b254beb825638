"""Issue 18 "operators where they already look": `serve` exposes /metrics in the Prometheus text
format, read back with prometheus_client's own parser; the tap's lag reaches the run record, the
status page and /metrics; a database of the previous schema is migrated in place."""

from __future__ import annotations

import re
import sys
import urllib.request
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text
from state_service import lease as leases
from state_service.store import Store

PY = sys.executable


def scrape(base: str) -> tuple[str, dict[str, dict[tuple[tuple[str, str], ...], float]]]:
    """The page's content type, and each family's samples by their sorted labels."""
    with urllib.request.urlopen(base + "metrics", timeout=60) as answer:
        content_type, page = answer.headers["Content-Type"], answer.read().decode()
    families: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(page):
        assert family.type == "gauge", family
        samples = families.setdefault(family.name, {})
        for sample in family.samples:
            samples[tuple(sorted(sample.labels.items()))] = sample.value
    return content_type, families


def lag_run(svc: Any, pipeline: str, **env: str) -> None:
    proc = svc.cli(
        "run", pipeline, *svc.FAST, "--tap", f"{PY} {svc.fixture('lag_tap.py')}",
        "--target", f"{PY} {svc.fixture('echo_target.py')}", **env,
    )  # fmt: skip
    assert proc.returncode == (1 if "ECHO_TARGET_EXIT" in env else 0), proc.stderr


@pytest.mark.parametrize("svc", ["sqlite", "postgresql"], indirect=True)
def test_metrics_page_parses_with_prometheus_client(svc) -> None:
    lag_run(svc, "shop")  # succeeded: counts, lag 30 s, a success
    lag_run(svc, "crm", ECHO_TARGET_REPORT_SHORT="1", ECHO_TARGET_EXIT="1")  # failed, mismatch
    stale = leases.start(svc.store, "stale", lease_seconds=1)
    live = leases.start(svc.store, "live", lease_seconds=600)
    svc.wait_expired("stale")
    proc = svc.spawn("serve", "--port", "0")
    base = re.search(r"http://\S+/", proc.stderr.readline())
    assert base, "no serving line"
    content_type, metrics = scrape(base.group(0))
    proc.kill()
    assert content_type.startswith("text/plain; version=0.0.4")

    def one(name: str, **labels: str) -> float:
        return metrics[name][tuple(sorted(labels.items()))]

    assert one("state_service_stale_leases") == 1.0
    assert one("state_service_lease_stale", pipeline="stale") == 1.0
    assert one("state_service_lease_stale", pipeline="live") == 0.0
    assert set(metrics["state_service_lease_age_seconds"]) == {
        (("pipeline", "stale"),),
        (("pipeline", "live"),),
    }
    assert one("state_service_heartbeat_age_seconds", pipeline="stale") >= 1.0
    assert 0 <= one("state_service_last_success_age_seconds", pipeline="shop") < 600
    assert ("pipeline", "crm") not in {
        k[0] for k in metrics["state_service_last_success_age_seconds"]
    }
    assert one("state_service_last_run_duration_seconds", pipeline="crm", status="FAILED") > 0
    assert one("state_service_last_run_records", pipeline="shop", stream="items", side="tap") == 2
    assert one("state_service_last_run_records", pipeline="crm", stream="items", side="target") == 1
    assert one("state_service_last_run_count_mismatches", pipeline="crm") == 1.0
    assert one("state_service_last_run_count_mismatches", pipeline="shop") == 0.0
    assert one("state_service_replication_lag_seconds", pipeline="shop", stream="items") == 30.0
    leases.finish(svc.store, live, exit_code=0)
    leases.reclaim(svc.store, stale.pipeline)


@pytest.mark.parametrize("svc", ["sqlite"], indirect=True)
def test_status_page_shows_the_tap_lag(svc) -> None:
    lag_run(svc, "shop")
    proc = svc.spawn("serve", "--port", "0")
    base = re.search(r"http://\S+/", proc.stderr.readline())
    assert base, "no serving line"
    with urllib.request.urlopen(base.group(0) + "pipeline/shop", timeout=60) as answer:
        page = answer.read().decode()
    proc.kill()
    assert "<th>tap lag</th>" in page and "<td>items 30s</td>" in page, page


@pytest.mark.parametrize("svc", ["sqlite", "postgresql"], indirect=True)
def test_a_database_of_the_previous_schema_is_migrated(svc) -> None:
    """Version 2 had no lag column and no target mark: its rows stay, read as "no lag
    reported" and "no mark"."""
    lag_run(svc, "shop")
    with svc.store.transaction() as conn:
        conn.execute(text("ALTER TABLE state_service_run_streams DROP COLUMN lag_seconds"))
        conn.execute(text("ALTER TABLE state_service_runs DROP COLUMN target_state_mark"))
        conn.execute(text("DELETE FROM state_service_schema WHERE version = 3"))
    svc.store.dispose()
    refused = svc.cli("serve", "--port", "0")  # read-only: never migrates, says what to do
    assert refused.returncode == 3 and "schema version 2, expected 3" in refused.stderr
    lag_run(svc, "shop")
    runs = svc.runs("shop")
    assert [r["lag"] for r in runs] == ["-", "items 30s"]
    assert [r["records tap/target"] for r in runs] == ["items 2/?", "items 2/?"]
    store = Store(svc.url)
    with store.reading() as conn:
        versions = conn.execute(text("SELECT version FROM state_service_schema")).scalars()
        assert sorted(versions) == [1, 2, 3]
    store.dispose()
