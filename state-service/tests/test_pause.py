"""A run frozen past its lease (SIGSTOP), replaced, then thawed (SIGCONT) can change nothing."""

from __future__ import annotations

import os
import signal

from sqlalchemy import select
from state_service.schema import bookmark_history


def state(n: int, label: str) -> dict[str, object]:
    return {"bookmarks": {"counter": {"n": n, "label": label}}}


def test_paused_run_is_fenced_out_after_it_resumes(svc) -> None:
    go_on = svc.workdir / "go-on"
    old = svc.spawn(
        "run", "p", *svc.FAST, *svc.singer(), COUNTER_TAP_LABEL="old", COUNTER_TAP_WAIT=str(go_on)
    )
    svc.wait_until("the old run's first bookmark", lambda: svc.bookmark("p") == state(1, "old"))
    os.kill(old.pid, signal.SIGSTOP)
    try:
        svc.wait_expired("p")
        new = svc.cli("run", "p", *svc.FAST, *svc.singer(), COUNTER_TAP_LABEL="new")
        assert new.returncode == 0, new.stderr
        assert svc.bookmark("p") == state(4, "new")
        go_on.touch()  # the old tap now emits n=2, n=3 towards the frozen run
    finally:
        os.kill(old.pid, signal.SIGCONT)
    _, err = old.communicate(timeout=60)

    assert old.returncode == 4, err
    assert "finish refused" in err and "lost its lease" in err, err
    assert "heartbeat refused" in err or "bookmark refused" in err, err
    assert svc.bookmark("p") == state(4, "new")
    assert [(r["status"], r["token"]) for r in svc.runs("p")] == [("RECLAIMED", 1), ("SUCCESS", 2)]
    with svc.store.transaction() as conn:
        old_writes = conn.execute(
            select(bookmark_history.c.state).where(bookmark_history.c.token == 1)
        ).scalars()
        assert [s for s in old_writes] == ['{"bookmarks": {"counter": {"n": 1, "label": "old"}}}']
