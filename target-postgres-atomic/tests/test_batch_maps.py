"""BATCH messages of a mapped stream go through its maps like its RECORDs (issue 23 item 8)."""

from __future__ import annotations

import json
from pathlib import Path

from safe_singer_testing.target_messages import schema, state

USERS = {"id": {"type": "integer"}, "email": {"type": "string"}, "name": {"type": "string"}}


def test_batch_files_of_a_mapped_stream_are_mapped(run_target, rows, tmp_path: Path) -> None:
    batch_file = tmp_path / "users.jsonl"
    batch_file.write_text(
        "\n".join(
            json.dumps({"id": i, "email": f"u{i}@example.com", "name": f"n{i}"}) for i in range(3)
        )
        + "\n"
        + '{"id": 9, "email": 5, "name": "bad"}\n'
    )
    batch = {
        "type": "BATCH",
        "stream": "users",
        "encoding": {"format": "jsonl", "compression": "none"},
        "manifest": [batch_file.as_uri()],
    }
    maps = {"users": {"__alias__": "people", "email": None, "domain": "email.split('@')[-1]"}}
    run = run_target([schema("users", USERS), batch, state({"b": 1})], stream_maps=maps)
    # The fourth row's email is no string: the map fails on it, naming line and row.
    assert run.returncode == 1
    assert "input line 2, batch file row 4: stream map failed" in run.stderr, run.stderr
    assert run.states == []
    batch_file.write_text(
        "\n".join(
            json.dumps({"id": i, "email": f"u{i}@example.com", "name": f"n{i}"}) for i in range(3)
        )
    )
    run = run_target([schema("users", USERS), batch, state({"b": 1})], stream_maps=maps)
    assert run.returncode == 0, run.stderr
    assert run.states == [{"b": 1}]
    assert rows("SELECT id, name, domain FROM people ORDER BY id") == [
        (i, f"n{i}", "example.com") for i in range(3)
    ]
    assert rows("SELECT count(*) FROM information_schema.columns WHERE column_name = 'email'") == [
        (0,)
    ]
