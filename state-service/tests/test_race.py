"""Eight processes start the same pipeline at the same moment: exactly one wins."""

from __future__ import annotations

import socket

from state_service import lease as leases


def test_eight_starters_exactly_one_wins(svc) -> None:
    # The pipeline ran before: its lease row exists and is free, so nothing but the lease
    # logic (not a unique index on a first insert) can keep two starters apart.
    earlier = leases.start(svc.store, "race", lease_seconds=30)
    leases.finish(svc.store, earlier, exit_code=0)
    go, release = svc.workdir / "go", svc.workdir / "release"
    launcher = [svc.fixture("at_barrier.py"), str(go)]
    procs = [
        svc.spawn(
            "run",
            "race",
            "--lease-seconds",
            "30",
            *svc.hold(release),
            launcher=launcher,
            # Inside start, after reading the lease row: a check-then-act start would let
            # every starter that read "free" in this window win.
            STATE_SERVICE_FAULT="delay:0.3@start:locked",
        )
        for _ in range(8)
    ]
    go.touch()
    svc.wait_until("the losers to give up", lambda: sum(p.poll() is not None for p in procs) >= 7)
    release.touch()
    results = [(p, *p.communicate(timeout=60)) for p in procs]

    winners = [p for p, _, _ in results if p.returncode == 0]
    assert len(winners) == 1, [(p.returncode, err) for p, _, err in results]
    winner = winners[0]
    for proc, _, err in results:
        if proc is not winner:
            assert proc.returncode == 3, err
            assert f"host {socket.gethostname()}, pid {winner.pid}" in err, err
    runs = svc.runs("race")
    assert [(r["status"], r["token"]) for r in runs] == [("SUCCESS", 1), ("SUCCESS", 2)]
    assert runs[1]["holder"].endswith(f":{winner.pid}")
