"""JSON shapes of Jira's REST API for the emulator's data, times in the user's zone."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from safe_singer_testing.emulators.jira.dataset import (
    STATUSES,
    USERS,
    Board,
    Comment,
    History,
    Issue,
    Sprint,
    Worklog,
)
from safe_singer_testing.emulators.jira.people import voter_ids, watcher_ids
from safe_singer_testing.emulators.jira.timefmt import render

FIELDS: list[dict[str, Any]] = [
    {"id": "summary", "name": "Summary", "custom": False, "schema": {"type": "string"}},
    {"id": "status", "name": "Status", "custom": False, "schema": {"type": "status"}},
    {"id": "project", "name": "Project", "custom": False, "schema": {"type": "project"}},
    {"id": "created", "name": "Created", "custom": False, "schema": {"type": "datetime"}},
    {"id": "updated", "name": "Updated", "custom": False, "schema": {"type": "datetime"}},
    {
        "id": "labels",
        "name": "Labels",
        "custom": False,
        "schema": {"type": "array", "items": "string"},
    },
    {"id": "assignee", "name": "Assignee", "custom": False, "schema": {"type": "user"}},
    {"id": "comment", "name": "Comment", "custom": False, "schema": {"type": "comments-page"}},
    {"id": "watches", "name": "Watchers", "custom": False, "schema": {"type": "watches"}},
    {"id": "votes", "name": "Votes", "custom": False, "schema": {"type": "votes"}},
    {
        "id": "customfield_10016",
        "name": "Story Points",
        "custom": True,
        "schema": {
            "type": "number",
            "custom": "com.atlassian.jira.plugin.system.customfieldtypes:float",
        },
    },
    {
        "id": "customfield_10030",
        "name": "Team",
        "custom": True,
        "schema": {
            "type": "option",
            "custom": "com.atlassian.jira.plugin.system.customfieldtypes:select",
        },
    },
    {
        "id": "customfield_10040",
        "name": "Review At",
        "custom": True,
        "schema": {
            "type": "datetime",
            "custom": "com.atlassian.jira.plugin.system.customfieldtypes:datetime",
        },
    },
]
for _field in FIELDS:
    _field["key"] = _field["id"]
    _field["navigable"] = _field["searchable"] = True


def embedded(deployment: str, override: int | None) -> tuple[int | None, int | None]:
    """How many comments and changelog histories an issue embeds (``None``: all of them).

    Server/DC embeds all: its comment field renders every comment the user may see
    (``CommentSystemField.getJsonFromIssue``: ``maxResults = total = comments.size()``) and
    ``expand=changelog`` every history (``ChangelogBeanBuilder.build``), in search and issue
    reads alike (Jira Server source). Cloud's search/jql returns at most 40 histories
    ("it's no longer possible to retrieve more than 40 changelog/history data": JRACLOUD-96459,
    quoting Atlassian's enhanced-search migration notes); how many comments Cloud embeds is
    documented nowhere, so 5, the harsher guess. ``override`` (a test's) sets both.
    """
    if override is not None:
        return override, override
    if deployment != "Cloud":
        return None, None
    return 5, 40


@dataclass(frozen=True)
class Renderer:
    base_url: str
    zone: str
    api: str
    comment_limit: int | None  # comments an issue embeds (None: all); see `embedded`
    history_limit: int | None  # changelog histories an issue embeds (None: all)

    def time(self, ms: int | None) -> str | None:
        return None if ms is None else render(ms, self.zone)

    def user(self, account_id: str | None) -> dict[str, Any] | None:
        if account_id is None:
            return None
        return {
            "accountId": account_id,
            "displayName": account_id.replace("-", " ").title(),
            "active": True,
            "timeZone": self.zone,
            "accountType": "atlassian",
        }

    def project(self, key: str, index: int) -> dict[str, Any]:
        return {
            "id": str(10_000 + index),
            "key": key,
            "name": f"Project {key}",
            "self": f"{self.base_url}/rest/api/{self.api}/project/{10_000 + index}",
            "projectTypeKey": "software",
            "simplified": False,
            "style": "classic",
        }

    def adf(self, text: str) -> dict[str, Any] | str:
        if self.api == "2":
            return text
        paragraph = {"type": "paragraph", "content": [{"type": "text", "text": text}]}
        return {"type": "doc", "version": 1, "content": [paragraph]}

    def comment(self, issue: Issue, comment: Comment) -> dict[str, Any]:
        return {
            "id": str(comment.id),
            "self": f"{self.base_url}/rest/api/{self.api}/issue/{issue.id}/comment/{comment.id}",
            "author": self.user(comment.author),
            "body": self.adf(comment.body),
            "created": self.time(comment.created_ms),
            "updated": self.time(comment.updated_ms),
        }

    def history(self, history: History) -> dict[str, Any]:
        return {
            "id": str(history.id),
            "author": self.user(history.author),
            "created": self.time(history.created_ms),
            "items": [
                {
                    "field": history.field,
                    "fieldtype": "jira",
                    "from": None,
                    "fromString": history.from_string,
                    "to": None,
                    "toString": history.to_string,
                }
            ],
        }

    def worklog(self, worklog: Worklog) -> dict[str, Any]:
        return {
            "id": str(worklog.id),
            "issueId": str(worklog.issue_id),
            "self": f"{self.base_url}/rest/api/{self.api}/issue/{worklog.issue_id}"
            f"/worklog/{worklog.id}",
            "author": self.user(worklog.author),
            "updateAuthor": self.user(worklog.author),
            "started": self.time(worklog.started_ms),
            "created": self.time(worklog.updated_ms),
            "updated": self.time(worklog.updated_ms),
            "timeSpentSeconds": worklog.seconds,
        }

    def issue_fields(self, issue: Issue, projects: tuple[str, ...]) -> dict[str, Any]:
        shown = issue.comments[: self.comment_limit]
        return {
            "summary": issue.summary,
            "status": {"name": issue.status, "id": str(1 + STATUSES.index(issue.status))},
            "project": self.project(issue.project, projects.index(issue.project)),
            "created": self.time(issue.created_ms),
            "updated": self.time(issue.updated_ms),
            "labels": issue.labels,
            "assignee": self.user(issue.assignee),
            "comment": {
                "comments": [self.comment(issue, c) for c in shown],
                "self": "",
                "maxResults": len(shown),
                "total": len(issue.comments),
                "startAt": 0,
            },
            # summaries of /issue/{id}/watchers and /votes, as search renders them
            "watches": {
                "self": f"{self.base_url}/rest/api/{self.api}/issue/{issue.key}/watchers",
                "watchCount": len(watcher_ids(issue.id)),
                "isWatching": False,
            },
            "votes": {
                "self": f"{self.base_url}/rest/api/{self.api}/issue/{issue.key}/votes",
                "votes": len(voter_ids(issue.id)),
                "hasVoted": False,
            },
            "customfield_10016": issue.points,
            "customfield_10030": {"value": issue.team, "id": "1" if issue.team == "red" else "2"},
            "customfield_10040": self.time(issue.review_ms),
            **(
                {"archiveddate": self.time(issue.archived_ms), "archivedby": self.user(USERS[0])}
                if issue.archived_ms is not None
                else {}
            ),
        }

    def issue(
        self, issue: Issue, projects: tuple[str, ...], fields: list[str] | None, expand: str
    ) -> dict[str, Any]:
        """An issue as search and bulkfetch return it; ``fields=None`` means ids only."""
        body: dict[str, Any] = {"id": str(issue.id)}
        if fields is None:
            return body
        body["key"] = issue.key
        body["self"] = f"{self.base_url}/rest/api/{self.api}/issue/{issue.id}"
        every = self.issue_fields(issue, projects)
        if not ({"*all", "*navigable"} & set(fields)):
            every = {k: v for k, v in every.items() if k in fields}
        body["fields"] = every
        if "changelog" in expand:
            shown = issue.histories[: self.history_limit]
            body["changelog"] = {
                "startAt": 0,
                "maxResults": len(shown),
                "total": len(issue.histories),
                "histories": [self.history(h) for h in shown],
            }
        if "transitions" in expand:
            body["transitions"] = [
                {"id": str(11 * (n + 1)), "name": name, "to": {"name": name, "id": str(n + 1)}}
                for n, name in enumerate(STATUSES)
                if name != issue.status
            ]
        return body

    def board(self, board: Board, projects: tuple[str, ...]) -> dict[str, Any]:
        return {
            "id": board.id,
            "name": board.name,
            "type": board.kind,
            "self": f"{self.base_url}/rest/agile/1.0/board/{board.id}",
            "location": {
                "projectKey": board.project,
                "projectId": 10_000 + projects.index(board.project),
            },
        }

    def sprint(self, sprint: Sprint) -> dict[str, Any]:
        return {
            "id": sprint.id,
            "originBoardId": sprint.board_id,
            "name": sprint.name,
            "state": sprint.state,
            "startDate": self.time(sprint.start_ms),
            "self": f"{self.base_url}/rest/agile/1.0/sprint/{sprint.id}",
        }
