"""`meltano run` with the state-service backend: bookmarks stored, a second run refused, a
fenced-out run stopped."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from state_service import lease as leases
from state_service.report import read_bookmark, run_history
from state_service.store import Store

from safe_singer_testing.cli import script
from safe_singer_testing.postgres import REPO_ROOT

FIXTURES = REPO_ROOT / "state-service" / "tests" / "fixtures"
STATE_ID = "dev:tap-counter-to-target-echo"
MELTANO_YML = """\
default_environment: dev
project_id: {project_id}
send_anonymous_usage_stats: false
environments:
- name: dev
state_backend:
  uri: statesvc://
  statesvc:
    lease_seconds: 30
    heartbeat_seconds: 1
plugins:
  extractors:
  - name: tap-counter
    namespace: tap_counter
    executable: {fixtures}/counter_tap.py
    capabilities: [state]
  loaders:
  - name: target-echo
    namespace: target_echo
    executable: {fixtures}/echo_target.py
"""


@pytest.fixture(params=["sqlite", "postgresql"])
def project(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A throwaway Meltano project whose state backend points at a fresh state database."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'state.db'}"
    else:
        url = request.getfixturevalue("pg_db").url("postgresql+psycopg")
    (tmp_path / "meltano.yml").write_text(
        MELTANO_YML.format(project_id=uuid.uuid4(), fixtures=FIXTURES)
    )
    yield tmp_path, url


def meltano_env(url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STATE_SERVICE_", "MELTANO_"))}
    env.update(MELTANO_STATE_BACKEND_STATESVC_DATABASE_URL=url, **extra)
    return env


def meltano(project: Path, url: str, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [script("meltano"), *args],
        cwd=project,
        env=meltano_env(url, **extra),
        capture_output=True,
        text=True,
        timeout=120,
    )


def meltano_run(
    project: Path, url: str, *flags: str, **extra: str
) -> subprocess.CompletedProcess[str]:
    return meltano(project, url, "run", *flags, "tap-counter", "target-echo", **extra)


def assert_refused_in_one_line(proc: subprocess.CompletedProcess[str], needle: str) -> None:
    """Exit 3 and the service's one line, once: no traceback, no Meltano error wrapped round."""
    output = proc.stdout + proc.stderr
    assert proc.returncode == 3, output[-3000:]
    ours = [line for line in output.splitlines() if line.startswith("state-service: ")]
    assert len(ours) == 1 and needle in ours[0], output[-3000:]
    assert output.count(needle) == 1, output[-3000:]
    assert "Traceback" not in output and "╭" not in output, output[-3000:]


def counter(n: int) -> dict[str, object]:
    return {"bookmarks": {"counter": {"n": n, "label": "tap"}}}


def singer_state(store: Store) -> object:
    stored = read_bookmark(store, STATE_ID)
    return None if stored is None else json.loads(stored)["completed"]["singer_state"]


def kill_tree(proc: subprocess.Popen[str]) -> None:
    """Meltano and the plugins it started (a paused tap would otherwise wait forever)."""
    with contextlib.suppress(psutil.NoSuchProcess):
        for child in [*psutil.Process(proc.pid).children(recursive=True), proc]:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()


def spawn_meltano_run(workdir: Path, url: str, **extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [script("meltano"), "run", "tap-counter", "target-echo"],
        cwd=workdir,
        env=meltano_env(url, **extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def paused_meltano_run(
    workdir: Path, url: str, store: Store, go_on: Path, first_bookmark: dict[str, object]
) -> subprocess.Popen[str]:
    """A `meltano run` that stores its first bookmark, then waits until `go_on` exists."""
    slow = spawn_meltano_run(workdir, url, COUNTER_TAP_WAIT=str(go_on))
    for _ in range(600):  # a guard against hanging, not a timing assertion
        if singer_state(store) == first_bookmark:
            return slow
        if slow.poll() is not None:
            raise AssertionError("the slow run ended before its first bookmark")
        time.sleep(0.2)
    kill_tree(slow)
    raise AssertionError("the slow run stored no bookmark within two minutes")


def test_meltano_run_stores_bookmarks_and_refuses_a_second_run(project: tuple[Path, str]) -> None:
    workdir, url = project
    store = Store(url)
    try:
        seeded = leases.start(store, STATE_ID, lease_seconds=60, kind="edit")
        earlier = {"completed": {"singer_state": counter(10)}, "partial": {}}
        leases.finish(store, seeded, exit_code=0, final_state=json.dumps(earlier))
        go_on = workdir / "go-on"
        slow = paused_meltano_run(workdir, url, store, go_on, first_bookmark=counter(11))
        try:
            # Meltano's own check only sees this project's local system database (a second
            # machine would not see it at all): --force skips it, so the lease must refuse.
            second = meltano_run(workdir, url, "--force")
            holder = f"host {socket.gethostname()}, pid {slow.pid}"
            assert_refused_in_one_line(second, holder)
            edit = meltano(
                workdir, url, "state", "set", "--force", STATE_ID, '{"singer_state": {}}'
            )
            assert_refused_in_one_line(edit, holder)
            go_on.touch()
            out, _ = slow.communicate(timeout=120)
            assert slow.returncode == 0, out[-3000:]
        finally:
            if slow.poll() is None:
                kill_tree(slow)
                slow.communicate()
        assert singer_state(store) == counter(13)
        runs = [(r["kind"], r["status"]) for r in reversed(run_history(store, STATE_ID, 10))]
        assert runs == [("edit", "SUCCESS"), ("meltano", "SUCCESS")]  # the refused left none
    finally:
        store.dispose()


@pytest.mark.parametrize("project", ["sqlite"], indirect=True)  # the fencing is DB-neutral
def test_meltano_run_that_loses_its_lease_stops_and_writes_nothing(
    project: tuple[Path, str],
) -> None:
    workdir, url = project
    store = Store(url)
    go_on = workdir / "go-on"
    slow = paused_meltano_run(workdir, url, store, go_on, first_bookmark=counter(1))
    try:
        forced = subprocess.run(
            [script("state-service"), "--db", url, "reclaim", STATE_ID, "--force"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert forced.returncode == 0, forced.stderr
        go_on.touch()  # the tap goes on to emit n=2 and n=3: every write must be refused
        out, _ = slow.communicate(timeout=120)
    finally:
        if slow.poll() is None:
            kill_tree(slow)
            slow.communicate()
    assert slow.returncode != 0, out[-3000:]
    assert "lost its lease" in out, out[-3000:]
    assert singer_state(store) == counter(1)
    assert [r["status"] for r in run_history(store, STATE_ID, 10)] == ["RECLAIMED"]
    store.dispose()


@pytest.mark.parametrize("project", ["sqlite"], indirect=True)  # the check is one SQL read
def test_a_run_whose_bookmark_was_replaced_after_it_read_it_writes_nothing(
    project: tuple[Path, str],
) -> None:
    """Reads take no lease (so `meltano state get/list` never block), but the first write of a
    run checks that the bookmark it started from is still the stored one."""
    workdir, url = project
    store = Store(url)
    hold = workdir / "hold"
    late = spawn_meltano_run(workdir, url, COUNTER_TAP_HOLD=str(hold))
    try:
        for _ in range(600):  # a guard against hanging: the tap starts once state was read
            if (workdir / "hold.ready").exists() or late.poll() is not None:
                break
            time.sleep(0.2)
        newer = json.dumps({"singer_state": counter(20)})
        edit = meltano(workdir, url, "state", "set", "--force", STATE_ID, newer)
        assert edit.returncode == 0, edit.stderr[-3000:]
        hold.touch()
        out, _ = late.communicate(timeout=120)
    finally:
        if late.poll() is None:
            kill_tree(late)
            late.communicate()
    assert late.returncode == 3, out[-3000:]
    assert "the bookmark this process started from was replaced" in out, out[-3000:]
    assert singer_state(store) == counter(20)
    store.dispose()


@pytest.mark.parametrize("project", ["sqlite"], indirect=True)
def test_an_unreachable_state_database_ends_meltano_in_one_line(project: tuple[Path, str]) -> None:
    workdir, _ = project
    with socket.create_server(("127.0.0.1", 0)) as closed:
        port = closed.getsockname()[1]  # nothing listens there once closed
    proc = meltano(workdir, f"postgresql://bob:hunter2@127.0.0.1:{port}/st", "state", "list")
    assert_refused_in_one_line(
        proc, f"state database postgresql+psycopg://bob:***@127.0.0.1:{port}"
    )
    assert "hunter2" not in proc.stdout + proc.stderr
