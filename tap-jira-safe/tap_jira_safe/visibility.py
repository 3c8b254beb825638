"""A 404 proves a delete only in a project the API user may still browse.

Jira answers 404 alike for an issue that was deleted and for one the user may not see
("Issue does not exist or you do not have permission to see it."), and search leaves out both.
So a permission change (a project's permission scheme edited, the API user removed from a
group) would make every issue of a project look deleted. The tap therefore remembers the
project of each known issue (state ``issue_projects``: ``{project id: {"key": KEY,
"issue_ids": [[first, last], ...]}}``) and, before it takes a 404 as a delete, asks Jira
whether the user still has Browse Projects there (``GET /mypermissions?projectId=...&
permissions=BROWSE_PROJECTS``: ``havePermission: true``; ``false`` or a 404 means no). The
issues of a project it may not browse are kept, named in one WARNING per project, unless
the project is listed in ``confirm_deleted_projects``. While the project of some known issue
is not on record (states written before this rule), the run's id listing asks for each
issue's project too; an issue whose project is still unknown is a delete only when every
project known or configured is browsable.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from tap_jira_safe.errors import JiraNotFound
from tap_jira_safe.idruns import decode_ids, encode_ids

BROWSE = "BROWSE_PROJECTS"


@dataclass(frozen=True)
class Project:
    """A project as the tap knows it: its id once an issue of it was read, and its key."""

    id: str | None
    key: str

    def named(self, names: Iterable[str]) -> bool:
        return bool({self.key, self.id} & set(names))

    def __str__(self) -> str:
        return f"{self.key} (id {self.id})" if self.id else self.key


class IssueProjects:
    """Which project each known issue was last read in."""

    def __init__(self, state: dict[str, Any], configured: tuple[str, ...]) -> None:
        self._keys: dict[str, str] = {}  # project id -> key
        self._of: dict[int, str] = {}  # issue id -> project id
        for project_id, entry in (state.get("issue_projects") or {}).items():
            self._keys[project_id] = str(entry["key"])
            self._of.update(dict.fromkeys(decode_ids(entry["issue_ids"]), project_id))
        self._configured = configured

    def learn(self, raw: dict[str, Any]) -> None:
        """Note the project of an issue read from Jira (a search row or a direct read)."""
        project = (raw.get("fields") or {}).get("project") or {}
        if project.get("id") is not None and project.get("key"):
            self._keys[str(project["id"])] = str(project["key"])
            self._of[int(raw["id"])] = str(project["id"])

    def lacks(self, issue_ids: set[int]) -> bool:
        """Whether the project of any of these issues is not on record (then the next id
        listing asks for projects too: states from before this rule hold none)."""
        return not issue_ids <= self._of.keys()

    def save(self, state: dict[str, Any], known: set[int]) -> None:
        """Write the projects of the ``known`` issues (the others are gone from state)."""
        grouped: dict[str, list[int]] = {}
        for issue_id in known:
            if issue_id in self._of:
                grouped.setdefault(self._of[issue_id], []).append(issue_id)
        state["issue_projects"] = {
            project_id: {"key": self._keys[project_id], "issue_ids": encode_ids(ids)}
            for project_id, ids in sorted(grouped.items())
        }

    def suspects(self, issue_id: int) -> list[Project]:
        """The projects an issue may be in: its own, else every project known or configured."""
        project_id = self._of.get(issue_id)
        if project_id is not None:
            return [Project(project_id, self._keys[project_id])]
        known = [Project(i, k) for i, k in sorted(self._keys.items())]
        keys = {p.key for p in known}
        return known + [Project(None, k) for k in self._configured if k not in keys]


@dataclass
class NotFoundSplit:
    """404s sorted: proven deletes, and issues kept because their project is not browsable."""

    deleted: list[int]
    hidden: dict[Project, list[int]]


def split_not_found(
    owners: IssueProjects,
    not_found: list[int],
    can_browse: Callable[[Project], bool],
    confirmed: tuple[str, ...],
) -> NotFoundSplit:
    """A 404 is a delete where every project the issue may be in is browsable (or confirmed
    deleted); each project is asked once."""
    answers: dict[Project, bool] = {}
    split = NotFoundSplit([], {})
    for issue_id in not_found:
        blind = None
        for project in owners.suspects(issue_id):
            if project not in answers:
                answers[project] = project.named(confirmed) or can_browse(project)
            if not answers[project]:
                blind = project
                break
        if blind is None:
            split.deleted.append(issue_id)
        else:
            split.hidden.setdefault(blind, []).append(issue_id)
    return split


def can_browse(call: Callable[..., Any], api: str, project: Project) -> bool:
    """Whether the API user has Browse Projects in ``project`` now (``call`` is the stream's
    request with its retries; any answer but Jira's 404 or a clear yes/no stops the run)."""
    params = {"permissions": BROWSE}
    params["projectId" if project.id else "projectKey"] = project.id or project.key
    try:
        body = call("GET", f"{api}/mypermissions", params=params)
    except JiraNotFound:
        return False  # "not found or the user does not have permission to view the project"
    grant = (body.get("permissions") or {}).get(BROWSE) if isinstance(body, dict) else None
    return isinstance(grant, dict) and grant.get("havePermission") is True


def warn_hidden(logger: logging.Logger, hidden: dict[Project, list[int]]) -> None:
    """One WARNING per project whose issues were kept, naming it and what to do."""
    for project, ids in sorted(hidden.items(), key=lambda item: item[0].key):
        logger.warning(
            "issues: the API user cannot browse project %s now, so %d issue(s) of it that "
            "Jira answers 404 for are kept, not deleted (Jira answers 404 alike for a deleted "
            "issue and one the user may not see). Give the user Browse Projects on %s again; "
            "if the project was deleted, add %s to confirm_deleted_projects.",
            project,
            len(ids),
            project.key,
            project.key,
        )
