"""state-service vs Meltano's systemdb state backend, on SQLite and PostgreSQL, in one run.

Measures, per database:
- start-to-first-heartbeat: our start transaction (it writes started_at and the first
  last_heartbeat_at together, so the first beat is on record when it returns);
- heartbeat: one fenced heartbeat transaction;
- bookmark write: one fenced write_bookmark transaction (upsert + history row);
- state updates through Meltano's interface, `StateStoreManager.update()` (what Meltano's
  BookmarkWriter calls for every STATE line): ours (fenced) against Meltano's own
  DBStateStoreManager on the same kind of database, the same number of updates, same state.

Usage: .venv/bin/python bench/state_service.py [--writes N] [--dbs sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from meltano.core.job_state import JobState
from meltano.core.models import SystemModel
from meltano.core.state_store import DBStateStoreManager, MeltanoState
from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

# This file is named like the package: its folder must not shadow `state_service`.
sys.path[0] = str(Path(__file__).resolve().parents[1])

from state_service import lease as leases  # noqa: E402
from state_service.meltano_backend import StateServiceStoreManager  # noqa: E402
from state_service.runner import lease_env  # noqa: E402
from state_service.store import Store  # noqa: E402

from bench.figures import figure  # noqa: E402
from safe_singer_testing.postgres import create_database, drop_database, find_server  # noqa: E402

STATE = {
    "bookmarks": {
        f"stream_{i}": {"replication_key": "updated", "replication_key_value": f"2026-01-{i:02}"}
        for i in range(1, 21)
    }
}


def timed(fn: Callable[[], object], n: int) -> list[float]:
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return samples


def ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def bench_lease(url: str, n: int) -> dict[str, float]:
    store = Store(url)
    counter = iter(range(10**9))
    starts = timed(lambda: leases.start(store, f"start-{next(counter)}", lease_seconds=60), n)
    held = leases.start(store, "bench", lease_seconds=60)
    beats = timed(lambda: leases.heartbeat(store, held), n)
    text = json.dumps(STATE)
    t0 = time.perf_counter()
    writes = timed(lambda: leases.write_bookmark(store, held, text), n)
    wall = time.perf_counter() - t0
    leases.finish(store, held, exit_code=0)
    store.dispose()
    return {
        "start_ms": ms(starts),
        "heartbeat_ms": ms(beats),
        "bookmark_ms": ms(writes),
        "bookmarks_per_s": n / wall,
    }


def bench_updates(ours_url: str, meltano_url: str, n: int) -> dict[str, list[float]]:
    """StateStoreManager.update() on both backends, interleaved in rounds so load hits both."""
    store = Store(ours_url)
    held = leases.start(store, "meltano-bench", lease_seconds=60)
    os.environ.update(lease_env(held, ours_url))  # ours writes under a wrapper's lease, fenced
    ours = StateServiceStoreManager(uri=f"statesvc://{ours_url}")
    engine = create_engine(meltano_url)
    SystemModel.metadata.create_all(engine, tables=[JobState.__table__])  # type: ignore[list-item]
    session = sessionmaker(bind=engine)()
    theirs = DBStateStoreManager(session=session)
    state = MeltanoState("meltano-bench", completed_state={"singer_state": STATE})
    samples: dict[str, list[float]] = {"ours": [], "meltano": []}
    rounds = 10
    for _ in range(rounds):
        samples["ours"] += timed(lambda: ours.update(state), n // rounds)
        samples["meltano"] += timed(lambda: theirs.update(state), n // rounds)
    leases.finish(store, held, exit_code=0)
    ours.close()
    store.dispose()
    session.close()
    engine.dispose()
    return samples


def report(name: str, lease: dict[str, float], updates: dict[str, list[float]]) -> None:
    ours, theirs = updates["ours"], updates["meltano"]
    print(f"\n## {name}")
    print("| measure | state-service | Meltano systemdb | ratio (Meltano / ours) |")
    print("|---|---:|---:|---:|")
    print(f"| start-to-first-heartbeat (median ms) | {lease['start_ms']:.2f} | - | - |")
    print(f"| heartbeat (median ms) | {lease['heartbeat_ms']:.2f} | - | - |")
    print(f"| fenced bookmark write (median ms) | {lease['bookmark_ms']:.2f} | - | - |")
    print(f"| fenced bookmark writes/s | {lease['bookmarks_per_s']:.0f} | - | - |")
    print(
        f"| state update via StateStoreManager.update (median ms) | {ms(ours):.2f}"
        f" | {ms(theirs):.2f} | {ms(theirs) / ms(ours):.2f}x |"
    )
    ours_rate, their_rate = len(ours) / sum(ours), len(theirs) / sum(theirs)
    print(
        f"| state updates/s ({len(ours)} each) | {ours_rate:.0f} | {their_rate:.0f}"
        f" | {ours_rate / their_rate:.2f}x (ours / Meltano) |"
    )
    figure(
        "state-service",
        f"state updates/s via StateStoreManager.update, {name}",
        "Meltano systemdb",
        ours_rate,
        their_rate,
        higher_is_better=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=300, help="operations per measure")
    parser.add_argument("--dbs", default="sqlite,postgresql")
    args = parser.parse_args()
    print(f"# state-service benchmark: {args.writes} operations per measure")
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    for db in args.dbs.split(","):
        if db == "sqlite":
            with tempfile.TemporaryDirectory(prefix="bench-state-") as tmp:
                lease = bench_lease(f"sqlite:///{tmp}/lease.db", args.writes)
                updates = bench_updates(
                    f"sqlite:///{tmp}/ours.db", f"sqlite:///{tmp}/meltano.db", args.writes
                )
            report("SQLite (file; ours in WAL mode, Meltano's as it sets it up)", lease, updates)
        else:
            admin = find_server()
            ours_db, meltano_db = create_database(admin, "bench"), create_database(admin, "bench")
            try:
                ours_url = ours_db.url("postgresql+psycopg")
                lease = bench_lease(ours_url, args.writes)
                updates = bench_updates(ours_url, meltano_db.url("postgresql+psycopg"), args.writes)
            finally:
                drop_database(ours_db, admin)
                drop_database(meltano_db, admin)
            report(f"PostgreSQL ({admin.origin})", lease, updates)
    print(f"\nload average after: {os.getloadavg()[0]:.2f} (the machine is shared)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
