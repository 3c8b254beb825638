"""Issue 19 items 4, 7, 16: malformed answers, absurd waits, bad settings and unreachable
sites end the run with one line naming the endpoint (or setting), exit code 1, no traceback,
within a bounded time. Faults come from the fault-injection front before the emulator."""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from typing import Any

import pytest

from safe_singer_testing.emulators.jira import JiraEmulator
from safe_singer_testing.emulators.jira.harness import TapRun, catalog_selecting, run_tap
from safe_singer_testing.faults import Fault, FaultFront


@pytest.fixture
def site() -> Iterator[tuple[JiraEmulator, FaultFront]]:
    with JiraEmulator(issue_count=5) as jira, FaultFront(jira.url) as front:
        yield jira, front


@functools.cache
def projects_catalog() -> dict[str, Any]:
    with JiraEmulator(issue_count=1) as quiet:
        return catalog_selecting(quiet.tap_config(), {"projects"})


def run_projects(jira: JiraEmulator, front: FaultFront, **settings: Any) -> TapRun:
    config = {**jira.tap_config(), "domain": front.url, "max_retries": 2, **settings}
    return run_tap(config, catalog=projects_catalog(), timeout=60)


def error_lines(run: TapRun) -> list[str]:
    assert "Traceback" not in run.stderr, run.stderr[-2000:]
    return [line for line in run.stderr.splitlines() if line.startswith("tap-jira-safe: error:")]


def assert_one_line(run: TapRun, *words: str) -> str:
    assert run.returncode == 1, run.stderr[-2000:]
    lines = error_lines(run)
    assert len(lines) == 1, run.stderr[-2000:]
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("body", [{}, {"values": {}}, [], {"isLast": True}])
def test_a_malformed_project_listing_fails_naming_the_endpoint(
    site: tuple[JiraEmulator, FaultFront], body: Any
) -> None:
    """Item 4: `{}` from /project/search was "no projects", exit 0."""
    jira, front = site
    front.add(r"/project/search$", Fault.wrong_shape(body))
    run = run_projects(jira, front)
    assert_one_line(run, "GET /rest/api/3/project/search", "values")
    assert not [m for m in run.messages if m["type"] == "RECORD"]


@pytest.mark.parametrize("fault", [Fault.html_page(), Fault.truncated_json()], ids=["html", "cut"])
def test_a_200_that_is_not_json_names_the_endpoint(
    site: tuple[JiraEmulator, FaultFront], fault: Fault
) -> None:
    """Item 16: an HTML page or truncated JSON with 200 gave a bare JSONDecodeError."""
    jira, front = site
    front.add(r"/project/search$", fault)
    assert_one_line(
        run_projects(jira, front), "GET /rest/api/3/project/search", "not complete JSON"
    )


@pytest.mark.parametrize("status", [429, 503])
def test_an_absurd_retry_after_fails_at_once_naming_the_wait(
    site: tuple[JiraEmulator, FaultFront], status: int
) -> None:
    """Item 7: `Retry-After: 1000000000` was obeyed literally."""
    jira, front = site
    front.add(r"/project/search$", Fault.retry_after("1000000000", status))
    began = time.monotonic()
    run = run_projects(jira, front)
    assert_one_line(
        run, "GET /rest/api/3/project/search", "1000000000 s", "max_server_wait_seconds"
    )
    assert time.monotonic() - began < 30


def test_a_wait_under_the_cap_is_waited_and_the_run_completes(
    site: tuple[JiraEmulator, FaultFront],
) -> None:
    jira, front = site
    front.add(r"/project/search$", Fault.retry_after("1"), times=1)
    began = time.monotonic()
    run = run_projects(jira, front, max_server_wait_seconds=5)
    assert run.returncode == 0, run.stderr[-2000:]
    assert len(run.records("projects")) == len(jira.settings.projects)
    assert time.monotonic() - began >= 1


def test_a_socket_that_never_answers_is_bounded_by_the_request_timeout(
    site: tuple[JiraEmulator, FaultFront],
) -> None:
    jira, front = site
    front.add(r"/project/search$", Fault.never_answer())
    began = time.monotonic()
    run = run_projects(jira, front, request_timeout=1, max_retries=2)
    assert_one_line(run, "GET /rest/api/3/project/search", "2 tries")
    assert time.monotonic() - began < 45


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("request_timeout", 0),
        ("request_timeout", -5),
        ("start_date", "yesterday"),
        ("domain", "ftp://jira.example.com"),
        ("max_server_wait_seconds", -1),
    ],
)
def test_a_setting_that_cannot_work_is_refused_in_one_line(setting: str, value: Any) -> None:
    """Item 16: these gave tracebacks."""
    config = {"domain": "http://127.0.0.1:9", "api_token": "t", "email": "e", setting: value}
    run = run_tap(config, catalog=projects_catalog(), timeout=60)
    assert_one_line(run, setting)


def test_a_name_that_does_not_resolve_fails_fast() -> None:
    """Item 16: it was retried 8 times (about 50 s)."""
    config = {"domain": "jira.does-not-exist.invalid", "api_token": "t", "email": "e"}
    began = time.monotonic()
    run = run_tap(config, catalog=projects_catalog(), timeout=120)
    assert_one_line(run, "does not resolve", "jira.does-not-exist.invalid")
    assert time.monotonic() - began < 15


@functools.cache
def issues_catalog() -> dict[str, Any]:
    with JiraEmulator(issue_count=1) as quiet:
        return catalog_selecting(quiet.tap_config(), {"issues"})


def test_a_refused_page_token_restarts_the_query_whatever_its_wording() -> None:
    """Issue 21 section 3: expiry was decided by the word "expired" in the message; a 400 to
    a request that carried a token is a spent token, whatever Jira's words."""
    stale = Fault(400, (("Content-Type", "application/json"),), b'{"errorMessages":["Stale."]}')
    with JiraEmulator(issue_count=30, page_cap_ids=5) as jira, FaultFront(jira.url) as front:
        front.add(r"/search/jql$", stale, times=1, body_has=b'"nextPageToken"')
        config = {**jira.tap_config(search_lag_seconds=0), "domain": front.url}
        run = run_tap(config, catalog=issues_catalog(), timeout=120)
        assert run.returncode == 0, run.stderr[-2000:]
        assert {r["id"] for r in run.records("issues")} == set(jira.live_issues())
        assert "restarting" in run.stderr


def test_a_400_to_a_first_page_is_not_taken_for_a_spent_token() -> None:
    stale = Fault(400, (("Content-Type", "application/json"),), b'{"errorMessages":["expired"]}')
    with JiraEmulator(issue_count=30) as jira, FaultFront(jira.url) as front:
        front.add(r"/search/jql$", stale)
        config = {**jira.tap_config(page_size=5), "domain": front.url}
        run = run_tap(config, catalog=issues_catalog(), timeout=120)
    assert_one_line(run, "POST /rest/api/3/search/jql answered 400")
    assert "restarting" not in run.stderr  # the word "expired" decides nothing
