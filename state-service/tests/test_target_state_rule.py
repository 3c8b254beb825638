"""Which of the target's committed rows a run resumes from (`newer_committed`), case by case.

The runs themselves are tested end to end in tests/integration/test_stale_target_state.py; here each
clause of the rule meets the one situation it is for.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from state_service.target_state import Committed, Previous, Snapshot, Stored, newer_committed

PIPELINE = "jira"
STREAMS = {"issues"}
MARK = datetime(2026, 12, 1, tzinfo=timezone.utc)


def row(
    n: int, seconds: int, token: int | None, pipeline: str | None = PIPELINE, stream: str = "issues"
) -> Committed:
    """The state `{"n": n}` committed `seconds` after the previous run's mark."""
    at = MARK + timedelta(seconds=seconds)
    return Committed(stream, json.dumps({"n": n}), at, None if token is None else pipeline, token)


def resumed(*rows: Committed, stored_token: int, previous_token: int = 2) -> int | None:
    stored = Stored(json.dumps({"n": 0}), stored_token)
    newer = newer_committed(
        Snapshot(list(rows)), Previous(MARK.isoformat(), previous_token), PIPELINE, STREAMS, stored
    )
    return None if newer is None else int(json.loads(newer.state)["n"])


CASES = {
    # The previous run's own late rows: the newest is taken.
    "previous-runs-rows": ([row(1, 1, 2), row(2, 2, 2)], 2, 2),
    # Committed after the previous run (token 2) took the lease, which stored nothing: the
    # late write of the fenced-off run that stored the bookmark.
    "below-the-previous-runs-token": ([row(1, 1, 1)], 1, None),
    # A newer token's row is there: the older token's later row is a stale write.
    "below-a-higher-token-there": ([row(1, 1, 3), row(2, 2, 2)], 2, 1),
    # The stored bookmark was written by token 4 (a run that read no target state).
    "below-the-bookmark-writers-token": ([row(1, 1, 3)], 4, None),
    # Rows of a target not told its token (a bare pipe, an older target): by the mark.
    "untagged-by-the-mark": ([row(1, 1, None), row(2, 2, None)], 2, 2),
    # Another pipeline's row on a stream of the same name is not this pipeline's.
    "another-pipelines-tag": ([row(1, 1, 5, pipeline="other")], 2, None),
    # An untagged row of another stream is another pipeline's too.
    "untagged-other-stream": ([row(1, 1, None, stream="orders")], 2, None),
    # Before the previous run's mark: it was there when that run started.
    "before-the-mark": ([row(1, -1, 2)], 2, None),
}


@pytest.mark.parametrize(("rows", "stored_token", "expected"), CASES.values(), ids=CASES)
def test_the_row_a_run_resumes_from(
    rows: list[Committed], stored_token: int, expected: int | None
) -> None:
    assert resumed(*rows, stored_token=stored_token) == expected
