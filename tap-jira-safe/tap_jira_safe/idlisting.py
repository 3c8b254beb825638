"""The ids of every issue a JQL finds: the listing that window verification and delete proofs
compare with. Ids-only pages of the server's size (up to 5,000 on Cloud), token (Cloud) or
``startAt`` (Server/DC) paging, every page checked for shape; a spent or repeated page token
restarts the listing. Asked to, the pages carry each issue's project as well (smaller pages:
done only while some known issue's project is not on record, see ``visibility``)."""

from __future__ import annotations

import logging
from typing import Any, Protocol

from tap_jira_safe.reconcile import page_issue_ids
from tap_jira_safe.tokens import PageTokens, read_whole
from tap_jira_safe.visibility import IssueProjects

IDS_PAGE = 5000


class Caller(Protocol):
    """What a listing needs from the stream: its request (auth, retries), deployment, log."""

    @property
    def cloud(self) -> bool: ...

    @property
    def logger(self) -> logging.Logger: ...

    def call(
        self, method: str, path: str, *, params: dict[str, Any] | None = None, json: Any = None
    ) -> Any: ...


def list_ids(
    stream: Caller, jql: str, reconcile_ids: list[int], owners: IssueProjects | None
) -> set[int]:
    """Every id ``jql`` finds (``reconcile_ids``: Cloud's ``reconcileIssues``); with
    ``owners``, each listed issue's project is noted there."""
    return read_whole(
        lambda: _list_once(stream, jql, reconcile_ids, owners),
        stream.logger,
        "issues",
        "the id listing",
    )


def _list_once(
    stream: Caller, jql: str, reconcile_ids: list[int], owners: IssueProjects | None
) -> set[int]:
    ids: set[int] = set()
    token: str | None = None
    tokens = PageTokens("issue id listing")
    start_at = 0
    while True:
        if stream.cloud:
            body: dict[str, Any] = {"jql": jql, "maxResults": IDS_PAGE}
            if owners is not None:
                body["fields"] = ["project"]
            if token:
                body["nextPageToken"] = token
            if reconcile_ids:
                body["reconcileIssues"] = reconcile_ids
            page = stream.call("POST", "/rest/api/3/search/jql", json=body)
        else:
            fields = "id" if owners is None else "project"
            params = {"jql": jql, "fields": fields, "maxResults": 1000, "startAt": start_at}
            page = stream.call("GET", "/rest/api/2/search", params=params)
        found = page_issue_ids(page, "issue id listing")
        ids.update(found)
        if owners is not None:
            for raw in page["issues"]:
                owners.learn(raw)
        if stream.cloud:
            next_token = page.get("nextPageToken")
            if not next_token or page.get("isLast") is True:
                return ids
            token = tokens.next(next_token)
        else:
            start_at += len(found)
            if not found or start_at >= int(page.get("total", 0)):
                return ids
