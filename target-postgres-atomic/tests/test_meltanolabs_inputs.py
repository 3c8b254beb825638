"""MeltanoLabs target-postgres's own test configs and data files load here unchanged.

Both come from the installed meltanolabs-target-postgres package
(`safe_singer_testing.meltanolabs`); only the settings that say where the database is point at
the test's database.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from psycopg.rows import dict_row

from safe_singer_testing import meltanolabs
from safe_singer_testing.postgres import PgServer

# The conftest's `target_cli`: `target-postgres-atomic ARGS < FILE`, forked; its Run.
TargetCli = Callable[[list[str], Path], Any]
REFUSAL = "target-postgres-atomic: error: "  # the target's one error line

# The inputs MeltanoLabs' own tests expect to fail, and the words of our one-line refusal.
REFUSED = {
    "invalid_schema.singer": "has no 'properties' object",
    "record_before_schema.singer": "came before its SCHEMA message",
    "record_missing_key_property.singer": "no value for key property",
    "record_missing_required_property.singer": "no value for key property",
}


def load(target_cli: TargetCli, config: dict[str, Any], data: Path, tmp_path: Path) -> Any:
    """The target's console-script path (forked: no interpreter start-up per file) on `data`."""
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return target_cli(["--config", str(path)], data)


def _landed(stderr: str) -> int:
    """Records the target reported committed (singer-sdk's record_count METRIC lines)."""
    return sum(
        json.loads(line.split("METRIC: ", 1)[1])["value"]
        for line in stderr.splitlines()
        if '"record_count"' in line
    )


def peer_config(function: str, pg_db: PgServer, **changes: Any) -> dict[str, Any]:
    config = meltanolabs.test_config(function)
    assert set(meltanolabs.CONNECTION) <= set(config), config
    return {**config, **pg_db.target_config(), **changes}


def test_every_data_file_loads_or_is_refused_as_meltanolabs_expects(
    pg_db: PgServer, tmp_path: Path, target_cli: TargetCli
) -> None:
    config = peer_config("postgres_config_no_ssl", pg_db)
    outcomes: dict[str, str] = {}
    for data in meltanolabs.data_files():
        with pg_db.connect(autocommit=True) as conn:
            conn.execute("DROP SCHEMA IF EXISTS melty CASCADE")
        done = load(target_cli, config, data, tmp_path)
        errors = [line for line in done.stderr.splitlines() if line.startswith(REFUSAL)]
        if data.name in REFUSED:
            fine = (
                done.returncode == 1
                and len(errors) == 1
                and REFUSED[data.name] in errors[0]
                and "Traceback" not in done.stderr
            )
        else:
            # Loaded means landed: every RECORD line is counted as committed.
            sent = sum(1 for line in data.open("rb") if b'"RECORD"' in line)
            fine = done.returncode == 0 and _landed(done.stderr) == sent
        if not fine:
            outcomes[data.name] = (
                f"exit {done.returncode}, landed {_landed(done.stderr)}: {done.stderr[-600:]}"
            )
    assert outcomes == {}


def test_meltanolabs_jsonb_and_array_files_land_as_their_tests_expect(
    pg_db: PgServer, tmp_path: Path, target_cli: TargetCli
) -> None:
    config = peer_config("postgres_config_no_ssl", pg_db)
    files = {data.name: data for data in meltanolabs.data_files()}
    for name in ("jsonb_data.singer", "array_data.singer"):
        assert load(target_cli, config, files[name], tmp_path).returncode == 0
    with pg_db.connect() as conn:
        jsonb = conn.execute("SELECT id, event_data FROM melty.test_jsonb_data ORDER BY id")
        carts = conn.execute("SELECT fruits FROM melty.test_carts WHERE id = 1")
        assert jsonb.fetchall() == [(1, None), (2, {"test": {"test_name": "test_value"}})]
        assert carts.fetchall() == [(["apple", "orange", "pear"],)]


def peer_expected_rows(test_function: str) -> list[dict[str, Any]]:
    """The `rows = [...]` a MeltanoLabs test function states as its table's content, read from
    the installed `target_postgres/tests/test_target_postgres.py` (never copied here)."""
    source = meltanolabs.package_dir() / "tests" / "test_target_postgres.py"
    tree = ast.parse(source.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == test_function:
            for statement in node.body:
                if isinstance(statement, ast.Assign) and [
                    getattr(target, "id", None) for target in statement.targets
                ] == ["rows"]:
                    rows: list[dict[str, Any]] = ast.literal_eval(statement.value)
                    return rows
    raise AssertionError(f"{source} states no `rows = [...]` in {test_function}")


def table_rows(pg_db: PgServer, table: str) -> list[dict[str, Any]]:
    """Every row of `melty.<table>` without the `_sdc_` columns, as MeltanoLabs' own
    `verify_data` compares them."""
    with pg_db.connect() as conn, conn.cursor(row_factory=dict_row) as cur:
        found = cur.execute(f'SELECT * FROM melty."{table}"').fetchall()
    return [{k: v for k, v in row.items() if not k.startswith("_sdc")} for row in found]


def by_id(rows: list[dict[str, Any]], key: str = "id") -> dict[Any, dict[str, Any]]:
    return {row[key]: row for row in rows}


def test_base16_interpreted_lands_the_bytes_meltanolabs_expects(
    pg_db: PgServer, tmp_path: Path, target_cli: TargetCli
) -> None:
    expected = peer_expected_rows("test_base16_content_encoding_interpreted")
    assert len(expected) == 7  # the peer's verify_data(..., 7, "id", rows)
    config = peer_config("postgres_config_no_ssl", pg_db, interpret_content_encoding=True)
    files = {data.name: data for data in meltanolabs.data_files()}
    done = load(target_cli, config, files["base16_content_encoding_interpreted.singer"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert by_id(table_rows(pg_db, "test_base_16_encoding_interpreted")) == by_id(expected)


def test_activate_version_hard_delete_file_lands_as_meltanolabs_expects(
    pg_db: PgServer, tmp_path: Path, target_cli: TargetCli
) -> None:
    """MeltanoLabs' `test_activate_version_hard_delete` (with `hard_delete: true`) states row
    counts, not rows: 7 after the file (its record of an older version, 'XX', is deleted by
    the closing ACTIVATE_VERSION), 9 after two rows are inserted by hand ('Manual1',
    'Manual2'), and 7 again after the same file loads a second time (the hand-made rows,
    which carry no table version, are deleted). The 7 are the file's records of the
    activated version, as sent."""
    config = peer_config("postgres_config_no_ssl", pg_db, hard_delete=True)
    files = {data.name: data for data in meltanolabs.data_files()}
    data = files["test_activate_version_hard.singer"]
    activated = [
        message["record"]
        for message in map(json.loads, data.read_text().splitlines())
        if message["type"] == "RECORD" and message["record"]["code"] != "XX"
    ]
    assert len(activated) == 7
    assert load(target_cli, config, data, tmp_path).returncode == 0
    assert by_id(table_rows(pg_db, "test_activate_version_hard"), "code") == by_id(
        activated, "code"
    )
    with pg_db.connect() as conn:
        for code in ("Manual1", "Manual2"):
            conn.execute(
                "INSERT INTO melty.test_activate_version_hard (code, name) VALUES (%s, 'Meltano')",
                (code,),
            )
        conn.commit()
    assert len(table_rows(pg_db, "test_activate_version_hard")) == 9
    done = load(target_cli, config, data, tmp_path)
    assert done.returncode == 0, done.stderr
    assert by_id(table_rows(pg_db, "test_activate_version_hard"), "code") == by_id(
        activated, "code"
    )
