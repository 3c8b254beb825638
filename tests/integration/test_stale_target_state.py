"""Issue 23: the target's committed state is fenced by the run's lease token.

A run that lost its lease (its wrapper frozen, so it stops heartbeating) while its target keeps
committing must not move the pipeline's bookmark back: the next run reclaims the lease and loads
further; the stale run's target then commits a STATE older than the newer run's. Before the
fence, that row replaced the newer run's in `_sdc_target_state` and the run after resumed from
it (the bookmark went back, and a Jira issue the newer run loaded dropped out of the delete
candidates). Now the target refuses the stale commit, and state-service never resumes from a
row of a fenced-off token even if one got in.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import psutil
import pytest
from psycopg import sql
from sqlalchemy import select
from state_service.report import read_bookmark, run_history
from state_service.schema import bookmark_history
from state_service.store import Store

from safe_singer_testing import kill_after_commit
from safe_singer_testing.cli import script
from safe_singer_testing.postgres import REPO_ROOT, PgServer

SCHEMA = "stale"
PIPELINE = "counter"
COUNTER_TAP = REPO_ROOT / "state-service" / "tests" / "fixtures" / "counter_tap.py"
LEASE = ["--lease-seconds", "2", "--heartbeat-seconds", "0.4"]
DEADLINE = 120.0  # a guard against hanging, never an assertion about speed


class Counter:
    """`state-service run counter` of the counter tap into target-postgres-atomic."""

    def __init__(self, db: PgServer, tmp: Path) -> None:
        self.db, self.tmp = db, tmp
        self.url = f"sqlite:///{tmp / 'state.db'}"
        # One record per batch: each STATE commits at once, as a busy stream's would.
        config = {**db.target_config(), "default_target_schema": SCHEMA, "batch_size_rows": 1}
        self.config = tmp / "target.json"
        self.config.write_text(json.dumps(config))
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("STATE_SERVICE_")}
        self.store = Store(self.url)

    def argv(self) -> list[str]:
        return [
            script("state-service"), "--db", self.url, "run", PIPELINE, *LEASE,
            "--tap", f"{sys.executable} {COUNTER_TAP}",
            "--target", f"{script('target-postgres-atomic')} --config {self.config}",
        ]  # fmt: skip

    def tap_env(self, label: str, count: int, **extra: str) -> dict[str, str]:
        return {
            **self.env,
            "COUNTER_TAP_LABEL": label,
            "COUNTER_TAP_COUNT": str(count),
            **extra,
        }

    def run(self, label: str, count: int) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(), env=self.tap_env(label, count), capture_output=True, text=True,
            timeout=DEADLINE,
        )  # fmt: skip

    def bookmark_n(self) -> int | None:
        state = read_bookmark(self.store, PIPELINE)
        return None if state is None else int(json.loads(state)["bookmarks"]["counter"]["n"])

    def history_n(self) -> list[int]:
        """Every bookmark the pipeline stored, in order."""
        query = select(bookmark_history.c.state).order_by(bookmark_history.c.id)
        with self.store.reading() as conn:
            states = [s for s in conn.execute(query).scalars() if s is not None]
        return [int(json.loads(s)["bookmarks"]["counter"]["n"]) for s in states]

    def committed_n(self) -> int | None:
        """The counter's n in the target's committed state."""
        query = sql.SQL("SELECT state FROM {}").format(sql.Identifier(SCHEMA, "_sdc_target_state"))
        with self.db.connect() as conn:
            rows = conn.execute(query).fetchall()
        return int(rows[0][0]["bookmarks"]["counter"]["n"]) if rows else None

    def labels(self) -> dict[int, str]:
        query = sql.SQL("SELECT id, label FROM {} ORDER BY id").format(
            sql.Identifier(SCHEMA, "counter")
        )
        with self.db.connect() as conn:
            return {int(i): str(label) for i, label in conn.execute(query)}


def wait_until(what: str, check: Any) -> None:
    deadline = time.monotonic() + DEADLINE
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.1)


def target_ended(wrapper: int) -> bool:
    """The target child of ``wrapper`` has exited (a stopped parent leaves it a zombie)."""
    for child in psutil.Process(wrapper).children():
        with contextlib.suppress(psutil.NoSuchProcess):
            if "target-postgres-atomic" in " ".join(child.cmdline()):
                return child.status() == psutil.STATUS_ZOMBIE
    return True


def plant_late_row(conn: Any, table: sql.Composable) -> None:
    """What a fenced-off run (token 1) would leave if its target could still commit: an older
    bookmark (n 2), committed after the newer run's row."""
    late = json.dumps({"bookmarks": {"counter": {"n": 2, "label": "late"}}})
    conn.execute(
        sql.SQL(
            "UPDATE {} SET state = %s::jsonb, committed_at = clock_timestamp(), fencing_token = 1"
        ).format(table),
        (late,),
    )


def test_a_stale_runs_late_commit_never_moves_the_bookmark_back(
    pg_db: PgServer, tmp_path: Path
) -> None:
    pipeline = Counter(pg_db, tmp_path)
    first = pipeline.run("first", 3)
    assert first.returncode == 0, first.stderr[-3000:]
    assert pipeline.bookmark_n() == 3

    # Run A loads record 4, its STATE is stored, then its wrapper freezes (no heartbeat) while
    # its tap and target run on; its tap holds record 5 back until `go` exists.
    go = tmp_path / "go"
    stale = subprocess.Popen(
        pipeline.argv(), env=pipeline.tap_env("stale", 2, COUNTER_TAP_WAIT=str(go)),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        wait_until("run A's first STATE stored", lambda: pipeline.bookmark_n() == 4)
        os.kill(stale.pid, signal.SIGSTOP)
        time.sleep(2.5)  # A's lease runs out; the next start reclaims it

        newer = pipeline.run("newer", 2)  # records 5 and 6, bookmark 6
        assert newer.returncode == 0, newer.stderr[-3000:]
        assert pipeline.bookmark_n() == 6

        go.touch()  # A's target now gets record 5 and the STATE n=5 of a fenced-off run
        # Its input stays open (the frozen wrapper holds the pipe): it either commits them and
        # waits for more, or refuses them and exits.
        wait_until(
            "run A's target to commit or refuse its late STATE",
            lambda: target_ended(stale.pid) or pipeline.committed_n() == 5,
        )
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(stale.pid, signal.SIGKILL)
        stale.wait()

    last = pipeline.run("last", 1)
    assert last.returncode == 0, last.stderr[-3000:]
    history = pipeline.history_n()
    assert history == sorted(history), f"the bookmark moved back: {history}\n{last.stderr}"
    assert "resuming from the target's committed state" not in last.stderr
    # The stale run's late record was refused with its STATE; the last run went on from 6.
    assert pipeline.labels() == {
        1: "first", 2: "first", 3: "first", 4: "stale", 5: "newer", 6: "newer", 7: "last",
    }  # fmt: skip
    assert pipeline.bookmark_n() == 7
    pipeline.store.dispose()


def test_a_row_of_a_fenced_off_token_is_never_resumed_from(pg_db: PgServer, tmp_path: Path) -> None:
    """Defence in depth: a row of an older token committed after the previous run's start (as
    the target refuses to write once the newer run has committed) is not taken, while a row of
    the newest run is."""
    pipeline = Counter(pg_db, tmp_path)
    assert pipeline.run("first", 2).returncode == 0  # token 1
    assert pipeline.run("second", 2).returncode == 0  # token 2, bookmark 4
    table = sql.Identifier(SCHEMA, "_sdc_target_state")
    with pg_db.connect() as conn:
        tokens = conn.execute(sql.SQL("SELECT fencing_token FROM {}").format(table)).fetchall()
        assert tokens == [(2,)], "the target stores the run's token with its state"
        plant_late_row(conn, table)
    third = pipeline.run("third", 1)
    assert third.returncode == 0, third.stderr[-3000:]
    assert "resuming from the target's committed state" not in third.stderr
    assert pipeline.history_n() == [1, 2, 3, 4, 5]
    pipeline.store.dispose()


def test_a_first_run_killed_after_its_commit_is_resumed_from(
    pg_db: PgServer, tmp_path: Path
) -> None:
    """The pipeline's very first run dies after its target committed a STATE that no wrapper
    stored: no bookmark and no counts name its streams, but the row names the pipeline."""
    pipeline = Counter(pg_db, tmp_path)
    killer = Path(kill_after_commit.__file__)
    argv = pipeline.argv()
    target = argv.index("--target") + 1
    argv[target] = f"{sys.executable} {killer} {argv[target]}"
    found = f"SELECT 1 FROM {SCHEMA}.counter WHERE id = 1"
    killed = subprocess.run(
        [*argv, "--target-state-config", str(pipeline.config)],
        env=pipeline.tap_env(
            "first", 3, KILL_AFTER_COMMIT_DSN=pg_db.conninfo(), KILL_AFTER_COMMIT_SQL=found,
            KILL_AFTER_COMMIT_HOLD_FROM='"n": 1',
        ),
        capture_output=True, text=True, timeout=DEADLINE,
    )  # fmt: skip
    assert killed.returncode == -9, killed.stderr[-3000:]
    assert pipeline.bookmark_n() is None  # the STATE naming record 1 was never stored
    time.sleep(2.5)  # the killed run's lease runs out
    second = pipeline.run("second", 1)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "resuming from the target's committed state" in second.stderr, second.stderr[-3000:]
    # The killed run committed record 1 and maybe more in the same transaction (the target
    # takes a whole read at a time); the second run resumes right after what was committed:
    # every committed record stays "first", and the one record after them is "second".
    labels = pipeline.labels()
    committed = len(labels) - 1
    assert committed >= 1
    assert labels == {**{n: "first" for n in range(1, committed + 1)}, committed + 1: "second"}
    pipeline.store.dispose()


MELTANO_YML = """\
default_environment: dev
project_id: {project_id}
send_anonymous_usage_stats: false
environments:
- name: dev
state_backend:
  uri: statesvc://{state_url}
  statesvc:
    lease_seconds: 30
    heartbeat_seconds: 1
    target_config: {target_config}
plugins:
  extractors:
  - name: tap-counter
    namespace: tap_counter
    executable: {tap}
    capabilities: [state]
  loaders:
  - name: target-pg
    namespace: target_pg
    executable: {target}
"""
STATE_ID = "dev:tap-counter-to-target-pg"


class MeltanoCounter(Counter):
    """The same pipeline under `meltano run`, the statesvc backend reading the target's rows."""

    def __init__(self, db: PgServer, tmp: Path) -> None:
        super().__init__(db, tmp)
        self.project = tmp / "project"
        self.project.mkdir()
        target = tmp / "target.sh"
        target.write_text(
            f"#!/bin/sh\nexec {script('target-postgres-atomic')} --config {self.config}\n"
        )
        target.chmod(0o755)
        (self.project / "meltano.yml").write_text(
            MELTANO_YML.format(
                project_id=uuid.uuid4(), state_url=self.url, target_config=self.config,
                tap=COUNTER_TAP, target=target,
            )
        )  # fmt: skip
        self.env = {k: v for k, v in self.env.items() if not k.startswith("MELTANO_")}

    def meltano_argv(self) -> list[str]:
        return [script("meltano"), "run", "tap-counter", "target-pg"]

    def run(self, label: str, count: int, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.meltano_argv(), cwd=self.project, env=self.tap_env(label, count, **extra),
            capture_output=True, text=True, timeout=DEADLINE,
        )  # fmt: skip

    def bookmark_n(self) -> int | None:
        state = read_bookmark(self.store, STATE_ID)
        if state is None:
            return None
        return int(json.loads(state)["completed"]["singer_state"]["bookmarks"]["counter"]["n"])

    def run_tokens(self) -> list[int]:
        return [r["token"] for r in reversed(run_history(self.store, STATE_ID, 100))]


def test_meltano_runs_fence_the_targets_rows_with_their_own_token(
    pg_db: PgServer, tmp_path: Path
) -> None:
    """The backend tells the target (which Meltano starts after the state read) the pipeline
    and the token the run will hold; a row of an older token committed late is not resumed
    from."""
    pipeline = MeltanoCounter(pg_db, tmp_path)
    for label in ("first", "second"):
        done = pipeline.run(label, 2)
        assert done.returncode == 0, done.stderr[-3000:]
    assert pipeline.run_tokens() == [1, 2]
    table = sql.Identifier(SCHEMA, "_sdc_target_state")
    with pg_db.connect() as conn:
        rows = conn.execute(sql.SQL("SELECT pipeline, fencing_token FROM {}").format(table))
        assert rows.fetchall() == [(STATE_ID, 2)]
        plant_late_row(conn, table)
    third = pipeline.run("third", 1)
    assert third.returncode == 0, third.stderr[-3000:]
    assert "resuming from the target's committed state" not in third.stderr
    assert pipeline.bookmark_n() == 5
    pipeline.store.dispose()


def test_a_meltano_run_whose_token_was_taken_before_its_first_write_writes_nothing(
    pg_db: PgServer, tmp_path: Path
) -> None:
    """Between the state read (when the target is told its token) and the first write, another
    run takes the lease and ends without a bookmark: the token the target committed under is
    that run's, so the Meltano run is refused, in one line."""
    pipeline = MeltanoCounter(pg_db, tmp_path)
    assert pipeline.run("first", 2).returncode == 0
    hold = tmp_path / "hold"
    late = subprocess.Popen(
        pipeline.meltano_argv(), cwd=pipeline.project,
        env=pipeline.tap_env("late", 2, COUNTER_TAP_HOLD=str(hold)),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        wait_until("the late run's state read", lambda: Path(f"{hold}.ready").exists())
        between = subprocess.run(
            [script("state-service"), "--db", pipeline.url, "run", STATE_ID, "--", "true"],
            env=pipeline.env, capture_output=True, text=True, timeout=DEADLINE,
        )  # fmt: skip
        assert between.returncode == 0, between.stderr
        hold.touch()
        out, _ = late.communicate(timeout=DEADLINE)
    finally:
        if late.poll() is None:
            late.kill()
            late.communicate()
    assert late.returncode == 3, out[-3000:]
    refusals = [line for line in out.splitlines() if line.startswith("state-service: ")]
    assert len(refusals) == 1 and "another run took the lease" in refusals[0], out[-3000:]
    assert pipeline.bookmark_n() == 2
    pipeline.store.dispose()


def test_a_meltano_run_started_beside_a_live_one_commits_nothing(
    pg_db: PgServer, tmp_path: Path
) -> None:
    """A live run holds the lease when a second `meltano run` reads its state: that run's
    target is told token 0 and refuses to commit over the holder's rows."""
    pipeline = MeltanoCounter(pg_db, tmp_path)
    go = tmp_path / "go"
    holder = subprocess.Popen(
        pipeline.meltano_argv(), cwd=pipeline.project,
        env=pipeline.tap_env("holder", 2, COUNTER_TAP_WAIT=str(go)),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        wait_until("the holder's first bookmark", lambda: pipeline.bookmark_n() == 1)
        # --force: past Meltano's own check, which reads only its local system database
        beside = subprocess.run(
            [script("meltano"), "run", "--force", "tap-counter", "target-pg"],
            cwd=pipeline.project, env=pipeline.tap_env("beside", 2), capture_output=True,
            text=True, timeout=DEADLINE,
        )  # fmt: skip
        go.touch()
        out, _ = holder.communicate(timeout=DEADLINE)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.communicate()
    assert beside.returncode != 0, beside.stderr[-3000:]
    assert "a live run holds the lease" in beside.stderr, beside.stderr[-3000:]
    assert "(token 0) has lost its lease" in beside.stderr, beside.stderr[-3000:]
    assert holder.returncode == 0, out[-3000:]
    assert pipeline.labels() == {1: "holder", 2: "holder"}
    assert pipeline.bookmark_n() == 2
    pipeline.store.dispose()
