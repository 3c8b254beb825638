"""The records a Jira site holds, as the emulator keeps them (rendered by ``render``)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

STATUSES = ("To Do", "In Progress", "In Review", "Done")
USERS = tuple(f"user-{n:03d}" for n in range(1, 13))


@dataclass
class Comment:
    id: int
    author: str
    body: str
    created_ms: int
    updated_ms: int


@dataclass
class History:
    id: int
    author: str
    created_ms: int
    field: str
    from_string: str | None
    to_string: str | None


@dataclass
class Worklog:
    id: int
    issue_id: int
    author: str
    started_ms: int
    seconds: int
    updated_ms: int


@dataclass
class Issue:
    id: int
    key: str
    project: str
    created_ms: int
    updated_ms: int
    summary: str
    status: str
    assignee: str | None
    labels: list[str]
    points: float | None
    team: str
    review_ms: int | None
    comments: list[Comment] = field(default_factory=list)
    histories: list[History] = field(default_factory=list)
    archived_ms: int | None = None
    old_keys: list[str] = field(default_factory=list)

    @property
    def number(self) -> int:
        return int(self.key.rsplit("-", 1)[1])

    def snapshot(self) -> Issue:
        return replace(
            self,
            labels=list(self.labels),
            comments=list(self.comments),
            histories=list(self.histories),
            old_keys=list(self.old_keys),
        )


@dataclass(frozen=True)
class Board:
    id: int
    name: str
    kind: str
    project: str


@dataclass(frozen=True)
class Sprint:
    id: int
    board_id: int
    name: str
    state: str
    start_ms: int
