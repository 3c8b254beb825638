"""Stream definitions for tap-jira-safe: one small class per Jira resource."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from datetime import timedelta
from typing import Any

from singer_sdk import typing as th
from singer_sdk.helpers.types import Context
from typing_extensions import override

from tap_jira_safe.client import JiraStream, listed_items, more_pages
from tap_jira_safe.errors import IncompleteRead, JiraBadAnswer
from tap_jira_safe.issues import IssuesStream
from tap_jira_safe.listing import ListingStream, schema
from tap_jira_safe.reference import COMPONENT, VERSION, ProjectPartStream
from tap_jira_safe.timeutil import from_ms, iso_utc, jira_to_iso, to_ms
from tap_jira_safe.tokens import PageTokens, read_whole

ANY_OBJECT = th.ObjectType(additional_properties=True)
CHANGELOG_BULK = 1000  # issues per changelog/bulkfetch call (its documented maximum)


class IssueChildStream(JiraStream):
    """A stream synced once per issue the ``issues`` stream emits: only the issues changed in
    its window, so incremental. Each record carries its issue's ``updated`` as
    ``issue_updated``, the replication key: a child changes only with its issue (a comment
    or a vote edits the issue's ``updated``), and a downstream version guard on it keeps the
    newest read of a row, equal reads included."""

    parent_stream_type = IssuesStream
    state_partitioning_keys: list[str] = []
    replication_key = "issue_updated"
    is_sorted = False  # issues come in `updated` order, but bulk reads regroup children

    @override
    def post_process(self, row: dict[str, Any], context: Context | None = None) -> dict[str, Any]:
        if "issue_updated" not in row:
            row["issue_updated"] = (context or {})["issue_updated"][row["issue_id"]]
        return row


class ProjectsStream(ListingStream):
    """Cloud pages ``/project/search``; Server/DC lists every project at ``/project``."""

    name, cloud_path, dc_path = "projects", "/project/search", "/project"
    primary_keys = ("id",)
    extra_params = {"expand": "description,lead,issueTypes,url,projectKeys,permissions,insight"}
    schema = schema(
        ("id",),
        id="string",
        key="string",
        name="string",
        description="string",
        projectTypeKey="string",
        style="string",
        simplified="boolean",
        isPrivate="boolean",
        archived="boolean",
        lead="object",
        projectCategory="object",
        avatarUrls="object",
        issueTypes="array",
        url="string",
        email="string",
        assigneeType="string",
        projectKeys="array",
        permissions="object",
        insight="object",
        properties="object",
        entityId="string",
        uuid="string",
        self="string",
    )

    @property
    def items_key(self) -> str | None:  # type: ignore[override]
        return "values" if self.cloud else None

    @property
    def paged(self) -> bool:  # type: ignore[override]
        return self.cloud

    @override
    def get_child_context(self, record: dict[str, Any], context: Context | None) -> Context:
        return {"project_id": record["id"]}


class VersionsStream(ProjectPartStream):
    name, parent_stream_type, schema = "versions", ProjectsStream, VERSION
    cloud_path = dc_path = "/project/{project_id}/versions"


class ComponentsStream(ProjectPartStream):
    name, parent_stream_type, schema = "components", ProjectsStream, COMPONENT
    cloud_path = dc_path = "/project/{project_id}/components"


class UsersStream(ListingStream):
    """Cloud: ``/users/search``; Server/DC: ``/user/search?username=.`` (``.`` is everyone)."""

    name, cloud_path, dc_path, paged = "users", "/users/search", "/user/search", True
    permission = "Browse users and groups"
    primary_keys = ("accountId",)
    schema = schema(
        ("accountId",),
        accountId="string",
        name="string",
        key="string",
        emailAddress="string",
        displayName="string",
        accountType="string",
        active="boolean",
        timeZone="string",
        locale="string",
        avatarUrls="object",
        self="string",
    )

    @property
    def extra_params(self) -> dict[str, Any]:  # type: ignore[override]
        return {} if self.cloud else {"username": "."}

    @override
    def post_process(self, row: dict[str, Any], context: Context | None = None) -> dict[str, Any]:
        row.setdefault("accountId", row.get("key") or row.get("name"))  # DC has no accountId
        return row


class FieldsStream(ListingStream):
    name, cloud_path, dc_path = "fields", "/field", "/field"
    primary_keys = ("id",)
    schema = schema(
        ("id",),
        id="string",
        key="string",
        name="string",
        custom="boolean",
        orderable="boolean",
        navigable="boolean",
        searchable="boolean",
        clauseNames="array",
        scope="object",
        schema="object",
        untranslatedName="string",
    )

    @override
    def generate_child_contexts(
        self, record: dict[str, Any], context: Context | None
    ) -> Iterable[Context | None]:
        """Contexts belong to custom fields only."""
        if record.get("custom"):
            yield {
                "field_id": record["id"],
                "field_type": (record.get("schema") or {}).get("custom"),
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
        th.Property("issue_updated", th.DateTimeType),
    ).to_dict()

    @override
    def get_records(self, context: Context | None) -> Iterator[dict[str, Any]]:
        counts: dict[str, int] = {}
        rows: dict[str, list[dict[str, Any]]] = {}
        for issue_id in (context or {}).get("issue_ids", []):
            count = self.parts.issue_side.take_comment_count(issue_id)
            embedded = self.parts.issue_side.take_embedded(issue_id, "comments")
            if count:
                counts[issue_id] = count
                if embedded is not None:
                    rows[issue_id] = embedded
        rows.update(self.page_all_comments([i for i in counts if i not in rows]))
        for issue_id, count in counts.items():
            if len(rows[issue_id]) < count:
                raise IncompleteRead(
                    f"issue_comments: issue {issue_id} has {count} comments but paging "
                    f"returned {len(rows[issue_id])}; run again."
                )
            yield from ({**row, "issue_id": issue_id} for row in rows[issue_id])

    def page_all_comments(self, issue_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        """Every comment of these issues, ``parallel_requests`` issues at a time: one request
        each costs a round trip, and Jira reads no comments by issue in bulk."""
        if not issue_ids:
            return {}
        workers = self.settings.parallel_requests
        self.requests_session  # noqa: B018 (made here, not raced for by the threads)
        with ThreadPoolExecutor(workers, thread_name_prefix="comments") as pool:
            futures = [pool.submit(self.page_comments, issue_id) for issue_id in issue_ids]
            try:
                # the first failure surfaces at once, not after every page before it
                for future in wait(futures, return_when=FIRST_EXCEPTION).done:
                    future.result()
                return {i: f.result() for i, f in zip(issue_ids, futures, strict=True)}
            except BaseException:
                for future in futures:  # a failure stops the run: start no more pages
                    future.cancel()
                raise

    def page_comments(self, issue_id: str) -> list[dict[str, Any]]:
        """One issue's comments, ``startAt``-paged as ``StartAtPaginator`` pages."""
        rows: list[dict[str, Any]] = []
        while True:
            page = self.call(
                "GET",
                f"{self.api}/issue/{issue_id}/comment",
                params={"startAt": len(rows), "maxResults": self.page_size},
            )
            rows.extend(listed_items(page, "comments", f"GET {self.api}/issue/{{id}}/comment"))
            if not more_pages(page, "comments", self.page_size):
                return rows

    @override
    def post_process(self, row: dict[str, Any], context: Context | None = None) -> dict[str, Any]:
        row["created"], row["updated"] = jira_to_iso(row["created"]), jira_to_iso(row["updated"])
        return super().post_process(row, context)


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
        th.Property("issue_updated", th.DateTimeType),
    ).to_dict()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pending: dict[str, str] = {}  # issue id -> its `updated`, read in bulk later

    @override
    def get_records(self, context: Context | None) -> Iterator[dict[str, Any]]:
        for issue_id in (context or {}).get("issue_ids", []):
            embedded = self.parts.issue_side.take_embedded(issue_id, "histories")
            if embedded is not None:
                yield from ({**h, "issue_id": issue_id} for h in embedded)
            elif self.cloud:
                self._pending[issue_id] = (context or {})["issue_updated"][issue_id]
                if len(self._pending) >= CHANGELOG_BULK:
                    yield from self._drain()
            else:
                body = self.call(
                    "GET",
                    f"{self.api}/issue/{issue_id}",
                    params={"expand": "changelog", "fields": "id"},
                )
                changelog = body.get("changelog") if isinstance(body, dict) else None
                if not isinstance(changelog, dict):
                    raise JiraBadAnswer(
                        f"GET {self.api}/issue/{{id}}?expand=changelog answered without a "
                        f"`changelog` object (issue {issue_id}); run again."
                    )
                histories = listed_items(changelog, "histories", f"GET {self.api}/issue/{{id}}")
                # Server/DC renders every history (ChangelogBeanBuilder); Cloud would cut
                # this read to the newest 100. A cut one must not pass as complete.
                if len(histories) < int(changelog.get("total", len(histories))):
                    raise IncompleteRead(
                        f"issue_changelogs: issue {issue_id} has {changelog['total']} "
                        f"changelog entries but the issue read returned {len(histories)}: "
                        "this Jira cuts expand=changelog, so running again will not help; "
                        "report it with the Jira version."
                    )
                yield from ({**h, "issue_id": issue_id} for h in histories)
        if (context or {}).get("last"):
            yield from self._drain()

    def _drain(self) -> Iterator[dict[str, Any]]:
        """Every history of the pending issues, token-paged. The pages are all read before
        any row goes out, so a spent or repeated token restarts the reads (as the issue id
        listing does) without emitting a row twice; the third failure stops the run."""
        updated, self._pending = self._pending, {}
        if not updated:
            return
        histories = read_whole(
            lambda: self._bulk_histories(list(updated)),
            self.logger,
            self.name,
            "the changelog reads",
        )
        for issue_id, history in histories:
            yield {**history, "issue_id": issue_id, "issue_updated": updated[issue_id]}

    def _bulk_histories(self, ids: list[str]) -> list[tuple[str, dict[str, Any]]]:
        """``(issue id, history)`` of every page of ``changelog/bulkfetch`` for ``ids``."""
        endpoint = "POST /rest/api/3/changelog/bulkfetch"
        found: list[tuple[str, dict[str, Any]]] = []
        token: str | None = None
        tokens = PageTokens(endpoint)
        while True:
            body: dict[str, Any] = {"issueIdsOrKeys": ids, "maxResults": 10_000}
            if token:
                body["nextPageToken"] = token
            page = self.call("POST", "/rest/api/3/changelog/bulkfetch", json=body)
            for group in listed_items(page, "issueChangeLogs", endpoint):
                found.extend((str(group["issueId"]), h) for h in group["changeHistories"])
            next_token = page.get("nextPageToken")
            if not next_token:
                return found
            token = tokens.next(next_token)

    @override
    def post_process(self, row: dict[str, Any], context: Context | None = None) -> dict[str, Any]:
        row["created"] = jira_to_iso(row.get("created"))
        return super().post_process(row, context)


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

    @override
    def get_replication_key_signpost(self, context: Context | None = None) -> str:
        # /worklog/updated leaves out the last minute: never bookmark into it
        lookback = timedelta(minutes=self.settings.lookback_minutes)
        return iso_utc(self.site.facts(self).server_time - timedelta(minutes=1) - lookback)

    def _changes(self, endpoint: str, since: int) -> Iterator[list[dict[str, Any]]]:
        """Pages of ``/worklog/updated`` or ``/deleted``; each next page overlaps by 1 ms."""
        while True:
            page = self.call("GET", f"{self.api}/worklog/{endpoint}", params={"since": since})
            yield listed_items(page, "values", f"GET {self.api}/worklog/{endpoint}")
            if page.get("lastPage", True):
                return
            next_since = int(page["until"]) - 1
            if next_since <= since:
                raise IncompleteRead(
                    f"issue_worklogs: /worklog/{endpoint} is not advancing "
                    f"past since={since}; more than a page share one time."
                )
            since = next_since

    @override
    def get_records(self, context: Context | None) -> Iterator[dict[str, Any]]:
        start = self.get_starting_timestamp(context)
        lookback = timedelta(minutes=self.settings.lookback_minutes)
        since = to_ms(start - lookback) if start else 0
        for values in self._changes("updated", since):
            ids = [v["worklogId"] for v in values]
            for n in range(0, len(ids), 1000):
                listed = self.call(
                    "POST", f"{self.api}/worklog/list", json={"ids": ids[n : n + 1000]}
                )
                for row in listed_items(listed, None, f"POST {self.api}/worklog/list"):
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
