"""Fenced writes through the package API, and a reclaim racing the owner's finish."""

from __future__ import annotations

import threading

import pytest
from state_service import lease as leases
from state_service.store import Store


def test_every_write_of_a_fenced_out_run_is_refused(svc) -> None:
    old = leases.start(svc.store, "p", lease_seconds=60)
    leases.write_bookmark(svc.store, old, '{"v": "old"}')
    new = leases.start(svc.store, "p", lease_seconds=60, force=True)
    with pytest.raises(leases.LeaseLost, match=f"now held by run {new.run_id}"):
        leases.heartbeat(svc.store, old)
    with pytest.raises(leases.LeaseLost):
        leases.write_bookmark(svc.store, old, '{"v": "stale"}')
    with pytest.raises(leases.LeaseLost):
        leases.finish(svc.store, old, exit_code=0, final_state='{"v": "stale"}')
    leases.write_bookmark(svc.store, new, '{"v": "new"}')
    leases.finish(svc.store, new, exit_code=0)
    assert svc.bookmark("p") == {"v": "new"}
    assert [(r["status"], r["token"]) for r in svc.runs("p")] == [("RECLAIMED", 1), ("SUCCESS", 2)]
    again = leases.start(svc.store, "p", lease_seconds=60)
    assert again.token == 3  # released leases keep their token: it only grows


def test_reclaim_of_a_live_lease_needs_force(svc) -> None:
    held = leases.start(svc.store, "p", lease_seconds=60)
    refused = svc.cli("reclaim", "p")
    assert refused.returncode == 3 and f"is held by run {held.run_id}" in refused.stderr
    forced = svc.cli("reclaim", "p", "--force")
    assert forced.returncode == 0, forced.stderr
    with pytest.raises(leases.LeaseLost):
        leases.heartbeat(svc.store, held)
    assert svc.cli("reclaim", "p").returncode == 3  # nothing left to reclaim


def test_state_edits_wait_for_no_run(svc) -> None:
    held = leases.start(svc.store, "p", lease_seconds=60)
    refused = svc.cli("state", "set", "p", "-", stdin='{"bookmarks": {}}')
    assert refused.returncode == 3 and "is held by run" in refused.stderr
    leases.finish(svc.store, held, exit_code=0)
    assert svc.cli("state", "set", "p", "-", stdin='{"bookmarks": {"a": 1}}').returncode == 0
    assert svc.bookmark("p") == {"bookmarks": {"a": 1}}
    assert svc.cli("state", "clear", "p").returncode == 0
    assert svc.bookmark("p") is None
    assert [(r["kind"], r["status"]) for r in svc.runs("p")] == [("run", "SUCCESS")] + [
        ("edit", "SUCCESS")
    ] * 2


def race_finish_against_reclaim(owner: Store, reclaimer: Store, held: leases.Lease) -> dict:
    """Both at once behind a barrier; which of them won."""
    barrier = threading.Barrier(2)
    outcome: dict[str, str] = {}

    def do_finish() -> None:
        barrier.wait()
        try:
            leases.finish(owner, held, exit_code=0, final_state='{"by": "owner"}')
            outcome["finish"] = "won"
        except leases.LeaseLost:
            outcome["finish"] = "lost"

    def do_reclaim() -> None:
        barrier.wait()
        try:
            leases.reclaim(reclaimer, held.pipeline, force=True)
            outcome["reclaim"] = "won"
        except leases.NothingToReclaim:
            outcome["reclaim"] = "lost"

    threads = [threading.Thread(target=do_finish), threading.Thread(target=do_reclaim)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return outcome


def test_reclaim_racing_finish_exactly_one_wins(svc) -> None:
    owner, reclaimer = Store(svc.url), Store(svc.url)
    try:
        for attempt in range(8):
            pipeline = f"race-{attempt}"
            held = leases.start(svc.store, pipeline, lease_seconds=60)
            outcome = race_finish_against_reclaim(owner, reclaimer, held)
            assert sorted(outcome.values()) == ["lost", "won"], outcome
            [run] = svc.runs(pipeline)
            if outcome["finish"] == "won":
                assert (run["status"], svc.bookmark(pipeline)) == ("SUCCESS", {"by": "owner"})
            else:
                assert (run["status"], svc.bookmark(pipeline)) == ("RECLAIMED", None)
            assert svc.holder(pipeline) == "-"
    finally:
        owner.dispose()
        reclaimer.dispose()
