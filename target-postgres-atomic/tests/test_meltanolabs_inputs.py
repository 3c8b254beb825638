"""MeltanoLabs target-postgres's own test configs and data files load here unchanged.

Both come from the installed meltanolabs-target-postgres package
(`safe_singer_testing.meltanolabs`); only the settings that say where the database is point at
the test's database.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from safe_singer_testing import meltanolabs
from safe_singer_testing.cli import script
from safe_singer_testing.postgres import PgServer

REFUSAL = "target-postgres-atomic: error: "  # the target's one error line

# The inputs MeltanoLabs' own tests expect to fail, and the words of our one-line refusal.
REFUSED = {
    "invalid_schema.singer": "has no 'properties' object",
    "record_before_schema.singer": "came before its SCHEMA message",
    "record_missing_key_property.singer": "no value for key property",
    "record_missing_required_property.singer": "no value for key property",
}


def load(config: dict[str, Any], data: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    with data.open("rb") as stdin:
        done = subprocess.run(
            [script("target-postgres-atomic"), "--config", str(path)],
            stdin=stdin,
            capture_output=True,
            timeout=300,
        )
    return subprocess.CompletedProcess(
        done.args, done.returncode, done.stdout.decode(), done.stderr.decode()
    )


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
    pg_db: PgServer, tmp_path: Path
) -> None:
    config = peer_config("postgres_config_no_ssl", pg_db)
    outcomes: dict[str, str] = {}
    for data in meltanolabs.data_files():
        with pg_db.connect(autocommit=True) as conn:
            conn.execute("DROP SCHEMA IF EXISTS melty CASCADE")
        done = load(config, data, tmp_path)
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
    pg_db: PgServer, tmp_path: Path
) -> None:
    config = peer_config("postgres_config_no_ssl", pg_db)
    files = {data.name: data for data in meltanolabs.data_files()}
    for name in ("jsonb_data.singer", "array_data.singer"):
        assert load(config, files[name], tmp_path).returncode == 0
    with pg_db.connect() as conn:
        jsonb = conn.execute("SELECT id, event_data FROM melty.test_jsonb_data ORDER BY id")
        carts = conn.execute("SELECT fruits FROM melty.test_carts WHERE id = 1")
        assert jsonb.fetchall() == [(1, None), (2, {"test": {"test_name": "test_value"}})]
        assert carts.fetchall() == [(["apple", "orange", "pear"],)]
