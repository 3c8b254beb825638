"""Bookmark history retention: after each run only the newest N writes per pipeline remain (and
none older than D days); `prune` applies a policy on demand; the current bookmark never goes."""

from __future__ import annotations

import json

import pytest
from state_service import lease as leases
from state_service.history import history_count


def counter(n: int) -> dict[str, object]:
    return {"bookmarks": {"counter": {"n": n, "label": "tap"}}}


def set_state(svc, n: int) -> None:
    """An edit through the package API (quicker than the CLI; retention is the CLI's job)."""
    edit = leases.start(svc.store, "p", lease_seconds=60, kind="edit")
    leases.finish(svc.store, edit, exit_code=0, final_state=json.dumps(counter(n)))


@pytest.mark.parametrize("svc", ["sqlite"], indirect=True)  # the pruning SQL runs on both below
def test_each_run_keeps_the_newest_writes_only(svc) -> None:
    for n in range(4):
        set_state(svc, n)
    edit = svc.cli("--history-keep", "3", "state", "set", "p", "-", stdin=json.dumps(counter(4)))
    assert edit.returncode == 0, edit.stderr
    assert history_count(svc.store, "p") == 3
    assert svc.bookmark("p") == counter(4)
    run = svc.cli("--history-keep", "2", "run", "p", *svc.FAST, *svc.singer())
    assert run.returncode == 0, run.stderr
    assert history_count(svc.store, "p") == 2  # the run wrote 3 more; 2 newest remain
    assert svc.bookmark("p") == counter(7)


def test_prune_by_count_and_by_age_keeps_the_newest_write(svc) -> None:
    for n in [*range(4), 9]:
        set_state(svc, n)
    assert history_count(svc.store, "p") == 5
    pruned = svc.cli("prune", "p", "--keep", "3")
    assert pruned.returncode == 0 and "2 bookmark history rows pruned" in pruned.stdout
    assert history_count(svc.store, "p") == 3
    aged = svc.cli("prune", "--keep", "0", "--days", "0.000001")  # every pipeline; ~0.1 s
    assert aged.returncode == 0 and "2 bookmark history rows pruned" in aged.stdout, aged.stdout
    assert history_count(svc.store, "p") == 1
    assert svc.bookmark("p") == counter(9)
