"""Who watches and who voted for an issue: derived from its id, so the emulator's answers
(``/issue/{id}/watchers``, ``/votes``, the issue's ``watches`` / ``votes`` fields) agree and a
test knows the truth."""

from __future__ import annotations

from safe_singer_testing.emulators.jira.dataset import USERS


def watcher_ids(issue_id: int) -> list[str]:
    return list(USERS[issue_id % 5 : issue_id % 5 + issue_id % 3])


def voter_ids(issue_id: int) -> list[str]:
    return list(USERS[issue_id % 7 : issue_id % 7 + issue_id % 2])
