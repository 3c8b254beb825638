"""Reference lists every user may read, per-issue watchers / votes / remote links, and a
board's issues. Shapes and paging from Atlassian's references:
- Cloud REST v3, https://developer.atlassian.com/cloud/jira/platform/rest/v3/: ``GET
  /serverInfo``, ``/statuses/search`` (paged ``values``), ``/permissions`` (a map),
  ``/role`` (a bare list), ``/dashboard`` (``startAt``, ``dashboards``), ``/filter/search``
  (paged ``values``), ``/filter/defaultShareScope``, ``/group/bulk`` (paged ``values``),
  ``/issueLinkType`` (``issueLinkTypes``), ``/projectCategory`` (a bare list), ``/label``
  (paged strings), ``/issue/{id}/watchers``, ``/issue/{id}/votes``, ``/issue/{id}/remotelink``.
- Server / Data Center REST v2, https://docs.atlassian.com/software/jira/docs/api/REST/9.12.0/:
  the same except ``/groups/picker`` (``{"header", "total", "groups"}``, no paging) for
  groups, and none of ``/statuses/search``, ``/filter/search``, ``/label`` (404 there).
- Agile 1.0 ``GET /board/{id}/issue`` (``startAt``, ``issues``), both deployments.

The lists live in ``reference_data(em)``: tests delete rows from them, and make one endpoint
fail (``faults``) to prove a failed listing deletes nothing downstream.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from safe_singer_testing.emulators.jira.dataset import USERS
from safe_singer_testing.emulators.jira.people import voter_ids, watcher_ids
from safe_singer_testing.emulators.jira.render import Renderer
from safe_singer_testing.emulators.jira.routes import ApiError, _cloud_only, _paged, errors, route

if TYPE_CHECKING:
    from safe_singer_testing.emulators.jira.server import JiraEmulator

NOT_ADMIN = "You are not authorized to perform this action. Administrator privileges are required."


def admin_only(em: JiraEmulator) -> None:
    """403 for an API user without "Administer Jira" (``JiraSettings.admin = False``)."""
    if not em.settings.admin:
        raise ApiError(403, errors(NOT_ADMIN))


@dataclass
class ReferenceData:
    """What the lists hold; rows are the API's JSON minus ``self`` (added when rendered)."""

    issue_link_types: list[dict[str, Any]] = field(
        default_factory=lambda: [
            {"id": str(10_000 + n), "name": name, "inward": inward, "outward": outward}
            for n, (name, inward, outward) in enumerate(
                (
                    ("Blocks", "is blocked by", "blocks"),
                    ("Cloners", "is cloned by", "clones"),
                    ("Duplicate", "is duplicated by", "duplicates"),
                    ("Relates", "relates to", "relates to"),
                )
            )
        ]
    )
    project_categories: list[dict[str, Any]] = field(
        default_factory=lambda: [
            {"id": str(10_000 + n), "name": name, "description": f"{name} projects"}
            for n, name in enumerate(("Engineering", "Operations", "Sales"))
        ]
    )
    dashboards: list[dict[str, Any]] = field(
        default_factory=lambda: [
            {"id": str(10_000 + n), "name": f"Dashboard {n}", "isFavourite": n % 2 == 0}
            | {"popularity": n, "sharePermissions": [{"type": "global"}], "editPermissions": []}
            for n in range(7)
        ]
    )
    filters: list[dict[str, Any]] = field(
        default_factory=lambda: [
            {"id": str(10_100 + n), "name": f"Filter {n}", "jql": f"project = P{n}"}
            | {"favourite": False, "favouritedCount": n, "description": ""}
            | {"sharePermissions": [], "editPermissions": [], "subscriptions": []}
            for n in range(5)
        ]
    )
    groups: list[str] = field(
        default_factory=lambda: ["jira-administrators", "jira-software-users", "team-a"]
    )
    labels: list[str] = field(default_factory=lambda: ["backend", "frontend", "urgent"])
    # request path (after /rest/api/N) -> "error", "error_after_first", "forbidden" or
    # "malformed" ({})
    faults: dict[str, str] = field(default_factory=dict)


def reference_data(em: JiraEmulator) -> ReferenceData:
    """The emulator's reference lists (made on first use)."""
    held: ReferenceData | None = em.__dict__.get("_reference_data")
    if held is None:
        held = em.__dict__["_reference_data"] = ReferenceData()
    return held


def fault(em: JiraEmulator, path: str, params: dict[str, str]) -> None:
    """``error``: 500 on every page; ``error_after_first``: on every page but the first;
    ``forbidden``: 403 (the user lost a permission)."""
    kind = reference_data(em).faults.get(path)
    if kind == "forbidden":
        raise ApiError(403, errors("You do not have permission to view this resource."))
    if kind == "error" or (kind == "error_after_first" and int(params.get("startAt", 0)) > 0):
        raise ApiError(500, errors("Internal server error."))
    if kind == "malformed":
        raise Malformed({})


class Malformed(ApiError):
    """A 200 whose body is not the documented shape (what a proxy can make of it)."""

    def __init__(self, body: Any) -> None:
        super().__init__(200, body)


def _with_self(r: Renderer, kind: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**row, "self": f"{r.base_url}/rest/api/{r.api}/{kind}/{row['id']}"} for row in rows]


# https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-status/#api-rest-api-3-statuses-search-get
@route("GET", r"/statuses/search")
def statuses_search(em: JiraEmulator, r: Renderer, p: dict[str, str], b: Any, m: Any) -> Any:
    from safe_singer_testing.emulators.jira.dataset import STATUSES

    _cloud_only(em, "/rest/api/2/statuses/search")
    admin_only(em)  # "Administer projects" or "Administer Jira"; the emulator models the latter
    rows = [
        {"id": str(n + 1), "name": name, "statusCategory": "IN_PROGRESS" if n else "TODO"}
        | {"scope": {"type": "GLOBAL"}, "description": ""}
        for n, name in enumerate(STATUSES)
    ]
    return _paged(rows, p, cap=200)


PERMISSIONS = {
    "BROWSE_PROJECTS": ("Browse Projects", "PROJECT"),
    "CREATE_ISSUES": ("Create Issues", "PROJECT"),
    "ADMINISTER": ("Administer Jira", "GLOBAL"),
}


# https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-permissions/#api-rest-api-3-permissions-get
@route("GET", r"/permissions")
def permissions(em: JiraEmulator, r: Renderer, p: dict[str, str], b: Any, m: Any) -> Any:
    return {
        "permissions": {
            key: {"key": key, "name": name, "type": kind, "description": f"{name}."}
            for key, (name, kind) in PERMISSIONS.items()
        }
    }


ROLES = ("Administrators", "Developers", "Viewers")


# Permissions required: Administer Jira; reference:
# https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-project-roles/#api-rest-api-3-role-get
@route("GET", r"/role")
def roles(em: JiraEmulator, r: Renderer, p: dict[str, str], b: Any, m: Any) -> Any:
    if em.settings.deployment == "Cloud":
        admin_only(em)  # Server/DC's page states no permission for it
    rows = [
        {"id": 10_002 + n, "name": name, "description": f"{name} of a project"}
        | {"scope": {"type": "GLOBAL"}, "admin": n == 0, "default": n == 2}
        for n, name in enumerate(ROLES)
    ]
    return _with_self(r, "role", rows)


# Permissions required: none (anonymous access allowed); reference:
# https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-dashboards/#api-rest-api-3-dashboard-get
@route("GET", r"/dashboard")
def dashboards(em: JiraEmulator, r: Renderer, p: dict[str, str], b: Any, m: Any) -> Any:
    fault(em, "/dashboard", p)
    rows = _with_self(r, "dashboard", reference_data(em).dashboards)
    paged = _paged(rows, p, cap=3, default=20)  # a small cap: the tap must page
    paged.pop("isLast")
    return {**paged, "dashboards": paged.pop("values")}


# https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-filters/#api-rest-api-3-filter-search-get
@route("GET", r"/filter/search")
def filter_search(em: JiraEmulator, r: Renderer, p: dict[str, str], b: Any, m: Any) -> Any:
    _cloud_only(em, "/rest/api/2/filter/search")
    owner = r.user(USERS[0])
    rows = [{**f, "owner": owner} for f in reference_data(em).filters]
    return _paged(_with_self(r, "filter", rows), p, cap=2)


# https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-filter-sharing/#api-rest-api-3-filter-defaultsharescope-get
@route("GET", r"/filter/defaultShareScope")
def default_share_scope(em: JiraEmulator, r: Renderer, p: dict[str, str], b: Any, m: Any) -> Any:
    return {"scope": "PRIVATE"}


def _group(name: str) -> dict[str, Any]:
    return {"name": name, "groupId": f"gid-{name}"}


# Permissions required: Browse users and groups; reference:
# https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-groups/#api-rest-api-3-group-bulk-get
@route("GET", r"/group/bulk")
def group_bulk(em: JiraEmulator, r: Renderer, p: dict[str, str], b: Any, m: Any) -> Any:
    _cloud_only(em, "/rest/api/2/group/bulk")
    return _paged([_group(g) for g in reference_data(em).groups], p, cap=2)


# Server/DC: https://docs.atlassian.com/software/jira/docs/api/REST/9.12.0/#api/2/groups-findGroups
@route("GET", r"/groups/picker")
def groups_picker(em: JiraEmulator, r: Renderer, p: dict[str, str], b: Any, m: Any) -> Any:
    names = reference_data(em).groups
    shown = names[: int(p.get("maxResults", 20))]
    return {
        "header": f"Showing {len(shown)} of {len(names)} matching groups",
        "total": len(names),
        "groups": [{"name": g, "html": g, "labels": []} for g in shown],
    }


# Permissions required: Browse projects; reference:
# https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-issue-link-types/#api-rest-api-3-issuelinktype-get
@route("GET", r"/issueLinkType")
def issue_link_types(em: JiraEmulator, r: Renderer, p: dict[str, str], b: Any, m: Any) -> Any:
    fault(em, "/issueLinkType", p)
    return {"issueLinkTypes": _with_self(r, "issueLinkType", reference_data(em).issue_link_types)}


# https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-project-categories/#api-rest-api-3-projectcategory-get
@route("GET", r"/projectCategory")
def project_categories(em: JiraEmulator, r: Renderer, p: dict[str, str], b: Any, m: Any) -> Any:
    fault(em, "/projectCategory", p)
    return _with_self(r, "projectCategory", reference_data(em).project_categories)


# https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-labels/#api-rest-api-3-label-get
@route("GET", r"/label")
def labels(em: JiraEmulator, r: Renderer, p: dict[str, str], b: Any, m: Any) -> Any:
    _cloud_only(em, "/rest/api/2/label")
    return _paged(list(reference_data(em).labels), p, cap=2)


# -- per issue: derived from the issue id, so a test knows the truth ---------------------
def remote_link_ids(issue_id: int) -> list[int]:
    return [issue_id * 10 + n for n in range(issue_id % 3)]


def _live_issue(em: JiraEmulator, ident: str) -> Any:
    issue = em.dataset.find(ident)
    if issue is None:
        raise ApiError(404, errors("Issue does not exist or you do not have permission to see it."))
    return issue


# https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-issue-watchers/#api-rest-api-3-issue-issueidorkey-watchers-get
@route("GET", r"/issue/([^/]+)/watchers")
def watchers(em: JiraEmulator, r: Renderer, p: dict[str, str], b: Any, m: Any) -> Any:
    issue = _live_issue(em, m.group(1))
    users = [r.user(u) for u in watcher_ids(issue.id)]
    return {
        "self": f"{r.base_url}/rest/api/{r.api}/issue/{issue.key}/watchers",
        "isWatching": False,
        "watchCount": len(users),
        "watchers": users,
    }


# https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-issue-votes/#api-rest-api-3-issue-issueidorkey-votes-get
@route("GET", r"/issue/([^/]+)/votes")
def votes(em: JiraEmulator, r: Renderer, p: dict[str, str], b: Any, m: Any) -> Any:
    issue = _live_issue(em, m.group(1))
    voters = [r.user(u) for u in voter_ids(issue.id)]
    return {
        "self": f"{r.base_url}/rest/api/{r.api}/issue/{issue.key}/votes",
        "votes": len(voters),
        "hasVoted": False,
        "voters": voters,
    }


# https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-issue-remote-links/#api-rest-api-3-issue-issueidorkey-remotelink-get
@route("GET", r"/issue/([^/]+)/remotelink")
def remote_links(em: JiraEmulator, r: Renderer, p: dict[str, str], b: Any, m: Any) -> Any:
    issue = _live_issue(em, m.group(1))
    return [
        {
            "id": link_id,
            "self": f"{r.base_url}/rest/api/{r.api}/issue/{issue.key}/remotelink/{link_id}",
            "globalId": f"system=https://wiki.example.com&id={link_id}",
            "application": {"type": "com.atlassian.confluence", "name": "Wiki"},
            "relationship": "mentioned in",
            "object": {"url": f"https://wiki.example.com/{link_id}", "title": f"Page {link_id}"},
        }
        for link_id in remote_link_ids(issue.id)
    ]


# https://developer.atlassian.com/cloud/jira/software/rest/api-group-board/#api-rest-agile-1-0-board-boardid-issue-get
@route("GET", r"/rest/agile/1.0/board/(\d+)/issue")
def board_issues(em: JiraEmulator, r: Renderer, p: dict[str, str], b: Any, m: Any) -> Any:
    """A board's issues: here every unarchived issue of its project, by id."""
    board = next((x for x in em.dataset.boards if x.id == int(m.group(1))), None)
    if board is None:
        raise ApiError(404, errors("Board does not exist."))
    with em.dataset.lock:
        rows = [
            {"id": str(i.id), "key": i.key, "fields": {"updated": r.time(i.updated_ms)}}
            for i in sorted(em.dataset.issues.values(), key=lambda i: i.id)
            if i.archived_ms is None and i.project == board.project
        ]
    paged = _paged(rows, p, cap=50)
    paged.pop("isLast")
    return {**paged, "issues": paged.pop("values")}


# -- Cloud's paged per-project lists and group members (what singer-io tap-jira reads) ----
@route("GET", r"/project/([^/]+)/version")
def versions_paged(em: JiraEmulator, r: Renderer, p: dict[str, str], b: Any, m: Any) -> Any:
    """Cloud ``GET /project/{id}/version``: the ``/versions`` list, startAt-paged."""
    from safe_singer_testing.emulators.jira.reference import versions

    _cloud_only(em, "/rest/api/2/project/{id}/version")
    return _paged(versions(em, r, p, b, m), p, cap=50)


@route("GET", r"/project/([^/]+)/component")
def components_paged(em: JiraEmulator, r: Renderer, p: dict[str, str], b: Any, m: Any) -> Any:
    """Cloud ``GET /project/{id}/component``: the ``/components`` list, startAt-paged."""
    from safe_singer_testing.emulators.jira.reference import components

    _cloud_only(em, "/rest/api/2/project/{id}/component")
    return _paged(components(em, r, p, b, m), p, cap=50)


@route("GET", r"/group/member")
def group_members(em: JiraEmulator, r: Renderer, p: dict[str, str], b: Any, m: Any) -> Any:
    """``GET /group/member?groupname=`` (paged ``values``): a group's users; 404 for a group
    that does not exist. Here ``jira-software-users`` holds every user, others the first 2."""
    name = p.get("groupname", "")
    if name not in reference_data(em).groups:
        raise ApiError(404, errors(f"Specified group does not exist: {name}"))
    members = USERS if name == "jira-software-users" else USERS[:2]
    return _paged([r.user(u) for u in members], p, cap=50)
