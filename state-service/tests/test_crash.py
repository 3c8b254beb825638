"""SIGKILL inside each step: the database holds all or nothing of it, and a later run recovers.

The kill is delivered by the process to itself at a named point (STATE_SERVICE_FAULT), which is
what an outside `kill -9` landing exactly there does: nothing after the point runs.
"""

from __future__ import annotations

import contextlib

import psutil


def counter(n: int) -> dict[str, object]:
    return {"bookmarks": {"counter": {"n": n, "label": "tap"}}}


def killed_run(svc, point: str) -> None:
    proc = svc.cli("run", "p", *svc.FAST, *svc.singer(), STATE_SERVICE_FAULT=f"kill@{point}")
    assert proc.returncode == -9, proc.stderr


def recover(svc, *, stale: bool) -> None:
    """A new run: once the dead run's lease expires (database clock), it reclaims and succeeds."""
    if stale:
        assert svc.holder("p").startswith("run 1 ")  # the dead run still holds the lease
        svc.wait_expired("p")
    proc = svc.cli("run", "p", *svc.FAST, *svc.singer())
    assert proc.returncode == 0, proc.stderr


def test_kill_inside_start_leaves_nothing(svc) -> None:
    killed_run(svc, "start:before-commit")
    assert svc.runs("p") == [] and svc.holder("p") == "-"
    recover(svc, stale=False)
    assert [(r["status"], r["token"]) for r in svc.runs("p")] == [("SUCCESS", 1)]
    assert svc.bookmark("p") == counter(3)


def test_kill_after_start_before_first_beat_is_reclaimed(svc) -> None:
    killed_run(svc, "start:after-commit")
    [dead] = svc.runs("p")
    assert dead["status"] == "RUNNING"
    started_and_beat = svc.store_row("p", dead["run_id"])
    assert started_and_beat.started_at == started_and_beat.last_heartbeat_at
    assert svc.bookmark("p") is None
    recover(svc, stale=True)
    assert [(r["status"], r["token"]) for r in svc.runs("p")] == [("RECLAIMED", 1), ("SUCCESS", 2)]
    assert svc.bookmark("p") == counter(3)


def test_kill_after_a_bookmark_keeps_it_and_resumes_from_it(svc) -> None:
    killed_run(svc, "bookmark:after-commit")
    assert [r["status"] for r in svc.runs("p")] == ["RUNNING"]
    assert svc.bookmark("p") == counter(1)
    recover(svc, stale=True)
    assert [(r["status"], r["token"]) for r in svc.runs("p")] == [("RECLAIMED", 1), ("SUCCESS", 2)]
    assert svc.bookmark("p") == counter(4)  # the new run was handed n=1 and counted on


def test_kill_inside_finish_leaves_the_run_open_until_reclaimed(svc) -> None:
    killed_run(svc, "finish:before-commit")
    [dead] = svc.runs("p")
    assert dead["status"] == "RUNNING" and dead["exit"] == "-"
    assert svc.bookmark("p") == counter(3)  # bookmarks committed before finish stay
    recover(svc, stale=True)
    assert [(r["status"], r["token"]) for r in svc.runs("p")] == [("RECLAIMED", 1), ("SUCCESS", 2)]
    assert svc.bookmark("p") == counter(6)


def test_kill_of_a_state_edit(svc) -> None:
    """`state set` is a run too: killed inside, it changes nothing half-way."""
    edit = '{"bookmarks": {"counter": {"n": 99}}}'
    proc = svc.cli(
        "state", "set", "p", "-", stdin=edit, STATE_SERVICE_FAULT="kill@finish:before-commit"
    )
    assert proc.returncode == -9, proc.stderr
    assert svc.bookmark("p") is None
    assert [r["status"] for r in svc.runs("p")] == ["RUNNING"]


def test_kill_of_run_kills_its_tap_and_target(svc) -> None:
    """kill -9 of `run` leaves no tap or target running on (a target could still commit)."""
    proc = svc.spawn("run", "p", *svc.FAST, "--tap", "sleep 300", "--target", "sleep 301")
    parent = psutil.Process(proc.pid)
    svc.wait_until("tap and target", lambda: len(parent.children()) == 2)
    children = parent.children()
    parent.kill()
    try:
        svc.wait_until("tap and target to die", lambda: not any(map(_running, children)))
    finally:
        for child in filter(_running, children):  # only when the test failed: no orphans
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()


def _running(proc: psutil.Process) -> bool:
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
