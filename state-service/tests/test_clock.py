"""Moving the client's clock an hour either way changes nothing: the database clock decides."""

from __future__ import annotations

HOUR = 3600


def test_client_clock_shift_changes_nothing(svc) -> None:
    ahead = [svc.fixture("shifted_clock.py"), str(HOUR)]
    behind = [svc.fixture("shifted_clock.py"), str(-HOUR)]
    release = svc.workdir / "release"
    live = svc.spawn("run", "p", "--lease-seconds", "30", *svc.hold(release))
    svc.wait_until("the live run", lambda: svc.holder("p") != "-")

    # An hour ahead, a client judging by its own clock would call this lease long dead.
    refused = svc.cli("run", "p", "--", "true", launcher=ahead)
    assert refused.returncode == 3 and f"pid {live.pid}" in refused.stderr, refused.stderr
    status = svc.cli("status", launcher=ahead)
    [row] = [line.split() for line in status.stdout.splitlines() if line.startswith("p ")]
    assert float(row[3].rstrip("s")) < 60, status.stdout  # heartbeat age by the database clock
    release.touch()
    assert live.wait(timeout=60) == 0

    # A dead holder's lease expires on time for a client an hour behind, which judging by its
    # own clock would wait another hour.
    dead = svc.cli(
        "run", "p", *svc.FAST, "--", "true", STATE_SERVICE_FAULT="kill@start:after-commit"
    )
    assert dead.returncode == -9
    svc.wait_expired("p")
    taken = svc.cli("run", "p", *svc.FAST, "--", "true", launcher=behind)
    assert taken.returncode == 0, taken.stderr
    assert [r["status"] for r in svc.runs("p")] == ["SUCCESS", "RECLAIMED", "SUCCESS"]
