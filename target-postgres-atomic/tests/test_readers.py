"""What another session sees while the target works: no vacuum, no mix, only committed rows."""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path

import psycopg

from safe_singer_testing.cli import script
from safe_singer_testing.postgres import PgServer
from safe_singer_testing.target_messages import activate, record, schema, state

PROPS = {"id": {"type": "integer"}, "v": {"type": "string"}, "pad": {"type": "string"}}
HEAD = schema("items", PROPS)


def start_target(pg_db: PgServer, tmp_path: Path, **settings: object) -> subprocess.Popen[str]:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({**pg_db.target_config(), **settings}))
    return subprocess.Popen(
        [script("target-postgres-atomic"), "--config", str(config)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def test_full_refresh_never_shows_an_empty_partial_or_mixed_table(
    run_target, pg_db, tmp_path
) -> None:
    old, new = 3000, 2000
    pad = "p" * 100
    seed = [
        HEAD,
        *(record("items", {"id": i, "v": "old", "pad": pad}, version=1) for i in range(old)),
    ]
    assert run_target(seed).returncode == 0

    samples: list[tuple[int, int, str]] = []
    done = threading.Event()

    def sample() -> None:
        with psycopg.connect(pg_db.conninfo(), autocommit=True) as conn:
            while not done.is_set():
                samples.append(
                    conn.execute(  # type: ignore[arg-type]
                        "SELECT count(*), count(DISTINCT v), min(v) FROM items"
                    ).fetchone()
                )

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        refresh = [
            HEAD,
            activate("items", 2),
            *(
                record("items", {"id": i, "v": "new", "pad": pad}, version=2)
                for i in range(1000, 1000 + new)
            ),
            activate("items", 2),
        ]
        run = run_target(refresh, hard_delete=True, batch_size_rows=200)
    finally:
        done.set()
        sampler.join()
    assert run.returncode == 0, run.stderr
    allowed = {(old, 1, "old"), (new, 1, "new")}
    assert set(samples) <= allowed, set(samples) - allowed
    assert (old, 1, "old") in samples and samples[-1] == (new, 1, "new")


def test_each_emitted_state_covers_only_committed_rows(pg_db, tmp_path) -> None:
    target = start_target(pg_db, tmp_path, batch_size_rows=7)
    assert target.stdin is not None and target.stdout is not None
    target.stdin.write(json.dumps(HEAD) + "\n")
    sent = 0
    checked = 0
    with psycopg.connect(pg_db.conninfo(), autocommit=True) as conn:
        for chunk in range(12):
            for _ in range(5):
                target.stdin.write(json.dumps(record("items", {"id": sent, "v": "x"})) + "\n")
                sent += 1
            target.stdin.write(json.dumps(state({"sent": sent})) + "\n")
            target.stdin.flush()
            if chunk % 3 == 2:
                # The target has buffered records after the last STATE; it emits a STATE only
                # once everything before it is committed. Read whatever it emitted so far.
                target.stdin.write(json.dumps(state({"sent": sent, "sync": chunk})) + "\n")
                target.stdin.flush()
                line = target.stdout.readline()
                covered = json.loads(line)["sent"]
                have = {i for (i,) in conn.execute("SELECT id FROM items")}
                assert set(range(covered)) <= have, (covered, len(have))
                checked += 1
        target.stdin.close()
        rest = [json.loads(line) for line in target.stdout]
    assert target.wait(60) == 0
    assert checked == 4 and rest[-1]["sent"] == sent
