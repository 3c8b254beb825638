"""Per-issue children read only for the issues the ``issues`` stream emitted this run (the
issues changed in its window): watchers, votes, remote links. Jira reads none of them in
bulk (Cloud v3 and Server/DC v2: ``GET /issue/{id}/watchers``, ``/votes``, ``/remotelink``),
so each costs one request per issue, ``parallel_requests`` at a time; but the search
response's ``watches`` / ``votes`` fields count them, and an issue counting 0 costs none
(most issues have no votes). An issue deleted
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
    # (the issue's summary field, its count, the answer's list): a count of 0 in the search
    # response means the empty answer, no request
    summary: ClassVar[tuple[str, str, str] | None] = None

    @override
    def get_records(self, context: Context | None) -> Iterator[dict[str, Any]]:
        issue_ids = list((context or {}).get("issue_ids", []))
        answers: dict[str, Any] = {}
        to_read = []
        for issue_id in issue_ids:
            empty = self.empty_answer(issue_id)
            if empty is None:
                to_read.append(issue_id)
            else:
                answers[issue_id] = empty
        if to_read:
            workers = max(1, self.settings.parallel_requests)
            self.requests_session  # noqa: B018 (made here, not raced for by the threads)
            with ThreadPoolExecutor(workers, thread_name_prefix=self.name) as pool:
                answers.update(zip(to_read, pool.map(self._read, to_read), strict=True))
        for issue_id in issue_ids:
            if answers[issue_id] is not None:
                yield from self.rows(issue_id, answers[issue_id])

    def empty_answer(self, issue_id: str) -> dict[str, Any] | None:
        """What the read would answer when the issue's summary field (from the search
        response) counts 0: the summary itself with an empty list. None: read it."""
        if self.summary is None:
            return None
        field, count, items = self.summary
        found = self.parts.issue_side.take_summary(issue_id, field)
        if not isinstance(found, dict) or found.get(count) != 0:
            return None
        return {**found, items: []}

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
    summary = ("watches", "watchCount", "watchers")
    primary_keys = ("issue_id",)
    schema = schema(
        ("issue_id",),
        issue_id="string",
        self="string",
        isWatching="boolean",
        watchCount="integer",
        watchers="array",
        issue_updated="date-time",
    )


class IssueVotesStream(PerIssueStream):
    """One row per issue: its votes and voters."""

    name, resource = "issue_votes", "votes"
    summary = ("votes", "votes", "voters")
    primary_keys = ("issue_id",)
    schema = schema(
        ("issue_id",),
        issue_id="string",
        self="string",
        votes="integer",
        hasVoted="boolean",
        voters="array",
        issue_updated="date-time",
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
        issue_updated="date-time",
    )

    @override
    def rows(self, issue_id: str, answer: Any) -> list[dict[str, Any]]:
        if not isinstance(answer, list):
            raise self.malformed(issue_id, answer, "a list")
        return [{**link, "issue_id": issue_id} for link in answer]
