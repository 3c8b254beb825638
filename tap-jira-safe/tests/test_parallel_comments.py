"""Comment pages fetched in parallel: a failed page stops the others from starting."""

import threading
import time
from types import SimpleNamespace

import pytest

from tap_jira_safe.streams import IssueCommentsStream

ISSUES = [str(n) for n in range(1, 21)]


def test_a_failed_comment_page_starts_no_more_pages_while_an_earlier_one_runs() -> None:
    """Issue 1's pages are slow, issue 2's fail at once: issues 3.. must not be paged. (The
    failure is seen only when the futures are read in order, so today all 20 are paged.)"""
    started: list[str] = []
    lock = threading.Lock()
    all_started = threading.Event()

    def page(issue_id: str) -> list[dict[str, str]]:
        with lock:
            started.append(issue_id)
            if len(started) == len(ISSUES):
                all_started.set()
        if issue_id == "1":
            all_started.wait(timeout=2)  # still paging when issue 2 fails
        elif issue_id == "2":
            raise RuntimeError("GET /rest/api/3/issue/2/comment answered 404 Not Found")
        else:
            time.sleep(0.02)  # a round trip
        return []

    settings = SimpleNamespace(parallel_requests=2)
    stream = SimpleNamespace(settings=settings, requests_session=None, page_comments=page)
    with pytest.raises(RuntimeError, match="404"):
        IssueCommentsStream.page_all_comments(stream, ISSUES)
    assert len(started) < len(ISSUES) // 2, f"{len(started)} issues paged after a failure"
