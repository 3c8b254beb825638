"""Stream definitions for tap-jira-safe: one small class per Jira resource."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from datetime import timedelta
from typing import Any

import requests
from singer_sdk import Stream
from singer_sdk import typing as th
from singer_sdk.helpers.types import Context

from tap_jira_safe.client import JiraStream, RepeatedPageTokenError, StartAtPaginator, more_pages
from tap_jira_safe.issues import IssuesStream
from tap_jira_safe.reference import (
    IssueTypesStream,
    PrioritiesStream,
    ProjectPartStream,
    ResolutionsStream,
    StatusesStream,
)
from tap_jira_safe.site import probe
from tap_jira_safe.timeutil import from_ms, iso_utc, jira_to_iso, to_ms

ANY_OBJECT = th.ObjectType(additional_properties=True)
CHANGELOG_BULK = 1000  # issues per changelog/bulkfetch call (its documented maximum)


class IssueChildStream(JiraStream):
    """A stream synced once per issue the ``issues`` stream emits."""

    parent_stream_type = IssuesStream
    state_partitioning_keys: list[str] = []

    @property
    def issues(self) -> IssuesStream:
        parent = self._tap.streams["issues"]
        assert isinstance(parent, IssuesStream)
        return parent


class StartAtStream(JiraStream):
    """A list endpoint paged with ``startAt`` / ``maxResults``."""

    items_key: str | None = "values"

    def get_new_paginator(self) -> StartAtPaginator:
        return StartAtPaginator(self.page_size, self.items_key)

    def get_url_params(self, context: Context | None, next_page_token: Any) -> dict[str, Any]:
        return {"startAt": next_page_token or 0, "maxResults": self.page_size}


class ProjectsStream(StartAtStream):
    """Cloud pages ``/project/search``; Server/DC lists every project at ``/project``."""

    name = "projects"
    primary_keys = ("id",)
    schema = th.PropertiesList(
        th.Property("id", th.StringType, required=True),
        th.Property("key", th.StringType),
        th.Property("name", th.StringType),
        th.Property("projectTypeKey", th.StringType),
        th.Property("style", th.StringType),
        th.Property("simplified", th.BooleanType),
        th.Property("self", th.StringType),
    ).to_dict()

    @property
    def path(self) -> str:  # type: ignore[override]
        return f"{self.api}/project/search" if self.cloud else f"{self.api}/project"

    @property
    def records_jsonpath(self) -> str:  # type: ignore[override]
        return "$.values[*]" if self.cloud else "$[*]"

    def get_new_paginator(self) -> StartAtPaginator:
        return StartAtPaginator(self.page_size, "values" if self.cloud else None)

    def get_child_context(self, record: dict[str, Any], context: Context | None) -> Context:
        return {"project_id": record["id"]}


class VersionsStream(ProjectPartStream):
    name, resource = "versions", "versions"
    parent_stream_type = ProjectsStream


class ComponentsStream(ProjectPartStream):
    name, resource = "components", "components"
    parent_stream_type = ProjectsStream


class UsersStream(StartAtStream):
    """Cloud: ``/users/search``; Server/DC: ``/user/search?username=.`` (``.`` is everyone)."""

    name = "users"
    primary_keys = ("accountId",)
    items_key = None
    schema = th.PropertiesList(
        th.Property("accountId", th.StringType, required=True),
        th.Property("name", th.StringType),
        th.Property("key", th.StringType),
        th.Property("displayName", th.StringType),
        th.Property("accountType", th.StringType),
        th.Property("active", th.BooleanType),
        th.Property("timeZone", th.StringType),
        th.Property("self", th.StringType),
    ).to_dict()

    @property
    def path(self) -> str:  # type: ignore[override]
        return f"{self.api}/users/search" if self.cloud else f"{self.api}/user/search"

    def get_url_params(self, context: Context | None, next_page_token: Any) -> dict[str, Any]:
        params = super().get_url_params(context, next_page_token)
        return params if self.cloud else {**params, "username": "."}

    def post_process(self, row: dict[str, Any], context: Context | None = None) -> dict[str, Any]:
        row.setdefault("accountId", row.get("key") or row.get("name"))  # DC has no accountId
        return row


class FieldsStream(JiraStream):
    name = "fields"
    primary_keys = ("id",)
    schema = th.PropertiesList(
        th.Property("id", th.StringType, required=True),
        th.Property("key", th.StringType),
        th.Property("name", th.StringType),
        th.Property("custom", th.BooleanType),
        th.Property("navigable", th.BooleanType),
        th.Property("searchable", th.BooleanType),
        th.Property("schema", ANY_OBJECT),
    ).to_dict()

    @property
    def path(self) -> str:  # type: ignore[override]
        return f"{self.api}/field"


class BoardsStream(StartAtStream):
    name = "boards"
    path = "/rest/agile/1.0/board"
    primary_keys = ("id",)
    records_jsonpath = "$.values[*]"
    schema = th.PropertiesList(
        th.Property("id", th.IntegerType, required=True),
        th.Property("name", th.StringType),
        th.Property("type", th.StringType),
        th.Property("self", th.StringType),
        th.Property("location", ANY_OBJECT),
    ).to_dict()

    def get_child_context(self, record: dict[str, Any], context: Context | None) -> Context:
        return {"board_id": record["id"]}


class SprintsStream(StartAtStream):
    name = "sprints"
    parent_stream_type = BoardsStream
    path = "/rest/agile/1.0/board/{board_id}/sprint"
    primary_keys = ("id",)
    records_jsonpath = "$.values[*]"
    state_partitioning_keys: list[str] = []
    schema = th.PropertiesList(
        th.Property("id", th.IntegerType, required=True),
        th.Property("board_id", th.IntegerType),
        th.Property("originBoardId", th.IntegerType),
        th.Property("name", th.StringType),
        th.Property("state", th.StringType),
        th.Property("startDate", th.DateTimeType),
        th.Property("self", th.StringType),
    ).to_dict()

    def validate_response(self, response: requests.Response) -> None:
        if response.status_code == 400 and "does not support sprints" in response.text:
            return  # kanban boards have no sprints: an empty list, not an error
        super().validate_response(response)

    def post_process(self, row: dict[str, Any], context: Context | None = None) -> dict[str, Any]:
        row["board_id"] = (context or {}).get("board_id")
        row["startDate"] = jira_to_iso(row.get("startDate"))
        return row

    def get_child_context(self, record: dict[str, Any], context: Context | None) -> Context:
        return {"sprint_id": record["id"], "board_id": record.get("board_id")}


class SprintIssuesStream(JiraStream):
    """Sprint membership: one row per (sprint, issue), from Agile ``/sprint/{id}/issue``."""

    name = "sprint_issues"
    parent_stream_type = SprintsStream
    path = "/rest/agile/1.0/sprint/{sprint_id}/issue"
    primary_keys = ("sprint_id", "issue_id")
    records_jsonpath = "$.issues[*]"
    state_partitioning_keys: list[str] = []
    schema = th.PropertiesList(
        th.Property("sprint_id", th.IntegerType, required=True),
        th.Property("issue_id", th.StringType, required=True),
        th.Property("issue_key", th.StringType),
        th.Property("board_id", th.IntegerType),
    ).to_dict()

    def get_new_paginator(self) -> StartAtPaginator:
        return StartAtPaginator(self.page_size, "issues")

    def get_url_params(self, context: Context | None, next_page_token: Any) -> dict[str, Any]:
        return {"startAt": next_page_token or 0, "maxResults": self.page_size, "fields": "id"}

    def post_process(self, row: dict[str, Any], context: Context | None = None) -> dict[str, Any]:
        return {
            "sprint_id": (context or {})["sprint_id"],
            "issue_id": str(row["id"]),
            "issue_key": row.get("key"),
            "board_id": (context or {}).get("board_id"),
        }


class IssueCommentsStream(IssueChildStream):
    """Complete comments of each synced issue: taken from the search response when it holds
    all of them, paged from ``/issue/{id}/comment`` only when search truncated them."""

    name = "issue_comments"
    primary_keys = ("id",)
    schema = th.PropertiesList(
        th.Property("id", th.StringType, required=True),
        th.Property("issue_id", th.StringType),
        th.Property("self", th.StringType),
        th.Property("author", ANY_OBJECT),
        th.Property("updateAuthor", ANY_OBJECT),
        th.Property("body", th.CustomType({"type": ["object", "string", "null"]})),
        th.Property("visibility", ANY_OBJECT),
        th.Property("jsdPublic", th.BooleanType),
        th.Property("created", th.DateTimeType),
        th.Property("updated", th.DateTimeType),
    ).to_dict()

    def get_records(self, context: Context | None) -> Iterator[dict[str, Any]]:
        counts: dict[str, int] = {}
        rows: dict[str, list[dict[str, Any]]] = {}
        for issue_id in (context or {}).get("issue_ids", []):
            count = self.issues.comment_count(issue_id)
            embedded = self.issues.take_embedded(issue_id, "comments")
            if count:
                counts[issue_id] = count
                if embedded is not None:
                    rows[issue_id] = embedded
        rows.update(self._page_all([i for i in counts if i not in rows]))
        for issue_id, count in counts.items():
            if len(rows[issue_id]) < count:
                raise RuntimeError(
                    f"issue_comments: issue {issue_id} has {count} comments but paging "
                    f"returned {len(rows[issue_id])}; run again."
                )
            yield from ({**row, "issue_id": issue_id} for row in rows[issue_id])

    def _page_all(self, issue_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        """Every comment of these issues, ``parallel_requests`` issues at a time: one request
        each costs a round trip, and Jira reads no comments by issue in bulk."""
        if not issue_ids:
            return {}
        workers = max(1, int(self.config.get("parallel_requests", 4)))
        self.requests_session  # noqa: B018 (made here, not raced for by the threads)
        with ThreadPoolExecutor(workers, thread_name_prefix="comments") as pool:
            futures = [pool.submit(self._page, issue_id) for issue_id in issue_ids]
            try:
                # the first failure surfaces at once, not after every page before it
                for future in wait(futures, return_when=FIRST_EXCEPTION).done:
                    future.result()
                return {i: f.result() for i, f in zip(issue_ids, futures, strict=True)}
            except BaseException:
                for future in futures:  # a failure stops the run: start no more pages
                    future.cancel()
                raise

    def _page(self, issue_id: str) -> list[dict[str, Any]]:
        """One issue's comments, ``startAt``-paged as ``StartAtPaginator`` pages."""
        rows: list[dict[str, Any]] = []
        while True:
            page = self.call(
                "GET",
                f"{self.api}/issue/{issue_id}/comment",
                params={"startAt": len(rows), "maxResults": self.page_size},
            )
            items = page.get("comments") if isinstance(page, dict) else None
            if not isinstance(items, list):
                raise RuntimeError(
                    f"issue_comments: GET {self.api}/issue/{issue_id}/comment answered "
                    "without a `comments` list; run again."
                )
            rows.extend(items)
            if not more_pages(page, "comments", self.page_size):
                return rows

    def post_process(self, row: dict[str, Any], context: Context | None = None) -> dict[str, Any]:
        row["created"], row["updated"] = jira_to_iso(row["created"]), jira_to_iso(row["updated"])
        return row


class IssueChangelogsStream(IssueChildStream):
    """Complete changelogs: from the search response when complete; else Cloud's
    ``changelog/bulkfetch`` for up to 1000 issues at once, or on Server/DC (which has no
    bulk endpoint) the issue read with ``expand=changelog``."""

    name = "issue_changelogs"
    primary_keys = ("id",)
    schema = th.PropertiesList(
        th.Property("id", th.StringType, required=True),
        th.Property("issue_id", th.StringType),
        th.Property("author", ANY_OBJECT),
        th.Property("created", th.DateTimeType),
        th.Property("items", th.ArrayType(ANY_OBJECT)),
        th.Property("historyMetadata", ANY_OBJECT),
    ).to_dict()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pending: list[str] = []

    def get_records(self, context: Context | None) -> Iterator[dict[str, Any]]:
        for issue_id in (context or {}).get("issue_ids", []):
            embedded = self.issues.take_embedded(issue_id, "histories")
            if embedded is not None:
                yield from ({**h, "issue_id": issue_id} for h in embedded)
            elif self.cloud:
                self._pending.append(issue_id)
                if len(self._pending) >= CHANGELOG_BULK:
                    yield from self._drain()
            else:
                body = self.call(
                    "GET",
                    f"{self.api}/issue/{issue_id}",
                    params={"expand": "changelog", "fields": "id"},
                )
                changelog = body["changelog"]
                histories = changelog["histories"]
                # Server/DC renders every history (ChangelogBeanBuilder); Cloud would cut
                # this read to the newest 100. A cut one must not pass as complete.
                if len(histories) < int(changelog.get("total", len(histories))):
                    raise RuntimeError(
                        f"issue_changelogs: issue {issue_id} has {changelog['total']} "
                        f"changelog entries but the issue read returned {len(histories)}: "
                        "this Jira cuts expand=changelog, so running again will not help; "
                        "report it with the Jira version."
                    )
                yield from ({**h, "issue_id": issue_id} for h in histories)
        if (context or {}).get("last"):
            yield from self._drain()

    def _drain(self) -> Iterator[dict[str, Any]]:
        """Every history of the pending issues, token-paged."""
        ids, self._pending = self._pending, []
        token: str | None = None
        while ids:
            body: dict[str, Any] = {"issueIdsOrKeys": ids, "maxResults": 10_000}
            if token:
                body["nextPageToken"] = token
            page = self.call("POST", "/rest/api/3/changelog/bulkfetch", json=body)
            for group in page.get("issueChangeLogs", []):
                yield from (
                    {**h, "issue_id": str(group["issueId"])} for h in group["changeHistories"]
                )
            next_token = page.get("nextPageToken")
            if not next_token:
                return
            if next_token == token:
                raise RepeatedPageTokenError(f"page token repeated: {next_token[:12]}...")
            token = next_token

    def post_process(self, row: dict[str, Any], context: Context | None = None) -> dict[str, Any]:
        row["created"] = jira_to_iso(row.get("created"))
        return row


class IssueWorklogsStream(JiraStream):
    """Worklogs changed since the bookmark, and deletions from ``/worklog/deleted``."""

    name = "issue_worklogs"
    primary_keys = ("id",)
    replication_key = "updated"
    is_sorted = False
    path = "/rest/api/3/worklog/updated"  # unused: get_records pages it itself
    schema = th.PropertiesList(
        th.Property("id", th.StringType, required=True),
        th.Property("issueId", th.StringType),
        th.Property("self", th.StringType),
        th.Property("author", ANY_OBJECT),
        th.Property("updateAuthor", ANY_OBJECT),
        th.Property("comment", th.CustomType({"type": ["object", "string", "null"]})),
        th.Property("started", th.DateTimeType),
        th.Property("created", th.DateTimeType),
        th.Property("updated", th.DateTimeType),
        th.Property("timeSpentSeconds", th.IntegerType),
        th.Property("_sdc_deleted_at", th.DateTimeType),
    ).to_dict()

    def get_replication_key_signpost(self, context: Context | None = None) -> str:
        # /worklog/updated leaves out the last minute: never bookmark into it
        lookback = timedelta(minutes=float(self.config.get("lookback_minutes", 10)))
        return iso_utc(probe(self).server_time - timedelta(minutes=1) - lookback)

    def _changes(self, endpoint: str, since: int) -> Iterator[list[dict[str, Any]]]:
        """Pages of ``/worklog/updated`` or ``/deleted``; each next page overlaps by 1 ms."""
        while True:
            page = self.call("GET", f"{self.api}/worklog/{endpoint}", params={"since": since})
            yield page.get("values", [])
            if page.get("lastPage", True):
                return
            next_since = int(page["until"]) - 1
            if next_since <= since:
                raise RuntimeError(
                    f"issue_worklogs: /worklog/{endpoint} is not advancing "
                    f"past since={since}; more than a page share one time."
                )
            since = next_since

    def get_records(self, context: Context | None) -> Iterator[dict[str, Any]]:
        start = self.get_starting_timestamp(context)
        lookback = timedelta(minutes=float(self.config.get("lookback_minutes", 10)))
        since = to_ms(start - lookback) if start else 0
        for values in self._changes("updated", since):
            ids = [v["worklogId"] for v in values]
            for n in range(0, len(ids), 1000):
                for row in self.call(
                    "POST", f"{self.api}/worklog/list", json={"ids": ids[n : n + 1000]}
                ):
                    yield {
                        **row,
                        "started": jira_to_iso(row.get("started")),
                        "created": jira_to_iso(row.get("created")),
                        "updated": jira_to_iso(row.get("updated")),
                        "_sdc_deleted_at": None,
                    }
        for values in self._changes("deleted", since):
            for value in values:
                when = iso_utc(from_ms(int(value["updatedTime"])))
                yield {"id": str(value["worklogId"]), "updated": when, "_sdc_deleted_at": when}


STREAM_TYPES: list[type[Stream]] = [
    ProjectsStream,
    VersionsStream,
    ComponentsStream,
    StatusesStream,
    PrioritiesStream,
    ResolutionsStream,
    IssueTypesStream,
    UsersStream,
    FieldsStream,
    BoardsStream,
    SprintsStream,
    SprintIssuesStream,
    IssuesStream,
    IssueCommentsStream,
    IssueChangelogsStream,
    IssueWorklogsStream,
]
