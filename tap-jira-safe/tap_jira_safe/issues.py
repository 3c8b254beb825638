"""The ``issues`` stream: closed time windows, keyset-paged, verified, deletes proven.

Each run reads ONE closed window ``[bookmark - lookback, server time - search lag)`` with
epoch-millisecond JQL literals (no time zone can misread them), ordered by
``updated ASC, key ASC``. Pages are keyset pages: each next query restarts at the newest
``updated`` seen (``updated >= t``), so issues edited out of the window while we page cannot
shift the rest past us; only a tie group larger than a page follows the server's token or
``startAt``. Then the window's ids are listed again (ids only, big pages) and anything the
pages missed is fetched. The bookmark is the newest ``updated`` emitted, never older than
before and never past ``server time - max(lookback, lag)``.

The search index lags writes (minutes at worst): an issue written ``L`` before a run may be
invisible to it. Its ``updated`` is then above ``sync start - L``, and the next window
starts at most ``2 x lookback`` before that run's start, so a lag up to the lookback (10
minutes by default) is covered. The price: each run re-reads about one lookback of edits.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import requests
from singer_sdk import typing as th
from singer_sdk.exceptions import FatalAPIError
from singer_sdk.helpers.types import Context
from singer_sdk.pagination import BaseAPIPaginator

from tap_jira_safe import reconcile
from tap_jira_safe.client import JiraStream, RepeatedPageTokenError, decoded
from tap_jira_safe.fields import fields_schema, normalise_fields
from tap_jira_safe.site import probe
from tap_jira_safe.timeutil import from_ms, iso_utc, jira_to_iso, parse_jira_time, to_ms

WINDOW_TRIES = 3
VERIFY_ROUNDS = 3
IDS_PAGE = 5000
ONE_MS = timedelta(milliseconds=1)
CHILD_BATCH = 100
Cursor = tuple[int | None, str | int | None]  # (anchor ms, page token or startAt)


def delete_version(server_time: datetime, newest_updated: datetime | None) -> str:
    """A reconciled delete's ``updated``: the sync's Jira server time, or 1 ms past the
    newest ``updated`` emitted for the issue if that is later; never the tap host's clock."""
    if newest_updated is None:
        return iso_utc(server_time)
    return iso_utc(max(server_time, newest_updated + ONE_MS))


class KeysetPaginator(BaseAPIPaginator[Cursor]):
    """``(anchor, cursor)``: restart at the newest ``updated`` of each page; follow the
    server's token (Cloud) or ``startAt`` (Server/DC) only inside a tie group."""

    def __init__(self, lower_ms: int | None, cloud: bool) -> None:
        super().__init__((lower_ms, None))
        self.cloud = cloud
        self.seen: set[str] = set()

    def has_more(self, response: requests.Response) -> bool:
        body = decoded(response)
        issues = reconcile.page_issue_ids(body, "issue search")
        if self.cloud:
            return bool(body.get("nextPageToken")) and body.get("isLast") is not True
        return bool(issues) and int(body["startAt"]) + len(issues) < int(body["total"])

    def continue_if_empty(self, response: requests.Response) -> bool:
        return self.has_more(response)

    def get_next(self, response: requests.Response) -> Cursor:
        body = decoded(response)
        anchor, cursor = self.current_value
        times = [to_ms(parse_jira_time(i["fields"]["updated"])) for i in body["issues"]]
        newest = max(times, default=anchor)
        if newest is not None and (anchor is None or newest > anchor):
            return (newest, None)
        if not self.cloud:
            return (anchor, int(cursor or 0) + len(times))
        token = str(body["nextPageToken"])
        if token in self.seen:
            raise RepeatedPageTokenError(f"page token repeated: {token[:12]}...")
        self.seen.add(token)
        return (anchor, token)


class IssuesStream(JiraStream):
    name = "issues"
    primary_keys = ("id",)
    replication_key = "updated"
    is_sorted = False  # verification re-fetches may come out of order

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._window: tuple[int | None, int] = (None, 0)
        # complete sub-lists from the search response, until the child stream takes them (not
        # in the child context: the SDK logs contexts with every metric)
        self._embedded: dict[tuple[str, str], list[dict[str, Any]] | None] = {}
        self._child_batch: list[str] = []
        self._comment_counts: dict[str, int] = {}
        # ids the stored state already names (live or candidate); None: not reconciling
        self._named: set[int] | None = None
        self._candidates: set[int] = set()

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
                th.Property("archived_at", th.DateTimeType),
                th.Property("_sdc_deleted_at", th.DateTimeType),
            ).to_dict()
            props["properties"]["fields"] = fields_schema(self.call("GET", self.api + "/field"))
            cached = self.__dict__["_jira_schema"] = props
        return cached

    # -- the search request (the SDK's request_records drives the pages) ----------------
    @property
    def path(self) -> str:  # type: ignore[override]
        return "/rest/api/3/search/jql" if self.cloud else "/rest/api/2/search"

    def get_new_paginator(self) -> KeysetPaginator:
        return KeysetPaginator(self._window[0], self.cloud)

    def scope(self) -> list[str]:
        """The clauses every issue query carries: configured projects and the `jql` setting."""
        clauses = []
        if self.config.get("projects"):
            keys = ", ".join(f'"{key}"' for key in self.config["projects"])
            clauses.append(f"project in ({keys})")
        if self.config.get("jql"):
            clauses.append(f"({self.config['jql']})")
        return clauses

    def jql(self, lower_ms: int | None, upper_ms: int | None, order: str, *extra: str) -> str:
        clauses = [*self.scope(), *extra]
        if lower_ms is not None:
            clauses.append(f"updated >= {lower_ms}")
        if upper_ms is not None:
            clauses.append(f"updated < {upper_ms}")
        if not clauses:
            clauses.append('updated >= "1970-01-02"')  # search/jql rejects unbounded JQL
        return " AND ".join(clauses) + f" ORDER BY {order}"

    @property
    def expand(self) -> str:
        """Ask search for changelogs only when they are synced (they make pages heavier)."""
        return "changelog" if self._child_selected("issue_changelogs") else ""

    def _child_selected(self, name: str) -> bool:
        return any(child.name == name and child.selected for child in self.child_streams)

    def get_url_params(self, context: Context | None, next_page_token: Any) -> dict[str, Any]:
        if self.cloud:
            return {}
        anchor, start_at = next_page_token
        return {
            "jql": self.jql(anchor, self._window[1], "updated ASC, key ASC"),
            "fields": "*all",
            "expand": self.expand,
            "maxResults": self.page_size,
            "startAt": start_at or 0,
        }

    def prepare_request_payload(
        self, context: Context | None, next_page_token: Any
    ) -> dict[str, Any] | None:
        if not self.cloud:
            return None
        anchor, token = next_page_token
        body: dict[str, Any] = {
            "jql": self.jql(anchor, self._window[1], "updated ASC, key ASC"),
            "fields": ["*all"],
            "expand": self.expand,
            "maxResults": self.page_size,
        }
        if token:
            body["nextPageToken"] = token
        return body

    # -- records ------------------------------------------------------------------------
    def parse_response(self, response: requests.Response) -> Iterator[dict[str, Any]]:
        body = decoded(response)
        rows = body.get("issues") if isinstance(body, dict) else None
        if not isinstance(rows, list):
            return  # the paginator's shape check stops the run
        self._announce(rows)
        yield from rows

    def _announce(self, rows: list[dict[str, Any]]) -> None:
        """Before the first RECORD of an id the stored state does not name, emit a STATE that
        names it a candidate. That STATE carries no new record and keeps the bookmark, so a
        target may store it at once; a run killed after loading the id then leaves it where
        the next reconciliation looks it up (and deletes it if it is gone)."""
        if self._named is None:
            return
        new = {int(row["id"]) for row in rows} - self._named
        if not new:
            return
        self._named |= new
        self._candidates |= new
        state = self.get_context_state(None)
        state["live_issue_candidates"] = reconcile.encode_ids(self._candidates)
        self.state_manager.is_flushed = False  # the SDK writes only a state it marked changed
        self._write_state_message()

    def post_process(self, row: dict[str, Any], context: Context | None = None) -> dict[str, Any]:
        if row.get("_sdc_deleted_at"):
            return row
        fields = dict(row.get("fields") or {})
        comment = fields.pop("comment", None) or {}
        fields.pop("worklog", None)
        for child, items, embedded in (
            ("issue_comments", "comments", comment),
            ("issue_changelogs", "histories", row.get("changelog") or {}),
        ):
            if self._child_selected(child):
                self._embedded[(str(row["id"]), items)] = _complete(embedded, items)
        archived = fields.pop("archiveddate", None)
        fields.pop("archivedby", None)
        return {
            "id": str(row["id"]),
            "key": row.get("key"),
            "self": row.get("self"),
            "project_key": (fields.get("project") or {}).get("key"),
            "created": jira_to_iso(fields.get("created")),
            "updated": jira_to_iso(fields.get("updated")),
            "comment_count": comment.get("total"),
            "fields": normalise_fields(fields, self.schema["properties"]["fields"]),
            "archived_at": jira_to_iso(archived),
            "_sdc_deleted_at": None,
        }

    def generate_child_contexts(
        self, record: dict[str, Any], context: Context | None
    ) -> Iterator[Context | None]:
        """Children run once per CHILD_BATCH issues, not once per issue: the SDK's per-sync
        work (state, metrics, logs) dominated a big site's run. The rest go at the end."""
        if record.get("_sdc_deleted_at"):
            return
        self._child_batch.append(str(record["id"]))
        self._comment_counts[str(record["id"])] = int(record.get("comment_count") or 0)
        if len(self._child_batch) >= CHILD_BATCH:
            batch, self._child_batch = self._child_batch, []
            yield {"issue_ids": batch}

    def comment_count(self, issue_id: str) -> int:
        return self._comment_counts.pop(issue_id, 0)

    def take_embedded(self, issue_id: str, items: str) -> list[dict[str, Any]] | None:
        """An issue's ``comments`` or ``histories`` from the search response, if complete."""
        return self._embedded.pop((issue_id, items), None)

    def get_replication_key_signpost(self, context: Context | None = None) -> str:
        """The bookmark's ceiling: sync start (Jira's clock) minus max(lookback, search lag)."""
        return iso_utc(probe(self).server_time - max(self.lookback, self.search_lag))

    @property
    def lookback(self) -> timedelta:
        return timedelta(minutes=float(self.config.get("lookback_minutes", 10)))

    @property
    def search_lag(self) -> timedelta:
        return timedelta(seconds=float(self.config.get("search_lag_seconds", 30)))

    def get_records(self, context: Context | None) -> Iterator[dict[str, Any]]:
        start = self.get_starting_timestamp(context)
        lower = to_ms(start - self.lookback) if start else None
        upper = to_ms(probe(self).server_time - self.search_lag)
        self._keep_bookmark_from_going_back(context)
        self._window = (lower, upper)
        self.http_method = "POST" if self.cloud else "GET"
        state = self.get_context_state(context)
        reconciling = bool(self.config.get("reconcile_deletes"))
        if reconciling:  # first: a bad listing must stop the run before anything is emitted
            self._candidates = reconcile.decode_ids(state.get("live_issue_candidates") or [])
            known = reconcile.decode_ids(state.get("live_issue_ids") or []) | self._candidates
            self._named = set(known)
            listed = self.list_ids(self.jql(None, None, "created ASC"))
            fraction = float(self.config.get("max_delete_fraction", 0.05))
            missing = reconcile.check_listing(known, listed, fraction)
        self.logger.info("issues window [%s, %s)", lower and from_ms(lower), from_ms(upper))
        emitted: dict[int, str] = {}  # id -> `updated` text emitted this run
        newest: dict[int, datetime] = {}  # the newest `updated` emitted per issue this run
        for row in self._page_window():
            if emitted.get(int(row["id"])) == row["fields"]["updated"]:
                continue  # re-read at a keyset anchor
            emitted[int(row["id"])] = row["fields"]["updated"]
            _note_updated(newest, row)
            yield row
        for row in self._verify_window(emitted):
            _note_updated(newest, row)
            yield row
        if reconciling:
            yield from self._apply_verdicts(state, listed | set(emitted), missing, newest)
        # the last issues' children, and those held back for bulk calls: before our STATE
        batch, self._child_batch = self._child_batch, []
        self._sync_children({"issue_ids": batch, "last": True})

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

    def list_ids(self, jql: str) -> set[int]:
        """Every id a JQL finds: ids-only pages of the server's size, token (Cloud) or
        ``startAt`` (Server/DC) paging; every page is checked for shape."""
        ids: set[int] = set()
        token: str | None = None
        start_at = 0
        while True:
            if self.cloud:
                body: dict[str, Any] = {"jql": jql, "maxResults": IDS_PAGE}
                if token:
                    body["nextPageToken"] = token
                page = self.call("POST", "/rest/api/3/search/jql", json=body)
            else:
                params = {"jql": jql, "fields": "id", "maxResults": 1000, "startAt": start_at}
                page = self.call("GET", "/rest/api/2/search", params=params)
            found = reconcile.page_issue_ids(page, "issue id listing")
            ids.update(found)
            if self.cloud:
                next_token = page.get("nextPageToken")
                if not next_token or page.get("isLast") is True:
                    return ids
                if next_token == token:
                    raise RepeatedPageTokenError(f"page token repeated: {next_token[:12]}...")
                token = str(next_token)
            else:
                start_at += len(found)
                if not found or start_at >= int(page.get("total", 0)):
                    return ids

    def bulkfetch(self, ids: list[int]) -> Iterator[tuple[list[int], dict[str, Any]]]:
        """Cloud's ``issue/bulkfetch``, 100 ids a call: ``(ids asked, answer)`` per call."""
        for n in range(0, len(ids), reconcile.BULK):
            chunk = ids[n : n + reconcile.BULK]
            body = {"issueIdsOrKeys": [str(i) for i in chunk], "fields": ["*all"]}
            yield chunk, self.call("POST", "/rest/api/3/issue/bulkfetch", json=body)

    def fetch(self, ids: list[int]) -> Iterator[dict[str, Any]]:
        """Current versions of some issues (bulkfetch on Cloud; one by one on Server)."""
        if self.cloud:
            for _, page in self.bulkfetch(ids):
                yield from page.get("issues", [])
            return
        for issue_id in ids:
            try:
                yield self.call("GET", f"/rest/api/2/issue/{issue_id}")
            except FatalAPIError as exc:
                if " 404 " not in str(exc):
                    raise

    def _verify_window(self, emitted: dict[int, str]) -> Iterator[dict[str, Any]]:
        lower, upper = self._window
        for _ in range(VERIFY_ROUNDS):
            listed = self.list_ids(self.jql(lower, upper, "created ASC"))
            missing = sorted(i for i in listed if i not in emitted)
            if not missing:
                return
            self.logger.warning("issues: %d issue(s) missed by paging; fetching them", len(missing))
            fetched = list(self.fetch(missing))
            self._announce(fetched)
            for raw in fetched:
                emitted[int(raw["id"])] = raw["fields"]["updated"]
                yield raw
        raise RuntimeError(
            f"issues: window [{lower}, {upper}) still differs from its id listing after "
            f"{VERIFY_ROUNDS} verification rounds; run again (state was not advanced)."
        )

    def in_scope(self, raw: dict[str, Any]) -> bool:
        """Whether an existing issue is still one this tap syncs (projects and `jql`)."""
        projects = self.config.get("projects")
        project = ((raw.get("fields") or {}).get("project") or {}).get("key")
        if projects and project not in projects:
            return False
        if not self.config.get("jql"):
            return True
        try:
            return bool(self.list_ids(self.jql(None, None, "created ASC", f"issue = {raw['id']}")))
        except FatalAPIError:
            return True  # deleted meanwhile, or not checkable: keep, decide next run

    def _apply_verdicts(
        self,
        state: dict[str, Any],
        live: set[int],
        missing: set[int],
        newest: dict[int, datetime],
    ) -> Iterator[dict[str, Any]]:
        """Prove each missing id; emit deletes, archive flags and scope leavers."""
        verdicts = reconcile.prove(self, missing)
        server_time = probe(self).server_time
        for issue_id in verdicts.deleted:
            when = delete_version(server_time, newest.get(issue_id))
            yield {"id": str(issue_id), "updated": when, "_sdc_deleted_at": when}
        yield from verdicts.archived
        moved = self.config.get("issues_leaving_scope", "update")
        for raw in verdicts.left_scope:
            if moved == "delete":
                when = delete_version(server_time, newest.get(int(raw["id"])))
                yield {"id": str(raw["id"]), "updated": when, "_sdc_deleted_at": when}
            else:
                yield raw
        gone = {int(r["id"]) for r in verdicts.archived + verdicts.left_scope}
        self.logger.info(
            "issues: %d live; %d deleted, %d archived, %d left scope (%s), %d kept unproven",
            len(live),
            len(verdicts.deleted),
            len(verdicts.archived),
            len(verdicts.left_scope),
            moved,
            len(verdicts.kept),
        )
        state["live_issue_ids"] = reconcile.encode_ids(
            (live | verdicts.kept) - set(verdicts.deleted) - gone
        )
        state.pop("live_issue_candidates", None)  # each was listed, emitted or proven above


def _note_updated(newest: dict[int, datetime], row: dict[str, Any]) -> None:
    text = (row.get("fields") or {}).get("updated")
    if text:
        moment = parse_jira_time(text)
        issue_id = int(row["id"])
        if issue_id not in newest or moment > newest[issue_id]:
            newest[issue_id] = moment


def _complete(embedded: dict[str, Any], items: str) -> list[dict[str, Any]] | None:
    """An embedded sub-list if search returned all of it (``total`` says), else None."""
    rows = embedded.get(items)
    if not isinstance(rows, list) or len(rows) < int(embedded.get("total", len(rows))):
        return None
    return rows
