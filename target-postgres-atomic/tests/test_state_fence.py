"""`_sdc_target_state` under a runner's lease: each row carries the run's pipeline and fencing
token (STATE_SERVICE_PIPELINE, STATE_SERVICE_TOKEN), a run of an older token than one already
committed for its pipeline commits nothing, an existing table is migrated in place, and
`--committed-state` prints the state to resume from."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from safe_singer_testing.cli import error_line, run, script
from safe_singer_testing.postgres import PgServer

SCHEMA = "fenced"
Rows = Callable[..., list[tuple[Any, ...]]]


def messages(*ids: int, state: dict[str, Any], stream: str = "items") -> str:
    lines: list[dict[str, Any]] = [
        {
            "type": "SCHEMA",
            "stream": stream,
            "schema": {"properties": {"id": {"type": "integer"}}},
            "key_properties": ["id"],
        },
        *({"type": "RECORD", "stream": stream, "record": {"id": i}} for i in ids),
        {"type": "STATE", "value": state},
    ]
    return "".join(json.dumps(line) + "\n" for line in lines)


@pytest.fixture
def config(pg_db: PgServer, tmp_path: Path) -> str:
    path = tmp_path / "target.json"
    path.write_text(json.dumps({**pg_db.target_config(), "default_target_schema": SCHEMA}))
    return str(path)


def lease(pipeline: str, token: int) -> dict[str, str]:
    return {"STATE_SERVICE_PIPELINE": pipeline, "STATE_SERVICE_TOKEN": str(token)}


def load(config: str, stdin: str, **env: str) -> subprocess.CompletedProcess[str]:
    return run("target-postgres-atomic", "--config", config, stdin=stdin, env=env)


def committed(config: str, **env: str) -> Any:
    out = run("target-postgres-atomic", "--config", config, "--committed-state", env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert len(out.stdout.splitlines()) == 1, out.stdout
    return json.loads(out.stdout)


def test_a_run_of_an_older_token_commits_nothing(config: str, rows: Rows) -> None:
    newer = load(config, messages(1, state={"n": 1}), **lease("jira", 3))
    assert newer.returncode == 0, newer.stderr[-3000:]
    stale = load(config, messages(2, state={"n": 2}), **lease("jira", 2))
    assert stale.returncode == 1
    assert error_line(stale).startswith(
        "target-postgres-atomic: error: pipeline 'jira': a newer run (fencing token 3) has "
        "committed its state in fenced._sdc_target_state, so this run (token 2) has lost its lease"
    )
    assert stale.stdout == ""  # no STATE: nothing of it was committed
    assert rows("SELECT id FROM fenced.items") == [(1,)]
    state = "SELECT state, pipeline, fencing_token FROM fenced._sdc_target_state"
    assert rows(state) == [({"n": 1}, "jira", 3)]

    # The same token, another pipeline and a bare pipe are not fenced by it.
    for env in (lease("jira", 3), lease("other", 1), {}):
        assert load(config, messages(4, state={"n": 4}), **env).returncode == 0
    assert rows(state) == [({"n": 4}, None, None)]


def test_a_run_fenced_off_while_its_tap_waits_exits_at_once(
    config: str, rows: Rows, tmp_path: Path
) -> None:
    """The stale target's input stays open (its frozen wrapper holds the pipe): the commit it
    is refused ends it without waiting for more input."""
    one_per_batch = tmp_path / "one.json"  # each record commits at once, its STATE after it
    one_per_batch.write_text(
        json.dumps({**json.loads(Path(config).read_text()), "batch_size_rows": 1})
    )
    stale = subprocess.Popen(
        [script("target-postgres-atomic"), "--config", str(one_per_batch)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, **lease("jira", 2)},
    )  # fmt: skip
    assert stale.stdin is not None and stale.stdout is not None
    try:
        stale.stdin.write(messages(1, state={"n": 1}))
        stale.stdin.flush()
        assert json.loads(stale.stdout.readline()) == {"n": 1}  # committed under token 2
        assert load(config, messages(1, 2, state={"n": 2}), **lease("jira", 3)).returncode == 0
        stale.stdin.write(messages(3, state={"n": 3}))
        stale.stdin.flush()
        code = stale.wait(timeout=60)  # a guard against hanging, not a timing assertion
    finally:
        stale.kill()
        _, err = stale.communicate()
    assert code == 1, err[-3000:]
    assert "has lost its lease" in err
    assert rows("SELECT id FROM fenced.items ORDER BY id") == [(1,), (2,)]


def test_an_existing_state_table_is_migrated_in_place(
    config: str, rows: Rows, pg_db: PgServer
) -> None:
    """A table written before the columns existed: read as it is, then given the columns by the
    next run (its rows NULL in them), every run after finding them there."""
    with pg_db.connect() as conn:
        conn.execute(f"CREATE SCHEMA {SCHEMA}")
        conn.execute(
            f"CREATE TABLE {SCHEMA}._sdc_target_state (stream text PRIMARY KEY, "
            "state jsonb NOT NULL, committed_at timestamp with time zone NOT NULL)"
        )
        conn.execute(
            f"""INSERT INTO {SCHEMA}._sdc_target_state VALUES ('old', '{{"n": 0}}', now())"""
        )
    assert committed(config) == {"n": 0}
    for token in (5, 6):
        done = load(config, messages(token, state={"n": token}), **lease("jira", token))
        assert done.returncode == 0, done.stderr[-3000:]
    assert rows(
        "SELECT stream, state, pipeline, fencing_token FROM fenced._sdc_target_state "
        "ORDER BY stream"
    ) == [("items", {"n": 6}, "jira", 6), ("old", {"n": 0}, None, None)]
    assert committed(config) == {"n": 0}  # the bare pipe's rows
    assert committed(config, STATE_SERVICE_PIPELINE="jira") == {"n": 6}


def test_committed_state_prints_what_a_resume_starts_from(config: str, pg_db: PgServer) -> None:
    assert committed(config) == {}  # no table yet
    for n, stream in ((1, "a"), (2, "b")):
        assert load(config, messages(n, state={"n": n}, stream=stream)).returncode == 0
    assert committed(config) == {"n": 2}  # the newest commit, whichever stream it named
    for n, token in ((3, 7), (4, 8)):
        done = load(config, messages(n, state={"n": n}, stream=f"s{n}"), **lease("jira", token))
        assert done.returncode == 0, done.stderr[-3000:]
    with pg_db.connect() as conn:  # a fenced-off run's row, committed last, is passed over
        conn.execute(
            f"UPDATE {SCHEMA}._sdc_target_state SET committed_at = clock_timestamp(), "
            """state = '{"n": 9}' WHERE fencing_token = 7"""
        )
    assert committed(config, STATE_SERVICE_PIPELINE="jira") == {"n": 4}
    assert committed(config) == {"n": 2}


def test_committed_state_finds_a_schema_named_in_capitals(pg_db: PgServer, tmp_path: Path) -> None:
    path = tmp_path / "capitals.json"
    path.write_text(json.dumps({**pg_db.target_config(), "default_target_schema": "Jira"}))
    assert load(str(path), messages(1, state={"n": 1})).returncode == 0
    assert committed(str(path)) == {"n": 1}
