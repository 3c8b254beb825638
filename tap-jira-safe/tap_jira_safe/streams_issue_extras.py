"""Per-issue children read only for the issues the ``issues`` stream emitted this run (the
issues changed in its window): watchers, votes, remote links. Jira reads none of them in
bulk (Cloud v3 and Server/DC v2: ``GET /issue/{id}/watchers``, ``/votes``, ``/remotelink``),
so each costs one request per issue, ``parallel_requests`` at a time. An issue deleted
between the search and its read answers 404: it has no rows here, and the ``issues``
stream's delete proof removes it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

from singer_sdk.helpers.types import Context
from typing_extensions import override

from tap_jira_safe.errors import JiraBadAnswer, JiraNotFound
from tap_jira_safe.listing import schema
from tap_jira_safe.streams import IssueChildStream


class PerIssueStream(IssueChildStream):
    """One ``GET {api}/issue/{id}/<resource>`` per issue of the batch."""

    resource: ClassVar[str]

    @override
    def get_records(self, context: Context | None) -> Iterator[dict[str, Any]]:
        issue_ids = list((context or {}).get("issue_ids", []))
        if not issue_ids:
            return
        workers = max(1, self.settings.parallel_requests)
        self.requests_session  # noqa: B018 (made here, not raced for by the threads)
        with ThreadPoolExecutor(workers, thread_name_prefix=self.name) as pool:
            answers = list(pool.map(self._read, issue_ids))
        for issue_id, answer in zip(issue_ids, answers, strict=True):
            if answer is not None:
                yield from self.rows(issue_id, answer)

    def _read(self, issue_id: str) -> Any:
        try:
            return self.call("GET", f"{self.api}/issue/{issue_id}/{self.resource}")
        except JiraNotFound:
            self.logger.info("%s: issue %s is gone (404); it has no rows", self.name, issue_id)
            return None

    def rows(self, issue_id: str, answer: Any) -> list[dict[str, Any]]:
        """The records of one issue's answer: one row holding the whole answer."""
        if not isinstance(answer, dict) or not answer:
            raise self.malformed(issue_id, answer, "an object")
        return [{**answer, "issue_id": issue_id}]

    def malformed(self, issue_id: str, answer: Any, documented: str) -> JiraBadAnswer:
        return JiraBadAnswer(
            f"{self.name}: GET {self.api}/issue/{issue_id}/{self.resource} answered "
            f"{json.dumps(answer, default=str)[:60]}, not {documented}; run again, and report "
            "it to your Jira admin if it repeats."
        )


class IssueWatchersStream(PerIssueStream):
    """One row per issue: who watches it (the row replaces the last run's, so a watcher
    who left is gone downstream too)."""

    name, resource = "issue_watchers", "watchers"
    primary_keys = ("issue_id",)
    schema = schema(
        ("issue_id",),
        issue_id="string",
        self="string",
        isWatching="boolean",
        watchCount="integer",
        watchers="array",
    )


class IssueVotesStream(PerIssueStream):
    """One row per issue: its votes and voters."""

    name, resource = "issue_votes", "votes"
    primary_keys = ("issue_id",)
    schema = schema(
        ("issue_id",),
        issue_id="string",
        self="string",
        votes="integer",
        hasVoted="boolean",
        voters="array",
    )


class IssueRemoteLinksStream(PerIssueStream):
    """One row per remote link of each issue."""

    name, resource = "issue_remote_links", "remotelink"
    primary_keys = ("id",)
    schema = schema(
        ("id",),
        id="integer",
        issue_id="string",
        self="string",
        globalId="string",
        application="object",
        relationship="string",
        object="object",
    )

    @override
    def rows(self, issue_id: str, answer: Any) -> list[dict[str, Any]]:
        if not isinstance(answer, list):
            raise self.malformed(issue_id, answer, "a list")
        return [{**link, "issue_id": issue_id} for link in answer]
