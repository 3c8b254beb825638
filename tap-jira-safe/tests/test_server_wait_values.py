"""A wait Jira's headers name that is not a number of seconds (``nan``) is no wait: the run
backs off on its own, within max_retries, and ends in one line, never a traceback."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from safe_singer_testing.emulators.jira import JiraEmulator
from safe_singer_testing.emulators.jira.harness import catalog_selecting, run_tap
from safe_singer_testing.faults import Fault, FaultFront


@pytest.fixture
def site() -> Iterator[tuple[JiraEmulator, FaultFront]]:
    with JiraEmulator(issue_count=1) as jira, FaultFront(jira.url) as front:
        yield jira, front


@pytest.mark.parametrize("header", ["Retry-After", "Beta-RateLimit"])
def test_a_wait_that_is_not_a_number_fails_in_one_line(
    site: tuple[JiraEmulator, FaultFront], header: str
) -> None:
    jira, front = site
    value = "nan" if header == "Retry-After" else '"global";r=0;t=nan'
    fault = Fault(429, ((header, value), ("Content-Type", "application/json")), b"{}")
    front.add(r"/project/search$", fault)
    config = {**jira.tap_config(), "domain": front.url, "max_retries": 2}
    del config["email"], config["api_token"]
    config["access_token"] = jira.settings.access_token  # an OAuth app reads Beta-RateLimit
    began = time.monotonic()
    run = run_tap(config, catalog=catalog_selecting(jira.tap_config(), {"projects"}), timeout=60)
    assert time.monotonic() - began < 50
    assert "Traceback" not in run.stderr, run.stderr[-2000:]
    assert run.returncode == 1, run.stderr[-2000:]
    errors = [line for line in run.stderr.splitlines() if line.startswith("tap-jira-safe: error:")]
    assert len(errors) == 1 and "GET /rest/api/3/project/search" in errors[0], run.stderr[-2000:]
