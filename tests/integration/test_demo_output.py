"""`make demo`'s state-service part ends with `state-service runs`, where the lease holder the
demo stops on purpose is listed FAILED: the output says so before a reader wonders."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from safe_singer_testing import demo_state
from safe_singer_testing.postgres import PgServer


def test_demo_explains_the_failed_run_it_lists(
    pg_db: PgServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    demo_state.run(pg_db, tmp_path)
    out = capsys.readouterr().out
    runs = out[out.index(f"$ state-service runs {demo_state.PIPELINE}") :]
    failed = [line for line in runs.splitlines() if "FAILED" in line]
    assert len(failed) == 1, runs
    explained = out[: out.index(f"$ state-service runs {demo_state.PIPELINE}")]
    assert re.search(r"FAILED.*on purpose|on purpose.*FAILED", explained), out
