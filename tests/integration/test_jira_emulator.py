"""The Jira emulator answers like Jira Cloud where it matters to a tap (shapes, caps, errors)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from safe_singer_testing.emulators.jira import JiraEmulator


@pytest.fixture
def jira() -> Iterator[JiraEmulator]:
    with JiraEmulator(
        issue_count=40, page_cap_fields=7, index_lag_ms=60_000, instant_index_share=0
    ) as emulator:
        yield emulator


def call(jira: JiraEmulator, method: str, path: str, **kwargs: Any) -> requests.Response:
    auth = (jira.settings.email, jira.settings.api_token)
    return requests.request(method, jira.url + path, auth=auth, timeout=10, **kwargs)


def test_search_jql_pages_like_cloud(jira: JiraEmulator) -> None:
    body = {
        "jql": "project in (ALPHA, BETA, GAMMA) ORDER BY updated ASC, id ASC",
        "fields": ["*all"],
        "maxResults": 50,
    }
    first = call(jira, "POST", "/rest/api/3/search/jql", json=body).json()
    assert 1 <= len(first["issues"]) <= 7, "maxResults is capped below what was asked"
    assert "total" not in first and first["isLast"] is False and first["nextPageToken"]
    seen = [i["id"] for i in first["issues"]]
    token = first["nextPageToken"]
    while token:
        page = call(
            jira, "POST", "/rest/api/3/search/jql", json={**body, "nextPageToken": token}
        ).json()
        seen += [i["id"] for i in page["issues"]]
        token = page.get("nextPageToken")
    assert page["isLast"] is True
    assert len(seen) == len(set(seen)) == 40
    ids_only = call(
        jira, "GET", "/rest/api/3/search/jql", params={"jql": body["jql"], "maxResults": 5000}
    ).json()
    assert ids_only["issues"][0] == {"id": seen[0]} and len(ids_only["issues"]) == 40


def test_embedded_comments_are_truncated(jira: JiraEmulator) -> None:
    issue = next(i for i in jira.dataset.issues.values() if len(i.comments) == 6)
    jira.settings.embedded_limit = 2
    got = call(jira, "GET", f"/rest/api/3/issue/{issue.id}").json()["fields"]["comment"]
    assert (len(got["comments"]), got["total"]) == (2, 6)
    paged = call(jira, "GET", f"/rest/api/3/issue/{issue.id}/comment").json()
    assert len(paged["comments"]) == paged["total"] == 6


@pytest.mark.parametrize(
    ("deployment", "search", "embedded"),
    [
        # Cloud: at most 40 histories (JRACLOUD-96459); comments undocumented, so 5
        ("Cloud", "/rest/api/3/search/jql", (5, 40, 100)),
        # Server/DC: every comment and history (CommentSystemField, ChangelogBeanBuilder)
        ("Server", "/rest/api/2/search", (6, 45, 120)),
    ],
)
def test_issues_embed_what_each_deployment_renders(
    deployment: str, search: str, embedded: tuple[int, int, int]
) -> None:
    with JiraEmulator(issue_count=10, deployment=deployment) as jira:
        issue = next(i for i in jira.dataset.issues.values() if len(i.comments) == 6)
        for _ in range(45 - len(issue.histories)):
            jira.dataset.edit_issue(issue.id)
        jira.advance(minutes=1)  # past the index lag
        body = {"jql": f"issue = {issue.id}", "fields": "*all", "expand": "changelog"}
        found = call(jira, "POST", search, json=body).json()["issues"][0]
        issue_path = f"{search.split('/search')[0]}/issue/{issue.id}"
        read = call(jira, "GET", issue_path).json()
        for _ in range(120 - len(issue.histories)):
            jira.dataset.edit_issue(issue.id)
        expanded = call(jira, "GET", issue_path, params={"expand": "changelog"}).json()
        newest = issue.histories[-1].id
    for got in (found["fields"]["comment"], read["fields"]["comment"]):
        assert (len(got["comments"]), got["total"]) == (embedded[0], 6)
    assert (len(found["changelog"]["histories"]), found["changelog"]["total"]) == (embedded[1], 45)
    # GET issue?expand=changelog: Cloud the most recent 100 (pycontribs/jira#911), Server all
    changelog = expanded["changelog"]
    assert (len(changelog["histories"]), changelog["total"]) == (embedded[2], 120)
    assert changelog["histories"][-1]["id"] == str(newest)


def test_errors_like_jira(jira: JiraEmulator) -> None:
    unbounded = call(jira, "GET", "/rest/api/3/search/jql", params={"jql": "ORDER BY id"})
    assert unbounded.status_code == 400 and "Unbounded" in unbounded.json()["errorMessages"][0]
    assert call(jira, "GET", "/rest/api/3/search", params={"jql": "id in (1)"}).status_code == 410
    assert call(jira, "POST", "/rest/api/3/worklog/list", json={"ids": []}).status_code == 400
    bad = requests.get(jira.url + "/rest/api/3/myself", auth=("x", "y"), timeout=10)
    assert bad.status_code == 401


def test_rate_limit_answers_carry_jira_headers(jira: JiraEmulator) -> None:
    jira.settings.rate_limit_every = 1
    answers = [call(jira, "GET", "/rest/api/3/myself") for _ in range(2)]
    for answer in answers:
        assert answer.status_code == 429
        assert answer.headers["Retry-After"] == "1"
        assert answer.headers["RateLimit-Reason"]
        assert answer.headers["X-RateLimit-Remaining"] == "0"
    assert {a.headers["Content-Type"].split(";")[0] for a in answers} == {
        "text/html",
        "application/json",
    }
    assert jira.stats.rate_limited == 2 and jira.stats.retry_after_total_s == 2


def test_rate_limit_reset_is_named_to_the_minute_like_jiras(jira: JiraEmulator) -> None:
    jira.settings.rate_limit_budget = 100
    reset = call(jira, "GET", "/rest/api/3/myself").headers["X-RateLimit-Reset"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\dZ", reset), reset


def test_search_lags_writes_unless_reconciled(jira: JiraEmulator) -> None:
    issue_id = sorted(jira.dataset.issues)[0]
    jira.dataset.edit_issue(issue_id)
    jql = f"id in ({issue_id})"
    stale = call(
        jira, "POST", "/rest/api/3/search/jql", json={"jql": jql, "fields": ["updated"]}
    ).json()["issues"][0]
    fresh = call(
        jira,
        "POST",
        "/rest/api/3/search/jql",
        json={"jql": jql, "fields": ["updated"], "reconcileIssues": [issue_id]},
    ).json()["issues"][0]
    assert stale["fields"]["updated"] < fresh["fields"]["updated"]


def test_worklog_updated_leaves_out_the_last_minute(jira: JiraEmulator) -> None:
    issue_id = sorted(jira.dataset.issues)[0]
    recent = jira.dataset.add_worklog(issue_id, 600)
    since = int(time.time() * 1000) - 3_600_000 * 24
    page = call(jira, "GET", "/rest/api/3/worklog/updated", params={"since": since}).json()
    listed = {v["worklogId"] for v in page["values"]}
    assert recent not in listed and listed and page["lastPage"] is True
    jira.dataset.delete_worklog(recent)
    gone = call(jira, "GET", "/rest/api/3/worklog/deleted", params={"since": since}).json()
    assert [v["worklogId"] for v in gone["values"]] == [recent]


def search_ids(jira: JiraEmulator, jql: str) -> list[str]:
    """Every id ``jql`` finds, following the (server-sized) id-only pages."""
    ids, token = [], None
    while True:
        body = {"jql": jql, "maxResults": 5000, **({"nextPageToken": token} if token else {})}
        page = call(jira, "POST", "/rest/api/3/search/jql", json=body).json()
        ids += [i["id"] for i in page["issues"]]
        token = page.get("nextPageToken")
        if not token:
            return ids


def test_id_and_key_clauses_compare_key_numbers_within_a_project() -> None:
    with JiraEmulator(issue_count=12, projects=("ALPHA", "BETA"), page_cap_ids=3) as jira:
        data = jira.dataset
        alpha3 = data.find("ALPHA-3")
        assert alpha3 is not None
        above = search_ids(jira, f"id > {alpha3.id}")
        # BETA's issues are not "above" ALPHA-3 whatever their ids: only ALPHA-4..6
        assert sorted(data.issues[int(i)].key for i in above) == ["ALPHA-4", "ALPHA-5", "ALPHA-6"]
        assert search_ids(jira, "key >= ALPHA-3") == search_ids(jira, f"issuekey >= {alpha3.id}")
        ordered = search_ids(jira, "project in (ALPHA, BETA) ORDER BY id ASC")
        keys = [data.issues[int(i)].key for i in ordered]
        assert keys[:2] == ["ALPHA-1", "ALPHA-2"] and keys[6] == "BETA-1"
        data.delete_issue(alpha3.id)
        gone = call(jira, "POST", "/rest/api/3/search/jql", json={"jql": f"id <= {alpha3.id}"})
        assert gone.status_code == 400 and "does not exist" in gone.json()["errorMessages"][0]
        # a moved issue keeps its id; its old key still names it
        beta1 = data.find("BETA-1")
        assert beta1 is not None
        data.move_issue(beta1.id, "ALPHA")
        assert search_ids(jira, "key = BETA-1") == [str(beta1.id)]


def test_archived_issue_leaves_search_but_reads_by_id(jira: JiraEmulator) -> None:
    issue_id = sorted(jira.dataset.issues)[0]
    jira.dataset.archive_issue(issue_id)
    assert str(issue_id) in search_ids(jira, "project = ALPHA"), "index lag: still listed"
    jira.advance(minutes=2)
    assert str(issue_id) not in search_ids(jira, "project = ALPHA")
    direct = call(jira, "GET", f"/rest/api/3/issue/{issue_id}").json()
    assert direct["fields"]["archiveddate"]
    bulk = call(
        jira, "POST", "/rest/api/3/issue/bulkfetch", json={"issueIdsOrKeys": [str(issue_id)]}
    ).json()
    assert bulk == {"issues": [], "issueErrors": []}


def test_page_tokens_expire_on_jiras_clock(jira: JiraEmulator) -> None:
    body = {"jql": "project = ALPHA", "fields": ["summary"], "maxResults": 5}
    token = call(jira, "POST", "/rest/api/3/search/jql", json=body).json()["nextPageToken"]
    jira.advance(minutes=11)
    late = call(jira, "POST", "/rest/api/3/search/jql", json={**body, "nextPageToken": token})
    assert late.status_code == 400 and "expired" in late.json()["errorMessages"][0]


def test_data_center_serves_only_api_2() -> None:
    with JiraEmulator(issue_count=5, deployment="Server") as jira:
        headers = {"Authorization": f"Bearer {jira.settings.access_token}"}
        for path in ("/rest/api/3/myself", "/rest/api/2/search/jql", "/rest/api/2/project/search"):
            answer = requests.get(jira.url + path, headers=headers, timeout=10)
            assert answer.status_code == 404, path
        page = requests.get(
            jira.url + "/rest/api/2/search",
            params={"jql": "project = ALPHA", "startAt": 1, "maxResults": 1},
            headers=headers,
            timeout=10,
        ).json()
        assert (page["startAt"], page["total"], len(page["issues"])) == (1, 2, 1)


@pytest.mark.parametrize(
    ("count", "body", "status"),
    [
        (100, {"fields": ["*all"]}, 200),
        (101, {"fields": ["*all"]}, 400),
        (101, {}, 400),  # no fields named: the default (100)
        (1000, {"fields": ["project", "updated", "archiveddate"]}, 200),
        (1001, {"fields": ["project", "updated", "archiveddate"]}, 400),
        (101, {"fields": ["project", "comment"]}, 400),  # a multi-valued field
        (100, {"fields": ["project", "updated"], "expand": "changelog"}, 200),
        (101, {"fields": ["project", "updated"], "expand": "changelog"}, 400),
    ],
)
def test_bulkfetch_serves_1000_ids_only_to_narrow_requests(
    jira: JiraEmulator, count: int, body: dict[str, Any], status: int
) -> None:
    """Atlassian's rule for ``issue/bulkfetch``: 100 ids by default, 1,000 when the fields
    are named, none multi-valued, and nothing heavy is expanded; larger requests are a 400."""
    ids = [str(10_001 + n) for n in range(count)]
    answer = call(jira, "POST", "/rest/api/3/issue/bulkfetch", json={"issueIdsOrKeys": ids, **body})
    assert answer.status_code == status, answer.text[:200]
    if status == 200:
        assert {i["id"] for i in answer.json()["issues"]} <= set(ids)
