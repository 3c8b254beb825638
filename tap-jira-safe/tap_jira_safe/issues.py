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
from singer_sdk.helpers.types import Context
from typing_extensions import override

from tap_jira_safe import idlisting, idruns, reconcile, sdk_compat, tokens, visibility
from tap_jira_safe.client import JiraStream, decoded, listed_items
from tap_jira_safe.errors import IncompleteRead, JiraApiError, JiraNotFound
from tap_jira_safe.fields import fields_schema, normalise_fields
from tap_jira_safe.lag import LagGauge
from tap_jira_safe.timeutil import from_ms, iso_utc, jira_to_iso, to_ms
from tap_jira_safe.window import KeysetPaginator, complete_list, delete_version, note_updated

VERIFY_ROUNDS = 3
CHILD_BATCH = 100
RECONCILE_MAX = 50  # search/jql's `reconcileIssues` takes at most 50 ids
# issue/bulkfetch: 1,000 ids a call when fields are named, none multi-valued and nothing is
# expanded; 100 otherwise (Jira Cloud REST v3, "Bulk fetch issues")
BULK_NARROW, BULK_WIDE = 1000, 100
MULTI_VALUED = {"comment", "worklog", "attachment", "*all", "*navigable"}


class IssuesStream(JiraStream):
    name = "issues"
    primary_keys = ("id",)
    replication_key = "updated"
    is_sorted = False  # verification re-fetches may come out of order

    _fields_schema: dict[str, Any] | None = None  # read from /field on first use

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._window: tuple[int | None, int] = (None, 0)
        self._child_batch: dict[str, str] = {}  # issue id -> its `updated`, for the children
        # ids the stored state already names (live or candidate); None: not reconciling
        self._named: set[int] | None = None
        self._candidates: set[int] = set()
        # issues the last run saw at its window's upper edge: search reads them consistently
        self._edge_ids: list[int] = []
        self._owners = visibility.IssueProjects({}, ())  # each known issue's project
        self.lag = LagGauge(self.metrics_logger, self.name)

    # -- schema: typed from /field ------------------------------------------------------
    @property
    @override
    def schema(self) -> dict[str, Any]:
        cached = self._fields_schema
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
            field_list = self.call("GET", self.api + "/field")
            listed = listed_items(field_list, None, f"GET {self.api}/field")
            props["properties"]["fields"] = fields_schema(listed)
            cached = self._fields_schema = props
        return cached

    # -- the search request (the SDK's request_records drives the pages) ----------------
    @property
    @override
    def path(self) -> str:  # type: ignore[override]
        return "/rest/api/3/search/jql" if self.cloud else "/rest/api/2/search"

    @override
    def get_new_paginator(self) -> KeysetPaginator:
        return KeysetPaginator(self._window[0], self.cloud)

    def scope(self) -> list[str]:
        """The clauses every issue query carries: configured projects and the `jql` setting."""
        clauses = []
        if self.settings.projects:
            keys = ", ".join(f'"{key}"' for key in self.settings.projects)
            clauses.append(f"project in ({keys})")
        if self.settings.jql:
            clauses.append(f"({self.settings.jql})")
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

    @override
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

    @override
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
        if self._edge_ids:
            body["reconcileIssues"] = self._edge_ids
        return body

    # -- records ------------------------------------------------------------------------
    @override
    def parse_response(self, response: requests.Response) -> Iterator[dict[str, Any]]:
        body = decoded(response)
        reconcile.page_issue_ids(body, "issue search")  # the shape, before any record
        rows = body["issues"]
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
        state["live_issue_candidates"] = idruns.encode_ids(self._candidates)
        sdk_compat.write_state_now(self)

    @override
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
                rows = complete_list(embedded, items)
                self.parts.issue_side.put_embedded(str(row["id"]), items, rows)
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

    @override
    def generate_child_contexts(
        self, record: dict[str, Any], context: Context | None
    ) -> Iterator[Context | None]:
        """Children run once per CHILD_BATCH issues, not once per issue: the SDK's per-sync
        work (state, metrics, logs) dominated a big site's run. The rest go at the end."""
        if record.get("_sdc_deleted_at"):
            return
        self._child_batch[str(record["id"])] = record["updated"]
        count = int(record.get("comment_count") or 0)
        self.parts.issue_side.put_comment_count(str(record["id"]), count)
        for child, field in (("issue_watchers", "watches"), ("issue_votes", "votes")):
            if self._child_selected(child):
                summary = (record.get("fields") or {}).get(field)
                self.parts.issue_side.put_summary(str(record["id"]), field, summary)
        if len(self._child_batch) >= CHILD_BATCH:
            batch, self._child_batch = self._child_batch, {}
            yield {"issue_ids": list(batch), "issue_updated": batch}

    @override
    def get_replication_key_signpost(self, context: Context | None = None) -> str:
        """The bookmark's ceiling: sync start (Jira's clock) minus max(lookback, search lag)."""
        return iso_utc(self.site.facts(self).server_time - max(self.lookback, self.search_lag))

    @property
    def lookback(self) -> timedelta:
        return timedelta(minutes=self.settings.lookback_minutes)

    @property
    def search_lag(self) -> timedelta:
        return timedelta(seconds=self.settings.search_lag_seconds)

    @override
    def get_records(self, context: Context | None) -> Iterator[dict[str, Any]]:
        start = self.get_starting_timestamp(context)
        lower = to_ms(start - self.lookback) if start else None
        upper = to_ms(self.site.facts(self).server_time - self.search_lag)
        self._keep_bookmark_from_going_back(context)
        self._window = (lower, upper)
        self.http_method = "POST" if self.cloud else "GET"
        state = self.get_context_state(context)
        self._owners = visibility.IssueProjects(state, self.settings.projects)
        if self.cloud:
            self._edge_ids = [int(i) for i in state.get("window_edge_issue_ids") or []]
            self._edge_ids = self._edge_ids[:RECONCILE_MAX]
        if self.settings.reconcile_deletes:  # first: a bad listing must stop the run early
            self._candidates = idruns.decode_ids(state.get("live_issue_candidates") or [])
            known = idruns.decode_ids(state.get("live_issue_ids") or []) | self._candidates
            self._named = set(known)
            owners = self._owners if self._owners.lacks(known) else None
            listed = self.list_ids(self.jql(None, None, "created ASC"), owners)
            fraction = self.settings.max_delete_fraction
            missing = reconcile.check_listing(known, listed, fraction)
        self.logger.info("issues window [%s, %s)", lower and from_ms(lower), from_ms(upper))
        self.lag.start(state.get("replication_key_value"), self.get_replication_key_signpost())
        emitted: dict[int, str] = {}  # id -> `updated` text emitted this run
        newest: dict[int, datetime] = {}  # the newest `updated` emitted per issue this run
        for row in self._page_window():
            if emitted.get(int(row["id"])) == row["fields"]["updated"]:
                continue  # re-read at a keyset anchor
            emitted[int(row["id"])] = row["fields"]["updated"]
            self.lag.observe(note_updated(newest, row))
            self._owners.learn(row)
            yield row
        for row in self._verify_window(emitted):
            self.lag.observe(note_updated(newest, row))
            self._owners.learn(row)
            yield row
        if self.settings.reconcile_deletes:
            yield from self._apply_verdicts(state, listed | set(emitted), missing, newest)
        if newest and self.cloud:  # only Cloud's search/jql takes `reconcileIssues`
            edge = sorted(newest, key=lambda issue_id: newest[issue_id])[-RECONCILE_MAX:]
            state["window_edge_issue_ids"] = sorted(edge)
        # the last issues' children, and those held back for bulk calls: before our STATE
        batch, self._child_batch = self._child_batch, {}
        sdk_compat.sync_children(
            self, {"issue_ids": list(batch), "issue_updated": batch, "last": True}
        )
        self.lag.finish()

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
        for attempt in range(1, tokens.TRIES + 1):
            try:
                yield from self.request_records(None)
                return
            except tokens.RESTARTED as exc:
                if attempt == tokens.TRIES:
                    raise
                self.logger.warning("issues: %s; restarting the window (try %d)", exc, attempt)

    def list_ids(self, jql: str, owners: visibility.IssueProjects | None = None) -> set[int]:
        """Every id a JQL finds (ids-only pages); with ``owners``, each issue's project too."""
        return idlisting.list_ids(self, jql, self._edge_ids, owners)

    def bulkfetch(
        self, ids: list[int], fields: tuple[str, ...]
    ) -> Iterator[tuple[list[int], dict[str, Any]]]:
        """Cloud's ``issue/bulkfetch``: ``(ids asked, answer)`` per call, 1,000 ids a call
        when the fields named are all single-valued, else 100."""
        size = BULK_WIDE if MULTI_VALUED & set(fields) else BULK_NARROW
        for n in range(0, len(ids), size):
            chunk = ids[n : n + size]
            body = {"issueIdsOrKeys": [str(i) for i in chunk], "fields": list(fields)}
            answer = self.call("POST", "/rest/api/3/issue/bulkfetch", json=body)
            listed_items(answer, "issues", "POST /rest/api/3/issue/bulkfetch")
            yield chunk, answer

    def get_issue(self, issue_id: int, fields: tuple[str, ...]) -> dict[str, Any]:
        """One issue (archived ones too), or :class:`JiraNotFound`."""
        params = {"fields": ",".join(fields)}
        issue: dict[str, Any] = self.call("GET", f"{self.api}/issue/{issue_id}", params=params)
        return issue

    def fetch(self, ids: list[int]) -> Iterator[dict[str, Any]]:
        """Current full versions of some issues: bulkfetch on Cloud, then one by one what
        it did not return (archived issues); gone ones are skipped."""
        unread = list(ids)
        if self.cloud:
            returned: set[int] = set()
            for _, page in self.bulkfetch(ids, ("*all",)):
                for raw in page.get("issues") or []:
                    returned.add(int(raw["id"]))
                    yield raw
            unread = [i for i in ids if i not in returned]
        for issue_id in unread:
            try:
                yield self.get_issue(issue_id, ("*all",))
            except JiraNotFound:
                continue

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
        raise IncompleteRead(
            f"issues: window [{lower}, {upper}) still differs from its id listing after "
            f"{VERIFY_ROUNDS} verification rounds; run again (state was not advanced)."
        )

    def in_scope(self, raw: dict[str, Any]) -> bool:
        """Whether an existing issue is still one this tap syncs (projects and `jql`)."""
        project = ((raw.get("fields") or {}).get("project") or {}).get("key")
        if self.settings.projects and project not in self.settings.projects:
            return False
        if not self.settings.jql:
            return True
        try:
            return bool(self.list_ids(self.jql(None, None, "created ASC", f"issue = {raw['id']}")))
        except JiraApiError:
            return True  # deleted meanwhile, or not checkable: keep, decide next run

    def can_browse(self, project: visibility.Project) -> bool:
        return visibility.can_browse(self.call, self.api, project)

    def _apply_verdicts(
        self,
        state: dict[str, Any],
        live: set[int],
        missing: set[int],
        newest: dict[int, datetime],
    ) -> Iterator[dict[str, Any]]:
        """Prove each missing id and re-check known archived ones; emit deletes, archive
        flags and scope leavers."""
        known_archived = idruns.decode_ids(state.get("archived_issue_ids") or [])
        archived = known_archived - live
        rechecked = reconcile.archived_to_recheck(
            state, archived, self.settings.archived_checks_per_run
        )
        confirmed = self.settings.confirm_deleted_projects
        verdicts = reconcile.prove(self, missing | rechecked, self._owners, confirmed)
        visibility.warn_hidden(self.logger, verdicts.hidden)
        held = verdicts.unproven.union(*verdicts.hidden.values())  # ask again next run
        server_time = self.site.facts(self).server_time
        for issue_id in verdicts.deleted:
            when = delete_version(server_time, newest.get(issue_id))
            yield {"id": str(issue_id), "updated": when, "_sdc_deleted_at": when}
        still_archived = {int(r["id"]) for r in verdicts.archived}
        yield from self.fetch(sorted(still_archived - archived))  # newly archived: flag once
        # back from the archive (listed again, or read back in scope): clear the flag, as
        # restoring need not change `updated`
        restored = (known_archived & live) | (verdicts.kept & rechecked)
        yield from self.fetch(sorted(restored))
        leaving = self.settings.issues_leaving_scope
        left = [int(raw["id"]) for raw in verdicts.left_scope]
        if leaving == "delete":
            for issue_id in left:
                when = delete_version(server_time, newest.get(issue_id))
                yield {"id": str(issue_id), "updated": when, "_sdc_deleted_at": when}
        else:
            yield from self.fetch(left)
        self.logger.info(
            "issues: %d live; %d deleted, %d archived (%d re-checked, %d restored), "
            "%d left scope (%s), %d kept unproven (%d in projects not browsable)",
            len(live),
            len(verdicts.deleted),
            len(still_archived - archived),
            len(rechecked),
            len(restored),
            len(left),
            leaving,
            len(held),
            len(held - verdicts.unproven),
        )
        gone = set(verdicts.deleted) | still_archived | set(left)
        live_now = (live | verdicts.kept | (held - rechecked)) - gone
        archived_now = (archived - rechecked) | still_archived | (held & rechecked)
        state["live_issue_ids"] = idruns.encode_ids(live_now)
        state["archived_issue_ids"] = idruns.encode_ids(archived_now)
        self._owners.save(state, live_now | archived_now)
        state.pop("live_issue_candidates", None)  # each was listed, emitted or proven above
