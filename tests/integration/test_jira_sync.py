"""tap-jira-safe against the Jira emulator over HTTP: every adversity, alone and combined.

Each test ends by reducing the tap's records by id to the newest `updated` (as the target's
version guard does) and comparing with the emulator's ground truth: 0 missed issues, 0 stale
versions, and bookmarks that never move backwards or past `sync start - lookback`.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from safe_singer_testing.emulators.jira import JiraEmulator
from safe_singer_testing.emulators.jira.harness import (
    TapRun,
    catalog_selecting,
    compare,
    issues_only_catalog,
    newest_by_key,
    run_tap,
)

LOOKBACK_MIN = 1
Factory = Callable[..., JiraEmulator]


@pytest.fixture
def jira() -> Iterator[Factory]:
    started: list[JiraEmulator] = []

    def start(**settings: Any) -> JiraEmulator:
        emulator = JiraEmulator(**{"issue_count": 60, **settings}).start()
        started.append(emulator)
        return emulator

    yield start
    for emulator in started:
        emulator.stop()


@pytest.fixture(scope="module")
def issues_only() -> dict[str, Any]:
    return issues_only_catalog()


def config(emulator: JiraEmulator, **extra: Any) -> dict[str, Any]:
    base = {
        "search_lag_seconds": 0,
        "lookback_minutes": LOOKBACK_MIN,
        "page_size": 10,
        "max_retries": 6,
        "request_timeout": 5,
        "max_delete_fraction": 0.5,  # the churn deletes several % of these small sites per run
    }
    return emulator.tap_config(**{**base, **extra})


def sync(
    emulator: JiraEmulator,
    catalog: dict[str, Any],
    state: dict[str, Any] | None = None,
    **extra: Any,
) -> TapRun:
    """One tap run that must succeed, leak no secret, and bookmark safely."""
    cfg = config(emulator, **extra)
    run = run_tap(cfg, state=state, catalog=catalog)
    finished = datetime.now(UTC)
    assert run.returncode == 0, run.stderr[-3000:]
    for secret in (cfg["api_token"], emulator.settings.access_token):
        assert secret not in run.stderr
    bookmark = run.bookmark()
    if bookmark is not None:
        ceiling = finished.timestamp() - 60 * LOOKBACK_MIN
        assert datetime.fromisoformat(bookmark).timestamp() <= ceiling, "bookmark past safety"
    previous = (state or {}).get("bookmarks", {}).get("issues", {}).get("replication_key_value")
    if previous and bookmark:
        assert bookmark >= previous, "bookmark moved backwards"
    return run


def assert_matches_truth(emulator: JiraEmulator, runs: list[TapRun], deletes: bool = False) -> None:
    records = [r for run in runs for r in run.records("issues")]
    result = compare(
        emulator.live_issues(),
        emulator.deleted_issue_ids(),
        newest_by_key(records),
        check_deletes=deletes,
    )
    assert result.clean, result


ALONE = {
    "rate_limit_every_6": {"rate_limit_every": 6},
    "rate_limit_storm": {"rate_limit_storm": (3, 4)},
    "server_errors_500_502_503": {"error_every": 3},
    "dropped_connections": {"drop_every": 4},
    "slow_beyond_timeout": {"slow_every": 5, "slow_s": 1.5},
    "search_caps_page_below_ask": {"page_cap_fields": 7},
    "is_last_missing": {"omit_is_last_every": 1},
    "page_token_repeats": {"repeat_token_once": True},
    "page_token_expires": {"expire_token_once": True},
}


@pytest.mark.parametrize("settings", ALONE.values(), ids=ALONE.keys())
def test_each_transport_adversity_alone(
    jira: Factory, issues_only: dict[str, Any], settings: dict[str, Any]
) -> None:
    emulator = jira(**settings)
    extra = {"request_timeout": 1} if "slow_s" in settings else {}
    run = sync(emulator, issues_only, **extra)
    assert_matches_truth(emulator, [run])


CHURN = {
    "churn_every_searches": 1,
    "churn_edits": 2,
    "churn_deletes": 1,
    "churn_moves": 1,
    "churn_creates": 1,
}


def settle(emulator: JiraEmulator, search_lag_seconds: float = 0) -> None:
    """Stop the writers and wait until the final run's closed window covers every edit.

    A run only reads `updated < now - search_lag`, so edits younger than the lag are left to
    the next run by design; the final run must start after both the index lag and that lag.
    """
    emulator.settings.churn_every_searches = 0
    time.sleep(max(emulator.settings.index_lag_ms / 1000, search_lag_seconds) + 0.5)


@pytest.mark.parametrize(
    "settings",
    [
        pytest.param(CHURN, id="edits_deletes_moves_creates_while_paging"),
        pytest.param({**CHURN, "index_lag_ms": 1500}, id="search_index_lags_writes"),
        pytest.param({**CHURN, "deployment": "Server"}, id="server_offset_pages_drift"),
    ],
)
def test_data_changing_during_sync(
    jira: Factory, issues_only: dict[str, Any], settings: dict[str, Any]
) -> None:
    emulator = jira(**settings)
    lag = {"search_lag_seconds": 2} if settings.get("index_lag_ms") else {}
    first = sync(emulator, issues_only, reconcile_deletes=True, **lag)
    assert emulator.deleted_issue_ids(), "the churn should have deleted issues mid-sync"
    settle(emulator, **lag)
    second = sync(emulator, issues_only, state=first.final_state, reconcile_deletes=True, **lag)
    assert_matches_truth(emulator, [first, second], deletes=True)


def test_edit_while_paging_cannot_shift_keyset_pages(
    jira: Factory, issues_only: dict[str, Any]
) -> None:
    """After page 1, the window's first issue is edited out of the window: with offset pages
    every later one would shift back by one and the issue first on page 2 be skipped; keyset
    pages (each restarting at the newest `updated` seen) cannot skip it."""
    emulator = jira(page_cap_fields=10, server_chosen_page_size=False)
    order = sorted(emulator.live_issues().items(), key=lambda kv: (kv[1], int(kv[0])))
    skipped = order[10][0]

    def edit_first(search_number: int) -> None:
        if search_number == 1:
            emulator.dataset.edit_issue(int(order[0][0]))

    emulator.on_search = edit_first
    run = sync(emulator, issues_only)
    assert "missed by paging" not in run.stderr
    assert skipped in {r["id"] for r in run.records("issues")}


def test_issue_left_out_of_a_page_is_caught_by_window_verification(
    jira: Factory, issues_only: dict[str, Any]
) -> None:
    emulator = jira(omit_issue_once=True)
    run = sync(emulator, issues_only)
    assert "1 issue(s) missed by paging" in run.stderr
    assert_matches_truth(emulator, [run])


@pytest.mark.slow
def test_all_adversities_combined(jira: Factory, issues_only: dict[str, Any]) -> None:
    emulator = jira(
        issue_count=80,
        rate_limit_every=9,
        error_every=7,
        drop_every=11,
        slow_every=13,
        slow_s=0.2,
        page_cap_fields=7,
        omit_is_last_every=2,
        repeat_token_once=True,
        expire_token_once=True,
        index_lag_ms=1000,
        **CHURN,
    )
    first = sync(emulator, issues_only, search_lag_seconds=2, reconcile_deletes=True)
    settle(emulator, search_lag_seconds=2)
    second = sync(
        emulator, issues_only, state=first.final_state, search_lag_seconds=2, reconcile_deletes=True
    )
    assert_matches_truth(emulator, [first, second], deletes=True)
    assert emulator.stats.rate_limited and emulator.stats.server_errors
    assert emulator.stats.dropped


def test_two_incremental_runs_with_changes_between_and_during(
    jira: Factory, issues_only: dict[str, Any]
) -> None:
    emulator = jira(churn_every_searches=2, churn_edits=1)
    first = sync(emulator, issues_only, reconcile_deletes=True)
    ids = sorted(int(i) for i in emulator.live_issues())
    # between the runs: edits, a delete, a move, a new issue, a new comment
    emulator.dataset.edit_issue(ids[0])
    emulator.dataset.delete_issue(ids[1])
    emulator.dataset.move_issue(ids[2], "GAMMA")
    created = emulator.dataset.create_issue("ALPHA")
    emulator.dataset.add_comment(ids[3], "late comment")
    emulator.settings.churn_edits, emulator.settings.churn_deletes = 1, 1
    second = sync(emulator, issues_only, state=first.final_state, reconcile_deletes=True)
    emitted = {r["id"]: r for r in second.records("issues")}
    assert {str(ids[0]), str(ids[2]), str(ids[3]), str(created)} <= set(emitted)
    assert emitted[str(ids[1])]["_sdc_deleted_at"]
    # incremental: the second run did not re-read the whole site
    assert len(emitted) < len(ids) / 2
    settle(emulator)
    third = sync(emulator, issues_only, state=second.final_state, reconcile_deletes=True)
    assert_matches_truth(emulator, [first, second, third], deletes=True)


def test_retry_after_is_waited_exactly(jira: Factory, issues_only: dict[str, Any]) -> None:
    emulator = jira(rate_limit_every=4, retry_after_s=1)
    run = sync(emulator, issues_only)
    waits = [float(w) for w in re.findall(r"\(429\), waiting ([0-9.]+) s", run.stderr)]
    assert emulator.stats.rate_limited >= 3
    assert len(waits) == emulator.stats.rate_limited
    assert sum(waits) == emulator.stats.retry_after_total_s


def test_bearer_token_auth_and_no_token_in_logs(jira: Factory, issues_only: dict[str, Any]) -> None:
    emulator = jira(error_every=4)
    cfg = config(emulator, access_token=emulator.settings.access_token)
    del cfg["email"], cfg["api_token"]
    run = run_tap(cfg, catalog=issues_only)
    assert run.returncode == 0, run.stderr[-2000:]
    assert emulator.settings.access_token not in run.stderr
    assert_matches_truth(emulator, [run])


def test_failing_endpoint_stops_after_bounded_tries_without_state(
    jira: Factory, issues_only: dict[str, Any]
) -> None:
    emulator = jira()
    emulator.settings.error_every = 1
    cfg = config(emulator, max_retries=3)
    run = run_tap(cfg, catalog=issues_only)
    assert run.returncode != 0
    assert "failed after 3 tries" in run.stderr
    assert "/rest/api/2/serverInfo" in run.stderr
    assert cfg["api_token"] not in run.stderr
    assert not run.bookmark()


def test_worklogs_with_deletions(jira: Factory) -> None:
    emulator = jira(issue_count=30)
    catalog = catalog_selecting(emulator.tap_config(), {"issue_worklogs"})
    first = sync(emulator, catalog)
    seeded = {r["id"] for r in first.records("issue_worklogs")}
    assert seeded == {str(w) for w in emulator.dataset.worklogs}
    gone = sorted(emulator.dataset.worklogs)[0]
    emulator.dataset.delete_worklog(gone)
    second = sync(emulator, catalog, state=first.final_state)
    deleted = [r for r in second.records("issue_worklogs") if r["_sdc_deleted_at"]]
    assert [r["id"] for r in deleted] == [str(gone)]


def test_tls_trusts_requests_ca_bundle(jira: Factory, issues_only: dict[str, Any]) -> None:
    emulator = jira(tls=True, issue_count=20)
    assert emulator.ca_path is not None
    cfg = config(emulator, max_retries=2)
    untrusted = run_tap(cfg, catalog=issues_only, env={**os.environ, "REQUESTS_CA_BUNDLE": ""})
    assert untrusted.returncode != 0
    assert "CERTIFICATE_VERIFY_FAILED" in untrusted.stderr
    trusted = run_tap(
        cfg, catalog=issues_only, env={**os.environ, "REQUESTS_CA_BUNDLE": emulator.ca_path}
    )
    assert trusted.returncode == 0, trusted.stderr[-2000:]
    assert_matches_truth(emulator, [trusted])


def test_overlap_never_moves_the_bookmark_back(jira: Factory, issues_only: dict[str, Any]) -> None:
    """The lookback re-reads issues older than the bookmark: the bookmark must stay put."""
    emulator = jira(issue_count=20)
    newest_ms = max(emulator.live_issues().values())
    bookmark = datetime.fromtimestamp((newest_ms + 30_000) / 1000, UTC).isoformat(
        timespec="microseconds"
    )
    state = {
        "bookmarks": {"issues": {"replication_key": "updated", "replication_key_value": bookmark}}
    }
    run = sync(emulator, issues_only, state=state)
    assert run.records("issues"), "the lookback should re-read the newest issue"
    assert run.bookmark() == bookmark


@pytest.mark.soak
def test_soak_large_site_with_everything_going_wrong(
    jira: Factory, issues_only: dict[str, Any]
) -> None:
    emulator = jira(
        issue_count=3000,
        rate_limit_every=25,
        error_every=19,
        drop_every=31,
        slow_every=41,
        slow_s=0.3,
        page_cap_fields=37,
        omit_is_last_every=3,
        index_lag_ms=1500,
        churn_every_searches=3,
        churn_edits=3,
        churn_deletes=1,
        churn_moves=1,
        churn_creates=1,
    )
    runs, state = [], None
    for _ in range(3):
        run = sync(
            emulator,
            issues_only,
            state=state,
            page_size=100,
            search_lag_seconds=2,
            reconcile_deletes=True,
        )
        runs.append(run)
        state = run.final_state
    settle(emulator, search_lag_seconds=2)
    runs.append(
        sync(
            emulator,
            issues_only,
            state=state,
            page_size=100,
            search_lag_seconds=2,
            reconcile_deletes=True,
        )
    )
    assert_matches_truth(emulator, runs, deletes=True)


def test_failure_mid_window_leaves_the_bookmark_where_it_was(
    jira: Factory, issues_only: dict[str, Any]
) -> None:
    emulator = jira()
    old = datetime.fromtimestamp(min(emulator.live_issues().values()) / 1000, UTC).isoformat(
        timespec="microseconds"
    )
    state = {"bookmarks": {"issues": {"replication_key": "updated", "replication_key_value": old}}}

    def break_after_first_page(search_number: int) -> None:
        if search_number == 2:
            emulator.settings.error_every = 1

    emulator.on_search = break_after_first_page
    run = run_tap(config(emulator, max_retries=2), state=state, catalog=issues_only)
    assert run.returncode != 0
    assert run.records("issues"), "some pages were emitted before the failure"
    assert run.bookmark() in (None, old)


def test_paces_on_quota_headers_instead_of_hitting_429(
    jira: Factory, issues_only: dict[str, Any]
) -> None:
    # 4 requests a second, then 429; the reset to the second (Jira's is to the minute, which
    # the tap waits out to the minute's end: minutes of waiting for this test)
    emulator = jira(rate_limit_budget=4, reset_to_the_second=True)
    run = sync(emulator, issues_only)
    assert_matches_truth(emulator, [run])
    assert emulator.stats.requests > 8
    assert emulator.stats.rate_limited == 0
