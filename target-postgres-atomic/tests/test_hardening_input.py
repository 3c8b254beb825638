"""Bad input and faults end in one line naming what and where (issue 19 item 13)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from safe_singer_testing.cli import script
from safe_singer_testing.postgres import PgServer
from safe_singer_testing.target_messages import record, schema

PROPS = {"id": {"type": "integer"}, "v": {"type": "string"}}
HEAD = schema("items", PROPS)


def run_cli(
    pg_db: PgServer, tmp_path: Path, lines: list[bytes], *, from_file: bool, **settings: object
) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "target.json"
    config.write_text(json.dumps({**pg_db.target_config(), **settings}))
    data = tmp_path / "input.jsonl"
    data.write_bytes(b"\n".join(lines) + b"\n")
    command = [script("target-postgres-atomic"), "--config", str(config)]
    if from_file:
        return subprocess.run(
            [*command, "--input", str(data)], capture_output=True, text=True, timeout=120
        )
    with data.open("rb") as stdin:
        return subprocess.run(command, stdin=stdin, capture_output=True, text=True, timeout=120)


def error_lines(run: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in run.stderr.splitlines() if "input line" in line]


def test_malformed_line_gets_the_same_message_from_a_file_and_stdin(
    pg_db: PgServer, tmp_path: Path
) -> None:
    lines = [json.dumps(HEAD).encode(), b'{"type": "RECORD", "stream": "items", "rec']
    for from_file in (False, True):
        run = run_cli(pg_db, tmp_path, lines, from_file=from_file)
        assert run.returncode == 1, run.stderr
        assert "Traceback" not in run.stderr, run.stderr
        found = error_lines(run)
        assert len(found) == 1 and "input line 2" in found[0], run.stderr


def test_state_with_invalid_utf8_names_its_line(pg_db: PgServer, tmp_path: Path) -> None:
    lines = [
        json.dumps(HEAD).encode(),
        json.dumps(record("items", {"id": 1, "v": "a"})).encode(),
        b'{"type": "STATE", "value": {"bookmark": "\xff\xfe"}}',
    ]
    for from_file in (False, True):
        run = run_cli(pg_db, tmp_path, lines, from_file=from_file)
        assert run.returncode == 1, run.stderr
        assert "Traceback" not in run.stderr, run.stderr
        found = error_lines(run)
        assert len(found) == 1 and "input line 3" in found[0] and "STATE" in found[0], run.stderr
        assert run.stdout == ""


def test_table_owned_by_another_role_names_stream_and_line(pg_db: PgServer, tmp_path: Path) -> None:
    role = f"loader_{pg_db.dbname}"[:63]
    with pg_db.connect() as conn:
        conn.execute(f'DROP ROLE IF EXISTS "{role}"')
        conn.execute(f'CREATE ROLE "{role}" LOGIN')
        conn.execute(f'GRANT ALL ON SCHEMA public TO "{role}"')
        conn.execute(f'GRANT CREATE ON DATABASE "{pg_db.dbname}" TO "{role}"')
        conn.execute("CREATE TABLE items (id bigint PRIMARY KEY)")
        conn.execute(f'GRANT ALL ON items TO "{role}"')
    try:
        lines = [
            json.dumps(HEAD).encode(),
            json.dumps(record("items", {"id": 1, "v": "a"})).encode(),
        ]
        run = run_cli(pg_db, tmp_path, lines, from_file=False, user=role)
    finally:
        with pg_db.connect() as conn:
            conn.execute(f'DROP OWNED BY "{role}" CASCADE')
            conn.execute(f'DROP ROLE "{role}"')
    assert run.returncode == 1, run.stderr
    assert "Traceback" not in run.stderr, run.stderr
    found = error_lines(run)
    assert len(found) == 1, run.stderr
    assert "'items'" in found[0] and "input line 1" in found[0], found
    assert "owner" in found[0], found


def test_statement_timeout_names_stream_and_lines(pg_db: PgServer, tmp_path: Path) -> None:
    with pg_db.connect() as conn:
        conn.execute("CREATE TABLE items (id bigint PRIMARY KEY, v text)")
        # A merge slower than the statement_timeout: each inserted row sleeps.
        conn.execute(
            "CREATE FUNCTION slow_row() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN PERFORM pg_sleep(0.5); RETURN NEW; END $$"
        )
        conn.execute(
            "CREATE TRIGGER slow BEFORE INSERT ON items FOR EACH ROW EXECUTE FUNCTION slow_row()"
        )
    lines = [
        json.dumps(message).encode()
        for message in (HEAD, *(record("items", {"id": i, "v": "a"}) for i in range(4)))
    ]
    run = run_cli(pg_db, tmp_path, lines, from_file=True, statement_timeout=1)
    assert run.returncode == 1, run.stderr
    assert "Traceback" not in run.stderr, run.stderr
    found = [line for line in run.stderr.splitlines() if "input lines" in line]
    assert len(found) == 1, run.stderr
    assert "'items'" in found[0] and "input lines 2-5" in found[0], found
    assert "statement timeout" in found[0], found
