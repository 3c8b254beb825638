"""The ``issues`` stream: closed time windows, verified, with deletes reconciled.

Each run reads ONE closed window ``[bookmark - lookback, server time - search lag)`` with
epoch-millisecond JQL literals (no time zone can misread them), ordered by
``updated ASC, id ASC``. After paging it lists the window's ids again and bulk-fetches any
the pages missed (offset drift, edits while paging). The bookmark is the newest ``updated``
emitted, never older than before and never past ``server time - max(lookback, lag)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from typing import Any

from singer_sdk import typing as th
from singer_sdk.exceptions import FatalAPIError
from singer_sdk.helpers.types import Context

from tap_jira_safe.client import (
    JiraStream,
    RepeatedPageTokenError,
    StartAtPaginator,
    TokenPaginator,
)
from tap_jira_safe.fields import fields_schema, normalise_fields
from tap_jira_safe.site import probe
from tap_jira_safe.timeutil import from_ms, iso_utc, jira_to_iso, parse_jira_time, to_ms

WINDOW_TRIES = 3
VERIFY_ROUNDS = 3
IDS_PAGE = 5000
BULK = 100
ONE_MS = timedelta(milliseconds=1)


def encode_ids(ids: Iterable[int]) -> list[list[int]]:
    """Sorted ids as ``[first, last]`` runs: Jira ids are dense, so state stays small."""
    runs: list[list[int]] = []
    for value in sorted(ids):
        if runs and value == runs[-1][1] + 1:
            runs[-1][1] = value
        else:
            runs.append([value, value])
    return runs


def decode_ids(runs: list[list[int]]) -> set[int]:
    return {value for first, last in runs for value in range(first, last + 1)}


def delete_version(server_time: datetime, newest_updated: datetime | None) -> str:
    """A reconciled delete's ``updated``: the sync's Jira server time, or 1 ms past the
    newest ``updated`` emitted for the issue if that is later; never the tap host's clock."""
    if newest_updated is None:
        return iso_utc(server_time)
    return iso_utc(max(server_time, newest_updated + ONE_MS))


class IssuesStream(JiraStream):
    name = "issues"
    primary_keys = ("id",)
    replication_key = "updated"
    is_sorted = False  # verification re-fetches may come out of order
    records_jsonpath = "$.issues[*]"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._window: tuple[int | None, int] = (None, 0)

    # -- schema: typed from /field ------------------------------------------------------
    @property
    def schema(self) -> dict[str, Any]:
        cached: dict[str, Any] | None = self.__dict__.get("_jira_schema")
        if cached is None:
            props = th.PropertiesList(
                th.Property("id", th.StringType, required=True),
                th.Property("key", th.StringType),
                th.Property("self", th.StringType),
                th.Property("project_key", th.StringType),
                th.Property("created", th.DateTimeType),
                th.Property("updated", th.DateTimeType),
                th.Property("comment_count", th.IntegerType),
                th.Property("_sdc_deleted_at", th.DateTimeType),
            ).to_dict()
            props["properties"]["fields"] = fields_schema(self.call("GET", self.api + "/field"))
            cached = self.__dict__["_jira_schema"] = props
        return cached

    @property
    def api(self) -> str:
        return "/rest/api/3" if probe(self).cloud else "/rest/api/2"

    # -- the search request (the SDK's request_records drives the pages) ----------------
    @property
    def path(self) -> str:  # type: ignore[override]
        return "/rest/api/3/search/jql" if probe(self).cloud else "/rest/api/2/search"

    def get_new_paginator(self) -> TokenPaginator | StartAtPaginator:
        if probe(self).cloud:
            return TokenPaginator()
        return StartAtPaginator(self.page_size, "issues")

    def jql(
        self,
        lower_ms: int | None,
        upper_ms: int | None,
        *,
        id_above: int | None = None,
        id_ceiling: int | None = None,
        order: str = "updated ASC, id ASC",
    ) -> str:
        clauses = []
        if self.config.get("projects"):
            keys = ", ".join(f'"{key}"' for key in self.config["projects"])
            clauses.append(f"project in ({keys})")
        if lower_ms is not None:
            clauses.append(f"updated >= {lower_ms}")
        if upper_ms is not None:
            clauses.append(f"updated < {upper_ms}")
        if id_above:
            clauses.append(f"id > {id_above}")
        if id_ceiling is not None:
            clauses.append(f"id <= {id_ceiling}")
        if not clauses:
            clauses.append('updated >= "1970-01-02"')  # search/jql rejects unbounded JQL
        return " AND ".join(clauses) + f" ORDER BY {order}"

    def get_url_params(self, context: Context | None, next_page_token: Any) -> dict[str, Any]:
        if probe(self).cloud:
            return {}
        return {
            "jql": self.jql(*self._window),
            "fields": "*all",
            "maxResults": self.page_size,
            "startAt": next_page_token or 0,
        }

    def prepare_request_payload(
        self, context: Context | None, next_page_token: Any
    ) -> dict[str, Any] | None:
        if not probe(self).cloud:
            return None
        body: dict[str, Any] = {
            "jql": self.jql(*self._window),
            "fields": ["*all"],
            "maxResults": self.page_size,
        }
        if next_page_token:
            body["nextPageToken"] = next_page_token
        return body

    # -- records ------------------------------------------------------------------------
    def post_process(self, row: dict[str, Any], context: Context | None = None) -> dict[str, Any]:
        if row.get("_sdc_deleted_at"):
            return row
        fields = dict(row.get("fields") or {})
        comment = fields.pop("comment", None) or {}
        fields.pop("worklog", None)
        return {
            "id": str(row["id"]),
            "key": row.get("key"),
            "self": row.get("self"),
            "project_key": (fields.get("project") or {}).get("key"),
            "created": jira_to_iso(fields.get("created")),
            "updated": jira_to_iso(fields.get("updated")),
            "comment_count": comment.get("total"),
            "fields": normalise_fields(fields, self.schema["properties"]["fields"]),
            "_sdc_deleted_at": None,
        }

    def get_child_context(self, record: dict[str, Any], context: Context | None) -> Context:
        return {
            "issue_id": record["id"],
            "comment_count": record.get("comment_count") or 0,
            "deleted": bool(record.get("_sdc_deleted_at")),
        }

    def get_replication_key_signpost(self, context: Context | None = None) -> str:
        """The bookmark's ceiling: sync start (Jira's clock) minus max(lookback, search lag)."""
        return iso_utc(probe(self).server_time - max(self.lookback, self.search_lag))

    @property
    def lookback(self) -> timedelta:
        return timedelta(minutes=int(self.config.get("lookback_minutes", 5)))

    @property
    def search_lag(self) -> timedelta:
        return timedelta(seconds=float(self.config.get("search_lag_seconds", 30)))

    def get_records(self, context: Context | None) -> Iterator[dict[str, Any]]:
        start = self.get_starting_timestamp(context)
        lower = to_ms(start - self.lookback) if start else None
        upper = to_ms(probe(self).server_time - self.search_lag)
        self._keep_bookmark_from_going_back(context)
        self._window = (lower, upper)
        self.http_method = "POST" if probe(self).cloud else "GET"
        self.logger.info("issues window [%s, %s)", lower and from_ms(lower), from_ms(upper))
        emitted: set[str] = set()
        newest: dict[int, datetime] = {}  # the newest `updated` emitted per issue this run
        for row in self._page_window():
            emitted.add(str(row["id"]))
            _note_updated(newest, row)
            yield row
        for row in self._verify_window(emitted):
            _note_updated(newest, row)
            yield row
        if self.config.get("reconcile_deletes"):
            yield from self._reconcile_deletes(context, {int(i) for i in emitted}, newest)

    def _keep_bookmark_from_going_back(self, context: Context | None) -> None:
        """Seed the run's progress with the old bookmark: overlap can never lower it."""
        state = self.get_context_state(context)
        old = state.get("replication_key_value")
        if old:
            state["progress_markers"] = {
                "Note": "Progress is not resumable if interrupted.",
                "replication_key": self.replication_key,
                "replication_key_value": old,
            }

    def _page_window(self) -> Iterator[dict[str, Any]]:
        for attempt in range(1, WINDOW_TRIES + 1):
            try:
                yield from self.request_records(None)
                return
            except (RepeatedPageTokenError, FatalAPIError) as exc:
                expired = "expired" in str(exc) or isinstance(exc, RepeatedPageTokenError)
                if not expired or attempt == WINDOW_TRIES:
                    raise
                self.logger.warning("issues: %s; restarting the window (try %d)", exc, attempt)

    def _list_ids(
        self, lower: int | None, upper: int | None, id_ceiling: int | None = None
    ) -> set[int]:
        """Every issue id the search sees in a window, cheaply: ids only, big pages, keyset
        paging on ``id > last`` so issues changing meanwhile cannot shift the pages. Without
        a time bound, ``id_ceiling`` bounds it (issues keep being created while we list)."""
        ids: set[int] = set()
        last = 0
        while True:
            jql = self.jql(lower, upper, id_above=last, id_ceiling=id_ceiling, order="id ASC")
            if probe(self).cloud:
                page = self.call(
                    "POST", "/rest/api/3/search/jql", json={"jql": jql, "maxResults": IDS_PAGE}
                )
            else:
                page = self.call(
                    "GET",
                    "/rest/api/2/search",
                    params={"jql": jql, "fields": "id", "maxResults": 1000, "startAt": 0},
                )
            found = [int(i["id"]) for i in page.get("issues", [])]
            if not found:
                return ids
            if max(found) <= last:
                raise RuntimeError(f"issues: id listing did not advance past id {last}")
            ids.update(found)
            last = max(found)

    def _fetch(self, ids: list[int]) -> Iterator[dict[str, Any]]:
        """Current versions of some issues (bulkfetch on Cloud; one by one on Server)."""
        if probe(self).cloud:
            for n in range(0, len(ids), BULK):
                chunk = [str(i) for i in ids[n : n + BULK]]
                page = self.call(
                    "POST",
                    "/rest/api/3/issue/bulkfetch",
                    json={"issueIdsOrKeys": chunk, "fields": ["*all"]},
                )
                yield from page.get("issues", [])
            return
        for issue_id in ids:
            try:
                yield self.call("GET", f"/rest/api/2/issue/{issue_id}")
            except FatalAPIError as exc:
                if "404" not in str(exc):
                    raise

    def _verify_window(self, emitted: set[str]) -> Iterator[dict[str, Any]]:
        lower, upper = self._window
        for _ in range(VERIFY_ROUNDS):
            missing = sorted(i for i in self._list_ids(lower, upper) if str(i) not in emitted)
            if not missing:
                return
            self.logger.warning("issues: %d issue(s) missed by paging; fetching them", len(missing))
            for raw in self._fetch(missing):
                emitted.add(str(raw["id"]))
                yield raw
        raise RuntimeError(
            f"issues: window [{lower}, {upper}) still differs from its id listing after "
            f"{VERIFY_ROUNDS} verification rounds; run again (state was not advanced)."
        )

    def _reconcile_deletes(
        self, context: Context | None, emitted: set[int], newest: dict[int, datetime]
    ) -> Iterator[Any]:
        """Delete records for known ids the search no longer lists.

        A delete is versioned on Jira's clock, never the tap host's: the sync's server time
        (every version emitted by earlier runs is older than it), or 1 ms past the newest
        ``updated`` this run emitted for the issue if that is later (a verification fetch
        can see an edit made after the sync started). So the target's version guard
        always lets the delete replace the row.
        """
        state = self.get_context_state(context)
        known = decode_ids(state.get("live_issue_ids") or []) | emitted
        # ids above every id handed downstream cannot need a delete: list up to there only
        live = self._list_ids(None, None, id_ceiling=max(known, default=0))
        server_time = probe(self).server_time
        gone = sorted(known - live)
        self.logger.info("issues: %d live, %d deleted since last run", len(live), len(gone))
        for issue_id in gone:
            when = delete_version(server_time, newest.get(issue_id))
            yield {"id": str(issue_id), "updated": when, "_sdc_deleted_at": when}
        state["live_issue_ids"] = encode_ids(live)


def _note_updated(newest: dict[int, datetime], row: dict[str, Any]) -> None:
    text = (row.get("fields") or {}).get("updated")
    if text:
        moment = parse_jira_time(text)
        issue_id = int(row["id"])
        if issue_id not in newest or moment > newest[issue_id]:
            newest[issue_id] = moment
