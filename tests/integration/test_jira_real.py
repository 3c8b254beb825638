"""tap-jira-safe against the emulator in real-Jira mode: two+ projects, moves in and out,
deletes (one at a listing page boundary) and archives during runs, minutes of index lag on a
virtual clock, id-only pages of server-chosen size; the safety rail; every stream on DC.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

import requests

from safe_singer_testing.emulators.jira import JiraEmulator
from safe_singer_testing.emulators.jira.harness import (
    TapRun,
    audit,
    catalog_selecting,
    issues_only_catalog,
    run_tap,
)
from safe_singer_testing.faults import Fault, FaultFront

SCOPE = ["ALPHA", "BETA"]


def real_config(jira: JiraEmulator, **extra: Any) -> dict[str, Any]:
    """Defaults for lookback and search lag: the ones a user gets."""
    base = {
        "projects": SCOPE,
        "reconcile_deletes": True,
        "page_size": 10,
        "max_retries": 4,
        "request_timeout": 10,
    }
    return jira.tap_config(**{**base, **extra})


def first_listing_page(jira: JiraEmulator) -> list[str]:
    """The ids on the first page of the tap's live-issue listing, as Jira would page it."""
    body = {"jql": 'project in ("ALPHA", "BETA") ORDER BY created ASC', "maxResults": 5000}
    auth = (jira.settings.email, jira.settings.api_token)
    answer = requests.post(f"{jira.url}/rest/api/3/search/jql", json=body, auth=auth, timeout=10)
    return [i["id"] for i in answer.json()["issues"]]


def ok(run: TapRun) -> TapRun:
    assert run.returncode == 0, run.stderr[-3000:]
    return run


def test_incremental_runs_miss_nothing_and_delete_only_what_is_gone() -> None:
    with JiraEmulator(
        issue_count=90,
        index_lag_ms=3 * 60_000,  # minutes: the virtual clock moves 4 minutes between runs
        page_cap_ids=7,
        page_cap_fields=10,
        bulkfetch_errors_once=True,  # `issueErrors`: those ids stay known, proven next run
    ) as jira:
        data, rng = jira.dataset, jira.dataset.rng
        catalog = issues_only_catalog()
        config = real_config(jira, issues_leaving_scope="delete", max_delete_fraction=0.3)

        run_start = [0]

        def churn(search_number: int) -> None:
            """Other users, during the runs: every write kind, in and out of scope."""
            if search_number - run_start[0] == 2:
                # searchable at once, while the tap is on page 2 of its listing: the listing's
                # pages shift and one live issue falls between them (offset tokens)
                lag, data.index_lag_ms = data.index_lag_ms, 0
                first = min(
                    i.id
                    for i in data.issues.values()
                    if i.project in SCOPE and i.archived_ms is None
                )
                data.archive_issue(first) if search_number % 4 else data.delete_issue(first)
                data.index_lag_ms = lag
            if search_number % 2:
                return
            live = sorted(i.id for i in data.issues.values() if i.archived_ms is None)
            kind = (search_number // 2) % 6
            victim = rng.choice(live)
            if kind == 0:
                data.edit_issue(victim)
            elif kind == 1:
                data.delete_issue(victim)
            elif kind == 2:
                data.archive_issue(victim)
            elif kind == 3:
                project = data.issues[victim].project
                data.move_issue(victim, "GAMMA" if project != "GAMMA" else "BETA")
            elif kind == 4:
                data.create_issue(rng.choice(jira.settings.projects))
            else:
                data.add_comment(victim, "late")

        jira.on_search = churn
        runs, state = [], None
        for _ in range(4):
            run_start[0] = jira.stats.searches
            run = ok(run_tap(config, state=state, catalog=catalog))
            runs.append(run)
            state = run.final_state
            # between runs: the issue closing the listing's first page and the newest known
            # issue are deleted (a keyset on ids would then answer 400 forever)
            boundary = first_listing_page(jira)[-1]
            data.delete_issue(int(boundary))
            data.delete_issue(max(i for i in data.issues if data.issues[i].archived_ms is None))
            # edits 2.6 minutes before the next run, some not yet searchable then (3-minute
            # lag), and newer searchable ones at 1.2 minutes that move the bookmark past them
            jira.advance(minutes=2)
            for stamp in ("older", "newer"):
                live = sorted(i.id for i in data.issues.values() if i.archived_ms is None)
                for issue_id in rng.sample(live, 4):
                    data.edit_issue(issue_id)
                jira.advance(minutes=1.4 if stamp == "older" else 1.2)
        jira.on_search = None
        jira.advance(minutes=15)  # past the index lag and the lookback: the final run sees all
        runs.append(ok(run_tap(config, state=state, catalog=catalog)))

    records = [r for run in runs for r in run.records("issues")]
    result = audit(data, records, set(SCOPE), moved_out_deleted=True)
    assert result.counts == {
        "missed": 0,
        "false_deletes": 0,
        "missed_deletes": 0,
        "unflagged_archives": 0,
    }, result
    assert data.deleted and data.archived_issue_ids(), "the churn should delete and archive"
    assert any(r.get("archived_at") for r in records)
    logs = "".join(run.stderr for run in runs)
    assert "left scope (delete)" in logs
    assert re.search(r"[1-9]\d* kept unproven", logs), "the listing should have drifted"


def test_safety_rail_stops_without_deletes_or_state_movement() -> None:
    with JiraEmulator(issue_count=60, page_cap_ids=9) as jira:
        catalog = issues_only_catalog()
        config = real_config(jira, max_retries=2)
        seeded = ok(run_tap(config, catalog=catalog)).final_state

        for fault in ("empty", "malformed", "error"):
            jira.settings.listing_fault = fault
            refused = run_tap(config, state=seeded, catalog=catalog)
            assert refused.returncode != 0, fault
            assert "Traceback" not in refused.stderr, "one clear line, no traceback"
            assert not refused.records("issues"), f"{fault}: nothing may be emitted"
            assert _issues_state(refused) in (None, seeded["bookmarks"]["issues"]), fault
        jira.settings.listing_fault = None

        # a listing lacking 15% of the 40 known issues: more than the default 5%
        in_scope = sorted(i.id for i in jira.dataset.issues.values() if i.project in SCOPE)
        for issue_id in in_scope[:6]:
            jira.dataset.delete_issue(issue_id)
        mass = run_tap(config, state=seeded, catalog=catalog)
        assert mass.returncode != 0 and "max_delete_fraction" in mass.stderr
        assert not mass.records("issues")
        assert _issues_state(mass) in (None, seeded["bookmarks"]["issues"])
        # a user who knows they are real raises the limit once: the deletes land
        allowed = ok(run_tap({**config, "max_delete_fraction": 0.2}, state=seeded, catalog=catalog))
        deleted = {r["id"] for r in allowed.records("issues") if r["_sdc_deleted_at"]}
        assert deleted == jira.deleted_issue_ids()


def _issues_state(run: TapRun) -> Any:
    return run.final_state.get("bookmarks", {}).get("issues")


def test_every_stream_on_data_center_with_a_personal_access_token() -> None:
    with JiraEmulator(issue_count=40, deployment="Server", embedded_limit=3) as jira:
        config = {
            **jira.tap_config(reconcile_deletes=True, max_delete_fraction=0.5, page_size=10),
            "access_token": jira.settings.access_token,
        }
        del config["email"], config["api_token"]
        first = ok(run_tap(config))
        jira.dataset.delete_issue(sorted(jira.dataset.issues)[0])
        jira.advance(minutes=1)
        second = ok(run_tap(config, state=first.final_state))
        paths = set(jira.stats.by_path)
    assert not [p for p in paths if p.startswith("/rest/api/3")], paths
    counts = Counter(
        m["record"].get("issue_id", "") and m["stream"]
        for m in first.messages
        if m["type"] == "RECORD"
    )
    streams = {m["stream"] for m in first.messages if m["type"] == "RECORD"}
    assert streams == {
        "projects",
        "versions",
        "components",
        "statuses",
        "priorities",
        "resolutions",
        "issue_types",
        "sprint_issues",
        "users",
        "fields",
        "boards",
        "sprints",
        "issues",
        "issue_comments",
        "issue_changelogs",
        "issue_worklogs",
        # issue 20's streams that Data Center serves (the Cloud-only ones are skipped)
        "server_info",
        "project_categories",
        "issue_link_types",
        "groups",
        "permissions",
        "permission_schemes",
        "permission_holders",
        "project_roles",
        "project_role_actors",
        "dashboards",
        "filter_default_share_scopes",
        "workflows",
        "screens",
        "audit_records",
        "board_issues",
        "issue_watchers",
        "issue_votes",
        "issue_remote_links",
    }, counts
    truth = {str(c.id) for i in jira.dataset.issues.values() for c in i.comments}
    assert truth <= {r["id"] for r in first.records("issue_comments")}
    histories = {str(h.id) for i in jira.dataset.issues.values() for h in i.histories}
    assert histories <= {r["id"] for r in first.records("issue_changelogs")}
    members = first.records("sprint_issues")
    assert members and {r["issue_id"] for r in members} <= {
        r["id"] for r in first.records("issues")
    }
    schemas = Counter(m["stream"] for m in first.messages if m["type"] == "SCHEMA")
    assert set(schemas.values()) == {1}, f"one SCHEMA per stream: {json.dumps(schemas)}"
    deletes = [r["id"] for r in second.records("issues") if r["_sdc_deleted_at"]]
    assert deletes == [str(sorted(jira.dataset.deleted)[0])]


def test_cloud_children_are_complete_and_fetched_only_where_search_truncated() -> None:
    """Cloud search embeds 5 comments and 40 changelog entries: comments are paged (here 2 a
    page, below the tap's ask) only for issues with more, changelogs bulk-fetched only for
    issues with more than 40, and every comment and changelog entry is emitted."""
    with JiraEmulator(issue_count=30, comment_page_cap=2) as jira:
        busy = sorted(jira.dataset.issues)[:2]
        for issue_id in busy:
            for _ in range(41):
                jira.dataset.edit_issue(issue_id)
        jira.advance(minutes=1)
        config = jira.tap_config(search_lag_seconds=0, page_size=10)
        catalog = catalog_selecting(config, {"issues", "issue_comments", "issue_changelogs"})
        run = ok(run_tap(config, catalog=catalog))
        issues = list(jira.dataset.issues.values())
        paths = dict(jira.stats.by_path)
    assert {r["id"] for r in run.records("issue_comments")} == {
        str(c.id) for i in issues for c in i.comments
    }
    assert {r["id"] for r in run.records("issue_changelogs")} == {
        str(h.id) for i in issues for h in i.histories
    }
    pages = sum(-(-len(i.comments) // 2) for i in issues if len(i.comments) > 5)
    assert pages and paths["/rest/api/{id}/issue/{id}/comment"] == pages
    assert paths["/rest/api/{id}/changelog/bulkfetch"] == 1, "one call for both busy issues"


def test_a_cut_server_changelog_read_fails_loudly_instead_of_passing_as_complete() -> None:
    """Server/DC reads a changelog the search did not embed whole with GET issue?expand=
    changelog, which renders every history there; if one ever comes back cut, the run stops
    naming the issue instead of emitting part of its changelog as all of it."""
    with JiraEmulator(
        issue_count=10, deployment="Server", embedded_limit=1, issue_changelog_cap=1
    ) as jira:
        config = jira.tap_config(search_lag_seconds=0, page_size=10)
        catalog = catalog_selecting(config, {"issues", "issue_changelogs"})
        run = run_tap(config, catalog=catalog)
    assert run.returncode != 0
    assert re.search(
        r"issue_changelogs: issue \d+ has \d+ changelog entries but the issue read returned "
        r"1: this Jira cuts expand=changelog",
        run.stderr,
    )
    assert not run.bookmark()  # the issues' bookmark did not move past the cut changelog


def test_parallel_comment_pages_wait_out_every_429_exactly() -> None:
    with JiraEmulator(issue_count=30, comment_page_cap=2) as jira:
        config = jira.tap_config(search_lag_seconds=0, page_size=10, parallel_requests=4)
        catalog = catalog_selecting(config, {"issues", "issue_comments"})
        jira.settings.rate_limit_every = 5  # after discovery: only the run's 429s count
        run = ok(run_tap(config, catalog=catalog))
        comments = {str(c.id) for i in jira.dataset.issues.values() for c in i.comments}
        served = (jira.stats.rate_limited, jira.stats.retry_after_total_s)
    assert {r["id"] for r in run.records("issue_comments")} == comments
    waits = [float(w) for w in re.findall(r"\(429\), waiting ([0-9.]+) s", run.stderr)]
    assert (len(waits), sum(waits)) == served


def test_a_429_holds_back_every_parallel_comment_request_for_its_retry_after() -> None:
    with JiraEmulator(issue_count=60, comment_page_cap=1, embedded_limit=1, latency_ms=20) as jira:
        config = jira.tap_config(search_lag_seconds=0, page_size=10, parallel_requests=4)
        catalog = catalog_selecting(config, {"issues", "issue_comments"})
        jira.settings.retry_after_s = 2
        jira.settings.rate_limit_every = 90  # after discovery: only the run's 429s count
        ok(run_tap(config, catalog=catalog))
        arrivals, limits = list(jira.stats.arrivals), list(jira.stats.rate_limited_at)
    assert limits, "the run met no 429"
    # requests already on the wire when the 429 was served may still arrive just after it;
    # any later one inside the Retry-After was sent by a thread that did not wait
    early = [t for at, wait in limits for t in arrivals if at + 0.5 < t < at + wait - 0.05]
    assert not early, f"{len(early)} requests arrived inside a Retry-After"


def test_jql_setting_narrows_every_issue_query_and_leavers_are_updated_not_deleted() -> None:
    with JiraEmulator(issue_count=30) as jira:
        data = jira.dataset
        config = real_config(jira, jql='status != "Done"', max_delete_fraction=0.5)
        first = ok(run_tap(config, catalog=issues_only_catalog()))
        wanted = {str(i.id) for i in data.issues.values() if i.project in SCOPE}
        wanted -= {str(i.id) for i in data.issues.values() if i.status == "Done"}
        assert {r["id"] for r in first.records("issues")} == wanted
        leaver = int(sorted(wanted)[0])
        data.set_status(leaver, "Done")  # no longer matches the jql: leaves the scope
        jira.advance(minutes=1)
        second = ok(run_tap(config, state=first.final_state, catalog=issues_only_catalog()))
    rows = [r for r in second.records("issues") if r["id"] == str(leaver)]
    assert rows and not rows[-1]["_sdc_deleted_at"], "left the jql: updated, not deleted"
    assert rows[-1]["fields"]["status"]["name"] == "Done"


BULK_CHANGELOGS = "/changelog/bulkfetch$"
SPENT_TOKEN = {"errorMessages": ["The provided next page token is invalid or expired."]}


def changelog_run(front_rules: list[tuple[Fault, bytes, int | None]]) -> tuple[TapRun, set[str]]:
    """Two issues with more changelog than Cloud's search embeds, read through a front that
    serves ``(fault, body it matches, times)`` to ``changelog/bulkfetch``, 10 entries a page."""
    with JiraEmulator(issue_count=6, changelog_page_cap=10) as jira, FaultFront(jira.url) as front:
        for issue_id in sorted(jira.dataset.issues)[:2]:
            for _ in range(41):
                jira.dataset.edit_issue(issue_id)
        jira.advance(minutes=1)
        for fault, body_has, times in front_rules:
            front.add(BULK_CHANGELOGS, fault, times=times, body_has=body_has)
        config = {**jira.tap_config(search_lag_seconds=0, max_retries=1), "domain": front.url}
        catalog = catalog_selecting(config, {"issues", "issue_changelogs"})
        run = run_tap(config, catalog=catalog, timeout=120)
        truth = {str(h.id) for i in jira.dataset.issues.values() for h in i.histories}
    return run, truth


def test_a_spent_changelog_page_token_restarts_the_reads_without_doubles() -> None:
    run, truth = changelog_run([(Fault.json_answer(SPENT_TOKEN, 400), b'"nextPageToken"', 1)])
    ok(run)
    ids = [r["id"] for r in run.records("issue_changelogs")]
    assert sorted(ids) == sorted(truth)  # every entry, none twice
    assert "restarting the changelog reads (try 1)" in run.stderr


def test_a_changelog_page_token_that_stays_spent_fails_naming_the_endpoint() -> None:
    run, _ = changelog_run([(Fault.json_answer(SPENT_TOKEN, 400), b'"nextPageToken"', None)])
    assert run.returncode == 1
    last = run.stderr.strip().splitlines()[-1]
    assert "POST /rest/api/3/changelog/bulkfetch answered 400" in last, last
    assert not run.bookmark()


def test_a_changelog_page_token_repeated_later_fails_naming_the_endpoint() -> None:
    """Tokens A, B, then A again (not the one just given): a loop, not progress."""

    def page(token: str) -> Fault:
        return Fault.json_answer({"issueChangeLogs": [], "nextPageToken": token})

    run, _ = changelog_run(
        [
            (page("B"), b'"nextPageToken": "A"', None),
            (page("A"), b'"nextPageToken": "B"', None),
            (page("A"), b"", None),
        ]
    )
    assert run.returncode == 1
    last = run.stderr.strip().splitlines()[-1]
    assert "POST /rest/api/3/changelog/bulkfetch: page token repeated: A" in last, last
    assert run.stderr.count("restarting the changelog reads") == 2
