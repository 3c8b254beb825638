"""Settings that change what lands: metadata columns, schemas, URLs, append-only, two writers."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from safe_singer_testing.cli import script
from safe_singer_testing.postgres import PgServer
from safe_singer_testing.target_messages import record, schema

PROPS = {"id": {"type": "integer"}, "updated": {"type": "integer"}, "v": {"type": "string"}}


def test_record_metadata_columns(run_target, rows) -> None:
    message = {
        **record("m", {"id": 1, "updated": 1, "v": "a"}, version=3),
        "time_extracted": "2024-03-01T10:00:00+00:00",
    }
    run = run_target([schema("m", PROPS), message], add_record_metadata=True)
    assert run.returncode == 0, run.stderr
    (row,) = rows(
        "SELECT _sdc_extracted_at::text, _sdc_received_at IS NOT NULL, "
        "_sdc_batched_at IS NOT NULL, _sdc_sequence IS NOT NULL, _sdc_table_version, "
        "_sdc_deleted_at FROM m"
    )
    assert row == ("2024-03-01 10:00:00+00", True, True, True, 3, None)


def test_default_target_schema_and_sqlalchemy_url(run_target, rows, pg_db: PgServer) -> None:
    settings = {
        "sqlalchemy_url": pg_db.url("postgresql+psycopg"),
        "host": "nowhere.invalid",
        "default_target_schema": "raw",
    }
    run = run_target(
        [schema("m", PROPS), record("m", {"id": 1, "updated": 1, "v": "a"})], **settings
    )
    assert run.returncode == 0, run.stderr
    assert rows("SELECT id FROM raw.m") == [(1,)]
    assert rows("SELECT stream FROM raw._sdc_target_state") == []


def test_append_only_keeps_every_version(run_target, rows) -> None:
    messages = [
        schema("m", PROPS),
        record("m", {"id": 1, "updated": 1, "v": "a"}),
        record("m", {"id": 1, "updated": 2, "v": "b"}),
    ]
    assert run_target(messages, load_method="append-only").returncode == 0
    assert rows("SELECT v FROM m ORDER BY updated") == [("a",), ("b",)]


def test_two_targets_loading_one_table_at_once_lose_nothing(
    run_target, rows, pg_db: PgServer, tmp_path: Path
) -> None:
    head = schema("m", PROPS, bookmark="updated")
    assert run_target([head]).returncode == 0
    config = tmp_path / "c.json"
    config.write_text(json.dumps({**pg_db.target_config(), "batch_size_rows": 100}))
    inputs = []
    for writer in range(2):
        lines = [json.dumps(head)]
        # Overlapping keys; writer 1 always has the newer version of a shared key.
        lines += [
            json.dumps(record("m", {"id": i, "updated": writer, "v": f"w{writer}"}))
            for i in range(writer * 1000, writer * 1000 + 3000)
        ]
        inputs.append("\n".join(lines) + "\n")
    procs = [
        subprocess.Popen(
            [script("target-postgres-atomic"), "--config", str(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in inputs
    ]
    results = [p.communicate(data, timeout=120) for p, data in zip(procs, inputs, strict=True)]
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in results]
    assert rows("SELECT count(*), count(DISTINCT id) FROM m") == [(4000, 4000)]
    assert rows("SELECT v, count(*) FROM m GROUP BY v ORDER BY v") == [("w0", 1000), ("w1", 3000)]
