"""Every stream of tap-jira-safe against the Jira emulator's truth, on Cloud and Data Center:
discovery, records, deployment-only and admin-only streams, ACTIVATE_VERSION only after a
complete listing, malformed answers, and reference-data deletes through the target."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from psycopg import sql
from tap_jira_safe.listing import ListingStream
from tap_jira_safe.stream_types import STREAM_TYPES

from safe_singer_testing.emulators.jira import JiraEmulator
from safe_singer_testing.emulators.jira.admin import (
    SCHEMES,
    WORKFLOWS,
    audit_times,
    contexts,
    grants,
    options,
)
from safe_singer_testing.emulators.jira.catalog import (
    PERMISSIONS,
    ROLES,
    reference_data,
    remote_link_ids,
)
from safe_singer_testing.emulators.jira.dataset import STATUSES, USERS
from safe_singer_testing.emulators.jira.harness import (
    TapRun,
    catalog_selecting,
    run_pipeline,
    run_tap,
)
from safe_singer_testing.emulators.jira.people import voter_ids, watcher_ids
from safe_singer_testing.emulators.jira.render import FIELDS
from safe_singer_testing.faults import Fault, FaultFront
from safe_singer_testing.postgres import PgServer

# MeltanoLabs tap-jira's streams and Airbyte source-jira's analytic ones (issue 20)
ALL_STREAMS = {
    "users", "fields", "custom_field_contexts", "custom_field_options", "server_info",
    "issue_types", "workflow_statuses", "projects", "versions", "issues", "permissions",
    "project_roles", "priorities", "permission_holders", "boards", "sprints",
    "project_role_actors", "audit_records", "dashboards", "filters",
    "filter_default_share_scopes", "groups", "licenses", "screens", "screen_schemes",
    "statuses", "resolutions", "workflows", "issue_watchers", "issue_changelogs",
    "issue_comments", "issue_worklogs", "components", "issue_link_types",
    "issue_remote_links", "issue_votes", "labels", "project_categories", "board_issues",
    "workflow_schemes", "sprint_issues", "permission_schemes",
}  # fmt: skip
CLOUD_ONLY = {
    "workflow_statuses", "filters", "labels", "licenses", "screen_schemes",
    "workflow_schemes", "custom_field_contexts", "custom_field_options",
}  # fmt: skip
# what Atlassian's Cloud reference documents for "Administer Jira" (workflow_statuses:
# "Administer projects" or "Administer Jira"); project_role_actors rides on project_roles
ADMIN_ONLY = {
    "audit_records", "project_roles", "project_role_actors", "screens", "screen_schemes",
    "workflows", "workflow_schemes", "workflow_statuses", "custom_field_contexts",
    "custom_field_options",
}  # fmt: skip
# documented open to any user on Cloud ("Permission to access Jira" / "None")
OPEN_TO_ANY_USER = ("licenses", "permission_schemes", "permission_holders")
PER_ISSUE = ("issue_watchers", "issue_votes", "issue_remote_links")
NEW_STREAMS = sorted(ALL_STREAMS - {"issues", "issue_comments", "issue_changelogs"})
DEPLOYMENTS = ("Cloud", "Server")
Key = tuple[Any, ...]


def expected(jira: JiraEmulator, stream: str, config: dict[str, Any]) -> set[Key]:
    """The primary keys the emulator holds for ``stream`` (its ground truth)."""
    data, cloud = reference_data(jira), jira.settings.deployment == "Cloud"
    issues = [i for i in jira.dataset.issues.values() if i.archived_ms is None]
    custom = [f for f in FIELDS if f["custom"]]
    select = [f for f in custom if f["schema"]["custom"].endswith(":select")]
    since = datetime.fromisoformat(config["start_date"]) - timedelta(minutes=10)
    projects = range(10_000, 10_000 + len(jira.settings.projects))
    truth: dict[str, set[Key]] = {
        "server_info": {(jira.url,)},
        "workflow_statuses": {(str(n + 1),) for n in range(len(STATUSES))},
        "statuses": {(str(n + 1),) for n in range(len(STATUSES))},
        "permissions": {(k,) for k in PERMISSIONS},
        "project_roles": {(10_002 + n,) for n in range(len(ROLES))},
        "project_role_actors": {
            (role, role * 10 + n) for role in range(10_002, 10_005) for n in range(role - 10_000)
        },
        "dashboards": {(d["id"],) for d in data.dashboards},
        "filters": {(f["id"],) for f in data.filters},
        "filter_default_share_scopes": {("PRIVATE",)},
        "groups": {(g,) for g in data.groups},
        "issue_link_types": {(t["id"],) for t in data.issue_link_types},
        "project_categories": {(c["id"],) for c in data.project_categories},
        "labels": {(label,) for label in data.labels},
        "audit_records": {
            (rid,) for rid, ms in audit_times(jira).items() if ms >= since.timestamp() * 1000
        },
        "licenses": {("jira-software",)},
        "permission_schemes": {(10_000 + n,) for _, n in SCHEMES},
        "permission_holders": {(g["id"],) for _, n in SCHEMES for g in grants(10_000 + n)},
        "screens": {(n + 1,) for n in range(5)},
        "screen_schemes": {(n + 1,) for n in range(3)},
        "workflows": {(name,) for name in WORKFLOWS},
        "workflow_schemes": {(10_000 + n,) for n in range(3)},
        "custom_field_contexts": {(f["id"], c["id"]) for f in custom for c in contexts(f["id"])},
        "custom_field_options": {
            (c["id"], o["id"]) for f in select for c in contexts(f["id"]) for o in options(c["id"])
        },
        "issue_watchers": {(str(i.id),) for i in issues},
        "issue_votes": {(str(i.id),) for i in issues},
        "issue_remote_links": {(link,) for i in issues for link in remote_link_ids(i.id)},
        "board_issues": {
            (b.id, str(i.id)) for b in jira.dataset.boards for i in issues if i.project == b.project
        },
        "users": {(u,) for u in USERS},
        "fields": {(f["id"],) for f in FIELDS},
        "projects": {(str(p),) for p in projects},
        "versions": {(str(p * 10 + v),) for p in projects for v in range(2)},
        "components": {(str(p * 10 + c),) for p in projects for c in range(2)},
        "priorities": {(str(n),) for n in range(1, 5)},
        "resolutions": {(str(n),) for n in range(1, 4)},
        "issue_types": {(str(n),) for n in range(1, 5)},
        "boards": {(b.id,) for b in jira.dataset.boards},
        "sprints": {(s.id,) for s in jira.dataset.sprints},
        "sprint_issues": {
            (s.id, str(i.id))
            for b in jira.dataset.boards
            for s in jira.dataset.sprints
            for i in issues
            if s.board_id == b.id and i.project == b.project and b.id * 100 + i.id % 3 + 1 == s.id
        },
        "issue_worklogs": {(str(w),) for w in jira.dataset.worklogs},
    }
    if not cloud and stream in CLOUD_ONLY:
        return set()
    return truth[stream]


PRIMARY_KEYS: dict[str, tuple[str, ...]] = {
    "server_info": ("baseUrl",),
    "permissions": ("key",),
    "filter_default_share_scopes": ("scope",),
    "groups": ("name",),
    "labels": ("label",),
    "workflows": ("name",),
    "users": ("accountId",),
    "project_role_actors": ("role_id", "id"),
    "custom_field_contexts": ("field_id", "id"),
    "custom_field_options": ("context_id", "id"),
    "issue_watchers": ("issue_id",),
    "issue_votes": ("issue_id",),
    "board_issues": ("board_id", "issue_id"),
    "sprint_issues": ("sprint_id", "issue_id"),
}


@pytest.fixture(scope="module", params=DEPLOYMENTS)
def synced(request: pytest.FixtureRequest) -> Iterator[tuple[JiraEmulator, TapRun, dict]]:
    """One run of every stream (nothing selected: singer-sdk selects all) per deployment."""
    with JiraEmulator(issue_count=12, deployment=request.param) as jira:
        config = jira.tap_config(search_lag_seconds=0, page_size=2)
        run = run_tap(config)
        assert run.returncode == 0, run.stderr[-3000:]
        yield jira, run, config


@pytest.mark.parametrize("deployment", DEPLOYMENTS)
def test_discover_lists_every_stream(deployment: str) -> None:
    with JiraEmulator(issue_count=1, deployment=deployment) as jira:
        catalog = catalog_selecting(jira.tap_config(), set())
    assert {entry["tap_stream_id"] for entry in catalog["streams"]} == ALL_STREAMS


@pytest.mark.parametrize("stream", [*NEW_STREAMS, "projects", "versions", "components"])
def test_stream_records_match_the_emulator(
    synced: tuple[JiraEmulator, TapRun, dict], stream: str
) -> None:
    jira, run, config = synced
    keys = PRIMARY_KEYS.get(stream, ("id",))
    records = run.records(stream)
    got = [tuple(r[k] for k in keys) for r in records]
    assert sorted(got, key=str) == sorted(expected(jira, stream, config), key=str)


def test_records_keep_every_field_jira_sends() -> None:
    """Spot checks of fields a shared schema dropped before (components' ``project``) or
    that only one deployment sends."""
    with JiraEmulator(issue_count=6) as jira:
        run = run_tap(jira.tap_config(search_lag_seconds=0))
        assert run.returncode == 0, run.stderr[-2000:]
        component = run.records("components")[0]
        assert component["project"] in jira.settings.projects
        watchers = {r["issue_id"]: r for r in run.records("issue_watchers")}
        for issue_id, row in watchers.items():
            ids = [u["accountId"] for u in row["watchers"]]
            assert ids == watcher_ids(int(issue_id)) and row["watchCount"] == len(ids)
        for row in run.records("issue_votes"):
            assert [u["accountId"] for u in row["voters"]] == voter_ids(int(row["issue_id"]))
        audit = run.records("audit_records")[0]
        assert audit["objectItem"]["typeName"] == "USER"
        assert datetime.fromisoformat(audit["created"]).tzinfo is not None
        workflow = next(r for r in run.records("workflows") if r["name"] == "jira")
        assert workflow["id"] == {"name": "jira", "entityId": "e-0"}


def test_data_center_skips_cloud_only_streams_with_one_info_line() -> None:
    with JiraEmulator(issue_count=2, deployment="Server") as jira:
        run = run_tap(jira.tap_config(search_lag_seconds=0))
    assert run.returncode == 0, run.stderr[-2000:]
    for stream in CLOUD_ONLY:
        lines = [
            line
            for line in run.stderr.splitlines()
            if f"{stream}: Jira Server / Data Center has no such endpoint; skipped" in line
        ]
        assert len(lines) == 1 and "INFO" in lines[0], stream
        assert not run.records(stream)


@pytest.mark.parametrize("deployment", DEPLOYMENTS)
def test_admin_streams_are_skipped_for_a_user_without_admin_rights(deployment: str) -> None:
    """Each admin-only endpoint answers 403: one WARNING naming the permission, no rows and
    no table version. Data Center offers fewer of them, and documents ``/role`` for
    anyone (so there each role's actors are refused, not the roles)."""
    cloud = deployment == "Cloud"
    with JiraEmulator(issue_count=2, admin=False, deployment=deployment) as jira:
        run = run_tap(jira.tap_config(search_lag_seconds=0))
    assert run.returncode == 0, run.stderr[-2000:]
    versions = {m["stream"] for m in run.messages if m["type"] == "ACTIVATE_VERSION"}
    refused = ADMIN_ONLY if cloud else ADMIN_ONLY - CLOUD_ONLY - {"project_roles"}
    warned = refused - {"custom_field_options", "project_role_actors"} if cloud else refused
    for stream in refused:
        assert not run.records(stream), stream
        assert stream not in versions, f"{stream}: an empty table sent as the truth"
    for stream in warned:
        lines = [line for line in run.stderr.splitlines() if f"{stream}: skipped" in line]
        assert len(lines) == 1 and "WARNING" in lines[0], stream
        assert "Administer Jira" in lines[0]
    opened = ("dashboards", *OPEN_TO_ANY_USER) if cloud else ("dashboards", "project_roles")
    for stream in opened:
        assert run.records(stream) and stream in versions, stream


def test_a_data_center_group_picker_answering_fewer_than_its_total_fails_the_run() -> None:
    """``/groups/picker`` has no paging: an answer short of its ``total`` (a site whose
    picker limit is lower than asked) is not every group, so the run stops naming it."""
    cut = {"header": "Showing 1 of 5 matching groups", "total": 5, "groups": [{"name": "a"}]}
    with JiraEmulator(issue_count=2, deployment="Server") as jira, FaultFront(jira.url) as front:
        front.add(r"^/rest/api/2/groups/picker$", Fault.json_answer(cut))
        config = {**jira.tap_config(search_lag_seconds=0), "domain": front.url}
        run = run_tap(config, catalog=catalog_selecting(config, {"groups"}))
    assert run.returncode == 1, run.stderr[-2000:]
    last = run.stderr.strip().splitlines()[-1]
    assert "groups: GET /rest/api/2/groups/picker answered" in last and "1 of 5 groups" in last
    assert not run.records("groups") and not _version_messages(run, "groups")


def test_a_403_after_part_of_a_table_went_out_fails_the_run() -> None:
    """Roles 10002 and 10003 list their actors, 10004 answers 403: skipping the stream now
    would leave an opened refresh that a runner could close over a partial table."""
    with JiraEmulator(issue_count=2) as jira:
        reference_data(jira).faults["/role/10004/actors"] = "forbidden"
        catalog = catalog_selecting(jira.tap_config(), {"project_role_actors"})
        run = run_tap(jira.tap_config(), catalog=catalog)
    assert run.returncode == 1
    assert "GET /rest/api/3/role/10004/actors answered 403" in run.stderr.strip().splitlines()[-1]
    assert _version_messages(run, "project_role_actors")[-1] == "RECORD"


def _version_messages(run: TapRun, stream: str) -> list[str]:
    return [
        m["type"]
        for m in run.messages
        if m.get("stream") == stream and m["type"] in ("RECORD", "ACTIVATE_VERSION")
    ]


def test_full_table_stream_closes_its_version_only_after_every_page() -> None:
    with JiraEmulator(issue_count=2) as jira:
        catalog = catalog_selecting(jira.tap_config(), {"dashboards"})
        done = run_tap(jira.tap_config(), catalog=catalog)
        reference_data(jira).faults["/dashboard"] = "error_after_first"
        failed = run_tap(jira.tap_config(max_retries=1), catalog=catalog)
    count = len(reference_data(jira).dashboards)
    assert _version_messages(done, "dashboards") == ["ACTIVATE_VERSION"] + ["RECORD"] * count + [
        "ACTIVATE_VERSION"
    ]
    assert _version_messages(failed, "dashboards") == ["ACTIVATE_VERSION"] + ["RECORD"] * 3
    assert failed.returncode == 1
    assert "GET /rest/api/3/dashboard" in failed.stderr.strip().splitlines()[-1]


@functools.cache
def _catalog() -> str:
    with JiraEmulator(issue_count=1) as jira:
        return json.dumps(catalog_selecting(jira.tap_config(), set()))


def _selecting(streams: set[str]) -> dict[str, Any]:
    catalog: dict[str, Any] = json.loads(_catalog())
    for entry in catalog["streams"]:
        for item in entry["metadata"]:
            if item["breadcrumb"] == []:
                item["metadata"]["selected"] = entry["tap_stream_id"] in streams
    return catalog


# every list endpoint on Cloud, as a path pattern: the stream's own, ids as [^/]+
LISTINGS = {
    cls.name: re.sub(r"\{[a-z_]+\}", "[^/]+", cls.cloud_path)
    for cls in STREAM_TYPES
    if issubclass(cls, ListingStream) and cls.cloud_path
}
PER_ISSUE_PATHS = {
    "issue_watchers": "/issue/[^/]+/watchers",
    "issue_remote_links": "/issue/[^/]+/remotelink",
}


@pytest.mark.parametrize("stream", sorted(LISTINGS) + sorted(PER_ISSUE_PATHS))
def test_a_malformed_listing_fails_the_run_naming_the_endpoint(stream: str) -> None:
    """``{}`` from any list endpoint (or a per-issue one) is not "nothing there": the run
    stops naming the stream and the endpoint, and the table is not replaced."""
    path = {**LISTINGS, **PER_ISSUE_PATHS}[stream]
    with JiraEmulator(issue_count=4) as jira, FaultFront(jira.url) as front:
        absolute = path if path.startswith("/rest/") else f"/rest/api/3{path}"
        front.add(f"^{absolute}$", Fault.json_answer({}))
        config = {**jira.tap_config(search_lag_seconds=0), "domain": front.url}
        selected = {stream, "issues"} if stream in PER_ISSUE_PATHS else {stream}
        run = run_tap(config, catalog=_selecting(selected))
    assert front.stats.faults_served, f"{stream}: {absolute} was never asked"
    assert run.returncode == 1, run.stderr[-2000:]
    last = run.stderr.strip().splitlines()[-1]
    assert re.search(f"{stream}: GET {absolute} answered {{}}", last), last
    assert _version_messages(run, stream).count("ACTIVATE_VERSION") < 2


def test_audit_records_resume_from_their_bookmark() -> None:
    with JiraEmulator(issue_count=2) as jira:
        catalog = catalog_selecting(jira.tap_config(), {"audit_records"})
        first = run_tap(jira.tap_config(), catalog=catalog)
        bookmark = first.bookmark("audit_records")
        assert bookmark == max(r["created"] for r in first.records("audit_records"))
        newest = max(audit_times(jira).items(), key=lambda item: item[1])
        audit_times(jira)[999] = jira.now_ms()
        second = run_tap(jira.tap_config(), state=first.final_state, catalog=catalog)
    ids = {r["id"] for r in second.records("audit_records")}
    assert 999 in ids and newest[0] in ids  # the lookback re-reads the newest
    assert len(ids) < len(first.records("audit_records"))


def test_watchers_and_votes_are_read_only_for_issues_that_count_some() -> None:
    """The search response's ``watches`` / ``votes`` fields count them: an issue counting 0
    gets its empty row without a request."""
    with JiraEmulator(issue_count=12) as jira:
        catalog = catalog_selecting(jira.tap_config(), {"issues", *PER_ISSUE})
        run = run_tap(jira.tap_config(search_lag_seconds=0), catalog=catalog)
        requests = dict(jira.stats.by_path)
        issues = list(jira.dataset.issues)
    assert run.returncode == 0, run.stderr[-2000:]
    voted = [i for i in issues if voter_ids(i)]
    watched = [i for i in issues if watcher_ids(i)]
    assert requests.get("/rest/api/{id}/issue/{id}/votes", 0) == len(voted) < len(issues)
    assert requests.get("/rest/api/{id}/issue/{id}/watchers", 0) == len(watched) < len(issues)
    assert requests.get("/rest/api/{id}/issue/{id}/remotelink", 0) == len(issues)
    votes = {r["issue_id"]: r for r in run.records("issue_votes")}
    assert set(votes) == {str(i) for i in issues}
    for issue_id, row in votes.items():
        assert row["votes"] == len(row["voters"]) == len(voter_ids(int(issue_id)))


def test_per_issue_children_are_read_only_for_issues_changed_in_the_window() -> None:
    """Run 2, after one edit: watchers, votes and remote links are asked only for the
    issues the window holds (the edited one, and the last run's edge issues that go in
    ``reconcileIssues``), never for the whole site."""
    with JiraEmulator(issue_count=40) as jira:
        config = jira.tap_config(search_lag_seconds=0, lookback_minutes=1)
        catalog = catalog_selecting(config, {"issues", *PER_ISSUE})
        first = run_tap(config, catalog=catalog)
        assert first.returncode == 0, first.stderr[-2000:]
        jira.advance(minutes=30)
        edited = sorted(jira.live_issues())[3]
        jira.dataset.edit_issue(int(edited))
        jira.advance(minutes=1)
        before = dict(jira.stats.by_path)
        second = run_tap(config, state=first.final_state, catalog=catalog)
        asked = {k: v - before.get(k, 0) for k, v in jira.stats.by_path.items()}
    assert second.returncode == 0, second.stderr[-2000:]
    edge = {str(i) for i in first.final_state["bookmarks"]["issues"]["window_edge_issue_ids"]}
    emitted = {str(r["id"]) for r in second.records("issues")}
    assert str(edited) in emitted and emitted <= {str(edited)} | edge
    for resource in ("watchers", "votes", "remotelink"):
        assert asked.get(f"/rest/api/{{id}}/issue/{{id}}/{resource}", 0) <= len(emitted) < 10
    for stream in PER_ISSUE:
        assert {r["issue_id"] for r in second.records(stream)} <= emitted, stream
    assert {r["issue_id"] for r in second.records("issue_watchers")} >= {str(edited)} & {
        str(i) for i in jira.dataset.issues if watcher_ids(i)
    }


ISSUE_CHILDREN = ("issue_comments", "issue_changelogs", *PER_ISSUE)


@pytest.mark.parametrize("deployment", DEPLOYMENTS)
def test_issue_children_are_incremental_on_their_issues_updated(deployment: str) -> None:
    """Read only for the issues of the window, so the catalog says INCREMENTAL, keyed on
    the issue's ``updated`` each record carries (the target's version guard uses it)."""
    with JiraEmulator(issue_count=6, deployment=deployment) as jira:
        config = jira.tap_config(search_lag_seconds=0)
        catalog = catalog_selecting(config, {"issues", *ISSUE_CHILDREN})
        run = run_tap(config, catalog=catalog)
    assert run.returncode == 0, run.stderr[-2000:]
    entries = {e["tap_stream_id"]: e for e in catalog["streams"]}
    updated = {r["id"]: r["updated"] for r in run.records("issues")}
    schemas = {m["stream"]: m for m in run.messages if m["type"] == "SCHEMA"}
    for stream in ISSUE_CHILDREN:
        entry = entries[stream]
        top = next(m["metadata"] for m in entry["metadata"] if m["breadcrumb"] == [])
        assert entry["replication_method"] == "INCREMENTAL", stream
        assert entry["replication_key"] == "issue_updated", stream
        assert top["valid-replication-keys"] == ["issue_updated"], stream
        assert entry["schema"]["properties"]["issue_updated"]["format"] == "date-time", stream
        assert schemas[stream]["bookmark_properties"] == ["issue_updated"], stream
        rows = run.records(stream)
        assert rows and all(r["issue_updated"] == updated[r["issue_id"]] for r in rows), stream


def test_an_issue_deleted_before_its_watchers_are_read_has_no_rows() -> None:
    with JiraEmulator(issue_count=6) as jira:
        catalog = catalog_selecting(jira.tap_config(), {"issues", *PER_ISSUE})
        victim = min(jira.dataset.issues)
        jira.on_search = lambda count: count == 1 and jira.dataset.delete_issue(victim)
        run = run_tap(jira.tap_config(search_lag_seconds=0), catalog=catalog)
    assert run.returncode == 0, run.stderr[-2000:]
    for stream in PER_ISSUE:
        issue_ids = {r["issue_id"] for r in run.records(stream)}
        assert issue_ids and str(victim) not in issue_ids, stream
    assert len(run.records("issue_watchers")) == 5
    assert f"issue_watchers: issue {victim} is gone (404)" in run.stderr


def _table(db: PgServer, table: str, key: str) -> dict[str, bool]:
    query = sql.SQL("SELECT {}::text, _sdc_deleted_at IS NOT NULL FROM {}.{}").format(
        sql.Identifier(key), sql.Identifier("jira"), sql.Identifier(table)
    )
    with db.connect() as conn:
        return dict(conn.execute(query).fetchall())


def test_a_deleted_reference_row_disappears_downstream_unless_the_listing_failed(
    pg_db: PgServer,
) -> None:
    with JiraEmulator(issue_count=2) as jira:
        data = reference_data(jira)
        tap = jira.tap_config(max_retries=1)
        target = {**pg_db.target_config(), "default_target_schema": "jira"}
        catalog = catalog_selecting(tap, {"issue_link_types", "dashboards"})
        first = run_pipeline(tap, target, catalog=catalog)
        assert (first.tap_returncode, first.target_returncode) == (0, 0), first.stderr[-3000:]
        assert _table(pg_db, "dashboards", "id") == {d["id"]: False for d in data.dashboards}

        gone_type, gone_board = data.issue_link_types.pop(1), data.dashboards.pop(4)
        second = run_pipeline(tap, target, catalog=catalog)
        assert (second.tap_returncode, second.target_returncode) == (0, 0), second.stderr[-3000:]
        assert _table(pg_db, "issue_link_types", "id")[gone_type["id"]] is True
        dashboards = _table(pg_db, "dashboards", "id")
        assert dashboards[gone_board["id"]] is True
        assert sum(not deleted for deleted in dashboards.values()) == len(data.dashboards)

        kept = data.dashboards.pop(0)
        data.faults["/dashboard"] = "error_after_first"
        third = run_pipeline(tap, target, catalog=catalog)
        assert third.tap_returncode == 1
        assert _table(pg_db, "dashboards", "id")[kept["id"]] is False  # not deleted


def test_data_center_10_without_the_audit_record_endpoint_skips_audit_records() -> None:
    """Jira 10 removed ``/rest/api/2/auditing/record`` (JRASERVER-78785): a 404 there is
    one INFO line and no audit rows, not a failed run."""
    with JiraEmulator(issue_count=2, deployment="Server", dc_major_version=10) as jira:
        run = run_tap(jira.tap_config(search_lag_seconds=0))
    assert run.returncode == 0, run.stderr[-2000:]
    lines = [line for line in run.stderr.splitlines() if "audit_records: " in line]
    assert len(lines) == 1 and "INFO" in lines[0] and "Jira 10" in lines[0], lines
    assert not run.records("audit_records")
    assert run.records("dashboards")
