"""Third-party composition: our taps into peers' targets, a peer's tap into our target, and the
Singer spec checker on our taps' output. Peers come from PyPI, each in its own cached venv
(`safe_singer_testing.peers`). Every case compares rows with the source, and every incremental
second run starts from the last STATE line the target wrote.
"""

from __future__ import annotations

import json
import random
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from psycopg import sql

from safe_singer_testing import peers
from safe_singer_testing.cli import script
from safe_singer_testing.composition import newest_rows, normal, pipe, read_jsonl, write_json
from safe_singer_testing.dynamodb import random_writes, running_stack
from safe_singer_testing.emulators.jira import JiraEmulator
from safe_singer_testing.emulators.jira.harness import issues_only_catalog
from safe_singer_testing.peers import (
    MELTANOLABS_TAP_POSTGRES,
    MELTANOLABS_TARGET_POSTGRES,
    SINGER_TOOLS,
    TARGET_JSONL,
    peer_script,
)
from safe_singer_testing.postgres import PgServer
from safe_singer_testing.soak_sources import dynamodb_rows

TABLE = "peer_orders"


@dataclass
class Source:
    """One of our taps over its emulator: how to run it and what the rows should be."""

    name: str
    stream: str
    jira: JiraEmulator | None = None
    stack: Any = None

    def tap(self, workdir: Path, state: dict[str, Any] | None = None) -> list[str]:
        if self.jira is not None:
            config = self.jira.tap_config(search_lag_seconds=0, lookback_minutes=1, page_size=20)
            args = [
                script("tap-jira-safe"),
                "--catalog",
                write_json(workdir / "catalog.json", issues_only_catalog()),
            ]
        else:
            config = self.stack.tap_config([TABLE])
            args = [script("tap-dynamodb-streams")]
        args += ["--config", write_json(workdir / "tap.json", config)]
        if state is not None:
            args += ["--state", write_json(workdir / "state.json", state)]
        return args

    def change(self) -> None:
        if self.jira is not None:
            self.jira.dataset.churn(edits=5, deletes=0, moves=1, creates=3)
        else:
            random_writes(self.stack.dynamodb(), TABLE, 40, keys=30, rng=random.Random(12))

    def truth(self) -> dict[str, tuple[Any, ...]]:
        if self.jira is not None:
            return {k: (v,) for k, v in self.jira.live_issues().items()}
        return {
            k: tuple(normal(v) for v in row) for k, row in dynamodb_rows(self.stack, TABLE).items()
        }

    def from_records(self, records: list[dict[str, Any]]) -> dict[str, tuple[Any, ...]]:
        if self.jira is not None:
            reduced = newest_rows(records, "id", _updated, ("updated",))
            return {k: (_ms(datetime.fromisoformat(v[0])),) for k, v in reduced.items()}
        return newest_rows(records, "pk", lambda r: int(r["_sdc_sequence_number"]), ("n", "i", "s"))

    def from_table(self, db: PgServer, schema: str) -> dict[str, tuple[Any, ...]]:
        if self.jira is not None:
            query = sql.SQL("SELECT id, updated FROM {}.issues")
        else:
            # A REMOVE event lands as a row with `_sdc_deleted_at` set (a soft delete).
            query = sql.SQL(
                "SELECT pk, n, i, s FROM {}." + TABLE + " WHERE _sdc_deleted_at IS NULL"
            )
        with db.connect() as conn:
            rows = conn.execute(query.format(sql.Identifier(schema))).fetchall()
        if self.jira is not None:
            return {str(i): (_ms(u),) for i, u in rows}
        return {r[0]: tuple(normal(v) for v in r[1:]) for r in rows}


def _updated(record: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(record["updated"])


def _ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)


@pytest.fixture(params=["jira", "dynamodb"])
def source(request: pytest.FixtureRequest) -> Iterator[Source]:
    if request.param == "jira":
        with JiraEmulator(issue_count=45) as jira:
            yield Source("jira", "issues", jira=jira)
        return
    with running_stack() as stack:
        stack.create_table(TABLE)
        random_writes(stack.dynamodb(), TABLE, 80, keys=30, rng=random.Random(11))
        yield Source("dynamodb", TABLE, stack=stack)


def two_runs(source: Source, target: list[str], workdir: Path) -> None:
    """A full run, a change at the source, an incremental run from the target's last STATE."""
    first = pipe(source.tap(workdir), target, workdir)
    assert first.ok, first.stderr
    state = first.last_state
    assert state and state.get("bookmarks"), f"target wrote no state: {first.target_stdout[-500:]}"
    source.change()
    second = pipe(source.tap(workdir, state), target, workdir)
    assert second.ok, second.stderr
    assert second.last_state, "the incremental run's target wrote no state"


def test_our_taps_into_target_jsonl(source: Source, tmp_path: Path) -> None:
    out = tmp_path / "out"
    config = {"destination_path": str(out), "do_timestamp_file": False}
    target = [peer_script(TARGET_JSONL), "--config", write_json(tmp_path / "target.json", config)]
    first = pipe(source.tap(tmp_path), target, tmp_path)
    assert first.ok, first.stderr
    after_first = len(read_jsonl(out / f"{source.stream}.jsonl"))
    assert first.last_state, "target-jsonl wrote no state"
    source.change()
    second = pipe(source.tap(tmp_path, first.last_state), target, tmp_path)
    assert second.ok, second.stderr
    records = read_jsonl(out / f"{source.stream}.jsonl")  # both runs appended to one file
    assert 0 < len(records) - after_first < after_first  # incremental: only what changed
    assert source.from_records(records) == source.truth()


def test_our_taps_into_meltanolabs_target_postgres(
    source: Source, pg_db: PgServer, tmp_path: Path
) -> None:
    config = {
        **pg_db.target_config(),
        "password": pg_db.password or "trust-auth-ignores-this",
        "default_target_schema": "peer",
    }
    target = [
        peer_script(MELTANOLABS_TARGET_POSTGRES),
        "--config",
        write_json(tmp_path / "target.json", config),
    ]
    two_runs(source, target, tmp_path)
    assert source.from_table(pg_db, "peer") == source.truth()


def test_singer_check_tap_accepts_our_taps_output(source: Source, tmp_path: Path) -> None:
    emitted = subprocess.run(source.tap(tmp_path), capture_output=True, text=True, timeout=240)
    assert emitted.returncode == 0, emitted.stderr[-3000:]
    checked = subprocess.run(
        [peer_script(SINGER_TOOLS)],
        input=emitted.stdout,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert checked.returncode == 0, (checked.stdout + checked.stderr)[-3000:]
    assert "The output is valid" in checked.stdout + checked.stderr, checked.stdout[-2000:]
    records = [
        m["record"]
        for m in map(json.loads, emitted.stdout.splitlines())
        if m.get("type") == "RECORD" and m.get("stream") == source.stream
    ]
    assert source.from_records(records) == source.truth()


SOURCE_TABLES = {
    # table: (DDL, replication key); text keys sort as PostgreSQL compares them (`COLLATE "C"`)
    "customers": (
        "id int PRIMARY KEY, name text, balance numeric(20, 4), updated_at timestamptz",
        "updated_at",
    ),
    "codes": ('code text COLLATE "C" PRIMARY KEY, label text', "code"),
}


def seed_source(db: PgServer) -> None:
    with db.connect() as conn:
        conn.execute("CREATE SCHEMA src")
        for table, (columns, _) in SOURCE_TABLES.items():
            conn.execute(
                sql.SQL("CREATE TABLE src.{} ({})").format(sql.Identifier(table), sql.SQL(columns))
            )
        conn.execute(
            "INSERT INTO src.customers SELECT g, 'customer ' || g, g * 1.2345,"
            " now() - (100 - g) * interval '1 minute' FROM generate_series(1, 60) g"
        )
        conn.execute(
            "INSERT INTO src.codes SELECT 'c' || lpad(g::text, 4, '0'), 'label ' || g"
            " FROM generate_series(1, 60) g"
        )


def change_source(db: PgServer) -> None:
    """Rows an incremental run must see: new ones, and updates that move the key forward."""
    with db.connect() as conn:
        conn.execute(
            "INSERT INTO src.customers SELECT g, 'customer ' || g, g, now()"
            " FROM generate_series(61, 70) g"
        )
        conn.execute("UPDATE src.customers SET name = 'renamed', updated_at = now() WHERE id <= 5")
        conn.execute(
            "INSERT INTO src.codes SELECT 'c' || lpad(g::text, 4, '0'), 'new ' || g"
            " FROM generate_series(61, 70) g"
        )


def tap_postgres_catalog(tap: list[str], table: str, key: str) -> dict[str, Any]:
    found = subprocess.run([*tap, "--discover"], capture_output=True, text=True, timeout=120)
    assert found.returncode == 0, found.stderr[-3000:]
    catalog: dict[str, Any] = json.loads(found.stdout)
    for entry in catalog["streams"]:
        for item in entry["metadata"]:
            if item["breadcrumb"] == []:
                item["metadata"]["selected"] = entry["table_name"] == table
                item["metadata"]["replication-method"] = "INCREMENTAL"
                item["metadata"]["replication-key"] = key
        entry["replication_method"], entry["replication_key"] = "INCREMENTAL", key
    return catalog


def rows(db: PgServer, schema: str, table: str, columns: str) -> dict[str, tuple[Any, ...]]:
    query = sql.SQL("SELECT {} FROM {}.{}").format(
        sql.SQL(columns), sql.Identifier(schema), sql.Identifier(table)
    )
    with db.connect() as conn:
        return {str(r[0]): tuple(normal(v) for v in r[1:]) for r in conn.execute(query)}


# "codes" is incremental on a text column: the target loads it in arrival order (issue 9 point 3).
@pytest.mark.parametrize("table", ["customers", "codes"])
def test_meltanolabs_tap_postgres_into_our_target(
    table: str, pg_db: PgServer, tmp_path: Path
) -> None:
    seed_source(pg_db)
    config = {
        **pg_db.target_config(),
        # tap-postgres insists on a password even where the server trusts the user.
        "password": pg_db.password or "trust-auth-ignores-this",
        "filter_schemas": ["src"],
    }
    tap = [
        peer_script(MELTANOLABS_TAP_POSTGRES),
        "--config",
        write_json(tmp_path / "tap.json", config),
    ]
    key = SOURCE_TABLES[table][1]
    tap += [
        "--catalog",
        write_json(tmp_path / "catalog.json", tap_postgres_catalog(tap, table, key)),
    ]
    target_config = {**pg_db.target_config(), "default_target_schema": "landing"}
    target = [
        script("target-postgres-atomic"),
        "--config",
        write_json(tmp_path / "target.json", target_config),
    ]
    first = pipe(tap, target, tmp_path)
    assert first.ok, first.stderr
    assert first.last_state, "our target wrote no state"
    change_source(pg_db)
    second = pipe(
        [*tap, "--state", write_json(tmp_path / "state.json", first.last_state)], target, tmp_path
    )
    assert second.ok, second.stderr
    columns = {"customers": "id, name, balance, updated_at", "codes": "code, label"}[table]
    landed = rows(pg_db, "landing", table, columns)
    assert landed == rows(pg_db, "src", table, columns)


def test_a_failed_peer_install_fails_the_test_with_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(peers, "PEERS_DIR", tmp_path)
    with pytest.raises(pytest.fail.Exception) as failed:
        peer_script(peers.Peer("not a requirement ==", "nothing"))
    assert "could not install not a requirement ==" in str(failed.value)
    assert "uv pip install" in str(failed.value)
