"""The emulator's endpoints: one function per Jira REST resource.

Cloud serves ``/rest/api/2`` and ``/rest/api/3``; Server/Data Center serves only
``/rest/api/2`` (its REST reference, https://docs.atlassian.com/software/jira/docs/api/REST/
latest/, has no v3), pages with ``startAt`` and has none of Cloud's newer endpoints
(``search/jql``, ``issue/bulkfetch``, ``changelog/bulkfetch``, ``project/search``,
``users/search``): those answer 404 there, the harsher reading of "not documented".
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from safe_singer_testing.emulators.jira import jql
from safe_singer_testing.emulators.jira.dataset import USERS
from safe_singer_testing.emulators.jira.render import FIELDS, Renderer, embedded

if TYPE_CHECKING:
    from safe_singer_testing.emulators.jira.server import JiraEmulator

GONE = "Issue does not exist or you do not have permission to see it."


class ApiError(Exception):
    """An answer other than 200: status, JSON body (or HTML text), extra headers."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}


def errors(*messages: str) -> dict[str, Any]:
    return {"errorMessages": list(messages), "errors": {}}


Route = Callable[["JiraEmulator", Renderer, dict[str, str], dict[str, Any], re.Match[str]], Any]
_ROUTES: list[tuple[str, re.Pattern[str], Route]] = []


def route(method: str, pattern: str) -> Callable[[Route], Route]:
    def register(func: Route) -> Route:
        _ROUTES.append((method, re.compile(f"^{pattern}$"), func))
        return func

    return register


def dispatch(
    emulator: JiraEmulator, method: str, path: str, params: dict[str, str], body: dict[str, Any]
) -> Any:
    api_match = re.match(r"^/rest/api/(2|3|latest)/", path)
    api = "3" if not api_match or api_match.group(1) == "latest" else api_match.group(1)
    tail = path[api_match.end() - 1 :] if api_match else path
    s = emulator.settings
    if s.deployment != "Cloud":
        api = "2"
        if api_match and api_match.group(1) == "3":
            raise ApiError(404, errors(f"null for uri: {path}"))
    comment_limit, history_limit = embedded(s.deployment, s.embedded_limit)
    renderer = Renderer(
        base_url=emulator.url,
        zone=s.time_zone,
        api=api,
        comment_limit=comment_limit,
        history_limit=history_limit,
    )
    for want, pattern, func in _ROUTES:
        match = pattern.match(tail)
        if match and want == method:
            return func(emulator, renderer, params, body, match)
    raise ApiError(404, errors(f"No resource for {method} {path}."))


def _int(params: dict[str, Any], name: str, default: int) -> int:
    try:
        return int(params.get(name, default))
    except (TypeError, ValueError) as exc:
        raise ApiError(400, errors(f"Parameter '{name}' must be a number.")) from exc


def _paged(items: list[Any], params: dict[str, str], cap: int, default: int = 50) -> dict[str, Any]:
    start = _int(params, "startAt", 0)
    size = min(_int(params, "maxResults", default), cap)
    page = items[start : start + size]
    return {
        "startAt": start,
        "maxResults": size,
        "total": len(items),
        "isLast": start + size >= len(items),
        "values": page,
    }


# -- site ---------------------------------------------------------------------------------
# Permissions required: none (anonymous access allowed); reference:
# https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-server-info/#api-rest-api-3-serverinfo-get
@route("GET", r"/serverInfo")
def server_info(em: JiraEmulator, r: Renderer, p: dict[str, str], b: Any, m: Any) -> Any:
    cloud = em.settings.deployment == "Cloud"
    return {
        "baseUrl": em.url,
        "deploymentType": em.settings.deployment,
        "version": "1001.0.0-SNAPSHOT" if cloud else f"{em.settings.dc_major_version}.12.2",
        "buildNumber": 100_280,
        "serverTime": r.time(em.now_ms()),
        "serverTitle": "Jira emulator",
    }


@route("GET", r"/myself")
def myself(em: JiraEmulator, r: Renderer, p: dict[str, str], b: Any, m: Any) -> Any:
    return {
        "accountId": "bot-001",
        "emailAddress": em.settings.email,
        "displayName": "Sync Bot",
        "active": True,
        "timeZone": em.settings.time_zone,
        "locale": "en_US",
    }


@route("GET", r"/field")
def fields(em: JiraEmulator, r: Renderer, p: dict[str, str], b: Any, m: Any) -> Any:
    return FIELDS


@route("GET", r"/project/search")
def project_search(em: JiraEmulator, r: Renderer, p: dict[str, str], b: Any, m: Any) -> Any:
    _cloud_only(em, "/rest/api/2/project/search")
    catalog.fault(em, "/project/search", p)
    return _paged(_browsable_projects(em, r), p, cap=50)


@route("GET", r"/project")
def project_list(em: JiraEmulator, r: Renderer, p: dict[str, str], b: Any, m: Any) -> Any:
    return _browsable_projects(em, r)


def _browsable_projects(em: JiraEmulator, r: Renderer) -> list[dict[str, Any]]:
    """Jira lists only the projects the user may browse."""
    hidden = em.dataset.unbrowsable
    return [r.project(k, n) for n, k in enumerate(em.settings.projects) if k not in hidden]


@route("GET", r"/users/search")
def users(em: JiraEmulator, r: Renderer, p: dict[str, str], b: Any, m: Any) -> Any:
    _cloud_only(em, "/rest/api/2/users/search")
    return _paged([r.user(u) for u in USERS], p, cap=100)["values"]


@route("GET", r"/user/search")
def users_server(em: JiraEmulator, r: Renderer, p: dict[str, str], b: Any, m: Any) -> Any:
    """Server/DC: ``user/search?username=.`` (``.`` matches every user), startAt paging."""
    if em.settings.deployment == "Cloud":
        raise ApiError(400, errors("The query parameter 'query' is required."))
    if not p.get("username"):
        raise ApiError(400, errors("The username query parameter was not provided"))
    return _paged([r.user(u) for u in USERS], p, cap=100)["values"]


# -- search -------------------------------------------------------------------------------
def _fields_param(value: Any) -> list[str] | None:
    if value is None or value == "":
        return None
    items = value if isinstance(value, list) else str(value).split(",")
    names = [f.strip() for f in items if f.strip()]
    return None if names in ([], ["id"]) else names


def _query(em: JiraEmulator, text: str) -> jql.Query:
    try:
        return jql.parse(text, em.settings.time_zone, em.now_ms())
    except jql.JqlError as exc:
        raise ApiError(400, errors(str(exc))) from exc


def _search(
    em: JiraEmulator, query: jql.Query, reconcile: set[int], text: str, limit: int | None = None
) -> list[Any]:
    try:
        return em.dataset.search(query, reconcile, cache_key=text, limit=limit)
    except jql.JqlError as exc:
        raise ApiError(400, errors(str(exc))) from exc


def _cloud_only(em: JiraEmulator, path: str) -> None:
    if em.settings.deployment != "Cloud":
        raise ApiError(404, errors(f"null for uri: {path}"))


@route("GET", r"/search/jql")
@route("POST", r"/search/jql")
def search_jql(em: JiraEmulator, r: Renderer, p: dict[str, str], b: Any, m: Any) -> Any:
    if em.settings.deployment != "Cloud":
        raise ApiError(404, errors("null for uri: /rest/api/2/search/jql"))
    args = {**p, **b}
    text = str(args.get("jql", ""))
    query = _query(em, text)
    if not query.bounded:
        raise ApiError(
            400,
            errors(
                "Unbounded JQL queries are not allowed here. "
                "Please add a search restriction to your query."
            ),
        )
    wanted = _fields_param(args.get("fields"))
    expand = str(args.get("expand") or "")
    fault = em.settings.listing_fault
    if fault and not wanted:
        if fault == "error":
            raise ApiError(500, errors("Internal server error."))
        return {"issues": [], "isLast": True} if fault == "empty" else {}
    # "The greatest number of items returned per page is achieved when requesting id or key
    # only. It returns max 5000 issues." (search/jql, Jira Cloud REST v3)
    cap = em.settings.page_cap_fields if wanted else em.settings.page_cap_ids
    asked = _int(args, "maxResults", 50)
    token = args.get("nextPageToken")
    key = f"{text}|{wanted}|{asked}"
    if token and em.settings.expire_token_once and em.once("expire"):
        raise ApiError(400, errors("The provided next page token is invalid or expired."))
    offset = em.tokens.read(str(token), key) if token else 0
    size = em.page_size(asked, cap, key, offset)
    reconcile = {int(i) for i in args.get("reconcileIssues") or []}
    # "Read-after-write is only supported for up to 50 issues using the reconcileIssues
    # param" (JRACLOUD-96208; https://developer.atlassian.com/cloud/jira/platform/
    # search-and-reconcile/): more is refused here, the harsher reading
    if len(reconcile) > 50:
        raise ApiError(400, errors("reconcileIssues accepts at most 50 issue ids."))
    # no `total` on this endpoint: the page and whether one more issue follows suffice
    found = _search(em, query, reconcile, text, limit=offset + size + 1)
    page = found[offset : offset + size]
    if wanted and len(page) > 1 and em.settings.omit_issue_once and em.once("omit"):
        page = page[:1] + page[2:]
    answer: dict[str, Any] = {
        "issues": [r.issue(i, em.settings.projects, wanted, expand) for i in page]
    }
    last = offset + size >= len(found)
    if not last:
        repeat = token and em.settings.repeat_token_once and em.once("repeat")
        answer["nextPageToken"] = token if repeat else em.tokens.issue(key, offset + size)
    every = em.settings.omit_is_last_every
    if not (last and every and em.stats.searches % every == 0):
        answer["isLast"] = last
    em.after_search()
    return answer


@route("GET", r"/search")
@route("POST", r"/search")
def search_offset(em: JiraEmulator, r: Renderer, p: dict[str, str], b: Any, m: Any) -> Any:
    if em.settings.deployment == "Cloud":
        raise ApiError(
            410,
            errors(
                "The requested API has been removed. Please migrate to the "
                "/rest/api/3/search/jql API."
            ),
        )
    args = {**p, **b}
    query = _query(em, str(args.get("jql", "")))
    wanted = _fields_param(args.get("fields")) or ["*navigable"]
    found = _search(em, query, set(), str(args.get("jql", "")))
    paged = _paged(found, args, cap=em.settings.page_cap_fields)
    issues = [
        r.issue(i, em.settings.projects, wanted, str(args.get("expand") or ""))
        for i in paged.pop("values")
    ]
    paged.pop("isLast")
    em.after_search()
    return {**paged, "issues": issues}


# ``POST /rest/api/3/issue/bulkfetch`` ("Bulk fetch issues", Jira Cloud REST v3,
# https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-issues/
# #api-rest-api-3-issue-bulkfetch-post): "By default you can request up to 100 issues in a
# single call. You can request up to 1000 issues ... when the fields parameter explicitly
# names at least one field to include" (not only exclusions, not ``*all``/``*navigable``),
# "no more than 100 fields are explicitly included", "none of the included fields returns
# multiple values (for example comment, worklog, or attachment)" and expand holds none of
# changelog, editmeta, operations, renderedFields, transitions, versionedRepresentations;
# "larger requests are rejected with a 400 error". Multi-valued here: those three and every
# field whose schema is an array (the harsher reading of "for example").
BULK_SMALL, BULK_LARGE = 100, 1000
BULK_HEAVY_EXPANDS = {
    "changelog",
    "editmeta",
    "operations",
    "renderedFields",
    "transitions",
    "versionedRepresentations",
}
MULTI_VALUED = {"comment", "worklog", "attachment"} | {
    f["id"] for f in FIELDS if f["schema"]["type"] == "array"
}


def bulkfetch_limit(fields: Any, expand: Any) -> int:
    """How many ids one bulkfetch call may ask for, given its ``fields`` and ``expand``."""
    names = [str(f).strip() for f in fields or [] if str(f).strip()]
    included = [f for f in names if not f.startswith("-")]
    expands = {str(e).strip() for e in (expand if isinstance(expand, list) else [expand])}
    narrow = (
        bool(included)
        and len(included) <= 100
        and not {"*all", "*navigable"} & set(included)
        and not MULTI_VALUED & set(included)
        and not BULK_HEAVY_EXPANDS & expands
    )
    return BULK_LARGE if narrow else BULK_SMALL


@route("POST", r"/issue/bulkfetch")
def bulkfetch(em: JiraEmulator, r: Renderer, p: dict[str, str], b: Any, m: Any) -> Any:
    """Cloud's bulkfetch: 100 or 1,000 ids a call (above).

    Per its schema (BulkIssueResults): ``issueErrors`` lists issues Jira could not return
    "due to a retriable error or payload constraint"; issues "which aren't found or that the
    user doesn't have permission to view won't be returned in this list" - they are simply
    absent. Whether archived issues come back is not documented: here they are absent too
    (harsher: they look deleted unless read one by one).
    """
    _cloud_only(em, "/rest/api/3/issue/bulkfetch")
    wanted = list(b.get("issueIdsOrKeys") or [])
    limit = bulkfetch_limit(b.get("fields"), b.get("expand"))
    if not wanted or len(wanted) > limit:
        raise ApiError(400, errors(f"issueIdsOrKeys must hold between 1 and {limit} issues."))
    names = _fields_param(b.get("fields")) or ["*navigable"]
    found, issue_errors = [], []
    every = em.settings.bulkfetch_error_every
    all_fail = em.settings.bulkfetch_errors_once and em.once("bulkfetch-errors")
    for n, ident in enumerate(wanted, start=1):
        issue = em.dataset.find(str(ident))
        if all_fail or (every and n % every == 0):
            issue_errors.append({"id": str(ident), "errorMessage": "Retry the request."})
        elif issue is not None and issue.archived_ms is None:
            found.append(r.issue(issue, em.settings.projects, names, str(b.get("expand") or "")))
    return {"issues": found, "issueErrors": issue_errors}


def _issue_or_404(em: JiraEmulator, ident: str) -> Any:
    issue = em.dataset.find(ident)
    if issue is None:
        raise ApiError(404, errors(GONE))
    return issue


# Cloud's ``GET issue?expand=changelog`` "supplies the most recent 100 histories and there is
# no pagination" (pycontribs/jira#911; also pycontribs/jira#712, airbytehq/airbyte#33040):
# the rest only through the paged ``issue/{id}/changelog``.
CLOUD_ISSUE_HISTORY_CAP = 100


@route("GET", r"/issue/([^/]+)")
def issue_get(em: JiraEmulator, r: Renderer, p: dict[str, str], b: Any, m: Any) -> Any:
    """One issue, archived ones too (with ``archiveddate``/``archivedby``); the changelog
    expanded here is complete on Server/DC (no paged changelog endpoint there) and the most
    recent 100 histories on Cloud."""
    issue = _issue_or_404(em, m.group(1))
    body = r.issue(issue, em.settings.projects, ["*all"], p.get("expand", ""))
    if "changelog" in p.get("expand", ""):
        cap = em.settings.issue_changelog_cap
        if cap is None and em.settings.deployment == "Cloud":
            cap = CLOUD_ISSUE_HISTORY_CAP
        shown = issue.histories if cap is None else issue.histories[len(issue.histories) - cap :]
        body["changelog"] = {
            "startAt": 0,
            "maxResults": len(shown),
            "total": len(issue.histories),
            "histories": [r.history(h) for h in shown],
        }
    return body


@route("GET", r"/issue/([^/]+)/comment")
def comments(em: JiraEmulator, r: Renderer, p: dict[str, str], b: Any, m: Any) -> Any:
    issue = _issue_or_404(em, m.group(1))
    paged = _paged(
        [r.comment(issue, c) for c in issue.comments], p, cap=em.settings.comment_page_cap
    )
    paged.pop("isLast")
    return {**paged, "comments": paged.pop("values")}


@route("GET", r"/issue/([^/]+)/changelog")
def changelog(em: JiraEmulator, r: Renderer, p: dict[str, str], b: Any, m: Any) -> Any:
    _cloud_only(em, "/rest/api/2/issue/{id}/changelog")
    issue = _issue_or_404(em, m.group(1))
    return _paged(
        [r.history(h) for h in issue.histories], p, cap=em.settings.changelog_page_cap, default=100
    )


@route("POST", r"/changelog/bulkfetch")
def changelog_bulkfetch(em: JiraEmulator, r: Renderer, p: dict[str, str], b: Any, m: Any) -> Any:
    _cloud_only(em, "/rest/api/3/changelog/bulkfetch")
    wanted = [str(i) for i in b.get("issueIdsOrKeys") or []]
    if not wanted or len(wanted) > 1000:
        raise ApiError(400, errors("issueIdsOrKeys must hold between 1 and 1000 issues."))
    size = min(_int(b, "maxResults", 1000), em.settings.changelog_page_cap)
    pairs: list[tuple[str, Any]] = []
    for ident in wanted:
        issue = em.dataset.find(ident)
        if issue is not None:
            pairs.extend((str(issue.id), h) for h in issue.histories)
    key = "changelog|" + ",".join(wanted)
    token = b.get("nextPageToken")
    offset = em.tokens.read(str(token), key) if token else 0
    grouped: dict[str, list[Any]] = {}
    for issue_id, history in pairs[offset : offset + size]:
        grouped.setdefault(issue_id, []).append(r.history(history))
    answer: dict[str, Any] = {
        "issueChangeLogs": [{"issueId": k, "changeHistories": v} for k, v in grouped.items()]
    }
    if offset + size < len(pairs):
        answer["nextPageToken"] = em.tokens.issue(key, offset + size)
    return answer


# -- worklogs -----------------------------------------------------------------------------
def _worklog_changes(em: JiraEmulator, p: dict[str, str], items: list[tuple[int, int]]) -> Any:
    since = _int(p, "since", 0)
    until = p.get("until")
    rows = sorted(
        (ms, wid) for wid, ms in items if ms > since and (until is None or ms <= int(until))
    )
    page = rows[: em.settings.worklog_page_cap]
    last = len(page) == len(rows)
    answer: dict[str, Any] = {
        "values": [{"worklogId": wid, "updatedTime": ms, "properties": []} for ms, wid in page],
        "since": since,
        "until": page[-1][0] if page else since,
        "lastPage": last,
    }
    if not last:
        answer["nextPage"] = f"{em.url}/rest/api/3/worklog/updated?since={answer['until']}"
    return answer


@route("GET", r"/worklog/updated")
def worklogs_updated(em: JiraEmulator, r: Renderer, p: dict[str, str], b: Any, m: Any) -> Any:
    recent = em.now_ms() - 60_000  # like Jira: the last minute is left out
    with em.dataset.lock:
        items = [
            (w.id, w.updated_ms) for w in em.dataset.worklogs.values() if w.updated_ms <= recent
        ]
    return _worklog_changes(em, p, items)


@route("GET", r"/worklog/deleted")
def worklogs_deleted(em: JiraEmulator, r: Renderer, p: dict[str, str], b: Any, m: Any) -> Any:
    with em.dataset.lock:
        items = list(em.dataset.deleted_worklogs.items())
    return _worklog_changes(em, p, items)


@route("POST", r"/worklog/list")
def worklog_list(em: JiraEmulator, r: Renderer, p: dict[str, str], b: Any, m: Any) -> Any:
    ids = [int(i) for i in b.get("ids") or []]
    if not ids or len(ids) > 1000:
        raise ApiError(400, errors("The request must contain between 1 and 1000 worklog ids."))
    with em.dataset.lock:
        return [r.worklog(em.dataset.worklogs[i]) for i in ids if i in em.dataset.worklogs]


# -- agile --------------------------------------------------------------------------------
# https://developer.atlassian.com/cloud/jira/software/rest/api-group-board/#api-rest-agile-1-0-board-get
@route("GET", r"/rest/agile/1.0/board")
def boards(em: JiraEmulator, r: Renderer, p: dict[str, str], b: Any, m: Any) -> Any:
    return _paged([r.board(x, em.settings.projects) for x in em.dataset.boards], p, cap=50)


# https://developer.atlassian.com/cloud/jira/software/rest/api-group-board/#api-rest-agile-1-0-board-boardid-sprint-get
@route("GET", r"/rest/agile/1.0/board/(\d+)/sprint")
def sprints(em: JiraEmulator, r: Renderer, p: dict[str, str], b: Any, m: Any) -> Any:
    board = next((x for x in em.dataset.boards if x.id == int(m.group(1))), None)
    if board is None:
        raise ApiError(404, errors("Board does not exist."))
    if board.kind != "scrum":
        raise ApiError(400, errors("The board does not support sprints"))
    return _paged([r.sprint(s) for s in em.dataset.sprints if s.board_id == board.id], p, cap=50)


# endpoints modelled in their own modules register themselves on import
from safe_singer_testing.emulators.jira import access, admin, catalog  # noqa: E402, F401
