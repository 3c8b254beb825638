"""Issue 20 "Real-Jira cost" and issue 23 item 7, through the console script against the
emulator: delete proofs at bulkfetch's 1,000-id rate, archived issues deleted later are
seen, the window's edge issues read with ``reconcileIssues``, an OAuth app's spent points
window pauses the run, and the replication-lag gauge."""

from __future__ import annotations

import functools
import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest

from safe_singer_testing.emulators.jira import JiraEmulator
from safe_singer_testing.emulators.jira.harness import TapRun, catalog_selecting, run_tap
from safe_singer_testing.faults import Fault, FaultFront

BULKFETCH = "/rest/api/{id}/issue/bulkfetch"  # the emulator counts paths with ids folded


@functools.cache
def issues_catalog() -> dict[str, Any]:
    with JiraEmulator(issue_count=1) as quiet:
        return catalog_selecting(quiet.tap_config(), {"issues"})


@functools.cache
def projects_catalog() -> dict[str, Any]:
    with JiraEmulator(issue_count=1) as quiet:
        return catalog_selecting(quiet.tap_config(), {"projects"})


def sync(jira: JiraEmulator, state: dict[str, Any] | None = None, **settings: Any) -> TapRun:
    config = jira.tap_config(search_lag_seconds=0, lookback_minutes=1, **settings)
    run = run_tap(config, state=state, catalog=issues_catalog(), timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    return run


def deleted_ids(run: TapRun) -> set[str]:
    return {r["id"] for r in run.records("issues") if r.get("_sdc_deleted_at")}


def test_delete_proofs_ask_1000_ids_a_call_and_only_the_fields_a_proof_needs() -> None:
    """250 deleted issues are proven with 1 bulkfetch call (main asked `*all`: 3 calls of
    100), then one GET each for the ids bulkfetch did not return."""
    with JiraEmulator(issue_count=600) as jira:
        first = sync(jira, reconcile_deletes=True)
        gone = sorted(int(i) for i in jira.live_issues())[100:350]
        for issue_id in gone:
            jira.dataset.delete_issue(issue_id)
        before, requests_before = jira.stats.by_path[BULKFETCH], jira.stats.requests
        second = sync(jira, first.final_state, reconcile_deletes=True, max_delete_fraction=0.5)
        calls = jira.stats.by_path[BULKFETCH] - before
        requests = jira.stats.requests - requests_before
    assert deleted_ids(second) == {str(i) for i in gone}
    assert calls == 1, f"{calls} bulkfetch calls ({requests} requests) to prove 250 deletes"
    print(f"proving 250 deletes: {calls} bulkfetch call(s), {requests} requests in the run")


@pytest.mark.parametrize("deployment", ["Cloud", "Server"])
def test_an_archived_issue_deleted_later_is_deleted_downstream(deployment: str) -> None:
    """Issue 23 item 7: it was flagged once and then forgotten."""
    with JiraEmulator(issue_count=30, deployment=deployment) as jira:
        first = sync(jira, reconcile_deletes=True)
        victim = sorted(int(i) for i in jira.live_issues())[5]
        jira.dataset.archive_issue(victim)
        second = sync(jira, first.final_state, reconcile_deletes=True)
        flagged = [r for r in second.records("issues") if r["id"] == str(victim)]
        assert flagged and flagged[-1]["archived_at"], "the archive is flagged once"
        third = sync(jira, second.final_state, reconcile_deletes=True)
        assert str(victim) not in deleted_ids(third), "still archived: not a delete"
        assert not [r for r in third.records("issues") if r["id"] == str(victim)]
        jira.dataset.delete_issue(victim)
        fourth = sync(jira, third.final_state, reconcile_deletes=True)
    assert deleted_ids(fourth) == {str(victim)}
    assert "archived_issue_ids" in fourth.final_state["bookmarks"]["issues"]


def test_an_issue_restored_from_the_archive_loses_its_archive_flag() -> None:
    with JiraEmulator(issue_count=30) as jira:
        first = sync(jira, reconcile_deletes=True)
        victim = sorted(int(i) for i in jira.live_issues())[5]
        jira.dataset.archive_issue(victim)
        second = sync(jira, first.final_state, reconcile_deletes=True)
        jira.dataset.restore_issue(victim)
        third = sync(jira, second.final_state, reconcile_deletes=True)
    versions = [r for r in third.records("issues") if r["id"] == str(victim)]
    assert versions and versions[-1]["archived_at"] is None
    assert str(victim) not in deleted_ids(third)


def test_the_last_runs_edge_issues_are_read_past_the_index_lag() -> None:
    """search/jql's `reconcileIssues`: the newest issue of run 1, edited again, is invisible
    to search for 10 minutes; run 2 names it and reads its newest version."""
    with JiraEmulator(issue_count=20, index_lag_ms=600_000, instant_index_share=0.0) as jira:
        first = sync(jira)
        newest = max(jira.live_issues().items(), key=lambda item: item[1])[0]
        jira.advance(minutes=1)
        edited_ms = jira.dataset.edit_issue(int(newest))
        jira.advance(minutes=2)  # the edit is in run 2's window, not yet in the index
        second = sync(jira, first.final_state)
    versions = [r["updated"] for r in second.records("issues") if r["id"] == newest]
    assert versions, "run 2 did not read the edited edge issue"
    assert datetime.fromisoformat(versions[-1]) == datetime.fromtimestamp(edited_ms / 1000, UTC)
    assert int(newest) in first.final_state["bookmarks"]["issues"]["window_edge_issue_ids"]


def test_an_oauth_apps_spent_points_window_pauses_until_its_reset() -> None:
    """A 429 with `Retry-After: 1` whose points quota resets in 4 s: an OAuth run waits the
    4 s (retrying after 1 s spends the quota again); an API-token run (not under the points
    quota) waits the 1 s."""
    quota = {
        "Beta-RateLimit-Policy": '"global-app-quota";q=65000;w=3600',
        "Beta-RateLimit": '"global-app-quota";r=0;t=4',
    }
    waits = {}
    for auth in ("access_token", "api_token"):
        with JiraEmulator(issue_count=3) as jira, FaultFront(jira.url) as front:
            front.add(r"/project/search$", Fault.retry_after("1", extra=quota), times=1)
            config = {**jira.tap_config(), "domain": front.url}
            if auth == "access_token":
                config = {"domain": front.url, "access_token": jira.settings.access_token}
            run = run_tap(config, catalog=projects_catalog(), timeout=60)
            assert run.returncode == 0, run.stderr[-2000:]
            assert len(run.records("projects")) == len(jira.settings.projects)
            waited = re.findall(r"try 1 failed \(429\), waiting ([0-9.]+) s", run.stderr)
            assert len(waited) == 1, run.stderr[-2000:]
            waits[auth] = float(waited[0])
    assert waits == {"access_token": 4.0, "api_token": 1.0}


def test_an_oauth_window_longer_than_the_cap_fails_in_one_line() -> None:
    quota = {"Beta-RateLimit": '"global-app-quota";r=0;t=3000'}
    with JiraEmulator(issue_count=3) as jira, FaultFront(jira.url) as front:
        front.add(r"/project/search$", Fault.retry_after("1", extra=quota))
        config = {"domain": front.url, "access_token": jira.settings.access_token}
        run = run_tap(config, catalog=projects_catalog(), timeout=60)
    assert run.returncode == 1
    lines = [x for x in run.stderr.splitlines() if x.startswith("tap-jira-safe: error:")]
    assert len(lines) == 1 and "3000 s" in lines[0] and "project/search" in lines[0], lines


def test_an_oauth_answer_saying_the_quota_is_spent_pauses_the_run_or_fails_past_the_cap() -> None:
    """A 200 whose `Beta-RateLimit` says 0 points left for 40 s: main slept 30 s (its own
    cap) and went on into the spent quota; now the run pauses for the window, and a window
    beyond `max_server_wait_seconds` stops it at once in one line."""
    spent = {"Beta-RateLimit": '"global-app-quota";r=0;t=40'}
    with JiraEmulator(issue_count=3) as jira, FaultFront(jira.url) as front:
        front.add(r"/project/search$", Fault.added_headers(spent))
        config = {
            "domain": front.url,
            "access_token": jira.settings.access_token,
            "max_server_wait_seconds": 5,
        }
        run = run_tap(config, catalog=projects_catalog(), timeout=25)
    assert run.returncode == 1
    lines = [x for x in run.stderr.splitlines() if x.startswith("tap-jira-safe: error:")]
    assert len(lines) == 1 and "40 s" in lines[0] and "project/search" in lines[0], lines


METRIC = re.compile(r"METRIC: (\{.*\"replication_lag_seconds\".*\})")


def test_replication_lag_is_logged_as_a_gauge_for_the_issues_stream() -> None:
    with JiraEmulator(issue_count=30) as jira:
        run = sync(jira)
        ended = datetime.now(UTC)
    points = [json.loads(m.group(1)) for m in METRIC.finditer(run.stderr)]
    assert points, run.stderr[-2000:]
    last = points[-1]
    assert last["type"] == "gauge" and last["tags"] == {"stream": "issues"}
    bookmark = datetime.fromisoformat(run.bookmark() or "")
    expected = (ended - bookmark).total_seconds()
    assert 0 < last["value"] <= expected + 1
    assert last["value"] > expected - 30
