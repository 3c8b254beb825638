"""Reference data endpoints: statuses, priorities, resolutions, issue types, project versions
and components, and the issues of a sprint. Same paths on Cloud (v2/v3) and Server/DC (v2):
GET /status, /priority, /resolution, /issuetype, /project/{id}/versions (a plain list),
/project/{id}/components, and Agile GET /rest/agile/1.0/sprint/{id}/issue (startAt paging)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from safe_singer_testing.emulators.jira.dataset import STATUSES
from safe_singer_testing.emulators.jira.render import Renderer
from safe_singer_testing.emulators.jira.routes import ApiError, _paged, errors, route

if TYPE_CHECKING:
    from safe_singer_testing.emulators.jira.server import JiraEmulator

PRIORITIES = ("Highest", "High", "Medium", "Low")
RESOLUTIONS = ("Done", "Won't Do", "Duplicate")
ISSUE_TYPES = ("Task", "Bug", "Story", "Epic")


def _named(r: Renderer, kind: str, names: tuple[str, ...]) -> list[dict[str, Any]]:
    return [
        {"id": str(n + 1), "name": name, "self": f"{r.base_url}/rest/api/{r.api}/{kind}/{n + 1}"}
        for n, name in enumerate(names)
    ]


@route("GET", r"/status")
def statuses(em: JiraEmulator, r: Renderer, p: dict[str, str], b: Any, m: Any) -> Any:
    return _named(r, "status", STATUSES)


@route("GET", r"/priority")
def priorities(em: JiraEmulator, r: Renderer, p: dict[str, str], b: Any, m: Any) -> Any:
    return _named(r, "priority", PRIORITIES)


@route("GET", r"/resolution")
def resolutions(em: JiraEmulator, r: Renderer, p: dict[str, str], b: Any, m: Any) -> Any:
    return _named(r, "resolution", RESOLUTIONS)


@route("GET", r"/issuetype")
def issue_types(em: JiraEmulator, r: Renderer, p: dict[str, str], b: Any, m: Any) -> Any:
    return [{**t, "subtask": False} for t in _named(r, "issuetype", ISSUE_TYPES)]


def _project(em: JiraEmulator, ident: str) -> tuple[int, str]:
    for n, key in enumerate(em.settings.projects):
        if ident in (key, str(10_000 + n)):
            return 10_000 + n, key
    raise ApiError(404, errors(f"No project could be found with key '{ident}'."))


@route("GET", r"/project/([^/]+)/versions")
def versions(em: JiraEmulator, r: Renderer, p: dict[str, str], b: Any, m: Any) -> Any:
    project_id, key = _project(em, m.group(1))
    return [
        {"id": str(project_id * 10 + v), "name": f"{key} 1.{v}", "projectId": project_id}
        | {"released": v == 0, "archived": False}
        for v in range(2)
    ]


@route("GET", r"/project/([^/]+)/components")
def components(em: JiraEmulator, r: Renderer, p: dict[str, str], b: Any, m: Any) -> Any:
    project_id, key = _project(em, m.group(1))
    return [
        {"id": str(project_id * 10 + c), "name": name, "project": key, "projectId": project_id}
        for c, name in enumerate(("api", "ui"))
    ]


@route("GET", r"/rest/agile/1.0/sprint/(\d+)/issue")
def sprint_issues(em: JiraEmulator, r: Renderer, p: dict[str, str], b: Any, m: Any) -> Any:
    """A sprint's issues (searchable ones, like every Agile list): here an issue of a scrum
    board's project is in sprint ``issue id % 3 + 1`` of that board."""
    sprint = next((s for s in em.dataset.sprints if s.id == int(m.group(1))), None)
    if sprint is None:
        raise ApiError(404, errors("Sprint does not exist."))
    board = next(x for x in em.dataset.boards if x.id == sprint.board_id)
    with em.dataset.lock:
        members = [
            {"id": str(i.id), "key": i.key}
            for i in sorted(em.dataset.issues.values(), key=lambda i: i.id)
            if i.archived_ms is None
            and i.project == board.project
            and board.id * 100 + i.id % 3 + 1 == sprint.id
        ]
    paged = _paged(members, p, cap=50)
    return {**paged, "issues": paged.pop("values")}
