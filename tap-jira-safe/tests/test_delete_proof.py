"""A delete is emitted only on Jira's own "not found": a 404 that is not Jira's answer (a proxy
or gateway page without Jira's error object) proves nothing and stops the run, one line."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from safe_singer_testing.emulators.jira import JiraEmulator
from safe_singer_testing.emulators.jira.harness import issues_only_catalog, run_tap
from safe_singer_testing.faults import Fault, FaultFront


@pytest.fixture
def site() -> Iterator[tuple[JiraEmulator, FaultFront]]:
    with JiraEmulator(issue_count=30) as jira, FaultFront(jira.url) as front:
        yield jira, front


def proxy_not_found() -> Fault:
    page = b"<html><body><h1>404 Not Found</h1>nginx</body></html>"
    return Fault(404, (("Content-Type", "text/html"),), page)


def test_a_404_that_is_not_jiras_answer_proves_no_delete(
    site: tuple[JiraEmulator, FaultFront],
) -> None:
    jira, front = site
    config = {
        **jira.tap_config(),
        "domain": front.url,
        "reconcile_deletes": True,
        "search_lag_seconds": 0,
        "max_retries": 2,
    }
    first = run_tap(config, catalog=issues_only_catalog())
    assert first.returncode == 0, first.stderr[-2000:]
    archived = min(int(i) for i in jira.live_issues())
    jira.dataset.archive_issue(archived)  # out of search, still readable by id
    jira.advance(1)
    front.add(rf"/issue/{archived}$", proxy_not_found())

    second = run_tap(config, state=first.final_state, catalog=issues_only_catalog())

    deletes = [r for r in second.records("issues") if r.get("_sdc_deleted_at")]
    assert deletes == [], "an archived issue was deleted on a proxy's 404"
    assert second.returncode == 1, second.stderr[-2000:]
    assert "Traceback" not in second.stderr
    lines = second.stderr.splitlines()
    errors = [line for line in lines if line.startswith("tap-jira-safe: error:")]
    assert len(errors) == 1 and f"/issue/{archived}" in errors[0], second.stderr[-2000:]


def ids_page(token: str) -> Fault:
    body = {"issues": [], "nextPageToken": token, "isLast": False}
    return Fault.wrong_shape(body)


def test_page_tokens_that_come_round_again_end_the_id_listing(
    site: tuple[JiraEmulator, FaultFront],
) -> None:
    """Tokens A, B, A, B, ...: each differs from the one before, and the listing went round
    for ever. A token handed out before restarts the listing, then stops the run in one line."""
    jira, front = site
    listing = rb'"maxResults": 5000'
    front.add(r"/search/jql$", ids_page("B"), body_has=b'"nextPageToken": "A"')
    front.add(r"/search/jql$", ids_page("A"), body_has=b'"nextPageToken": "B"')
    front.add(r"/search/jql$", ids_page("A"), body_has=listing)
    config = {**jira.tap_config(), "domain": front.url, "search_lag_seconds": 0}
    try:
        run = run_tap(config, catalog=issues_only_catalog(), timeout=90)
    except subprocess.TimeoutExpired:
        pytest.fail("the id listing followed page tokens round and round")
    assert run.returncode == 1, run.stderr[-2000:]
    assert "Traceback" not in run.stderr
    lines = run.stderr.splitlines()
    errors = [line for line in lines if line.startswith("tap-jira-safe: error:")]
    assert len(errors) == 1 and "page token repeated" in errors[0], run.stderr[-2000:]
